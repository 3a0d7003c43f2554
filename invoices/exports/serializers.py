"""The accounting export's representations: DRF serializers for JSON and fixed column lists for
CSV. Field names are a published contract: add fields at the end, never rename or reorder.

Conventions (the same in JSON and CSV):
- Amounts are strings with exactly two decimals ("6000.00", negative "-500.00") and every
  document or row carries `currency` ("CNY", the only settlement currency).
- Dates are ISO 8601 calendar dates in Asia/Shanghai ("2026-11-02"); timestamps are ISO 8601
  with the +08:00 offset ("2026-11-02T00:00:00+08:00"); billing periods are "YYYY-MM".
- Absent values are JSON null and empty CSV cells.
- CSV has one row per invoice line (invoices) or credit-note line (credit notes), the document's
  fields repeated on each of its rows.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from moneyed import Money
from rest_framework import serializers

from accounts.models import Customer, LedgerEntry
from billingsite.clock import BILLING_TZ
from billingsite.money import CURRENCY, format_amount
from invoices.exports.renderers import safe_text
from invoices.exports.reports import (
    CHUNK_SIZE,
    CUSTOMER_STATUSES,
    JournalRow,
    RevenueLine,
    ledger_document_number,
)
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine

AMOUNT_SCHEMA = {
    "type": "string",
    "pattern": r"^-?\d+\.\d{2}$",
    "example": "6000.00",
    "description": "Amount in `currency`, two decimals.",
}
PERIOD_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"}
CURRENCY_SCHEMA = {"type": "string", "enum": [CURRENCY], "example": CURRENCY}


# --- Field formatting, shared by JSON and CSV ---------------------------------------------


def amount_text(value: Money | Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def timestamp_text(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(BILLING_TZ).isoformat()


def date_text(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def period_text(value: dt.date | None) -> str | None:
    return None if value is None else f"{value:%Y-%m}"


@extend_schema_field(AMOUNT_SCHEMA)
class AmountField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return amount_text(value)


@extend_schema_field(PERIOD_SCHEMA)
class PeriodField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return period_text(value)


@extend_schema_field(CURRENCY_SCHEMA)
class CurrencyField(serializers.Field):
    """Always "CNY": every amount of the export is in this currency."""

    def __init__(self, **kwargs):
        kwargs.setdefault("source", "*")
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return CURRENCY


class ShanghaiDateTimeField(serializers.DateTimeField):
    """ISO 8601 with the Asia/Shanghai offset, whatever the server's time zone."""

    def to_representation(self, value):
        return timestamp_text(value)


# --- Invoices -----------------------------------------------------------------------------


class InvoiceLineExportSerializer(serializers.ModelSerializer):
    unit_price = AmountField()
    amount = AmountField()

    class Meta:
        model = InvoiceLine
        fields = [
            "id",
            "position",
            "app_key",
            "app_name",
            "code",
            "category",
            "plan_code",
            "plan_name",
            "description",
            "quantity",
            "unit_price",
            "amount",
            "first_day",
            "last_day",
            "days",
            "days_in_month",
            "peak_dau",
            "peak_day",
            "explanation",
        ]
        read_only_fields = fields


class InvoiceExportSerializer(serializers.ModelSerializer):
    period = PeriodField()
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    issued_at = ShanghaiDateTimeField(read_only=True)
    updated_at = ShanghaiDateTimeField(read_only=True)
    currency = CurrencyField()
    total = AmountField()
    credited_total = AmountField(help_text="Sum of the credit notes against this invoice.")
    status = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in Invoice.Status if s in Invoice.ISSUED_STATES],
        read_only=True,
    )
    lines = InvoiceLineExportSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "status",
            "period",
            "customer_id",
            "customer_external_id",
            "customer_name",
            "customer_address",
            "customer_tax_id",
            "customer_email",
            "issue_date",
            "issued_at",
            "currency",
            "total",
            "credited_total",
            "updated_at",
            "lines",
        ]
        read_only_fields = fields


# --- Credit notes -------------------------------------------------------------------------


class CreditNoteLineExportSerializer(serializers.ModelSerializer):
    invoice_line_position = serializers.IntegerField(source="invoice_line.position", read_only=True)
    app_key = serializers.CharField(source="invoice_line.app_key", read_only=True)
    code = serializers.CharField(source="invoice_line.code", read_only=True)
    category = serializers.ChoiceField(
        source="invoice_line.category", choices=InvoiceLine.Category.choices, read_only=True
    )
    amount = AmountField()

    class Meta:
        model = CreditNoteLine
        fields = [
            "id",
            "invoice_line_id",
            "invoice_line_position",
            "app_key",
            "code",
            "category",
            "description",
            "amount",
        ]
        read_only_fields = fields


class CreditNoteExportSerializer(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    period = PeriodField(
        source="invoice.period", help_text="Billing period of the credited invoice."
    )
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    customer_name = serializers.CharField(
        source="invoice.customer_name",
        read_only=True,
        help_text="As frozen on the credited invoice.",
    )
    issued_at = ShanghaiDateTimeField(read_only=True)
    currency = CurrencyField()
    total = AmountField()
    lines = CreditNoteLineExportSerializer(many=True, read_only=True)

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "number",
            "invoice_id",
            "invoice_number",
            "period",
            "customer_id",
            "customer_external_id",
            "customer_name",
            "reason",
            "issue_date",
            "issued_at",
            "currency",
            "total",
            "lines",
        ]
        read_only_fields = fields


# --- Ledger entries and customers ---------------------------------------------------------


class LedgerEntryExportSerializer(serializers.ModelSerializer):
    document_number = serializers.SerializerMethodField(
        help_text='Stable number of the entry, "LE-" and its zero-padded id; the journal uses it.'
    )
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    date = serializers.SerializerMethodField(help_text="Asia/Shanghai date of the entry.")
    created_at = ShanghaiDateTimeField(read_only=True)
    currency = CurrencyField()
    amount = AmountField(
        help_text="Signed: deposits and credits are positive, debits and refunds negative."
    )
    payment_method = serializers.CharField(
        source="export_payment_method",
        read_only=True,
        help_text="Deposits: bank_transfer, alipay or wechat_pay; empty for other kinds.",
    )
    top_up_number = serializers.CharField(
        source="export_top_up_number",
        read_only=True,
        help_text="The online top-up order that produced a deposit; empty otherwise.",
    )

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "document_number",
            "customer_id",
            "customer_external_id",
            "kind",
            "date",
            "created_at",
            "currency",
            "amount",
            "reference",
            "reason",
            "payment_method",
            "top_up_number",
        ]
        read_only_fields = fields

    def get_document_number(self, entry: LedgerEntry) -> str:
        return ledger_document_number(entry.pk)

    @extend_schema_field(OpenApiTypes.DATE)
    def get_date(self, entry: LedgerEntry) -> str:
        return date_text(entry.created_at.astimezone(BILLING_TZ).date())


class CustomerExportSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=CUSTOMER_STATUSES, read_only=True)
    suspended_at = ShanghaiDateTimeField(read_only=True, allow_null=True)
    currency = CurrencyField()
    balance = AmountField(help_text="Prepaid balance: the sum of the customer's ledger.")
    created_at = ShanghaiDateTimeField(read_only=True)
    updated_at = ShanghaiDateTimeField(
        read_only=True,
        help_text="Last change of the customer's details or status (or its creation).",
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "name",
            "billing_email",
            "address",
            "tax_id",
            "contact_name",
            "contact_phone",
            "status",
            "arrears_since",
            "suspended_at",
            "currency",
            "balance",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- Revenue summary and journal ----------------------------------------------------------


class RevenueLineSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Category value or plan code.")
    label = serializers.CharField()
    billed = AmountField()
    credited = AmountField()
    net = AmountField()


class RevenueSummarySerializer(serializers.Serializer):
    period = serializers.SerializerMethodField()
    basis = serializers.SerializerMethodField(
        help_text='Always "billing_period": invoices of the period and the credit notes '
        "against them, whenever those were issued."
    )
    currency = CurrencyField()
    invoice_count = serializers.IntegerField()
    credit_note_count = serializers.IntegerField()
    billed = AmountField()
    credited = AmountField()
    net = AmountField()
    by_category = RevenueLineSerializer(many=True)
    by_plan = RevenueLineSerializer(many=True)

    @extend_schema_field(PERIOD_SCHEMA)
    def get_period(self, summary) -> str:
        return str(summary.period)

    @extend_schema_field({"type": "string", "enum": ["billing_period"]})
    def get_basis(self, summary) -> str:
        return "billing_period"


class JournalRowSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="Posting date (Asia/Shanghai).")
    document_type = serializers.ChoiceField(
        choices=["invoice", "credit_note", "deposit", "refund", "adjustment"]
    )
    document_number = serializers.CharField()
    billing_period = serializers.CharField(
        help_text='"YYYY-MM" for invoices and credit notes, empty for ledger documents.'
    )
    customer_external_id = serializers.CharField()
    account_code = serializers.CharField()
    account = serializers.CharField()
    debit = AmountField()
    credit = AmountField()
    currency = CurrencyField()
    description = serializers.CharField()
    payment_method = serializers.CharField(
        help_text="Deposits: bank_transfer, alipay or wechat_pay (the clearing account posted "
        "to); empty on other rows."
    )
    payment_reference = serializers.CharField(
        help_text="Deposits: the bank reference or the provider's trade number; empty otherwise."
    )


class JournalSerializer(serializers.Serializer):
    """Schema of the journal document (streamed, not built with this serializer)."""

    period = serializers.CharField(help_text="Posting month, YYYY-MM.")
    basis = serializers.ChoiceField(choices=["posting_date"])
    currency = CurrencyField()
    entries = JournalRowSerializer(many=True)


class AccountingErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


def revenue_line_dict(line: RevenueLine) -> dict[str, str]:
    return {
        "key": line.key,
        "label": line.label,
        "billed": amount_text(line.billed),
        "credited": amount_text(line.credited),
        "net": amount_text(line.net),
    }


JOURNAL_COLUMNS = [
    "date",
    "document_type",
    "document_number",
    "billing_period",
    "customer_external_id",
    "account_code",
    "account",
    "debit",
    "credit",
    "currency",
    "description",
    "payment_method",
    "payment_reference",
]


def journal_row_dict(row: JournalRow) -> dict[str, str]:
    return {
        "date": date_text(row.date),
        "document_type": row.document_type,
        "document_number": row.document_number,
        "billing_period": row.billing_period,
        "customer_external_id": row.customer_external_id,
        "account_code": row.account.code,
        "account": row.account.name,
        "debit": amount_text(row.debit),
        "credit": amount_text(row.credit),
        "currency": row.currency,
        "description": row.description,
        "payment_method": row.payment_method,
        "payment_reference": row.payment_reference,
    }


def journal_csv_rows(rows: Iterator[JournalRow]) -> Iterator[list[str]]:
    for row in rows:
        values = journal_row_dict(row)
        values["description"] = safe_text(values["description"])
        values["payment_reference"] = safe_text(values["payment_reference"])
        yield [values[column] for column in JOURNAL_COLUMNS]


REVENUE_COLUMNS = ["dimension", "key", "label", "billed", "credited", "net", "currency"]


def revenue_csv_rows(summary) -> Iterator[list[str]]:
    """One row per category, one per plan, and a `total` row."""
    for dimension, lines in (("category", summary.by_category), ("plan", summary.by_plan)):
        for line in lines:
            values = revenue_line_dict(line)
            yield [
                dimension,
                values["key"],
                safe_text(values["label"]),
                values["billed"],
                values["credited"],
                values["net"],
                CURRENCY,
            ]
    yield [
        "total",
        "",
        "Total",
        amount_text(summary.billed),
        amount_text(summary.credited),
        amount_text(summary.net),
        CURRENCY,
    ]


# --- CSV columns of the document exports --------------------------------------------------


def _plain(value: Any) -> Any:
    return "" if value is None else value


def _text(value: str | None) -> str:
    return safe_text(value) if value else ""


def _cached(formatter: Callable[[Any], str | None]) -> Callable[[Any], str]:
    """`formatter` with None as "", memoised: a month's rows repeat the same few issue times,
    periods, dates and amounts, and formatting them is most of the CSV's cost."""

    @functools.lru_cache(maxsize=4096)
    def write(value: Any) -> str:
        return formatter(value) or ""

    def apply(value: Any) -> str:
        return "" if value is None else write(value)

    return apply


_amount, _timestamp, _date, _period = (
    _cached(amount_text),
    _cached(timestamp_text),
    _cached(date_text),
    _cached(period_text),
)


def _currency(_value: Any) -> str:
    return CURRENCY


@dataclass(frozen=True)
class Column:
    """A CSV column: its published name, the ORM path it reads and how it is written."""

    name: str
    # None for a constant column (the writer gets None).
    source: str | None
    write: Callable[[Any], Any] = _plain


def _columns(*spec: tuple) -> list[Column]:
    return [Column(*item) for item in spec]


INVOICE_LINE_COLUMNS = _columns(
    ("invoice_id", "invoice_id"),
    ("invoice_number", "invoice__number"),
    ("status", "invoice__status"),
    ("period", "invoice__period", _period),
    ("customer_id", "invoice__customer_id"),
    ("customer_external_id", "invoice__customer__external_id"),
    ("customer_name", "invoice__customer_name", _text),
    ("customer_address", "invoice__customer_address", _text),
    ("customer_tax_id", "invoice__customer_tax_id", _text),
    ("customer_email", "invoice__customer_email", _text),
    ("issue_date", "invoice__issue_date", _date),
    ("issued_at", "invoice__issued_at", _timestamp),
    ("currency", None, _currency),
    ("invoice_total", "invoice__total", _amount),
    ("invoice_credited_total", "invoice_credited_total", _amount),
    ("updated_at", "invoice__updated_at", _timestamp),
    ("line_id", "id"),
    ("line_position", "position"),
    ("app_key", "app_key", _text),
    ("app_name", "app_name", _text),
    ("code", "code"),
    ("category", "category"),
    ("plan_code", "plan_code"),
    ("plan_name", "plan_name", _text),
    ("description", "description", _text),
    ("quantity", "quantity"),
    ("unit_price", "unit_price", _amount),
    ("amount", "amount", _amount),
    ("first_day", "first_day", _date),
    ("last_day", "last_day", _date),
    ("days", "days"),
    ("days_in_month", "days_in_month"),
    ("peak_dau", "peak_dau"),
    ("peak_day", "peak_day", _date),
    ("explanation", "explanation", _text),
)

# The invoice's own columns come first, then the line's (from `line_id`).
INVOICE_DOCUMENT_COLUMNS = [column.name for column in INVOICE_LINE_COLUMNS].index("line_id")

CREDIT_NOTE_LINE_COLUMNS = _columns(
    ("credit_note_id", "credit_note_id"),
    ("credit_note_number", "credit_note__number"),
    ("invoice_id", "credit_note__invoice_id"),
    ("invoice_number", "credit_note__invoice__number"),
    ("period", "credit_note__invoice__period", _period),
    ("customer_id", "credit_note__customer_id"),
    ("customer_external_id", "credit_note__customer__external_id"),
    ("customer_name", "credit_note__invoice__customer_name", _text),
    ("reason", "credit_note__reason", _text),
    ("issue_date", "credit_note__issue_date", _date),
    ("issued_at", "credit_note__issued_at", _timestamp),
    ("currency", None, _currency),
    ("credit_note_total", "credit_note__total", _amount),
    ("line_id", "id"),
    ("invoice_line_id", "invoice_line_id"),
    ("invoice_line_position", "invoice_line__position"),
    ("app_key", "invoice_line__app_key", _text),
    ("code", "invoice_line__code"),
    ("category", "invoice_line__category"),
    ("description", "description", _text),
    ("amount", "amount", _amount),
)

# The credit note's own columns come first, then the line's (from `line_id`).
CREDIT_NOTE_DOCUMENT_COLUMNS = [column.name for column in CREDIT_NOTE_LINE_COLUMNS].index("line_id")

LEDGER_ENTRY_COLUMNS = _columns(
    ("id", "id"),
    ("document_number", "id", ledger_document_number),
    ("customer_id", "customer_id"),
    ("customer_external_id", "customer__external_id"),
    ("kind", "kind"),
    ("date", "created_at", lambda value: value.astimezone(BILLING_TZ).date().isoformat()),
    ("created_at", "created_at", _timestamp),
    ("currency", None, _currency),
    ("amount", "amount", _amount),
    ("reference", "reference", _text),
    ("reason", "reason", _text),
    ("payment_method", "export_payment_method"),
    ("top_up_number", "export_top_up_number", _text),
)


CUSTOMER_COLUMNS = _columns(
    ("id", "id"),
    ("external_id", "external_id"),
    ("name", "name", _text),
    ("billing_email", "billing_email", _text),
    ("address", "address", _text),
    ("tax_id", "tax_id", _text),
    ("contact_name", "contact_name", _text),
    ("contact_phone", "contact_phone", _text),
    ("status", "status"),
    ("arrears_since", "arrears_since", _date),
    ("suspended_at", "suspended_at", _timestamp),
    ("currency", None, _currency),
    ("balance", "balance", _amount),
    ("created_at", "created_at", _timestamp),
    ("updated_at", "updated_at", _timestamp),
)


def csv_header(columns: list[Column]) -> list[str]:
    return [column.name for column in columns]


def csv_rows(
    queryset: QuerySet,
    columns: list[Column],
    *,
    document_key: str | None = None,
    document_columns: int = 0,
) -> Iterator[list]:
    """Rows of `queryset` in column order, read in chunks (a server-side cursor on
    PostgreSQL), so the export's memory does not grow with the number of rows.

    For line exports, the first `document_columns` columns describe the document the line
    belongs to; they are formatted once per document (`document_key` changes) and reused.
    """
    sources = list(dict.fromkeys(column.source for column in columns if column.source))
    if document_key and document_key not in sources:
        sources.append(document_key)
    position = {source: index for index, source in enumerate(sources)}
    plan = [
        (position[column.source] if column.source else None, column.write) for column in columns
    ]
    head_plan, line_plan = plan[:document_columns], plan[document_columns:]
    key_index = position[document_key] if document_key else None
    last_key: Any = object()
    head: list = []
    for row in queryset.values_list(*sources).iterator(chunk_size=CHUNK_SIZE):
        if key_index is not None and row[key_index] != last_key:
            last_key = row[key_index]
            head = [write(None if index is None else row[index]) for index, write in head_plan]
        yield head + [write(None if index is None else row[index]) for index, write in line_plan]
