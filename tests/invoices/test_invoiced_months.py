"""accounts.InvoicedMonth (what the frozen-month policy reads) equals what the invoices say,
after every kind of invoice write: a run (fast path on PostgreSQL), a re-run, a held invoice
reviewed and issued, a draft re-rated away, credit notes; and the data migration writes it
from the invoices."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal

import pytest
from django.apps import apps as django_apps

from accounts.frozen_months import Change, frozen_by, frozen_months
from accounts.models import InvoicedMonth
from billingsite.clock import Period
from invoices.documents.invoiced_months import invoiced_months_from_invoices, invoiced_months_stored
from invoices.documents.services import (
    credit_note_create,
    invoice_issue,
    invoice_rate,
    invoice_rerate,
)
from invoices.models import Invoice
from invoices.run.runs import billing_run_bill_inline, billing_run_start
from tests.factories import ApplicationFactory, CustomerFactory, contract, plan_change, usage
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db

SEPTEMBER = Period(2026, 9)


def assert_mirrors_the_invoices() -> None:
    assert invoiced_months_stored() == invoiced_months_from_invoices()


def run(period: Period, now: dt.datetime) -> None:
    billing_run_bill_inline(run=billing_run_start(period=period, now=now, dispatch=False))


def test_runs_reruns_reviews_rerates_and_credit_notes_keep_the_months(price_book):
    paying, _ = premium_customer(dau=8000)
    held, held_app = premium_customer(dau=8000)
    usage(held_app, dt.date(2026, 10, 21), 100, delivered_messages=5_000_000)
    free = CustomerFactory()
    ApplicationFactory(customer=free, plan="free", created_on=dt.date(2026, 9, 1))
    drafted, drafted_app = premium_customer(dau=8000)

    run(SEPTEMBER, BILLING_MOMENT - dt.timedelta(days=31))
    run(OCTOBER, BILLING_MOMENT)
    assert_mirrors_the_invoices()
    assert InvoicedMonth.objects.filter(customer=held, status="held", number=None).exists()
    assert not InvoicedMonth.objects.filter(customer=free).exists()
    # A re-run of the month changes nothing.
    run(OCTOBER, BILLING_MOMENT + dt.timedelta(hours=1))
    assert_mirrors_the_invoices()

    # Finance reviews the held invoice: a contract, a re-rate (draft), then the issue.
    contract(held_app, "50000.00", dt.date(2026, 10, 1))
    later = BILLING_MOMENT + dt.timedelta(days=1)
    draft = invoice_rerate(
        invoice=Invoice.objects.get(customer=held, period=OCTOBER.start), now=later
    )
    assert InvoicedMonth.objects.get(customer=held, period=OCTOBER.start).status == "draft"
    issued = invoice_issue(invoice=draft, now=later)
    assert InvoicedMonth.objects.get(customer=held, period=OCTOBER.start).number == issued.number
    assert_mirrors_the_invoices()

    # A November draft, re-rated away once nothing is billable any more.
    november = Period(2026, 11)
    invoice_rate(customer=drafted, period=november, now=later)
    assert InvoicedMonth.objects.filter(customer=drafted, period=november.start).exists()
    drafted_app.plan_changes.update(cancelled_at=later)
    plan_change(drafted_app, "free", dt.date(2026, 9, 1))
    assert invoice_rate(customer=drafted, period=november, now=later) is None
    assert not InvoicedMonth.objects.filter(customer=drafted, period=november.start).exists()
    assert_mirrors_the_invoices()

    # Credit notes move the status; the number and the frozen months stay.
    invoice = Invoice.objects.get(customer=paying, period=OCTOBER.start)
    line = invoice.lines.get()
    credit_note_create(
        invoice=invoice,
        line_amounts={line.pk: Decimal("100.00")},
        reason="goodwill",
        now=later,
        idempotency_key="k1",
    )
    assert_mirrors_the_invoices()
    credit_note_create(
        invoice=invoice, line_amounts=None, reason="all of it", now=later, idempotency_key="k2"
    )
    assert InvoicedMonth.objects.get(customer=paying, period=OCTOBER.start).status == "credited"
    assert_mirrors_the_invoices()
    assert frozen_by(change=Change.USAGE, customer_id=paying.pk, day=dt.date(2026, 10, 9))


def test_the_migration_writes_the_months_from_the_invoices(price_book):
    premium_customer(dau=8000)
    held, held_app = premium_customer(dau=8000)
    usage(held_app, dt.date(2026, 10, 21), 100, delivered_messages=5_000_000)
    run(OCTOBER, BILLING_MOMENT)
    expected = invoiced_months_from_invoices()
    assert len(expected) == 2
    InvoicedMonth.objects.all().delete()
    migration = importlib.import_module("invoices.migrations.0009_invoiced_months_backfill")
    migration.backfill(django_apps, None)
    assert invoiced_months_stored() == expected


# (invoices of the customer as {month: status}, the change, the day) -> the month that freezes
# it (None: open). Issued ones get a number.
FREEZE_CASES = [
    ({}, Change.PLAN_UPGRADE, "2026-10-05", None),
    ({10: "draft"}, Change.PLAN_UPGRADE, "2026-10-05", 10),
    ({10: "held"}, Change.PLAN_DOWNGRADE, "2026-09-30", 10),
    ({10: "issued"}, Change.ADDON_START, "2026-11-01", None),
    ({9: "held", 10: "issued"}, Change.ADDON_REDUCE, "2026-08-01", 9),
    ({10: "draft"}, Change.CONTRACT, "2026-10-01", None),
    ({10: "held"}, Change.CONTRACT, "2026-09-01", None),
    ({10: "issued"}, Change.CONTRACT, "2026-09-01", 10),
    ({10: "credited"}, Change.CONTRACT, "2026-10-31", 10),
    ({10: "held"}, Change.USAGE, "2026-10-09", None),
    ({10: "issued"}, Change.USAGE, "2026-10-09", 10),
    ({10: "issued"}, Change.USAGE, "2026-09-30", None),
    ({8: "issued", 10: "issued"}, Change.USAGE, "2026-09-15", None),
    ({10: "partially_credited"}, Change.USAGE, "2026-10-31", 10),
]


@pytest.mark.parametrize(("months", "change", "day", "frozen_month"), FREEZE_CASES)
def test_which_months_are_frozen_for_each_kind_of_change(months, change, day, frozen_month):
    customer = CustomerFactory()
    for month, status in months.items():
        issued = status not in ("draft", "held")
        InvoicedMonth.objects.create(
            customer=customer,
            period=dt.date(2026, month, 1),
            status=status,
            number=f"INV-2026-{month:06d}" if issued else None,
        )
    day = dt.date.fromisoformat(day)
    found = frozen_by(change=change, customer_id=customer.pk, day=day)
    assert (found.period.month if found else None) == frozen_month
    batched = frozen_months(change=change, customer_months={(customer.pk, day.replace(day=1))})
    assert batched.get((customer.pk, day.replace(day=1))) == found
