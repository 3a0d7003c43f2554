"""The accounting export's columns, defined once: each export is one DRF serializer, which
makes its JSON, its OpenAPI schema and (through `csv_columns`) its CSV columns, with the same
formatting per field. Names are a published contract: add fields at the end, never rename or
reorder.

Where a CSV column's name differs from the JSON field's (CSV rows of line exports repeat the
document's fields beside the line's, so `id`, `number` and `total` are qualified:
`invoice_total`, `line_id`...), the serializer names the CSV column in `csv_names`: one
definition with a name per format. Both names are the published ones; neither is deprecated.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

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
    JournalBasis,
    JournalRow,
    RevenueSummary,
    ledger_document_number,
)
from invoices.exports.rollforward import RollForward
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine

AMOUNT_SCHEMA = {
    "type": "string",
    "pattern": r"^-?\d+\.\d{2}$",
    "example": "6000.00",
    "description": "Amount in `currency`, two decimals.",
}
RATE_SCHEMA = {
    "type": "string",
    "nullable": True,
    "pattern": r"^0\.\d{4}$",
    "example": "0.0600",
    "description": "VAT rate as a fraction, four decimals (0.0600 = 6%); null on documents "
    "issued before VAT was recorded.",
}
VAT_AMOUNT_SCHEMA = {
    **AMOUNT_SCHEMA,
    "nullable": True,
    "description": "Amount in `currency`, two decimals; null on documents issued before VAT "
    "was recorded (their amounts are gross, VAT included).",
}
PERIOD_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"}
CURRENCY_SCHEMA = {"type": "string", "enum": [CURRENCY], "example": CURRENCY}


# --- Field formatting, shared by JSON and CSV ---------------------------------------------


def amount_text(value: Money | Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def rate_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def timestamp_text(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(BILLING_TZ).isoformat()


def date_text(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def period_text(value: dt.date | None) -> str | None:
    return None if value is None else f"{value:%Y-%m}"


def shanghai_date_text(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(BILLING_TZ).date().isoformat()


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


def _currency(_value: Any) -> str:
    return CURRENCY


class ExportField(serializers.Field):
    """A read-only field of the export written by `format` in JSON and by `csv_write` (the
    same formatting, None as an empty cell) in CSV."""

    format: ClassVar[Callable[[Any], Any]]
    csv_write: ClassVar[Callable[[Any], Any]]

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return type(self).format(value)


@extend_schema_field(AMOUNT_SCHEMA)
class AmountField(ExportField):
    format = staticmethod(amount_text)
    csv_write = staticmethod(_cached(amount_text))


@extend_schema_field(VAT_AMOUNT_SCHEMA)
class VatAmountField(ExportField):
    """A net or VAT amount: null before VAT was recorded (plans.rating.tax)."""

    format = staticmethod(amount_text)
    csv_write = staticmethod(_cached(amount_text))


@extend_schema_field(RATE_SCHEMA)
class RateField(ExportField):
    format = staticmethod(rate_text)
    csv_write = staticmethod(_cached(rate_text))


@extend_schema_field(PERIOD_SCHEMA)
class PeriodField(ExportField):
    format = staticmethod(period_text)
    csv_write = staticmethod(_cached(period_text))


@extend_schema_field(CURRENCY_SCHEMA)
class CurrencyField(ExportField):
    """Always "CNY": every amount of the export is in this currency."""

    format = staticmethod(_currency)
    csv_write = staticmethod(_currency)

    def __init__(self, **kwargs):
        kwargs.setdefault("source", "*")
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.DATE)
class ShanghaiDateField(ExportField):
    """The Asia/Shanghai calendar date of a timestamp."""

    format = staticmethod(shanghai_date_text)
    csv_write = staticmethod(_cached(shanghai_date_text))


@extend_schema_field(OpenApiTypes.STR)
class LedgerDocumentNumberField(ExportField):
    """A ledger entry's stable document number from its id ("LE-" and the padded id)."""

    format = staticmethod(ledger_document_number)
    csv_write = staticmethod(ledger_document_number)


def _grant_document_number(entry_id: int | None) -> str | None:
    return None if entry_id is None else ledger_document_number(entry_id)


@extend_schema_field(OpenApiTypes.STR)
class GrantDocumentNumberField(ExportField):
    """The document number of the promotional credit grant a use or lapse draws on; null
    (CSV: empty) on every other entry."""

    format = staticmethod(_grant_document_number)
    csv_write = staticmethod(lambda entry_id: _grant_document_number(entry_id) or "")


class ShanghaiDateTimeField(serializers.DateTimeField):
    """ISO 8601 with the Asia/Shanghai offset, whatever the server's time zone."""

    csv_write = staticmethod(_cached(timestamp_text))

    def to_representation(self, value):
        return timestamp_text(value)


# --- Invoices -----------------------------------------------------------------------------


class InvoiceLineExportSerializer(serializers.ModelSerializer):
    unit_price = AmountField()
    amount = AmountField(help_text="Gross (VAT included): net_amount + vat_amount.")
    net_amount = VatAmountField()
    vat_amount = VatAmountField()
    vat_rate = RateField()

    csv_names: ClassVar[dict[str, str]] = {"id": "line_id", "position": "line_position"}

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
            # Added by issue 17 (VAT), after the columns that were.
            "net_amount",
            "vat_amount",
            "vat_rate",
        ]
        read_only_fields = fields


class InvoiceExportSerializer(serializers.ModelSerializer):
    period = PeriodField()
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    issued_at = ShanghaiDateTimeField(read_only=True)
    updated_at = ShanghaiDateTimeField(read_only=True)
    currency = CurrencyField()
    total = AmountField(help_text="Gross (VAT included): net_total + vat_total.")
    credited_total = AmountField(help_text="Sum of the credit notes against this invoice.")
    net_total = VatAmountField()
    vat_total = VatAmountField()
    vat_rate = RateField()
    promo_credit_applied = VatAmountField(
        help_text="Promotional credit the invoice consumed at issue (a means of payment: the "
        "total and its VAT are unchanged); the prepaid balance paid the rest. Null on invoices "
        "issued before promotional credit existed (they used none)."
    )
    status = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in Invoice.Status if s in Invoice.ISSUED_STATES],
        read_only=True,
    )
    lines = InvoiceLineExportSerializer(many=True, read_only=True)

    csv_names: ClassVar[dict[str, str]] = {
        "id": "invoice_id",
        "number": "invoice_number",
        "total": "invoice_total",
        "credited_total": "invoice_credited_total",
        "net_total": "invoice_net_total",
        "vat_total": "invoice_vat_total",
        "vat_rate": "invoice_vat_rate",
        "promo_credit_applied": "invoice_promo_credit_applied",
    }
    # The CSV reads lines; the credited total is annotated on them under this name.
    csv_sources: ClassVar[dict[str, str]] = {"credited_total": "invoice_credited_total"}
    # Added by issue 17 (VAT): last in the CSV, after the line's columns.
    # Added for promotional credit: after those.
    csv_after_lines: ClassVar[tuple[str, ...]] = (
        "net_total",
        "vat_total",
        "vat_rate",
        "promo_credit_applied",
    )

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
            "net_total",
            "vat_total",
            "vat_rate",
            "promo_credit_applied",
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
    amount = AmountField(help_text="Gross given back: net_amount + vat_amount.")
    net_amount = VatAmountField()
    vat_amount = VatAmountField()

    csv_names: ClassVar[dict[str, str]] = {"id": "line_id"}

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
            "net_amount",
            "vat_amount",
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
    total = AmountField(help_text="Gross given back: net_total + vat_total.")
    net_total = VatAmountField()
    vat_total = VatAmountField()
    promo_credit_returned = AmountField(
        help_text="The part of `total` given back as promotional credit (a `promo_grant` "
        "ledger entry), first, up to what promotional credit paid of the invoice; 0.00 when "
        "none. The journal posts it 2200 / 6610 Promotion expense."
    )
    paid_balance_returned = AmountField(
        help_text="The rest of `total`, credited to the paid balance (the `credit_note_credit` "
        "ledger entry, the roll-forward's `credit_notes`): promo_credit_returned + this = total."
    )
    lines = CreditNoteLineExportSerializer(many=True, read_only=True)

    csv_names: ClassVar[dict[str, str]] = {
        "id": "credit_note_id",
        "number": "credit_note_number",
        "total": "credit_note_total",
        "net_total": "credit_note_net_total",
        "vat_total": "credit_note_vat_total",
        "promo_credit_returned": "credit_note_promo_credit_returned",
        "paid_balance_returned": "credit_note_paid_balance_returned",
    }
    # The CSV reads lines; the paid part is annotated on them under this name
    # (`export_credit_note_lines`), as it is on the notes for the JSON (`export_credit_notes`).
    csv_sources: ClassVar[dict[str, str]] = {
        "paid_balance_returned": "credit_note_paid_balance_returned"
    }
    # Added by issue 17 (VAT): last in the CSV, after the line's columns.
    # Added for promotional credit: after those.
    csv_after_lines: ClassVar[tuple[str, ...]] = (
        "net_total",
        "vat_total",
        "promo_credit_returned",
        "paid_balance_returned",
    )

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
            "net_total",
            "vat_total",
            "promo_credit_returned",
            "paid_balance_returned",
            "lines",
        ]
        read_only_fields = fields


# --- Ledger entries and customers ---------------------------------------------------------


class LedgerEntryExportSerializer(serializers.ModelSerializer):
    document_number = LedgerDocumentNumberField(
        source="id",
        help_text='Stable number of the entry, "LE-" and its zero-padded id; the journal uses it.',
    )
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    date = ShanghaiDateField(source="created_at", help_text="Asia/Shanghai date of the entry.")
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
    # Added for promotional credit, after the columns above.
    expires_on = serializers.DateField(
        read_only=True,
        allow_null=True,
        help_text="Promotional credit grants (kind promo_grant): the last Asia/Shanghai day it "
        "can pay an invoice; null on other kinds.",
    )
    promo_grant_document_number = GrantDocumentNumberField(
        source="promo_grant_id",
        allow_null=True,
        help_text="Promotional credit uses and lapses: the document number of the grant they "
        "draw on; null on other kinds.",
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
            "expires_on",
            "promo_grant_document_number",
        ]
        read_only_fields = fields


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
    """An invoices.reports.JournalRow."""

    date = serializers.DateField(help_text="Posting date (Asia/Shanghai).")
    document_type = serializers.ChoiceField(
        choices=["invoice", "credit_note", "deposit", "refund", "adjustment"]
    )
    document_number = serializers.CharField()
    billing_period = serializers.CharField(
        help_text='"YYYY-MM" for invoices and credit notes (the service month a credit note '
        "corrects), empty for ledger documents."
    )
    customer_external_id = serializers.CharField()
    account_code = serializers.CharField(source="account.code")
    account = serializers.CharField(source="account.name")
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
    """The journal document. Streamed (a month may be long): `journal_json_rows` writes its
    entries one by one with JournalRowSerializer."""

    period = serializers.CharField(help_text="Posting month, YYYY-MM.")
    basis = serializers.ChoiceField(
        choices=list(JournalBasis.CHOICES),
        help_text="`service_month`: invoices posted on the last day of their service month; "
        "`issue_date`: on their issue date.",
    )
    currency = CurrencyField()
    entries = JournalRowSerializer(many=True)


def journal_json_rows(rows: Iterable[JournalRow]) -> Iterator[dict]:
    serializer = JournalRowSerializer()
    for row in rows:
        yield serializer.to_representation(row)


# --- Prepayment roll-forward --------------------------------------------------------------


class RollForwardRowSerializer(serializers.Serializer):
    """An invoices.exports.rollforward.RollForwardRow: movements are signed as they move the
    balance, and opening_balance + the movements = closing_balance."""

    customer_external_id = serializers.CharField(
        allow_null=True, help_text="null on the total (CSV: empty)."
    )
    customer_name = serializers.CharField(allow_null=True, help_text="null on the total.")
    opening_balance = AmountField(help_text="Ledger sum before the month.")
    deposits_bank_transfer = AmountField(
        help_text="Bank-transfer deposits (and those recorded before methods existed)."
    )
    deposits_alipay = AmountField()
    deposits_wechat_pay = AmountField()
    deposits = AmountField(help_text="All deposits: the sum of the three above.")
    invoice_debits = AmountField(help_text="Invoices issued in the month (negative).")
    credit_notes = AmountField(help_text="Credit notes issued in the month (positive).")
    adjustments = AmountField(help_text="Manual adjustments (either sign).")
    refunds = AmountField(help_text="Refunds (negative).")
    closing_balance = AmountField(help_text="Ledger sum at the month's end.")
    currency = CurrencyField()
    # Added after the first version's columns, which keep their places.
    promo_granted = AmountField(help_text="Promotional credit granted in the month (positive).")
    promo_used = AmountField(
        help_text="Promotional credit invoices consumed in the month (negative): the part of "
        "their totals `invoice_debits` does not hold."
    )
    promo_lapsed = AmountField(help_text="Promotional credit lapsed after its expiry (negative).")
    closing_paid_balance = AmountField(
        help_text="The closing balance less promotional credit: what customers paid (the "
        "journal's 2200)."
    )
    closing_promo_credit = AmountField(
        help_text="Promotional credit held at the month's end (closing_paid_balance + this = "
        "closing_balance)."
    )


class RollForwardSerializer(serializers.Serializer):
    period = serializers.SerializerMethodField()
    currency = CurrencyField()
    customers = RollForwardRowSerializer(
        many=True,
        help_text="Customers with a balance at the month's start or an entry in it, by "
        "external id.",
    )
    total = RollForwardRowSerializer(help_text="The sum of the customer rows.")

    @extend_schema_field(PERIOD_SCHEMA)
    def get_period(self, rollforward) -> str:
        return str(rollforward.period)


# --- CSV columns, from the serializers ----------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A CSV column: its published name, the path it reads (ORM lookup, `__` separated) and
    how it is written."""

    name: str
    # None for a constant column (the writer gets None).
    source: str | None
    write: Callable[[Any], Any] = _plain
    # The JSON field it holds (the same name unless the serializer's csv_names renames it).
    key: str = ""
    # A column of the document on a line export (read through the line).
    of_document: bool = False


def _csv_write(field: serializers.Field) -> Callable[[Any], Any]:
    """The CSV writer of a field: its own, or by its kind. Free text is written so that a
    spreadsheet shows it rather than running it as a formula."""
    write = getattr(field, "csv_write", None)
    if write is not None:
        return write
    if isinstance(field, serializers.DateField):
        return _date
    if isinstance(field, (serializers.CharField, serializers.ChoiceField)):
        return _text
    if isinstance(field, (serializers.IntegerField, serializers.ReadOnlyField)):
        return _plain
    raise TypeError(f"no CSV writer for {type(field).__name__} {field.field_name!r}")


_date = _cached(date_text)


def _field_columns(
    serializer: serializers.Serializer, *, prefix: str = "", of_document: bool = False
) -> list[Column]:
    csv_names = getattr(serializer, "csv_names", {})
    csv_sources = getattr(serializer, "csv_sources", {})
    columns = []
    for name, field in serializer.fields.items():
        if isinstance(field, serializers.BaseSerializer):
            continue  # nested lines: their own columns
        if name in csv_sources:
            source = csv_sources[name]
        elif field.source == "*":
            source = None
        else:
            source = prefix + field.source.replace(".", "__")
        columns.append(
            Column(
                csv_names.get(name, name),
                source,
                _csv_write(field),
                key=name,
                of_document=of_document,
            )
        )
    return columns


def csv_columns(serializer_class, *, lines_of: str | None = None) -> list[Column]:
    """The CSV columns of an export serializer, in its field order. With `lines_of` (the
    document's relation name as seen from its line, e.g. "invoice"), one row per line: the
    document's columns (read through the line) then the line's."""
    serializer = serializer_class()
    if lines_of is None:
        return _field_columns(serializer)
    document = _field_columns(serializer, prefix=f"{lines_of}__", of_document=True)
    # Document columns added after the format was published go last, after the line's, so
    # every column that was keeps its position (accounting imports read by position).
    after = set(getattr(serializer_class, "csv_after_lines", ()))
    return (
        [column for column in document if column.key not in after]
        + _field_columns(serializer.fields["lines"].child)
        + [column for column in document if column.key in after]
    )


def csv_header(columns: list[Column]) -> list[str]:
    return [column.name for column in columns]


INVOICE_LINE_COLUMNS = csv_columns(InvoiceExportSerializer, lines_of="invoice")
# The invoice's own columns come first, then the line's (from `line_id`).
INVOICE_DOCUMENT_COLUMNS = csv_header(INVOICE_LINE_COLUMNS).index("line_id")

CREDIT_NOTE_LINE_COLUMNS = csv_columns(CreditNoteExportSerializer, lines_of="credit_note")
# The credit note's own columns come first, then the line's (from `line_id`).
CREDIT_NOTE_DOCUMENT_COLUMNS = csv_header(CREDIT_NOTE_LINE_COLUMNS).index("line_id")

LEDGER_ENTRY_COLUMNS = csv_columns(LedgerEntryExportSerializer)
CUSTOMER_COLUMNS = csv_columns(CustomerExportSerializer)

JOURNAL_ROW_COLUMNS = csv_columns(JournalRowSerializer)
JOURNAL_COLUMNS = csv_header(JOURNAL_ROW_COLUMNS)

# The summary as rows: one per category, one per plan, then a `total` row.
_REVENUE_LINE_COLUMNS = csv_columns(RevenueLineSerializer)
REVENUE_COLUMNS = ["dimension", *csv_header(_REVENUE_LINE_COLUMNS), "currency"]


# The roll-forward as rows: `row` is "customer" on each customer's row, "total" on the last.
ROLLFORWARD_ROW_COLUMNS = csv_columns(RollForwardRowSerializer)
ROLLFORWARD_COLUMNS = ["row", *csv_header(ROLLFORWARD_ROW_COLUMNS)]


def rollforward_csv_rows(rollforward: RollForward) -> Iterator[list]:
    for values in object_csv_rows(rollforward.customers, ROLLFORWARD_ROW_COLUMNS):
        yield ["customer", *values]
    for values in object_csv_rows([rollforward.total], ROLLFORWARD_ROW_COLUMNS):
        yield ["total", *values]


def rollforward_example_csv_rows(example: dict) -> list[list]:
    return [
        [row, *cells]
        for row, values in [("customer", v) for v in example["customers"]]
        + [("total", example["total"])]
        for cells in example_csv_rows(values, ROLLFORWARD_ROW_COLUMNS)
    ]


def example_csv_rows(
    example: dict, columns: list[Column], *, document_columns: int = 0
) -> list[list]:
    """The CSV rows of a documented JSON example (values as the JSON has them), so the
    schema's CSV example is the JSON example through the same columns."""

    def cells(values: dict, part: list[Column]) -> list:
        return [
            "" if (v := (example if c.of_document else values)[c.key]) is None else v for c in part
        ]

    if not document_columns:
        return [cells(example, columns)]
    head = cells(example, columns[:document_columns])
    return [head + cells(line, columns[document_columns:]) for line in example["lines"]]


def revenue_example_csv_rows(example: dict) -> list[list]:
    rows = [
        [dimension, *(line[c.key] for c in _REVENUE_LINE_COLUMNS), example["currency"]]
        for dimension, key in (("category", "by_category"), ("plan", "by_plan"))
        for line in example[key]
    ]
    totals = [example["billed"], example["credited"], example["net"]]
    return [*rows, ["total", "", "Total", *totals, example["currency"]]]


def _attribute(row: Any, source: str | None) -> Any:
    if source is None:
        return None
    for name in source.split("__"):
        row = getattr(row, name)
    return row


def object_csv_rows(objects: Iterable[Any], columns: list[Column]) -> Iterator[list]:
    """CSV rows of in-memory objects (report rows), read by attribute."""
    for item in objects:
        yield [column.write(_attribute(item, column.source)) for column in columns]


def journal_csv_rows(rows: Iterable[JournalRow]) -> Iterator[list]:
    return object_csv_rows(rows, JOURNAL_ROW_COLUMNS)


def revenue_csv_rows(summary: RevenueSummary) -> Iterator[list]:
    """One row per category, one per plan, and a `total` row."""
    for dimension, lines in (("category", summary.by_category), ("plan", summary.by_plan)):
        for values in object_csv_rows(lines, _REVENUE_LINE_COLUMNS):
            yield [dimension, *values, CURRENCY]
    yield [
        "total",
        "",
        "Total",
        amount_text(summary.billed),
        amount_text(summary.credited),
        amount_text(summary.net),
        CURRENCY,
    ]


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
