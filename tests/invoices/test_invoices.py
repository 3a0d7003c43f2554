"""Invoices from the month-end step: frozen lines, holds, skips, re-rating and issuing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import IdempotencyConflict, ledger_record
from accounts.usage import usage_ingest
from billingsite.clock import Period
from invoices.documents.services import (
    InvoiceError,
    accounts_rate,
    bill_customer,
    invoice_issue,
    invoice_rate,
    invoice_rerate,
)
from invoices.models import BillingRun, Invoice, InvoiceLine, NumberSequence
from invoices.run.runs import billing_run_chunk_process
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    StaffFactory,
    addon_change,
    contract,
    deposit,
    plan_change,
    usage,
)

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
OCTOBER = Period(2026, 10)
# 24:00 on 1 November = 00:00 on the 2nd: when October is billed.
BILLING_MOMENT = dt.datetime(2026, 11, 2, 0, 0, tzinfo=SHANGHAI)

pytestmark = pytest.mark.django_db


def october_usage(application, dau_by_day: dict[int, int], messages: int = 1000) -> None:
    for day, dau in dau_by_day.items():
        usage(application, dt.date(2026, 10, day), dau, messages)


def premium_customer(*, dau: int = 8000, balance: str = "20000.00", **customer_fields):
    """A customer with one Premium application for the whole of October."""
    customer = CustomerFactory(**customer_fields)
    app = ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))
    october_usage(app, {3: dau - 100, 17: dau, 30: 1})
    if balance:
        deposit(customer, balance)
    return customer, app


def test_issues_one_frozen_invoice_and_debits_the_balance(price_book):
    customer, app = premium_customer(dau=8000)

    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "issued"

    invoice = Invoice.objects.get(customer=customer)
    assert invoice.status == Invoice.Status.ISSUED
    assert invoice.number == "INV-2026-000001"
    assert invoice.period == dt.date(2026, 10, 1)
    assert invoice.issue_date == dt.date(2026, 11, 2)
    assert invoice.total.amount == Decimal("6000.00")
    assert (invoice.customer_name, invoice.customer_tax_id) == (customer.name, customer.tax_id)
    [line] = invoice.lines.all()
    assert (line.app_key, line.app_name, line.application_id) == (app.app_key, app.name, app.pk)
    assert (line.plan_code, line.plan_name, line.code) == ("premium", "Premium", "premium")
    assert line.unit_price.amount == Decimal("6000.00")
    assert line.amount.amount == Decimal("6000.00")
    assert (line.peak_dau, line.peak_day) == (8000, dt.date(2026, 10, 17))
    assert (line.first_day, line.last_day, line.days, line.days_in_month) == (
        dt.date(2026, 10, 1),
        dt.date(2026, 10, 31),
        31,
        31,
    )
    assert line.explanation == "peak DAU 8,000 on 2026-10-17: 6,000.00 (up to 10,000 DAU)"
    debit = LedgerEntry.objects.get(customer=customer, kind=LedgerEntry.Kind.INVOICE_DEBIT)
    assert debit.amount.amount == Decimal("-6000.00")
    assert debit.reference == "INV-2026-000001"
    assert debit.idempotency_key == f"invoice-debit:{customer.pk}:2026-10"
    assert ledger_balance(customer=customer) == Decimal("14000.00")
    event = CustomerEvent.objects.get(customer=customer, kind=CustomerEvent.Kind.INVOICE_ISSUED)
    assert event.payload["invoice_number"] == "INV-2026-000001"
    assert event.payload["total"] == "6000.00"

    # Frozen: later changes to the customer do not reach the issued invoice.
    customer.name = "Renamed Ltd"
    customer.save()
    invoice.refresh_from_db()
    assert invoice.customer_name != "Renamed Ltd"


def test_second_bill_of_the_same_period_changes_nothing(price_book):
    customer, _app = premium_customer()
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)

    later = BILLING_MOMENT + dt.timedelta(hours=3)
    assert bill_customer(customer=customer, period=OCTOBER, now=later) == "already_billed"

    assert Invoice.objects.filter(customer=customer).count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.INVOICE_DEBIT).count() == 1
    assert ledger_balance(customer=customer) == Decimal("14000.00")


def test_lines_are_grouped_by_application_with_add_ons_and_block_arithmetic(price_book):
    customer = CustomerFactory()
    ultimate = ApplicationFactory(
        customer=customer, app_key="b-ultimate", plan="ultimate", created_on=dt.date(2026, 9, 1)
    )
    premium = ApplicationFactory(
        customer=customer, app_key="a-premium", plan="premium", created_on=dt.date(2026, 9, 1)
    )
    for app in (ultimate, premium):
        addon_change(app, "chatroom_keepalive", 1, dt.date(2026, 9, 1))
        addon_change(app, "message_callback", 1, dt.date(2026, 9, 1))
        october_usage(app, {9: 25_000})
    deposit(customer, "50000.00")

    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)

    invoice = Invoice.objects.get(customer=customer)
    lines = list(invoice.lines.order_by("position"))
    assert [(line.app_key, line.code, str(line.amount.amount)) for line in lines] == [
        ("a-premium", "premium", "12000.00"),
        ("a-premium", "chatroom_keepalive", "2000.00"),
        ("a-premium", "message_callback", "2000.00"),
        ("b-ultimate", "ultimate", "17000.00"),
        ("b-ultimate", "chatroom_keepalive", "0.00"),
        ("b-ultimate", "message_callback", "0.00"),
    ]
    # PRICING.md worked examples 3 and 4.
    assert invoice.total.amount == Decimal("16000.00") + Decimal("17000.00")
    assert lines[3].explanation == (
        "peak DAU 25,000 on 2026-10-09: 8,000.00 + 2 x 4,500.00 = 17,000.00"
    )
    assert lines[4].explanation == "included in the Ultimate plan"
    assert ledger_balance(customer=customer) == Decimal("17000.00")


def test_application_without_usage_is_billed_at_zero_dau_and_says_so(price_book):
    customer = CustomerFactory()
    ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))

    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)

    line = InvoiceLine.objects.get(invoice__customer=customer)
    assert line.amount.amount == Decimal("6000.00")
    assert line.peak_dau is None
    assert line.explanation.startswith("no usage reported: billed at peak DAU 0")


def test_pro_rata_activation_and_plan_change_segments(price_book):
    # PRICING.md example 6: Premium from the 16th of a 30-day month, peak 5,000 -> 3,000.00.
    september = Period(2026, 9)
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="free", created_on=dt.date(2026, 9, 1))
    plan_change(app, "premium", dt.date(2026, 9, 16))
    usage(app, dt.date(2026, 9, 5), 50_000)  # on Free: not part of the Premium peak
    usage(app, dt.date(2026, 9, 20), 5_000)
    deposit(customer, "10000.00")

    bill_customer(
        customer=customer, period=september, now=dt.datetime(2026, 10, 2, tzinfo=SHANGHAI)
    )

    invoice = Invoice.objects.get(customer=customer)
    free_line, premium_line = invoice.lines.order_by("position")
    assert (free_line.plan_code, free_line.amount.amount, free_line.days) == (
        "free",
        Decimal("0.00"),
        15,
    )
    assert (premium_line.amount.amount, premium_line.days, premium_line.peak_dau) == (
        Decimal("3000.00"),
        15,
        5000,
    )
    assert "pro rata 15 of 30 days: 6,000.00 x 15/30 = 3,000.00" in premium_line.explanation
    assert invoice.total.amount == Decimal("3000.00")
    assert invoice.number == "INV-2026-000001"


def test_free_account_is_skipped_without_an_invoice(price_book):
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="free", created_on=dt.date(2026, 9, 1))
    october_usage(app, {1: 900})

    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "skipped"
    assert not Invoice.objects.filter(customer=customer).exists()
    assert invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT) is None


def test_high_volume_without_contract_is_held_not_numbered_not_debited(price_book):
    customer, app = premium_customer(dau=8000)
    usage(app, dt.date(2026, 10, 21), 100, delivered_messages=2_000_001)

    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "held"

    invoice = Invoice.objects.get(customer=customer)
    assert invoice.status == Invoice.Status.HELD
    assert invoice.number is None
    assert app.app_key in invoice.hold_reason
    assert "2,000,001 delivered messages on 2026-10-21" in invoice.hold_reason
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.INVOICE_DEBIT).exists()
    assert not CustomerEvent.objects.filter(kind=CustomerEvent.Kind.INVOICE_ISSUED).exists()

    # A second pass keeps it held (re-rated), still one invoice.
    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "held"
    assert Invoice.objects.filter(customer=customer).count() == 1


def test_free_high_volume_application_is_held_for_review(price_book):
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="free", created_on=dt.date(2026, 9, 1))
    usage(app, dt.date(2026, 10, 2), 100, delivered_messages=3_000_000)

    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "held"


def test_contract_and_rerate_release_a_held_invoice_then_finance_issues_it(price_book):
    customer, app = premium_customer(dau=8000)
    usage(app, dt.date(2026, 10, 21), 100, delivered_messages=5_000_000)
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    held = Invoice.objects.get(customer=customer)

    contract(app, "50000.00", dt.date(2026, 10, 1))
    rerated = invoice_rerate(invoice=held, now=BILLING_MOMENT + dt.timedelta(days=1))

    assert rerated.pk == held.pk
    assert rerated.status == Invoice.Status.DRAFT
    assert rerated.hold_reason == ""
    [line] = rerated.lines.all()
    assert (line.code, line.amount.amount) == ("dedicated_service", Decimal("50000.00"))
    assert "peak 5,000,000 delivered messages in a day" in line.explanation

    issued = invoice_issue(invoice=rerated, now=BILLING_MOMENT + dt.timedelta(days=1))
    assert (issued.status, issued.number) == (Invoice.Status.ISSUED, "INV-2026-000001")
    assert issued.issue_date == dt.date(2026, 11, 3)
    assert ledger_balance(customer=customer) == Decimal("-30000.00")
    customer.refresh_from_db()
    assert customer.arrears_since == dt.date(2026, 11, 3)

    with pytest.raises(InvoiceError, match="already issued"):
        invoice_issue(invoice=rerated, now=BILLING_MOMENT)
    with pytest.raises(InvoiceError, match="already issued"):
        invoice_rerate(invoice=issued, now=BILLING_MOMENT)
    with pytest.raises(InvoiceError, match="already issued"):
        invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.INVOICE_DEBIT).count() == 1


def test_finance_can_issue_a_held_invoice_as_it_is(price_book):
    customer, app = premium_customer(dau=8000)
    usage(app, dt.date(2026, 10, 21), 100, delivered_messages=5_000_000)
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    held = Invoice.objects.get(customer=customer)

    issued = invoice_issue(invoice=held, now=BILLING_MOMENT)

    assert issued.status == Invoice.Status.ISSUED
    assert issued.total.amount == Decimal("6000.00")
    assert "high-volume" in issued.hold_reason  # kept as the record of the review
    assert ledger_balance(customer=customer) == Decimal("14000.00")


def test_a_held_invoice_whose_usage_was_corrected_is_rated_again_before_it_is_issued(
    price_book,
):

    customer, app = premium_customer(dau=8000)
    usage(app, dt.date(2026, 10, 21), 100, delivered_messages=5_000_000)
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    held = Invoice.objects.get(customer=customer)
    # The month is not invoiced yet (held), so the platform's correction is accepted.
    correction = {"app_key": app.app_key, "date": "2026-10-17", "dau": 25_000}
    usage_ingest(rows=[{**correction, "delivered_messages": 1000}], now=BILLING_MOMENT)

    with pytest.raises(InvoiceError, match="changed after this invoice was rated"):
        invoice_issue(invoice=held, now=BILLING_MOMENT)
    held.refresh_from_db()
    assert (held.status, held.number, held.total.amount) == ("held", None, Decimal("6000.00"))
    assert not NumberSequence.objects.filter(last_number__gt=0).exists()

    rerated = invoice_rerate(invoice=held, now=BILLING_MOMENT)
    issued = invoice_issue(invoice=rerated, now=BILLING_MOMENT)
    [line] = issued.lines.all()
    assert (issued.number, line.peak_dau, line.peak_day) == (
        "INV-2026-000001",
        25_000,
        dt.date(2026, 10, 17),
    )
    assert issued.total.amount > Decimal("6000.00")


def test_draft_is_replaced_when_rerated_and_removed_when_nothing_is_billable(price_book):
    customer, app = premium_customer(dau=8000)
    draft = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    assert (draft.status, draft.total.amount) == (Invoice.Status.DRAFT, Decimal("6000.00"))

    usage(app, dt.date(2026, 10, 25), 12_000)
    again = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    assert again.pk == draft.pk
    assert again.total.amount == Decimal("9000.00")
    assert again.lines.count() == 1

    # The plan history is corrected to Free for the whole month: nothing left to bill.
    app.plan_changes.update(cancelled_at=BILLING_MOMENT)
    plan_change(app, "free", dt.date(2026, 9, 1))
    with pytest.raises(InvoiceError, match="nothing is billable"):
        invoice_rerate(invoice=again, now=BILLING_MOMENT)
    assert Invoice.objects.filter(pk=draft.pk).exists()
    assert invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT) is None
    assert not Invoice.objects.filter(pk=draft.pk).exists()


def _customers_with(apps_per_customer: int, *, addons: bool, usage_days: int, count: int = 3):
    ids = []
    for _ in range(count):
        customer = CustomerFactory()
        for _ in range(apps_per_customer):
            app = ApplicationFactory(
                customer=customer, plan="premium", created_on=dt.date(2026, 9, 1)
            )
            if addons:
                addon_change(app, "sensitive_words", 2, dt.date(2026, 9, 1))
                addon_change(app, "api_private_publish", 3, dt.date(2026, 10, 10))
                plan_change(app, "ultimate", dt.date(2026, 10, 20))
            october_usage(app, {day: 1000 * day for day in range(1, usage_days + 1)})
        # Enough for every invoice here to leave more than a month's fees: no low-balance alert
        # (a chunk's alerts cost a fixed few statements, which this comparison would count).
        deposit(customer, "1000000.00")
        ids.append(customer.pk)
    return ids


def test_rating_reads_a_chunk_in_a_fixed_number_of_queries(price_book):
    small = _customers_with(1, addons=False, usage_days=1)
    large = _customers_with(4, addons=True, usage_days=31, count=6)

    with CaptureQueriesContext(connection) as small_queries:
        small_rated = accounts_rate(customer_ids=small, period=OCTOBER)
    with CaptureQueriesContext(connection) as large_queries:
        large_rated = accounts_rate(customer_ids=large, period=OCTOBER)

    # (the price book's tables with its VAT rate, the applications, their histories, contracts,
    # discounts, usage and the invoices already there: none per account)
    assert len(small_queries) == len(large_queries) <= 11
    assert all(p.rated.total == Decimal("6000.00") for p in small_rated.values())
    # 4 apps: Premium 10/1-10/19 and Ultimate 10/20-10/31, peak 19,000 then 31,000 DAU.
    assert all(len(p.rated.applications) == 4 for p in large_rated.values())


def test_billing_queries_per_account_do_not_grow_with_apps_addons_or_days(price_book):

    small = _customers_with(1, addons=False, usage_days=1, count=4)
    large = _customers_with(5, addons=True, usage_days=31, count=4)
    run = BillingRun.objects.create(
        period=OCTOBER.start, status="running", created_at=BILLING_MOMENT, chunks_total=2
    )
    # The year's first number also creates its sequence row; start both chunks after that.
    NumberSequence.objects.create(series="INV", year=2026)

    with CaptureQueriesContext(connection) as small_queries:
        small_outcome = billing_run_chunk_process(
            run_id=run.pk, customer_ids=small, period=OCTOBER, now=BILLING_MOMENT
        )
    with CaptureQueriesContext(connection) as large_queries:
        large_outcome = billing_run_chunk_process(
            run_id=run.pk, customer_ids=large, period=OCTOBER, now=BILLING_MOMENT
        )

    assert small_outcome == large_outcome == {"issued": 4}
    assert len(small_queries) == len(large_queries)
    per_account = len(large_queries) / 4
    assert per_account < 30, per_account


def test_debit_key_already_used_goes_through_the_ledger_rules(price_book):
    """The debit's key is per customer and period. If it was somehow used already, the ledger
    service decides: the same entry is reused, a different one refuses the whole issue."""

    same, _ = premium_customer(dau=8000)
    different, _ = premium_customer(dau=8000)
    for customer, amount in ((same, "-6000.00"), (different, "-1.00")):
        ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.INVOICE_DEBIT,
            amount=Decimal(amount),
            idempotency_key=f"invoice-debit:{customer.pk}:2026-10",
            now=BILLING_MOMENT,
        )

    assert bill_customer(customer=same, period=OCTOBER, now=BILLING_MOMENT) == "issued"
    assert LedgerEntry.objects.filter(customer=same, kind="invoice_debit").count() == 1
    assert ledger_balance(customer=same) == Decimal("14000.00")

    with pytest.raises(IdempotencyConflict):
        bill_customer(customer=different, period=OCTOBER, now=BILLING_MOMENT)
    assert not Invoice.objects.filter(customer=different).exists()
    assert ledger_balance(customer=different) == Decimal("19999.00")


def test_debit_records_who_issued_and_starts_arrears_like_the_ledger_service(price_book):

    customer, _ = premium_customer(dau=8000, balance="100.00")
    clerk = StaffFactory()
    draft = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    invoice_issue(invoice=draft, now=BILLING_MOMENT, issued_by=clerk)

    debit = LedgerEntry.objects.get(customer=customer, kind="invoice_debit")
    assert (debit.created_by, debit.created_at, debit.reason) == (
        clerk,
        BILLING_MOMENT,
        "Invoice INV-2026-000001 for 2026-10",
    )
    customer.refresh_from_db()
    assert customer.arrears_since == dt.date(2026, 11, 2)
    event = CustomerEvent.objects.get(customer=customer, kind=CustomerEvent.Kind.ARREARS_STARTED)
    assert event.payload["balance"] == "-5900.00"


def test_invoices_written_by_the_run_have_their_history_row(price_book):
    customer, _ = premium_customer(dau=8000)
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    invoice = Invoice.objects.get(customer=customer)

    [created] = invoice.history.all()
    assert created.history_type == "+"
    assert created.history_user is None
    assert (created.number, created.status, created.total) == (
        invoice.number,
        "issued",
        invoice.total,
    )
    assert (created.customer_id, created.period, created.issued_at) == (
        customer.pk,
        invoice.period,
        BILLING_MOMENT,
    )
    assert invoice.created_at == invoice.updated_at == created.history_date

    # Finance's re-rate and issue go through the ORM: one more row each.
    other, app = premium_customer(dau=8000)
    usage(app, dt.date(2026, 10, 21), 1, delivered_messages=2_500_000)
    bill_customer(customer=other, period=OCTOBER, now=BILLING_MOMENT)
    held = Invoice.objects.get(customer=other)
    invoice_issue(invoice=held, now=BILLING_MOMENT)
    assert list(held.history.order_by("history_id").values_list("history_type", "status")) == [
        ("+", "held"),
        ("~", "issued"),
    ]
