"""Arrears: a negative balance after the month-end debit, a warning two days before the
suspension, suspension on day 8, reactivation on the deposit that restores the balance."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from freezegun import freeze_time

from accounts.arrears import arrears_enforce
from accounts.models import Application, CustomerEvent
from accounts.selectors import ledger_balance
from accounts.services import record_adjustment, record_deposit
from invoices.documents.services import bill_customer
from invoices.models import Invoice
from invoices.run.tasks import enforce_arrears, start_monthly_billing
from tests.factories import ApplicationFactory
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, SHANGHAI, premium_customer

pytestmark = pytest.mark.django_db


def shanghai(day: int, hour: int = 0, minute: int = 10, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def events(customer, kind) -> int:
    return CustomerEvent.objects.filter(customer=customer, kind=kind).count()


def app_statuses(customer) -> set[str]:
    return set(Application.objects.filter(customer=customer).values_list("status", flat=True))


def test_whole_timeline_from_deduction_to_reactivation(
    price_book, django_capture_on_commit_callbacks
):
    customer, _app = premium_customer(dau=8000, balance="1000.00")
    ApplicationFactory(customer=customer, plan="free", created_on=dt.date(2026, 9, 1))
    kinds = CustomerEvent.Kind

    # 24:00 on 1 November: the beat task bills October and deducts 6,000.00.
    with freeze_time(shanghai(2, 0, 0)), django_capture_on_commit_callbacks(execute=True):
        start_monthly_billing.delay()
    invoice = Invoice.objects.get(customer=customer)
    assert (invoice.status, invoice.issue_date) == ("issued", dt.date(2026, 11, 2))
    customer.refresh_from_db()
    assert ledger_balance(customer=customer) == Decimal("-5000.00")
    assert customer.arrears_since == dt.date(2026, 11, 2)  # arrears day 1
    assert events(customer, kinds.ARREARS_STARTED) == 1
    arrears_event = CustomerEvent.objects.get(customer=customer, kind=kinds.ARREARS_STARTED)
    assert arrears_event.payload["suspension_date"] == "2026-11-09"

    # Days 1-7 (2-8 November): still active; the warning goes out on day 6, two days before.
    for day in range(2, 9):
        with freeze_time(shanghai(day)):
            result = enforce_arrears.delay().get()
        customer.refresh_from_db()
        assert customer.suspended_at is None, day
        assert app_statuses(customer) == {"active"}, day
        assert result["suspensions"] == 0
        assert result["warnings"] == (1 if day == 7 else 0), day
    assert events(customer, kinds.SUSPENSION_WARNING) == 1
    warning = CustomerEvent.objects.get(customer=customer, kind=kinds.SUSPENSION_WARNING)
    assert warning.payload == {
        "balance": "-5000.00",
        "arrears_since": "2026-11-02",
        "suspension_date": "2026-11-09",
    }

    # Day 8 (9 November): suspended, every application of the customer.
    with freeze_time(shanghai(9)):
        result = enforce_arrears.delay().get()
    assert (result["suspensions"], result["suspended"]) == (1, [customer.pk])
    customer.refresh_from_db()
    assert customer.suspended_at == shanghai(9)
    assert app_statuses(customer) == {"suspended"}
    assert events(customer, kinds.SUSPENDED) == 1
    # Running again the same day (or the next) changes nothing and tells nobody twice.
    with freeze_time(shanghai(10)):
        assert enforce_arrears.delay().get()["suspensions"] == 0
    assert events(customer, kinds.SUSPENDED) == 1

    # A deposit that leaves the balance negative does not reactivate.
    with freeze_time(shanghai(11, 9, 0)):
        record_deposit(
            customer=customer,
            amount=Decimal("3000.00"),
            reference="BANK-1",
            idempotency_key="dep-1",
            now=timezone.now(),
        )
    customer.refresh_from_db()
    assert customer.suspended_at is not None
    assert app_statuses(customer) == {"suspended"}

    # The one that brings it back to zero reactivates at once.
    with freeze_time(shanghai(11, 9, 30)):
        record_deposit(
            customer=customer,
            amount=Decimal("2000.00"),
            reference="BANK-2",
            idempotency_key="dep-2",
            now=timezone.now(),
        )
    customer.refresh_from_db()
    assert ledger_balance(customer=customer) == Decimal("0.00")
    assert (customer.arrears_since, customer.suspended_at) == (None, None)
    assert app_statuses(customer) == {"active"}
    assert events(customer, kinds.REACTIVATED) == 1
    with freeze_time(shanghai(20)):
        assert enforce_arrears.delay().get() == {
            "warnings": 0,
            "suspensions": 0,
            "warned": [],
            "suspended": [],
        }


def test_deposit_during_grace_period_ends_arrears_without_suspension(price_book):

    customer, _ = premium_customer(dau=8000, balance="1000.00")
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    record_deposit(
        customer=customer,
        amount=Decimal("5000.00"),
        reference="BANK",
        idempotency_key="dep",
        now=shanghai(5),
    )
    customer.refresh_from_db()
    assert customer.arrears_since is None

    assert arrears_enforce(now=shanghai(9))["suspensions"] == 0
    assert app_statuses(customer) == {"active"}
    # No suspension happened, so no "reactivated" message either.
    assert events(customer, CustomerEvent.Kind.REACTIVATED) == 0


def test_a_late_daily_check_still_warns_and_suspends_once(price_book):
    customer, _ = premium_customer(dau=8000, balance="")
    record_adjustment(
        customer=customer,
        amount=Decimal("-10.00"),
        reason="test debt",
        idempotency_key="adj",
        now=shanghai(2),
    )
    customer.refresh_from_db()
    assert customer.arrears_since == dt.date(2026, 11, 2)

    # The check did not run on the 7th; on the 8th (day 7) it still warns.
    assert arrears_enforce(now=shanghai(8))["warned"] == [customer.pk]
    assert arrears_enforce(now=shanghai(8, 12))["warnings"] == 0
    # It did not run on the 9th either: on the 12th it suspends.
    assert arrears_enforce(now=shanghai(12))["suspended"] == [customer.pk]
    assert events(customer, CustomerEvent.Kind.SUSPENSION_WARNING) == 1
