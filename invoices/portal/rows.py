"""The invoice list's and the ledger's rows as text, built once in Python per row.

Each `{% translate %}`, `|date` or `{% document_url %}` in a template loop costs the template
engine 60-130 Python calls per row; the same strings built here cost a few each, and the
template only places them (the markup stays in `templates/portal/invoice_list.html`). What a
row says is unchanged: the same filters and messages, called from Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from django.utils import formats, translation
from django.utils.timezone import localtime
from django.utils.translation import gettext

from accounts.models import LedgerEntry
from invoices.models import Invoice
from invoices.templatetags.billing_format import cny_html
from invoices.templatetags.invoice_text import invoice_status, ledger_kind
from invoices.templatetags.portal_urls import document_url


@lru_cache(maxsize=512)
def _date_text(value: dt.date, format_name: str, language: str | None) -> str:
    # `language` is part of the key: the same date reads differently in each language.
    return formats.date_format(value, format_name)


def date_text(value: dt.date, format_name: str) -> str:
    """`{{ value|date:format_name }}` in the active language (a month's label is the same on
    every page, so it is formatted once per process and language)."""
    return _date_text(value, format_name, translation.get_language())


@dataclass(frozen=True)
class InvoiceRow:
    """One line of the portal's invoice table: what each cell shows."""

    number: str
    status: str
    detail_url: str
    pdf_url: str
    period_label: str
    issue_date: str
    status_label: str
    # HTML (cny_html's span, safe)
    total_html: str
    download_label: str


def invoice_rows(invoices: Iterable[Invoice]) -> list[InvoiceRow]:
    """Rows for the invoices of a list page, in their order (the active language's text)."""
    rows = []
    for invoice in invoices:
        number = invoice.number or ""  # issued: always numbered
        rows.append(
            InvoiceRow(
                number=number,
                status=invoice.status,
                detail_url=document_url("invoice-detail", number),
                pdf_url=document_url("invoice-pdf", number),
                period_label=date_text(invoice.period, "YEAR_MONTH_FORMAT"),
                issue_date=date_text(invoice.issue_date, "Y-m-d") if invoice.issue_date else "",
                status_label=invoice_status(invoice.status),
                total_html=cny_html(invoice.total),
                download_label=gettext("Download invoice %(number)s (PDF)") % {"number": number},
            )
        )
    return rows


@dataclass(frozen=True)
class LedgerRow:
    """One line of the balance page's ledger table."""

    date: str
    kind_label: str
    reference: str
    # The portal page of the invoice or credit note the entry refers to ("" when none).
    url: str
    # An adjustment's reason, a promotional credit grant's reason and expiry ("" otherwise).
    reason: str
    amount_class: str
    amount_sign: str
    amount_html: str
    balance_class: str
    balance_html: str


def _ledger_reason(entry: LedgerEntry) -> str:
    """What the customer reads under an entry: an adjustment's reason; a promotional credit
    grant's reason and its last valid day."""
    if entry.kind == "adjustment":
        return entry.reason
    if entry.kind == "promo_grant" and entry.expires_on is not None:
        valid = gettext("valid through %(date)s") % {"date": entry.expires_on.isoformat()}
        return f"{entry.reason} · {valid}"
    return ""


def ledger_rows(
    entries: Iterable[LedgerEntry], *, invoice_numbers: set[str], note_numbers: set[str]
) -> list[LedgerRow]:
    """Rows for a page of `accounts.selectors.ledger_statement` (each entry annotated with
    `balance_after`); a reference links to the customer's own invoice or credit note only
    when it is in `invoice_numbers` / `note_numbers`."""
    rows = []
    for entry in entries:
        reference = entry.reference
        url = ""
        if reference in invoice_numbers:
            url = document_url("invoice-detail", reference)
        elif reference in note_numbers:
            url = document_url("credit-note-detail", reference)
        amount = entry.amount.amount
        balance_after = entry.balance_after  # type: ignore[attr-defined]
        rows.append(
            LedgerRow(
                # `|date` shows a moment in the current time zone (template_localtime).
                date=formats.date_format(localtime(entry.created_at), "Y-m-d"),
                kind_label=ledger_kind(entry.kind),
                reference=reference,
                url=url,
                reason=_ledger_reason(entry),
                amount_class="negative" if amount < 0 else "positive",
                amount_sign="+" if amount > 0 else "",
                amount_html=cny_html(entry.amount),
                balance_class="negative" if balance_after < 0 else "",
                balance_html=cny_html(balance_after),
            )
        )
    return rows
