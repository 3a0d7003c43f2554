"""Issue 12, item 2: every legal invoice fits the money columns, and an account that still
cannot be billed is recorded once as failed with a message finance understands."""

import datetime as dt
from decimal import Decimal

import pytest

from accounts.models import LedgerEntry
from invoices.documents.limits import LARGEST_AMOUNT, invoice_size_problem
from invoices.models import BillingRun, BillingRunError, Invoice
from invoices.run.runs import billing_run_preview, billing_run_retry_failed, billing_run_start
from plans.models import AddOn
from plans.rating.engine import (
    AddOnSegment,
    ApplicationInput,
    PlanSegment,
    PricedLine,
    RatedAccount,
    rate_account,
)
from plans.selectors import price_book_for_period
from tests.factories import addon_change
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db

LARGEST_DAU = 2**31 - 1  # DailyUsage.dau is a PositiveIntegerField


def test_the_largest_legal_application_month_fits_a_thousand_times(price_book):
    """Ultimate at the largest storable DAU with every add-on it sells at its maximum (the
    arithmetic of invoices/documents/limits.py)."""
    book = price_book_for_period(period=OCTOBER)
    addons = [
        AddOnSegment(addon.code, addon.max_quantity, OCTOBER.start, OCTOBER.end)
        for addon in AddOn.objects.all()
        if book.is_available(addon.code, "ultimate")
    ]
    app = ApplicationInput(
        app_key="largest",
        app_name="Largest",
        period_start=OCTOBER.start,
        days_in_month=OCTOBER.days,
        plan_segments=(PlanSegment("ultimate", OCTOBER.start, OCTOBER.end, LARGEST_DAU),),
        addon_segments=tuple(addons),
    )
    rated = rate_account(book=book, applications=[app])
    # 966,374,000 DAU fee + 11,870,000 add-ons (value-added services are included on Ultimate).
    assert rated.lines[0].amount == Decimal("966374000.00")
    assert rated.total == Decimal("978244000.00")
    assert rated.total * 1000 < LARGEST_AMOUNT
    assert invoice_size_problem(rated=rated) is None


def test_an_account_too_large_to_bill_fails_once_with_a_clear_message(
    price_book, django_capture_on_commit_callbacks
):
    customer, app = premium_customer(dau=5000)
    # Written before maxima existed (the API now refuses it): 10^9 packs of sensitive words.
    addon_change(app, "sensitive_words", 10**9, dt.date(2026, 10, 1))
    expected = (
        "the invoice would total ¥1,200,000,006,000.00, more than an invoice can hold "
        "(¥999,999,999,999.99); largest lines: "
        f"{app.app_key} sensitive_words x 1,000,000,000 = ¥1,200,000,000,000.00. "
        "Correct the quantities or prices, then retry the account."
    )
    assert [(row.outcome, row.error) for row in billing_run_preview(period=OCTOBER)] == [
        ("failed", expected)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_retry_failed(run=run, now=BILLING_MOMENT + dt.timedelta(hours=1))

    run.refresh_from_db()
    assert (run.status, run.accounts_done, run.accounts_failed) == (
        BillingRun.Status.FINISHED,
        1,
        1,
    )
    assert list(BillingRunError.objects.values_list("customer_id", "error", "resolved_at")) == [
        (customer.pk, expected, None)
    ]
    assert not Invoice.objects.filter(customer=customer).exists()
    assert not LedgerEntry.objects.filter(customer=customer, kind="invoice_debit").exists()


def test_a_total_too_large_names_its_largest_lines():
    """Every line fits, their sum does not."""

    def line(code: str, amount: str) -> PricedLine:
        day = dt.date(2026, 10, 1)
        return PricedLine(
            "app",
            "App",
            code,
            "x",
            "premium",
            "Premium",
            code,
            1,
            Decimal(amount),
            Decimal(amount),
            day,
            day,
            31,
            31,
            "",
        )

    rated = RatedAccount(
        applications=(),
        lines=(line("a", "600000000000.00"), line("b", "500000000000.00"), line("c", "1.00")),
        total=Decimal("1100000000001.00"),
    )
    problem = invoice_size_problem(rated=rated)
    assert problem.startswith("the invoice would total ¥1,100,000,000,001.00")
    assert "app a x 1 = ¥600,000,000,000.00; app b x 1 = ¥500,000,000,000.00; app c" in problem
