"""Issued invoices and credit notes never change: the database refuses it, whoever asks."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from moneyed import Money

from invoices.models import CreditNote, CreditNoteLine, ImmutableDocumentError, Invoice, InvoiceLine
from invoices.services import credit_note_create, invoice_rate
from tests.conftest import postgres_only
from tests.invoices.test_credit_notes import LATER, issued_invoice
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db


def refused(action) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        action()


@pytest.mark.parametrize(
    "change",
    [
        {"total": Money(Decimal("1.00"), "CNY")},
        {"number": "INV-2026-999999"},
        {"customer_name": "Someone Else"},
        {"status": "draft"},
        {"issued_at": LATER},
    ],
)
def test_the_database_refuses_to_change_an_issued_invoice(price_book, change):
    invoice = issued_invoice()
    refused(lambda: Invoice.objects.filter(pk=invoice.pk).update(**change))
    invoice.refresh_from_db()
    assert invoice.number == "INV-2026-000001"
    assert invoice.total.amount == Decimal("8400.00")


def test_the_database_refuses_to_change_lines_of_an_issued_invoice(price_book):
    invoice = issued_invoice()
    refused(
        lambda: InvoiceLine.objects.filter(invoice=invoice).update(
            amount=Money(Decimal("0.01"), "CNY")
        )
    )
    refused(lambda: InvoiceLine.objects.filter(invoice=invoice).update(explanation="edited"))
    assert sorted(line.amount.amount for line in invoice.lines.all()) == [
        Decimal("2400.00"),
        Decimal("6000.00"),
    ]


def test_issued_invoices_and_credit_notes_are_never_deleted(price_book):
    invoice = issued_invoice()
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    with pytest.raises(ImmutableDocumentError):
        invoice.delete()
    with pytest.raises(ImmutableDocumentError):
        note.delete()
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    assert CreditNote.objects.filter(pk=note.pk).exists()


def test_credit_notes_never_change(price_book):
    invoice = issued_invoice()
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    refused(lambda: CreditNote.objects.filter(pk=note.pk).update(reason="edited"))
    refused(
        lambda: CreditNoteLine.objects.filter(credit_note=note).update(
            amount=Money(Decimal("1.00"), "CNY")
        )
    )
    note.refresh_from_db()
    assert note.reason == "x"


def test_drafts_are_still_editable_until_issued(price_book):
    customer, _ = premium_customer()
    draft = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    Invoice.objects.filter(pk=draft.pk).update(hold_reason="checking")
    InvoiceLine.objects.filter(invoice=draft).update(explanation="re-explained")
    draft.delete()
    assert not Invoice.objects.filter(pk=draft.pk).exists()


@postgres_only
def test_postgresql_refuses_bulk_deletes_of_issued_documents(price_book):
    invoice = issued_invoice()
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    refused(lambda: CreditNoteLine.objects.filter(credit_note=note).delete())
    refused(lambda: InvoiceLine.objects.filter(invoice=invoice).delete())
    refused(lambda: Invoice.objects.filter(pk=invoice.pk).update(status="draft"))
    assert InvoiceLine.objects.filter(invoice=invoice).count() == 2
