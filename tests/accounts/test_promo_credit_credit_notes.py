"""A credit note on an invoice promotional credit paid gives promotional credit back first, as
promotional credit (a `promo_grant`), never as paid balance; the journal reverses the promotion
expense in the credit note's document and the roll-forward still reconciles to the ledger."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import LedgerEntry
from accounts.promo_credit import credit_note_promo_split, paid_balance, promo_credit_held
from accounts.selectors import ledger_balance
from accounts.services import promo_credit_lapse_due
from billingsite.clock import Period
from invoices.documents.pdf import render_credit_note_pdf
from invoices.documents.services import bill_customer, credit_note_create
from invoices.exports.reports import journal_entries, journal_is_balanced
from invoices.exports.rollforward import prepayment_rollforward
from invoices.models import CreditNote, Invoice
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    CustomerUserFactory,
    addon_change,
    deposit,
    promo_grant,
)
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, october_usage
from tests.portal.test_pdf import pdf_text

pytestmark = pytest.mark.django_db
LATER = BILLING_MOMENT + dt.timedelta(days=3)  # 5 November, Asia/Shanghai
D = Decimal


@pytest.mark.parametrize(
    ("invoice_total", "applied", "given_back", "credit", "split"),
    [
        ("8400.00", "8400.00", "0.00", "8400.00", ("8400.00", "0.00")),
        ("8400.00", "3000.00", "0.00", "2000.00", ("2000.00", "0.00")),
        ("8400.00", "3000.00", "2000.00", "2400.00", ("1000.00", "1400.00")),
        ("8400.00", "3000.00", "3000.00", "500.00", ("0.00", "500.00")),
        ("8400.00", "0.00", "0.00", "8400.00", ("0.00", "8400.00")),
        ("100.00", "33.33", "0.00", "100.00", ("33.33", "66.67")),
    ],
)
def test_the_split_gives_promotional_credit_back_first(
    invoice_total, applied, given_back, credit, split
):
    promo_part, paid_part = credit_note_promo_split(
        invoice_total=D(invoice_total),
        promo_credit_applied=D(applied),
        already_given_back_promo=D(given_back),
        credit_total=D(credit),
    )
    assert (promo_part, paid_part) == (D(split[0]), D(split[1]))
    assert promo_part + paid_part == D(credit)


def issued_invoice(*, grant: str, expires_on=dt.date(2026, 12, 31), balance: str = "") -> Invoice:
    """8,400.00 (Premium 6,000.00 + sensitive words 2 x 1,200.00), issued on 2 November with
    `grant` of promotional credit (granted 1 October) to pay it first."""
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))
    addon_change(app, "sensitive_words", 2, dt.date(2026, 9, 1))
    october_usage(app, {5: 4000})
    promo_grant(customer, grant, expires_on)
    if balance:
        deposit(customer, balance)
    assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "issued"
    return Invoice.objects.get(customer=customer)


def _credit(invoice, key, line_amounts=None):
    return credit_note_create(
        invoice=invoice, line_amounts=line_amounts, reason="Outage", now=LATER, idempotency_key=key
    )


def test_a_full_credit_of_an_invoice_promotion_paid_restores_the_promotion_only(price_book):
    invoice = issued_invoice(grant="10000.00")
    assert invoice.promo_credit_applied == D("8400.00")
    assert paid_balance(customer=invoice.customer) == D("0.00")
    assert promo_credit_held(customer=invoice.customer) == D("1600.00")

    note = _credit(invoice, "cn-1")
    again = _credit(invoice, "cn-1")

    assert again.pk == note.pk
    assert (note.total.amount, note.promo_credit_returned) == (D("8400.00"), D("8400.00"))
    assert paid_balance(customer=invoice.customer) == D("0.00")
    assert promo_credit_held(customer=invoice.customer) == D("10000.00")
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT).exists()
    restored = LedgerEntry.objects.get(kind=LedgerEntry.Kind.PROMO_GRANT, reference=note.number)
    assert (
        restored.amount.amount,
        restored.expires_on,
        restored.idempotency_key,
        restored.reason,
        restored.created_at,
    ) == (
        D("8400.00"),
        dt.date(2026, 12, 31),
        f"credit-note-promo:{note.number}",
        f"Restored by credit note {note.number} on invoice {invoice.number}",
        LATER,
    )
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PROMO_GRANT).count() == 2


def test_two_partial_credit_notes_give_back_the_promotion_first_then_the_paid_balance(
    price_book,
):
    invoice = issued_invoice(grant="3000.00", balance="20000.00")
    assert invoice.promo_credit_applied == D("3000.00")
    assert paid_balance(customer=invoice.customer) == D("14600.00")
    lines = {line.app_key + line.description: line for line in invoice.lines.all()}
    premium = next(line for line in lines.values() if line.amount.amount == D("6000.00"))
    words = next(line for line in lines.values() if line.amount.amount == D("2400.00"))

    first = _credit(invoice, "cn-1", {premium.pk: D("2000.00")})
    second = _credit(invoice, "cn-2", {words.pk: D("2400.00")})

    assert (first.promo_credit_returned, second.promo_credit_returned) == (
        D("2000.00"),
        D("1000.00"),
    )
    credits = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT)
    assert [(e.reference, e.amount.amount) for e in credits] == [(second.number, D("1400.00"))]
    restores = LedgerEntry.objects.filter(
        kind=LedgerEntry.Kind.PROMO_GRANT, reference__startswith="CN-"
    ).order_by("id")
    assert [(e.reference, e.amount.amount) for e in restores] == [
        (first.number, D("2000.00")),
        (second.number, D("1000.00")),
    ]
    assert paid_balance(customer=invoice.customer) == D("16000.00")
    assert promo_credit_held(customer=invoice.customer) == D("3000.00")
    assert ledger_balance(customer=invoice.customer) == D("19000.00")

    # A third note finds the promotion all given back: all of it is paid balance.
    third = _credit(invoice, "cn-3", {premium.pk: D("100.00")})
    assert third.promo_credit_returned == D("0.00")
    assert paid_balance(customer=invoice.customer) == D("16100.00")


def test_a_restore_whose_grant_has_expired_lapses_the_next_day(price_book):
    invoice = issued_invoice(grant="8400.00", expires_on=dt.date(2026, 11, 2))
    assert invoice.promo_credit_applied == D("8400.00")

    note = _credit(invoice, "cn-1")

    restored = LedgerEntry.objects.get(kind=LedgerEntry.Kind.PROMO_GRANT, reference=note.number)
    assert restored.expires_on == dt.date(2026, 11, 5)  # the credit note's day, not the past
    assert promo_credit_lapse_due(now=LATER) == 0
    assert promo_credit_lapse_due(now=LATER + dt.timedelta(days=1)) == 1
    lapse = LedgerEntry.objects.get(kind=LedgerEntry.Kind.PROMO_LAPSE)
    assert (lapse.promo_grant_id, lapse.amount.amount) == (restored.pk, D("-8400.00"))
    assert promo_credit_held(customer=invoice.customer) == D("0.00")
    assert paid_balance(customer=invoice.customer) == D("0.00")


def test_the_journal_reverses_the_promotion_expense_and_the_rollforward_reconciles(price_book):
    invoice = issued_invoice(grant="3000.00", balance="20000.00")
    words = next(line for line in invoice.lines.all() if line.amount.amount == D("2400.00"))
    first = _credit(invoice, "cn-1", {words.pk: D("2400.00")})
    second = _credit(invoice, "cn-2", None)  # the rest: 6,000.00, 600.00 of it promotion

    rows = list(journal_entries(period=Period(2026, 11), basis="issue_date"))

    assert journal_is_balanced(rows)
    promotion = [
        (row.document_number, row.debit, row.credit) for row in rows if row.account.code == "6610"
    ]
    assert promotion == [
        (invoice.number, D("3000.00"), D("0.00")),
        (first.number, D("0.00"), D("2400.00")),
        (second.number, D("0.00"), D("600.00")),
    ]
    expense = sum((row.debit - row.credit for row in rows if row.account.code == "6610"), D(0))
    assert expense == D("0.00")

    def prepaid_movement(number):
        return sum(
            (
                row.credit - row.debit
                for row in rows
                if row.document_number == number and row.account.code == "2200"
            ),
            D(0),
        )

    # 2200 moves by what the ledger credited to the paid balance.
    assert (prepaid_movement(first.number), prepaid_movement(second.number)) == (
        D("0.00"),
        D("5400.00"),
    )

    november = prepayment_rollforward(period=Period(2026, 11)).total
    assert november.opening_balance + november.movements == november.closing_balance
    assert november.closing_balance == ledger_balance(customer=invoice.customer)
    assert (november.credit_notes, november.promo_granted, november.promo_used) == (
        D("5400.00"),
        D("3000.00"),
        D("-3000.00"),
    )
    assert (november.closing_paid_balance, november.closing_promo_credit) == (
        D("20000.00"),
        D("3000.00"),
    )
    assert CreditNote.objects.count() == 2


def test_the_credit_note_pdf_says_what_returned_as_promotional_credit(price_book):
    invoice = issued_invoice(grant="10000.00")
    note = _credit(invoice, "cn-1")

    text = pdf_text(render_credit_note_pdf(credit_note=note))

    assert "Returned as promotional credit 退回促销赠送额度: ¥8,400.00" in " ".join(text.split())
    assert "Credited to your prepaid balance" not in text
    assert "returned to your prepaid balance" not in text


def test_the_portal_credit_note_page_shows_the_promotional_credit_returned(price_book, client):
    invoice = issued_invoice(grant="3000.00", balance="20000.00")
    note = _credit(invoice, "cn-1")  # 8,400.00: 3,000.00 promotional, 5,400.00 paid
    client.force_login(CustomerUserFactory(customer=invoice.customer).user)

    response = client.get(reverse("portal:credit-note-detail", args=[note.number]))

    assert response.status_code == 200
    page = " ".join(response.content.decode().split())
    assert '<dd id="credit-promo-returned">' in page
    assert "Returned as promotional credit" in page
    assert (note.promo_credit_returned, note.total.amount) == (D("3000.00"), D("8400.00"))
    credit = LedgerEntry.objects.get(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT)
    assert credit.amount.amount == D("5400.00")
