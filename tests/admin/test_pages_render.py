"""Every back-office page renders for every finance role (a template error fails here)."""

import pytest
from django.urls import reverse

from plans.models import AddOn, Plan
from tests.admin.conftest import as_user

pytestmark = pytest.mark.django_db


def pages(month):
    return [
        reverse("admin:index"),
        reverse("admin:audit"),
        reverse("admin:accounts_customer_changelist"),
        reverse("admin:accounts_customer_change", args=[month.alpha.pk]),
        reverse("admin:accounts_application_changelist"),
        reverse("admin:accounts_application_change", args=[month.beta_app.pk]),
        reverse("admin:accounts_application_usage", args=[month.beta_app.pk]) + "?period=2026-10",
        reverse("admin:accounts_dailyusage_changelist"),
        reverse("admin:accounts_ledgerentry_changelist"),
        reverse("admin:accounts_customerevent_changelist"),
        reverse("admin:plans_plan_changelist"),
        reverse("admin:plans_plan_change", args=[Plan.objects.get(code="premium").pk]),
        reverse("admin:plans_addon_change", args=[AddOn.objects.get(code="desktop_pc").pk]),
        reverse("admin:plans_addon_changelist"),
        reverse("admin:plans_planprice_changelist"),
        reverse("admin:plans_addonprice_changelist"),
        reverse("admin:plans_planchange_changelist"),
        reverse("admin:plans_dedicatedcontract_changelist"),
        reverse("admin:plans_discount_changelist"),
        reverse("admin:accounts_mailbounce_changelist"),
        reverse("admin:invoices_invoice_changelist"),
        reverse("admin:invoices_invoice_change", args=[month.issued.pk]),
        reverse("admin:invoices_invoice_change", args=[month.held.pk]),
        reverse("admin:invoices_invoice_history", args=[month.issued.pk]),
        reverse("admin:invoices_invoice_review"),
        reverse("admin:invoices_creditnote_changelist"),
        reverse("admin:invoices_billingrun_changelist"),
    ]


@pytest.mark.parametrize("role", ["clerk", "manager", "auditor"])
def test_every_page_renders_for_every_role(client, users, month, role):
    as_user(client, users[role])
    for url in pages(month):
        response = client.get(url)
        assert response.status_code == 200, url
