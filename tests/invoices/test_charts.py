"""The charts' figures (invoices/charts.py): the billed peak and block thresholds come from the
invoice's lines and the price book; balances per month are sums of the ledger; each chart is
one query whatever the history."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from accounts.services import ledger_record
from billingsite.clock import BILLING_TZ, Period
from invoices.charts import (
    balance_history_chart,
    balances_over_time,
    billed_revenue_chart,
    block_thresholds,
    usage_charts_for_lines,
)
from plans.price_book_cache import cached_price_book
from tests.factories import ApplicationFactory, CustomerFactory, usage
from tests.portal.factories import issued_invoice

pytestmark = pytest.mark.django_db

OCTOBER = Period(2026, 10)
TODAY = dt.date(2026, 11, 10)


def at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 12, 0, tzinfo=BILLING_TZ)


def money(customer, kind: str, amount: str, day: dt.date) -> None:
    ledger_record(
        customer=customer, kind=kind, amount=Decimal(amount),
        idempotency_key=f"chart:{customer.pk}:{kind}:{day}:{amount}", now=at(day),
        reason="test" if kind == "adjustment" else "",
        method="bank_transfer" if kind == "deposit" else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("plan", "peak", "thresholds"),
    [
        ("premium", 8_000, [10_000]),
        ("premium", 10_000, [10_000]),
        ("premium", 18_500, [10_000, 20_000]),
        ("ultimate", 30_001, [10_000, 20_000, 30_000, 40_000]),
        ("premium", None, [10_000]),
        ("free", 50_000, []),
    ],
)
def test_block_thresholds_are_the_engines_blocks(price_book, plan, peak, thresholds):
    book = cached_price_book(period=OCTOBER)
    assert block_thresholds(book=book, plan_code=plan, peak_dau=peak) == thresholds


@freeze_time("2026-11-10T10:00:00+08:00")
def test_usage_chart_marks_the_invoices_peak_and_draws_its_blocks(price_book):
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="premium", name="Chat", app_key="chat")
    for day, dau in ((1, 12_000), (12, 18_500), (20, 9_000)):
        usage(app, OCTOBER.start + dt.timedelta(days=day - 1), dau)
    money(customer, "deposit", "50000.00", dt.date(2026, 10, 1))
    invoice = issued_invoice(customer=customer, period=OCTOBER)
    lines = list(invoice.lines.all())

    with CaptureQueriesContext(connection) as queries:
        (chart,) = usage_charts_for_lines(customer_id=customer.pk, period=OCTOBER, lines=lines)
    assert len(queries) <= 2  # the month's usage, the price book's version token

    dau_line = next(line for line in lines if line.category == "dau_fee")
    assert (dau_line.peak_day, dau_line.peak_dau) == (dt.date(2026, 10, 12), 18_500)
    assert chart.peaks == [(dt.date(2026, 10, 12), 18_500)]
    assert [rule.value for rule in chart.chart.rules] == [10_000, 20_000]
    rows = dict(chart.chart.rows)
    assert len(rows) == 31
    assert rows["10-12"] == ["18,500"] and rows["10-02"] == [""] and rows["10-20"] == ["9,000"]
    assert str(chart.chart.svg).count("chart-mark") == 1


def test_no_dau_line_no_usage_chart(price_book):
    assert usage_charts_for_lines(customer_id=1, period=OCTOBER, lines=[]) == []


def test_balance_history_sums_money_in_and_out_per_month(price_book):
    customer = CustomerFactory()
    money(customer, "deposit", "1000.00", dt.date(2025, 5, 3))  # before the 12 months
    money(customer, "deposit", "9000.00", dt.date(2026, 9, 30))
    money(customer, "invoice_debit", "-6000.00", dt.date(2026, 10, 2))
    money(customer, "adjustment", "250.50", dt.date(2026, 10, 31))
    money(customer, "invoice_debit", "-4000.00", dt.date(2026, 11, 2))

    with CaptureQueriesContext(connection) as queries:
        chart = balance_history_chart(customer_id=customer.pk, today=TODAY)
    assert len(queries) == 1
    rows = dict(chart.rows)
    assert list(rows)[0] == "2025-12" and list(rows)[-1] == "2026-11"
    assert rows["2025-12"] == ["¥0.00", "¥0.00", "¥1,000.00"]  # the opening balance
    assert rows["2026-09"] == ["¥9,000.00", "¥0.00", "¥10,000.00"]
    assert rows["2026-10"] == ["¥250.50", "-¥6,000.00", "¥4,250.50"]
    assert rows["2026-11"] == ["¥0.00", "-¥4,000.00", "¥250.50"]


def test_dashboard_balances_and_revenue_by_month(price_book):
    owes, holds = CustomerFactory(), CustomerFactory()
    money(owes, "deposit", "1000.00", dt.date(2026, 9, 5))
    money(owes, "invoice_debit", "-3000.00", dt.date(2026, 10, 2))
    money(holds, "deposit", "8000.00", dt.date(2026, 10, 20))
    money(owes, "deposit", "2500.00", dt.date(2026, 11, 3))

    with CaptureQueriesContext(connection) as queries:
        balances = balances_over_time(today=TODAY)
    assert len(queries) == 1
    arrears, prepaid = dict(balances.arrears.rows), dict(balances.prepaid.rows)
    assert (arrears["2026-09"], arrears["2026-10"], arrears["2026-11"]) == (["0"], ["1"], ["0"])
    assert prepaid["2026-09"] == ["¥1,000.00"]
    assert prepaid["2026-10"] == ["¥8,000.00"]  # the -2,000.00 balance holds nothing
    assert prepaid["2026-11"] == ["¥8,500.00"]
    assert balances.prepaid_now == Decimal("8500.00")


@freeze_time("2026-11-10T10:00:00+08:00")
def test_billed_revenue_is_issued_invoices_per_period(price_book):
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))
    usage(app, dt.date(2026, 9, 3), 8_000)
    usage(app, dt.date(2026, 10, 3), 8_000)
    money(customer, "deposit", "50000.00", dt.date(2026, 9, 1))
    september = issued_invoice(customer=customer, period=Period(2026, 9))
    october = issued_invoice(customer=customer, period=OCTOBER)
    issued_invoice(customer=CustomerFactory(), period=OCTOBER, lines=[], status="held")

    rows = dict(billed_revenue_chart(today=TODAY).rows)
    assert list(rows)[-1] == "2026-10" and len(rows) == 12
    assert rows["2026-09"] == [f"¥{september.total.amount:,.2f}"]
    assert rows["2026-10"] == [f"¥{october.total.amount:,.2f}"]
    assert rows["2026-08"] == ["¥0.00"]
