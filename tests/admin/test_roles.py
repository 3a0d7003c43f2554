"""Each finance role can do what it should and is refused what it should not, proven by the
HTTP status and by the database afterwards.

Finance clerk: sees everything, records deposits and adjustments, imports usage.
Finance manager: also edits prices, adds contracts, issues, credits, starts billing runs and
switches or runs the periodic tasks (month-end billing).
Auditor: reads everything, changes nothing.
"""

import uuid
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

import accounts.events.tasks  # noqa: F401 (registers the task)
from accounts.models import Customer, DailyUsage, LedgerEntry
from billingsite.celery import app
from invoices.models import BillingRun, CreditNote, Invoice
from plans.models import DedicatedContract, PlanPrice
from tests.admin.conftest import as_user, post_confirmed
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def record_deposit(client, month):
    before = LedgerEntry.objects.count()
    response = post_confirmed(
        client,
        reverse("admin:accounts_customer_deposit", args=[month.alpha.pk]),
        {"amount": "100.00", "bank_reference": "R-1", "token": uuid.uuid4().hex},
    )
    return response, LedgerEntry.objects.count() == before + 1


def record_adjustment(client, month):
    before = LedgerEntry.objects.count()
    response = post_confirmed(
        client,
        reverse("admin:accounts_customer_adjust", args=[month.alpha.pk]),
        {"amount": "-1.00", "reason": "fee", "token": uuid.uuid4().hex},
    )
    return response, LedgerEntry.objects.count() == before + 1


def import_usage(client, month):
    upload = SimpleUploadedFile(
        "usage.csv", b"app_key,date,dau,delivered_messages\nalpha-app,2026-11-01,500,900\n"
    )
    response = client.post(reverse("admin:accounts_dailyusage_import"), {"file": upload})
    return response, DailyUsage.objects.filter(day="2026-11-01").exists()


def add_price(client, month):
    response = client.post(
        reverse("admin:plans_planprice_add"),
        {
            "plan": PlanPrice.objects.get(plan__code="premium").plan_id,
            "valid_from": "2027-01-01",
            "minimum_deposit_0": "6000.00",
            "minimum_deposit_1": "CNY",
            "dau_base_fee_0": "6500.00",
            "dau_base_fee_1": "CNY",
            "included_dau": "10000",
            "dau_block_size": "10000",
            "dau_block_price_0": "3000.00",
            "dau_block_price_1": "CNY",
            "note": "2027 price list",
        },
    )
    return response, PlanPrice.objects.filter(valid_from="2027-01-01").exists()


def edit_customer(client, month):
    customer = month.alpha
    response = client.post(
        reverse("admin:accounts_customer_change", args=[customer.pk]),
        {
            "name": "Alpha Renamed",
            "billing_email": customer.billing_email,
            "address": customer.address,
            "tax_id": customer.tax_id,
            "contact_name": "",
            "contact_phone": "",
            "preferred_language": "en",
            # The read-only inlines (and the contacts inline) still send their management forms.
            **{
                f"{prefix}-{key}": value
                for prefix in ("billing_contacts", "applications", "ledger_entries", "invoices")
                for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
            },
        },
    )
    return response, Customer.objects.get(pk=customer.pk).name == "Alpha Renamed"


def add_contract(client, month):
    response = client.post(
        reverse("admin:accounts_application_contract", args=[month.beta_app.pk]),
        {"monthly_fee": "20000.00", "first_day": "2026-10-01", "token": uuid.uuid4().hex},
    )
    return response, DedicatedContract.objects.exists()


def issue_invoice(client, month):
    response = client.post(reverse("admin:invoices_invoice_issue", args=[month.held.pk]))
    return response, Invoice.objects.get(pk=month.held.pk).status == "issued"


def rerate_invoice(client, month):
    before = Invoice.objects.get(pk=month.held.pk).rated_at
    response = client.post(reverse("admin:invoices_invoice_rerate", args=[month.held.pk]))
    return response, Invoice.objects.get(pk=month.held.pk).rated_at != before


def credit_invoice(client, month):
    response = post_confirmed(
        client,
        reverse("admin:invoices_invoice_credit", args=[month.issued.pk]),
        {"mode": "whole", "reason": "mistake", "token": uuid.uuid4().hex},
    )
    return response, CreditNote.objects.exists()


def start_run(client, month):
    response = client.post(
        reverse("admin:invoices_billingrun_add"), {"period": "2026-10", "confirmed": "True"}
    )
    return response, BillingRun.objects.exists()


def issue_by_bulk_action(client, month):
    response = client.post(
        reverse("admin:invoices_invoice_changelist"),
        {"action": "issue_selected", "_selected_action": [month.held.pk]},
    )
    return response, Invoice.objects.get(pk=month.held.pk).status == "issued"


ALLOWED = {
    "clerk": {record_deposit, record_adjustment, import_usage, edit_customer},
    "manager": {
        record_deposit,
        record_adjustment,
        import_usage,
        edit_customer,
        add_price,
        add_contract,
        issue_invoice,
        rerate_invoice,
        credit_invoice,
        start_run,
        issue_by_bulk_action,
    },
    "auditor": set(),
}
OPERATIONS = sorted(ALLOWED["manager"], key=lambda op: op.__name__)


class RolledBack(Exception):
    pass


@pytest.mark.parametrize("role", ["clerk", "manager", "auditor"])
def test_role_can_or_cannot(client, users, month, role):
    """Every operation against the same October, each one rolled back afterwards."""
    as_user(client, users[role])
    for operation in OPERATIONS:
        name = operation.__name__
        try:
            with transaction.atomic():
                response, changed = operation(client, month)
                if operation in ALLOWED[role]:
                    assert response.status_code == 302, (name, response.content[:2000])
                    assert changed, name
                else:
                    # An action not offered to the role is "no action selected": back to the list.
                    expected = 302 if operation is issue_by_bulk_action else 403
                    assert response.status_code == expected, name
                    assert not changed, name
                raise RolledBack
        except RolledBack:
            pass


@pytest.mark.parametrize(
    ("role", "visible", "hidden"),
    [
        ("clerk", ["Record deposit", "Manual adjustment"], ["Start a billing run"]),
        ("manager", ["Record deposit", "Start a billing run"], []),
        ("auditor", [], ["Record deposit", "Manual adjustment", "Start a billing run"]),
    ],
)
def test_buttons_follow_the_role(client, users, month, role, visible, hidden):
    as_user(client, users[role])
    page = client.get(reverse("admin:accounts_customer_change", args=[month.alpha.pk]))
    index = client.get(reverse("admin:index"))
    body = page.content.decode() + index.content.decode()
    for text in visible:
        assert text in body
    for text in hidden:
        assert text not in body


def test_auditor_reads_everything_but_sees_no_save_button(client, auditor, month):
    as_user(client, auditor)
    page = client.get(reverse("admin:plans_planprice_change", args=[PlanPrice.objects.first().pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    invoice = client.get(reverse("admin:invoices_invoice_change", args=[month.held.pk]))
    body = invoice.content.decode()
    assert "Issue as it is" not in body and "Re-rate" not in body
    assert "Download PDF" in body


def test_staff_without_a_finance_role_sees_nothing(client, month):

    as_user(client, StaffFactory(username="intern"))
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200 and index.context["dashboard"] is None
    assert "Alpha" not in index.content.decode() and "¥" not in index.content.decode()
    assert client.get(reverse("admin:invoices_invoice_changelist")).status_code == 403
    assert client.get(reverse("admin:audit")).status_code == 403
    assert (
        post_confirmed(
            client,
            reverse("admin:accounts_customer_deposit", args=[month.alpha.pk]),
            {"amount": "1.00", "bank_reference": "x", "token": uuid.uuid4().hex},
        ).status_code
        == 403
    )
    assert LedgerEntry.objects.filter(amount=Decimal("1.00")).count() == 0


# --- the beat schedule (django-celery-beat's "Periodic tasks") --------------------------------


@pytest.fixture
def month_end_task(db):

    crontab = CrontabSchedule.objects.create(
        minute="0", hour="0", day_of_month="2", timezone="Asia/Shanghai"
    )
    return PeriodicTask.objects.create(
        name="month-end-billing",
        task="accounts.tasks.deliver_pending_events",  # a cheap task stands in for the run
        crontab=crontab,
        enabled=True,
    )


@pytest.fixture
def task_runs(monkeypatch):

    runs = []
    task = app.tasks["accounts.tasks.deliver_pending_events"]
    monkeypatch.setattr(task, "apply_async", lambda *args, **kwargs: runs.append(kwargs))
    return runs


def periodic_task_action(client, task, action):
    return client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": action, "_selected_action": [task.pk]},
    )


@pytest.mark.parametrize("role", ["clerk", "auditor"])
@pytest.mark.parametrize("action", ["disable_tasks", "toggle_tasks", "run_tasks"])
def test_only_managers_switch_or_run_periodic_tasks(
    client, users, month_end_task, task_runs, role, action
):
    as_user(client, users[role])
    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert listing.status_code == 200  # they see the schedule
    assert action not in listing.content.decode()

    response = periodic_task_action(client, month_end_task, action)

    # No action is offered to the role, so the post is not an action: the list again.
    assert response.status_code == 200
    month_end_task.refresh_from_db()
    assert month_end_task.enabled is True
    assert task_runs == []


def test_others_cannot_enable_a_disabled_periodic_task(client, users, month_end_task):
    month_end_task.enabled = False
    month_end_task.save()
    for role in ("clerk", "auditor"):
        as_user(client, users[role])
        periodic_task_action(client, month_end_task, "enable_tasks")
        month_end_task.refresh_from_db()
        assert month_end_task.enabled is False, role


def test_a_manager_disables_enables_and_runs_periodic_tasks(
    client, manager, month_end_task, task_runs
):
    as_user(client, manager)
    periodic_task_action(client, month_end_task, "disable_tasks")
    month_end_task.refresh_from_db()
    assert month_end_task.enabled is False

    periodic_task_action(client, month_end_task, "enable_tasks")
    month_end_task.refresh_from_db()
    assert month_end_task.enabled is True

    response = periodic_task_action(client, month_end_task, "run_tasks")
    assert response.status_code == 302
    assert task_runs == [
        {"args": [], "kwargs": {}, "headers": {"periodic_task_name": "month-end-billing"}}
    ]
