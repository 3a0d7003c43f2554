"""PDF invoices and credit notes (WeasyPrint), for the customer pages and the admin alike.

A PDF is rendered from the frozen document only: the invoice's own copy of the customer's
name, address and tax id, its lines with their frozen names, unit prices and explanations, and
the append-only ledger entry it posted. Nothing is re-rated and no current price is read, so
the PDF of an issued invoice is the same whenever and by whomever it is downloaded.

Labels are printed in English and Simplified Chinese side by side, so one file serves every
reader; the customer's preferred language comes first (`first_language`: the order changes
with the preference, never the content). Chinese text needs a CJK font (Debian's `fonts-noto-cjk`, "Noto Sans CJK SC").
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import translation

from accounts.models import Customer, LedgerEntry
from accounts.selectors import with_balance_in_statement
from billingsite.clock import Period
from billingsite.issuer import issuer
from billingsite.queries import compiled_read
from invoices.models import CreditNote, Invoice
from invoices.templatetags.invoice_text import by_application

# WeasyPrint logs every layout step at INFO; only its warnings are worth reading.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


def _invoice_debits(*, customer_id: int, reference: str) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(
        customer_id=customer_id, kind=LedgerEntry.Kind.INVOICE_DEBIT, reference=reference
    ).order_by("created_at", "id")


_invoice_debit = compiled_read(lambda **inputs: _invoice_debits(**inputs)[:1])
_invoice_debit_with_balance = compiled_read(
    lambda **inputs: with_balance_in_statement(_invoice_debits(**inputs))[:1]
)


def invoice_ledger_entry(*, invoice: Invoice, with_balance: bool = False) -> LedgerEntry | None:
    """The debit the invoice posted to the customer's balance (None before issue).
    `with_balance`: annotated with `balance_in_statement`, the balance after it
    (accounts.selectors.with_balance_in_statement), in the same query."""
    if not invoice.number:
        return None
    read = _invoice_debit_with_balance if with_balance else _invoice_debit
    return read.first(customer_id=invoice.customer_id, reference=invoice.number)


def credit_note_ledger_entry(*, credit_note: CreditNote) -> LedgerEntry | None:
    return (
        LedgerEntry.objects.filter(
            customer_id=credit_note.customer_id,
            kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT,
            reference=credit_note.number,
        )
        .order_by("created_at", "id")
        .first()
    )


def write_pdf(html: str) -> bytes:
    # Imported here: WeasyPrint loads Pango/fontconfig, which nothing else needs at startup.
    from weasyprint import HTML  # noqa: PLC0415

    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


def invoice_pdf_filename(invoice: Invoice) -> str:
    return f"{invoice.number or f'draft-{invoice.pk}'}.pdf"


def credit_note_pdf_filename(credit_note: CreditNote) -> str:
    return f"{credit_note.number}.pdf"


def pdf_first_language(*, customer: Customer, language: str | None) -> str:
    return language or customer.preferred_language or settings.LANGUAGE_CODE


def render_invoice_pdf(*, invoice: Invoice, language: str | None = None) -> bytes:
    """The invoice as a PDF. A draft or held invoice (admin preview) is marked as not issued."""
    lines = list(invoice.lines.order_by("position"))
    with translation.override("en"):
        html = render_to_string(
            "pdf/invoice.html",
            {
                "invoice": invoice,
                "groups": by_application(lines),
                "line_count": len(lines),
                "period_end": Period.containing(invoice.period).end,
                "debit": invoice_ledger_entry(invoice=invoice),
                "issuer": issuer(),
                "account_id": invoice.customer.external_id,
                # Stable for the customer's life: what to write in a transfer's remark.
                "transfer_reference": invoice.customer.transfer_reference,
                "first_language": pdf_first_language(customer=invoice.customer, language=language),
            },
        )
    return write_pdf(html)


def render_credit_note_pdf(*, credit_note: CreditNote, language: str | None = None) -> bytes:
    lines = list(credit_note.lines.select_related("invoice_line").order_by("id"))
    with translation.override("en"):
        html = render_to_string(
            "pdf/credit_note.html",
            {
                "note": credit_note,
                "invoice": credit_note.invoice,
                "lines": lines,
                "credit": credit_note_ledger_entry(credit_note=credit_note),
                "issuer": issuer(),
                "account_id": credit_note.customer.external_id,
                "first_language": pdf_first_language(
                    customer=credit_note.customer, language=language
                ),
            },
        )
    return write_pdf(html)
