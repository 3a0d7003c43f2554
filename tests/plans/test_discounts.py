"""Contracted discounts end to end: the service's refusals, the rating inputs (one batched
read), the database's guard, the month-end bill, the estimate, credit notes and the journal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from moneyed import Money

from accounts.models import InvoicedMonth
from billingsite.clock import Period
from invoices.documents.services import InvoiceError, bill_customer, credit_note_create
from invoices.exports.reports import journal_entries, revenue_summary
from invoices.models import CreditNote, Invoice
from invoices.selectors import estimate_current_month
from plans import services
from plans.batch_rating import customers_rate
from plans.models import Discount
from plans.selectors import application_inputs
from plans.services import SubscriptionError, discount_add, discount_end
from tests.conftest import postgres_only
from tests.factories import (
    NOW,
    ApplicationFactory,
    CustomerFactory,
    addon_change,
    contract,
    deposit,
    discount,
    usage,
)
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, october_usage

pytestmark = pytest.mark.django_db
NOV = Period(2026, 11)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def premium_app(customer=None, **kwargs):
    return ApplicationFactory(
        customer=customer or CustomerFactory(), plan="premium", created_on=d("2026-09-01"), **kwargs
    )


# --- the service -------------------------------------------------------------------------


def test_discount_add_writes_one_row(price_book):
    app = premium_app()
    saved = discount_add(
        application=app, amount_off=Decimal("500"), first_day=d("2026-11-16"), now=NOW
    )
    assert (saved.application, saved.customer, saved.amount_off.amount, saved.percent) == (
        app,
        None,
        Decimal("500.00"),
        None,
    )


def test_discount_in_an_issued_month_is_refused_a_held_one_is_not(price_book):
    customer = CustomerFactory()
    InvoicedMonth.objects.create(
        customer=customer, period=d("2026-09-01"), status="issued", number="INV-2026-000009"
    )
    InvoicedMonth.objects.create(customer=customer, period=d("2026-10-01"), status="held")
    with pytest.raises(SubscriptionError) as refused:
        discount_add(customer=customer, percent=Decimal("10"), first_day=d("2026-09-30"), now=NOW)
    assert (refused.value.code, refused.value.field) == ("month_invoiced", "first_day")
    assert "INV-2026-000009" in refused.value.message
    # Adding a discount and re-rating is how finance reviews a held month (like contracts).
    discount_add(customer=customer, percent=Decimal("10"), first_day=d("2026-10-01"), now=NOW)
    assert Discount.objects.count() == 1


@pytest.mark.parametrize(
    ("first_day", "last_day", "overlaps"),
    [
        ("2026-11-01", "2026-11-30", True),
        ("2026-10-01", None, True),  # open-ended covers the existing one
        ("2026-12-01", None, True),  # the existing one is open-ended
        ("2026-10-01", "2026-10-31", False),
    ],
)
def test_discounts_of_one_scope_never_overlap(price_book, first_day, last_day, overlaps):
    app = premium_app()
    discount(application=app, percent="5", first_day=d("2026-11-01"))
    days = {"first_day": d(first_day), "last_day": d(last_day) if last_day else None}
    if overlaps:
        with pytest.raises(SubscriptionError, match="already a discount") as refused:
            discount_add(application=app, percent=Decimal("3"), now=NOW, **days)
        assert refused.value.code == "discount_overlap"
    else:
        discount_add(application=app, percent=Decimal("3"), now=NOW, **days)
    assert Discount.objects.count() == (1 if overlaps else 2)
    # The customer's own scope is another: it may overlap the application's.
    discount_add(customer=app.customer, percent=Decimal("3"), now=NOW, **days)


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"percent": Decimal("0")}, "invalid_amount", "percent"),
        ({"percent": Decimal("100.01")}, "invalid_amount", "percent"),
        ({"percent": Decimal("10.005")}, "invalid_amount", "percent"),
        ({"percent": Decimal("NaN")}, "invalid_amount", "percent"),
        ({"amount_off": Decimal("-1")}, "invalid_amount", "amount_off"),
        ({"amount_off": Decimal("1.001")}, "invalid_amount", "amount_off"),
        ({}, "invalid", "percent"),
        ({"percent": Decimal("5"), "last_day": d("2026-10-31")}, "invalid_dates", "last_day"),
        ({"percent": Decimal("5"), "first_day": d("2028-01-01")}, "date_too_far", "first_day"),
    ],
)
def test_bad_discounts_are_refused_before_anything_is_written(price_book, fields, code, field):
    app = premium_app()
    with pytest.raises(SubscriptionError) as refused:
        discount_add(application=app, **{"first_day": d("2026-11-01"), "now": NOW, **fields})
    assert (refused.value.code, refused.value.field) == (code, field)
    assert not Discount.objects.exists()


def overlap_refused(**terms) -> bool:
    try:
        with transaction.atomic():
            discount(percent="5", **terms)
    except IntegrityError as error:
        assert "discount_no_overlap_per_" in str(error)
        return True
    return False


@postgres_only
def test_the_database_refuses_overlapping_discounts_of_one_scope(price_book):
    """The service's rule in the database (plans migration 0010): inclusive days, open ends,
    per customer-wide scope and per application; other scopes and customers may overlap."""
    customer, other = CustomerFactory(), CustomerFactory()
    app = premium_app(customer)
    discount(customer=customer, percent="5", first_day=d("2026-11-01"), last_day=d("2026-11-30"))
    discount(application=app, percent="5", first_day=d("2026-11-01"), last_day=d("2026-11-30"))
    cases = [
        # (terms, refused)
        ({"customer": customer, "first_day": d("2026-11-30")}, True),
        ({"customer": customer, "first_day": d("2026-10-01"), "last_day": d("2026-11-01")}, True),
        ({"customer": customer, "first_day": d("2026-11-10"), "last_day": d("2026-11-12")}, True),
        ({"application": app, "first_day": d("2026-10-15")}, True),
        ({"application": app, "first_day": d("2026-11-30"), "last_day": d("2026-11-30")}, True),
        # Adjacent: the day after the last day, and the day before the first.
        ({"customer": customer, "first_day": d("2026-10-01"), "last_day": d("2026-10-31")}, False),
        ({"application": app, "first_day": d("2026-12-01")}, False),
        # Other scopes: another customer, an application of another customer.
        ({"customer": other, "first_day": d("2026-11-15")}, False),
        ({"application": premium_app(other), "first_day": d("2026-11-15")}, False),
    ]
    assert [overlap_refused(**terms) for terms, _ in cases] == [refused for _, refused in cases]
    # The customer's open-ended discount from December (now adjacent to November's) takes
    # every later day: a discount in January overlaps it.
    discount(customer=customer, percent="5", first_day=d("2026-12-01"))
    assert overlap_refused(customer=customer, first_day=d("2027-01-01"), last_day=d("2027-01-31"))
    assert Discount.objects.count() == 7


@postgres_only
def test_a_discount_ended_early_leaves_room_the_database_accepts(price_book):
    customer = CustomerFactory()
    running = discount(customer=customer, percent="5", first_day=d("2026-11-01"))
    assert overlap_refused(customer=customer, first_day=d("2026-11-20"))
    discount_end(discount=running, ends_on=d("2026-11-19"), now=NOW)
    assert not overlap_refused(customer=customer, first_day=d("2026-11-20"))


@postgres_only
def test_an_overlap_only_the_database_sees_is_the_services_refusal(price_book, monkeypatch):
    """A writer that bypassed the customer's lock committed an overlapping discount after the
    service's check read none: the database refuses the insert and the caller gets the same
    SubscriptionError as from the check, not an IntegrityError (the admin's form error)."""
    customer = CustomerFactory()
    discount(customer=customer, percent="5", first_day=d("2026-11-01"))
    real = services.discounts_in_effect
    calls = []

    def blind_first(**kwargs):
        calls.append(kwargs)
        return Discount.objects.none() if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "discounts_in_effect", blind_first)
    with pytest.raises(SubscriptionError) as refused:
        discount_add(customer=customer, percent=Decimal("10"), first_day=d("2026-11-16"), now=NOW)
    assert (refused.value.code, refused.value.field, refused.value.message) == (
        "discount_overlap",
        "first_day",
        "there is already a discount for the same customer from 2026-11-01 to open end",
    )
    assert len(calls) == 2
    assert Discount.objects.count() == 1


def test_the_database_refuses_changed_terms_and_deletes(price_book):
    saved = discount(customer=CustomerFactory(), percent="5", first_day=d("2026-11-01"))
    Discount.objects.filter(pk=saved.pk).update(reference="CD-2", notes="fixed")  # allowed
    for change in ({"percent": Decimal("50")}, {"first_day": d("2026-01-01")}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Discount.objects.filter(pk=saved.pk).update(**change)
    with pytest.raises(IntegrityError), transaction.atomic():
        Discount.objects.create(
            customer=saved.customer,
            percent=Decimal("5"),
            amount_off=None,
            first_day=NOV.start,
            application=premium_app(),
        )


# --- the rating inputs -------------------------------------------------------------------


def test_inputs_carry_the_applications_and_their_customers_discounts(price_book):
    customer = CustomerFactory()
    app, other = premium_app(customer), premium_app(customer)
    discount(customer=customer, percent="10", first_day=d("2026-09-01"), last_day=d("2026-10-10"))
    discount(
        application=app,
        amount_off="300.00",
        first_day=d("2026-10-20"),
        last_day=d("2026-10-31"),
        reference="CD-3",
    )
    discount(application=app, percent="1", first_day=d("2026-11-01"))  # after October
    inputs = application_inputs(applications=[app, other], period=OCTOBER)
    assert [
        (s.first_day, s.last_day, s.percent, s.amount_off, s.customer_wide)
        for s in inputs[app.id].discounts
    ] == [
        (d("2026-10-20"), d("2026-10-31"), None, Decimal("300.00"), False),
        (d("2026-10-01"), d("2026-10-10"), Decimal("10.00"), None, True),
    ]
    assert [s.key for s in inputs[other.id].discounts] == [inputs[app.id].discounts[1].key]


def test_a_batch_reads_discounts_in_one_query_however_many_customers(
    price_book, django_assert_num_queries
):
    customers = [CustomerFactory() for _ in range(3)]
    apps = []
    for index, customer in enumerate(customers):
        app = premium_app(customer)
        usage(app, d("2026-10-05"), 1000 * (index + 1))
        addon_change(app, "sensitive_words", 1, d("2026-10-05"))
        contract(app, "30000.00", d("2026-10-20"))
        discount(customer=customer, percent="10", first_day=d("2026-10-01"))
        discount(application=app, amount_off="100.00", first_day=d("2026-10-01"))
        apps.append(app)
    # Plan changes, add-on changes, usage, contracts, discounts: one query each.
    with django_assert_num_queries(5):
        inputs = application_inputs(applications=apps, period=OCTOBER)
    assert all(len(inputs[app.id].discounts) == 2 for app in apps)
    # The batch rating of the run, the dashboard and the estimate: + the applications and the
    # price book's five tables (plans, add-ons, their prices, the VAT rate).
    with django_assert_num_queries(11):
        ratings = customers_rate(customer_ids=[c.pk for c in customers], period=OCTOBER)
    assert all(
        any(line.code == "discount" for line in ratings[c.pk].rated.lines) for c in customers
    )


# --- what reaches invoices -----------------------------------------------------------------


def discounted_invoice() -> Invoice:
    """Premium 6,000.00 + sensitive words 2 x 1,200.00 = 8,400.00, 25% off: 6,300.00."""
    customer = CustomerFactory()
    app = premium_app(customer)
    addon_change(app, "sensitive_words", 2, d("2026-09-01"))
    october_usage(app, {5: 4000})
    deposit(customer, "20000.00")
    discount(customer=customer, percent="25", first_day=d("2026-09-01"), reference="CD-25")
    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "issued"
    return Invoice.objects.get(customer=customer)


def test_the_bill_freezes_the_discount_line(price_book):
    invoice = discounted_invoice()
    line = invoice.lines.get(category="discount")
    assert (line.amount.amount, line.unit_price.amount) == (
        Decimal("-2100.00"),
        Decimal("-2100.00"),
    )
    assert line.description == "Contracted discount CD-25"
    assert line.explanation == (
        "25% of the month's charges of 8,400.00; agreed for all the customer's applications"
    )
    assert line.messages["title"] == ["discount_title_reference", {"reference": "CD-25"}]
    assert invoice.total.amount == Decimal("6300.00")
    assert sum(row.amount.amount for row in invoice.lines.all()) == Decimal("6300.00")


def test_credit_notes_give_back_at_most_what_the_discounted_invoice_took(price_book):
    invoice = discounted_invoice()
    lines = {line.code: line for line in invoice.lines.all()}
    with pytest.raises(InvoiceError, match="at most 6300.00 can still be credited"):
        credit_note_create(
            invoice=invoice,
            line_amounts={
                lines["premium"].pk: Decimal("6000.00"),
                lines["sensitive_words"].pk: Decimal("2400.00"),
            },
            reason="too much",
            now=BILLING_MOMENT,
            idempotency_key="cn-too-much",
        )
    with pytest.raises(InvoiceError, match="above zero"):
        credit_note_create(
            invoice=invoice,
            line_amounts={lines["discount"].pk: Decimal("-1")},
            reason="x",
            now=BILLING_MOMENT,
            idempotency_key="cn-negative",
        )
    # The database refuses it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditNote.objects.create(
            invoice=invoice,
            customer=invoice.customer,
            number="CN-2026-000099",
            reason="by hand",
            total=Money(Decimal("6300.01"), "CNY"),
            issued_at=BILLING_MOMENT,
            issue_date=BILLING_MOMENT.date(),
            idempotency_key="by-hand",
        )
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="all", now=BILLING_MOMENT, idempotency_key="cn"
    )
    assert note.total.amount == Decimal("6300.00")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.CREDITED
    with pytest.raises(InvoiceError, match="nothing left to credit"):
        credit_note_create(
            invoice=invoice,
            line_amounts=None,
            reason="again",
            now=BILLING_MOMENT,
            idempotency_key="cn-again",
        )


def test_the_journal_debits_discounts_to_their_contra_revenue_account(price_book):
    invoice = discounted_invoice()
    # Revenue is posted in the service month (October), the journal's default basis.
    rows = [row for row in journal_entries(period=OCTOBER) if row.document_number == invoice.number]
    by_account = {row.account.code: (row.debit, row.credit) for row in rows}
    # Prices include 6% VAT: revenue and the discount post at the net, the VAT of every line
    # (the discount's negative VAT included) goes to 2221.
    assert by_account["2200"] == (Decimal("6300.00"), Decimal("0"))
    assert by_account["4090"] == (Decimal("1981.13"), Decimal("0"))  # 2,100.00 / 1.06
    assert by_account["4010"] == (Decimal("0"), Decimal("5660.38"))  # 6,000.00 / 1.06
    assert by_account["4040"] == (Decimal("0"), Decimal("2264.15"))  # 2,400.00 / 1.06
    assert by_account["2221"] == (Decimal("0"), Decimal("356.60"))  # 339.62 + 135.85 - 118.87
    assert sum(r.debit for r in rows) == sum(r.credit for r in rows)
    summary = revenue_summary(period=OCTOBER)
    assert [(r.key, r.billed) for r in summary.by_category if r.key == "discount"] == [
        ("discount", Decimal("-2100.00"))
    ]


def test_the_estimate_sees_the_discount(price_book):
    customer = CustomerFactory()
    app = premium_app(customer)
    discount(application=app, amount_off="600.00", first_day=d("2026-11-01"))
    estimate = estimate_current_month(customer=customer, today=d("2026-11-10"))
    assert estimate.total == Decimal("5400.00")
