"""Credit notes: never more than billed per line, credited to the ledger, own number series."""

import datetime as dt
from decimal import Decimal

import pytest

from accounts.models import CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from invoices.documents.services import InvoiceError, bill_customer, credit_note_create
from invoices.models import CreditNote, CreditNoteLine, Invoice
from tests.factories import ApplicationFactory, CustomerFactory, addon_change, deposit, usage
from tests.invoices.test_invoices import (
    BILLING_MOMENT,
    OCTOBER,
    october_usage,
    premium_customer,
)

pytestmark = pytest.mark.django_db
LATER = BILLING_MOMENT + dt.timedelta(days=3)


def issued_invoice(*, balance="20000.00") -> Invoice:
    """Premium 6,000.00 + sensitive words 2 x 1,200.00 + Ultimate-included nothing."""
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))
    addon_change(app, "sensitive_words", 2, dt.date(2026, 9, 1))
    october_usage(app, {5: 4000})
    if balance:
        deposit(customer, balance)
    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "issued"
    return Invoice.objects.get(customer=customer)


def test_full_credit_note_credits_every_line_and_the_ledger(price_book):
    invoice = issued_invoice()
    assert invoice.total.amount == Decimal("8400.00")

    note = credit_note_create(
        invoice=invoice,
        line_amounts=None,
        reason="Billed by mistake",
        now=LATER,
        idempotency_key="cn-1",
    )

    assert note.number == "CN-2026-000001"
    assert note.total.amount == Decimal("8400.00")
    assert note.issue_date == dt.date(2026, 11, 5)
    assert sorted(line.amount.amount for line in note.lines.all()) == [
        Decimal("2400.00"),
        Decimal("6000.00"),
    ]
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.CREDITED
    credit = LedgerEntry.objects.get(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT)
    assert (credit.amount.amount, credit.reference) == (Decimal("8400.00"), "CN-2026-000001")
    assert ledger_balance(customer=invoice.customer) == Decimal("20000.00")
    assert (
        CustomerEvent.objects.filter(
            kind=CustomerEvent.Kind.CREDIT_NOTE_ISSUED, customer=invoice.customer
        ).count()
        == 1
    )
    with pytest.raises(InvoiceError, match="nothing left to credit"):
        credit_note_create(
            invoice=invoice, line_amounts=None, reason="again", now=LATER, idempotency_key="cn-2"
        )


def test_partial_credits_never_exceed_what_a_line_billed(price_book):
    invoice = issued_invoice()
    dau_line, words_line = invoice.lines.order_by("position")

    first = credit_note_create(
        invoice=invoice,
        line_amounts={words_line.pk: Decimal("1000.00")},
        reason="Sensitive words enabled late",
        now=LATER,
        idempotency_key="cn-a",
    )
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PARTIALLY_CREDITED
    assert first.total.amount == Decimal("1000.00")

    with pytest.raises(InvoiceError) as refused:
        credit_note_create(
            invoice=invoice,
            line_amounts={words_line.pk: Decimal("1400.01")},
            reason="too much",
            now=LATER,
            idempotency_key="cn-b",
        )
    assert refused.value.field == "line_amounts"
    assert "at most 1400.00 can still be credited" in refused.value.message
    assert CreditNote.objects.count() == 1

    second = credit_note_create(
        invoice=invoice,
        line_amounts={words_line.pk: Decimal("1400.00"), dau_line.pk: Decimal("6000.00")},
        reason="the rest",
        now=LATER,
        idempotency_key="cn-c",
    )
    assert second.number == "CN-2026-000002"
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.CREDITED
    assert ledger_balance(customer=invoice.customer) == Decimal("20000.00")


def test_same_idempotency_key_returns_the_first_note_and_credits_once(price_book):
    invoice = issued_invoice()
    line = invoice.lines.order_by("position").first()
    request = {
        "invoice": invoice,
        "line_amounts": {line.pk: Decimal("100.00")},
        "reason": "goodwill",
        "now": LATER,
        "idempotency_key": "form-post-42",
    }

    first = credit_note_create(**request)
    again = credit_note_create(**request)

    assert again.pk == first.pk
    assert CreditNote.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT).count() == 1
    with pytest.raises(InvoiceError) as conflict:
        credit_note_create(**{**request, "line_amounts": {line.pk: Decimal("200.00")}})
    assert conflict.value.field == "idempotency_key"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Decimal("-1.00"), "above zero"),
        (Decimal("0"), "above zero"),
        (Decimal("1.001"), "two decimal places"),
        (1.5, "decimal number"),
        ("12", "decimal number"),
    ],
)
def test_bad_amounts_are_refused_and_nothing_is_written(price_book, amount, message):
    invoice = issued_invoice()
    line = invoice.lines.first()
    with pytest.raises(InvoiceError, match=message):
        credit_note_create(
            invoice=invoice,
            line_amounts={line.pk: amount},
            reason="x",
            now=LATER,
            idempotency_key="k",
        )
    assert CreditNote.objects.count() == 0
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT).exists()


def test_lines_of_another_invoice_empty_reason_and_unissued_invoices_are_refused(price_book):
    invoice = issued_invoice()
    other = issued_invoice()
    with pytest.raises(InvoiceError, match="not a line of invoice") as wrong_line:
        credit_note_create(
            invoice=invoice,
            line_amounts={other.lines.first().pk: Decimal("1.00")},
            reason="x",
            now=LATER,
            idempotency_key="k1",
        )
    assert wrong_line.value.field == "line_amounts"
    with pytest.raises(InvoiceError) as no_reason:
        credit_note_create(
            invoice=invoice, line_amounts=None, reason="  ", now=LATER, idempotency_key="k2"
        )
    assert no_reason.value.field == "reason"
    with pytest.raises(InvoiceError, match="at least one line"):
        credit_note_create(
            invoice=invoice, line_amounts={}, reason="x", now=LATER, idempotency_key="k3"
        )

    customer, app = premium_customer()

    usage(app, dt.date(2026, 10, 9), 10, delivered_messages=9_000_000)
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    held = Invoice.objects.get(customer=customer)
    with pytest.raises(InvoiceError, match="only issued invoices"):
        credit_note_create(
            invoice=held, line_amounts=None, reason="x", now=LATER, idempotency_key="k4"
        )
    assert CreditNote.objects.count() == 0


def test_included_zero_lines_cannot_be_credited(price_book):
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="ultimate", created_on=dt.date(2026, 9, 1))
    addon_change(app, "message_callback", 1, dt.date(2026, 9, 1))
    deposit(customer, "10000.00")
    bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    invoice = Invoice.objects.get(customer=customer)
    included = invoice.lines.get(code="message_callback")

    with pytest.raises(InvoiceError, match="at most 0.00"):
        credit_note_create(
            invoice=invoice,
            line_amounts={included.pk: Decimal("0.01")},
            reason="x",
            now=LATER,
            idempotency_key="k",
        )
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="all", now=LATER, idempotency_key="k2"
    )
    assert list(
        CreditNoteLine.objects.filter(credit_note=note).values_list("invoice_line__code", flat=True)
    ) == ["ultimate"]


def test_credit_note_that_restores_the_balance_ends_arrears_and_reactivates(price_book):
    invoice = issued_invoice(balance="1000.00")
    customer = invoice.customer
    customer.refresh_from_db()
    assert ledger_balance(customer=customer) == Decimal("-7400.00")
    assert customer.arrears_since == dt.date(2026, 11, 2)
    customer.suspended_at = LATER
    customer.save(update_fields=["suspended_at"])
    customer.applications.update(status="suspended")

    credit_note_create(
        invoice=invoice, line_amounts=None, reason="waived", now=LATER, idempotency_key="waive"
    )

    customer.refresh_from_db()
    assert ledger_balance(customer=customer) == Decimal("1000.00")
    assert (customer.arrears_since, customer.suspended_at) == (None, None)
    assert set(customer.applications.values_list("status", flat=True)) == {"active"}
    assert CustomerEvent.objects.filter(kind=CustomerEvent.Kind.REACTIVATED).count() == 1


def test_a_reason_longer_than_1000_characters_is_refused(price_book):
    invoice = issued_invoice()
    with pytest.raises(InvoiceError, match="longer than 1,000 characters"):
        credit_note_create(
            invoice=invoice, line_amounts=None, reason="r" * 1001, now=LATER, idempotency_key="cn"
        )
    assert CreditNote.objects.count() == 0
    assert ledger_balance(customer=invoice.customer) == Decimal("20000.00") - Decimal("8400.00")
