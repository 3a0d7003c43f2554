"""Finance grants promotional credit from the customer page: a form with a confirmation step
like the other money actions; bad input is a form error and writes nothing."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import LedgerEntry
from accounts.promo_credit import paid_balance, promo_credit_held
from accounts.selectors import ledger_balance
from invoices.admin.dashboard import audit_trail
from tests.admin.conftest import as_user
from tests.admin.test_money_confirmation import confirm

pytestmark = pytest.mark.django_db


def grant_url(customer):
    return reverse("admin:accounts_customer_promo_credit", args=[customer.pk])


def test_finance_grants_promotional_credit_once_after_confirming(client, manager, month):
    as_user(client, manager)
    url = grant_url(month.alpha)
    balance = ledger_balance(customer=month.alpha)
    form = {
        "amount": "800.00",
        "reason": "Double 11 campaign",
        "expires_on": "2099-12-31",
        "token": uuid.uuid4().hex,
    }

    page = client.post(url, form)

    assert page.status_code == 200
    assert "Nothing is written until you confirm." in page.content.decode()
    assert not LedgerEntry.objects.filter(kind="promo_grant").exists()
    assert (confirm(client, url, page).status_code, confirm(client, url, page).status_code) == (
        302,
        302,
    )
    [grant] = LedgerEntry.objects.filter(kind="promo_grant")
    assert (grant.customer, grant.amount.amount, grant.reason, grant.expires_on) == (
        month.alpha,
        Decimal("800.00"),
        "Double 11 campaign",
        dt.date(2099, 12, 31),
    )
    assert grant.created_by == manager
    assert ledger_balance(customer=month.alpha) == balance + Decimal("800.00")
    assert promo_credit_held(customer=month.alpha) == Decimal("800.00")
    assert paid_balance(customer=month.alpha) == balance
    # The audit trail says who granted it, like the other ledger writes.
    [granted] = audit_trail(kinds=["promo_credit"])
    assert (granted.username, granted.subject, granted.detail) == (
        manager.username,
        f"{month.alpha.name}: ¥800.00",
        "Double 11 campaign",
    )


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("expires_on", "2020-01-01", "the expiry date must be in the future"),
        ("expires_on", "not a date", "Enter a valid date."),
        ("reason", "  ", "This field is required."),
        ("amount", "-5.00", "Ensure this value is greater than or equal to 0.01."),
    ],
)
def test_a_bad_grant_is_a_form_error_and_writes_nothing(
    client, manager, month, field, value, error
):
    as_user(client, manager)
    url = grant_url(month.alpha)
    form = {
        "amount": "800.00",
        "reason": "Campaign",
        "expires_on": "2099-12-31",
        "token": uuid.uuid4().hex,
        field: value,
    }

    page = client.post(url, form)
    if "resend" in (page.context or {}):
        page = confirm(client, url, page)

    assert page.status_code == 200
    assert error in page.content.decode()
    assert not LedgerEntry.objects.filter(kind="promo_grant").exists()


def test_the_customer_page_links_the_grant_form(client, manager, month):
    as_user(client, manager)
    page = client.get(reverse("admin:accounts_customer_change", args=[month.alpha.pk]))
    assert grant_url(month.alpha) in page.content.decode()
