"""The invoice list's and the ledger's rows as text, built once in Python per row.

Each `{% translate %}`, `|date` or `{% document_url %}` in a template loop costs the template
engine 60-130 Python calls per row, and each `{{ row.text }}` placed ~25; the same strings built
here cost a few each. The ledger's template places the texts of each row; the invoice list's
row is built whole here, as one string. What a row says is unchanged, byte for byte: the same
filters and messages, called from Python, escaped as the template escaped them
(tests/portal/test_rendering_cost.py compares them with the former template rows).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import formats, translation
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from django.utils.translation import gettext

from accounts.models import LedgerEntry
from invoices.models import Invoice
from invoices.templatetags.billing_format import cny_html, date_text
from invoices.templatetags.invoice_text import invoice_status, ledger_kind
from invoices.templatetags.portal_urls import document_url, document_urls

# One row of the portal's invoice table (`templates/portal/invoice_list.html` places them). The
# texts are escaped as the template's `{{ }}` escaped them; the amount is cny_html's markup and
# the link text `{% translate "Download" %}`'s, both placed as they are.
_INVOICE_ROW = (
    "<tr>\n"
    '        <td class="o1 nowrap"><a href="{detail_url}">{number}</a></td>\n'
    '        <td class="o3 nowrap">{period_label}</td>\n'
    '        <td class="hide-narrow nowrap muted">{issue_date}</td>\n'
    '        <td class="o5"><span class="badge {status}">{status_label}</span></td>\n'
    '        <td class="num o2">{total_html}</td>\n'
    '        <td class="num o4"><a href="{pdf_url}" download aria-label="{download_label}">'
    "{download}</a></td>\n"
    "      </tr>"
)


def invoice_rows(invoices: Iterable[Invoice]) -> list[SafeString]:
    """The table rows (markup) of the invoices of a list page, in their order, in the active
    language. The ~10 template variables per row cost the template engine ~25 Python calls
    each, a quarter of the list page; one format string per row costs a few. What is the same
    on every row (the language, the messages, the URLs' prefix, a status's label) is read
    once; `html.escape` is what Django's `escape` does to a text."""
    language = translation.get_language()
    download = gettext("Download")
    download_label = gettext("Download invoice %(number)s (PDF)")
    detail_url = document_urls("invoice-detail")
    pdf_url = document_urls("invoice-pdf")
    status_labels: dict[str, str] = {}
    rows = []
    for invoice in invoices:
        number = invoice.number or ""  # issued: always numbered
        status = invoice.status
        status_label = status_labels.get(status)
        if status_label is None:
            status_label = status_labels[status] = html.escape(invoice_status(status))
        issue_date = invoice.issue_date
        rows.append(
            SafeString(
                _INVOICE_ROW.format(
                    detail_url=html.escape(detail_url(number)),
                    number=html.escape(number),
                    period_label=html.escape(
                        date_text(invoice.period, "YEAR_MONTH_FORMAT", language)
                    ),
                    issue_date=html.escape(date_text(issue_date, "Y-m-d", language))
                    if issue_date
                    else "",
                    status=html.escape(status),
                    status_label=status_label,
                    total_html=cny_html(invoice.total),
                    pdf_url=html.escape(pdf_url(number)),
                    download_label=html.escape(download_label % {"number": number}),
                    download=download,
                )
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
