"""Net, VAT and gross frozen on invoices and credit notes (plans.rating.tax's one rule)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from invoices.documents.pdf import render_credit_note_pdf, render_invoice_pdf
from invoices.documents.services import credit_note_create
from invoices.models import CreditNote, Invoice, InvoiceLine
from plans.models import VatRate
from tests.conftest import postgres_only
from tests.factories import ApplicationFactory, CustomerFactory
from tests.invoices.test_credit_notes import LATER, issued_invoice
from tests.invoices.test_invoices import OCTOBER
from tests.portal.factories import issued_invoice as legacy_invoice
from tests.portal.test_pdf import pdf_text

pytestmark = pytest.mark.django_db
D = Decimal


def test_an_issued_invoice_freezes_net_vat_and_gross_per_line_and_in_total(price_book):
    invoice = issued_invoice()
    lines = list(invoice.lines.order_by("position"))
    assert [(line.net_amount, line.vat_amount, line.amount.amount) for line in lines] == [
        (D("5660.38"), D("339.62"), D("6000.00")),
        (D("2264.15"), D("135.85"), D("2400.00")),
    ]
    assert {line.vat_rate for line in lines} == {D("0.0600")}
    assert (invoice.net_total, invoice.vat_total, invoice.total.amount, invoice.vat_rate) == (
        D("7924.53"),
        D("475.47"),
        D("8400.00"),
        D("0.0600"),
    )


def test_prices_excluding_vat_from_a_month_bill_the_gross(price_book):
    VatRate.objects.create(
        valid_from=dt.date(2026, 10, 1), rate=D("0.0600"), prices_include_vat=False
    )
    invoice = issued_invoice()
    assert (invoice.net_total, invoice.vat_total, invoice.total.amount) == (
        D("8400.00"),
        D("504.00"),
        D("8904.00"),
    )
    debit = invoice.customer.ledger_entries.get(kind="invoice_debit")
    assert debit.amount.amount == D("-8904.00")


def test_credit_notes_give_vat_back_in_proportion_and_to_the_cent(price_book):
    invoice = issued_invoice()
    _dau, words = invoice.lines.order_by("position")
    first = credit_note_create(
        invoice=invoice,
        line_amounts={words.pk: D("1000.00")},
        reason="partly",
        now=LATER,
        idempotency_key="vat-1",
    )
    # 135.85 x 1000 / 2400 = 56.604... -> 56.60
    assert (first.net_total, first.vat_total, first.total.amount) == (
        D("943.40"),
        D("56.60"),
        D("1000.00"),
    )
    rest = credit_note_create(
        invoice=invoice, line_amounts=None, reason="the rest", now=LATER, idempotency_key="vat-2"
    )
    # Cumulative rounding: the words line gives back 135.85 - 56.60 = 79.25, the DAU line 339.62.
    assert [(line.amount.amount, line.vat_amount) for line in rest.lines.order_by("id")] == [
        (D("6000.00"), D("339.62")),
        (D("1400.00"), D("79.25")),
    ]
    notes = CreditNote.objects.filter(invoice=invoice)
    assert sum(note.vat_total for note in notes) == invoice.vat_total
    assert sum(note.net_total for note in notes) == invoice.net_total


def test_an_invoice_issued_before_vat_credits_gross_only(price_book):
    # Written as invoices were before VAT (tests.portal.factories writes no split).
    customer = CustomerFactory()
    ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))
    invoice = legacy_invoice(customer=customer, period=OCTOBER)
    assert (invoice.net_total, invoice.vat_total) == (None, None)
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="legacy", now=LATER, idempotency_key="vat-3"
    )
    assert (note.net_total, note.vat_total) == (None, None)
    assert {(line.net_amount, line.vat_amount) for line in note.lines.all()} == {(None, None)}


@postgres_only
def test_the_database_refuses_a_split_that_does_not_add_up(price_book):
    customer = CustomerFactory()
    ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))
    draft = legacy_invoice(customer=customer, period=OCTOBER, status="draft")
    line = draft.lines.first()
    gross = line.amount.amount
    InvoiceLine.objects.filter(pk=line.pk).update(net_amount=gross - 1, vat_amount=D("1.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.filter(pk=line.pk).update(vat_amount=D("2.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.filter(pk=line.pk).update(vat_amount=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=draft.pk).update(net_total=D("1.00"), vat_total=D("1.00"))


def test_the_database_refuses_to_change_an_issued_invoices_vat(price_book):
    invoice = issued_invoice()
    with pytest.raises(Exception, match="never change"), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(net_total=D("7000.00"), vat_total=D("1400.00"))


def test_the_pdfs_show_net_vat_and_gross(price_book):
    invoice = issued_invoice()
    text = pdf_text(render_invoice_pdf(invoice=invoice))
    assert "Net amount 不含税金额 ¥7,924.53" in text
    assert "VAT 增值税 6% ¥475.47" in text
    assert "Total (VAT included) 价税合计 ¥8,400.00" in text
    assert "incl. VAT 含税 ¥339.62" in text
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="all", now=LATER, idempotency_key="vat-pdf"
    )
    text = pdf_text(render_credit_note_pdf(credit_note=note))
    assert "VAT credited 冲减税额 ¥475.47" in text
    assert "Net credited 冲减不含税金额 ¥7,924.53" in text
