"""Read-only REST export for accounting, under /api/v1/accounting/.

Access: token auth only (`Authorization: Token <key>`), for users in the "Accounting" group
and nobody else (finance staff, auditors, the console and ingest tokens, superusers: 403;
no token: 401). Each token is throttled on its own (`accounting` rate in settings).

Formats: JSON (default) or CSV by `Accept: text/csv` or `?format=csv`. JSON lists are
cursor-paginated in id order (creation order), so a pull never loses or repeats a row while new
documents arrive: they land after the last page. CSV returns every matching row in one
streamed response (no pagination), one row per line. Errors are always JSON.

Views stay thin: querysets and reports come from `invoices/exports/reports.py`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts import roles
from billingsite.api import TokenWithRolesAuthentication, role_permission
from billingsite.api_errors import NOT_AUTHENTICATED, PERMISSION_DENIED, error_response
from billingsite.clock import Period
from billingsite.money import CURRENCY
from invoices.exports.filters import (
    PERIOD_PATTERN,
    CreditNoteExportFilter,
    CustomerExportFilter,
    InvoiceExportFilter,
    LedgerEntryExportFilter,
)
from invoices.exports.renderers import (
    CSVRenderer,
    ExportContentNegotiation,
    csv_chunks,
    csv_response,
    json_stream_response,
)
from invoices.exports.reports import (
    ZERO,
    JournalBasis,
    JournalRow,
    RevenueSummary,
    export_credit_note_lines,
    export_credit_notes,
    export_customers,
    export_invoices,
    export_ledger_entries,
    journal_entries,
    revenue_summary,
)
from invoices.exports.rollforward import RollForward, prepayment_rollforward
from invoices.exports.serializers import (
    CREDIT_NOTE_DOCUMENT_COLUMNS,
    CREDIT_NOTE_LINE_COLUMNS,
    CUSTOMER_COLUMNS,
    INVOICE_DOCUMENT_COLUMNS,
    INVOICE_LINE_COLUMNS,
    JOURNAL_COLUMNS,
    JOURNAL_ROW_COLUMNS,
    LEDGER_ENTRY_COLUMNS,
    REVENUE_COLUMNS,
    ROLLFORWARD_COLUMNS,
    Column,
    CreditNoteExportSerializer,
    CustomerExportSerializer,
    InvoiceExportSerializer,
    JournalSerializer,
    LedgerEntryExportSerializer,
    RevenueSummarySerializer,
    RollForwardSerializer,
    csv_header,
    csv_rows,
    example_csv_rows,
    journal_csv_rows,
    journal_json_rows,
    revenue_csv_rows,
    revenue_example_csv_rows,
    rollforward_csv_rows,
    rollforward_example_csv_rows,
)
from invoices.models import CreditNote, InvoiceLine

TAG = "accounting"


# --- Access, throttling, pagination -------------------------------------------------------


class AccountingTokenThrottle(SimpleRateThrottle):
    """Per-token rate limit (scope "accounting"). Keyed by a hash of the token itself, so two
    tokens never share a budget and the key never appears in the cache."""

    scope = "accounting"

    def get_rate(self):
        # Read at request time (not import time) so the rate follows the settings.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        token_key = getattr(request.auth, "key", None)
        if not token_key:
            return None
        ident = hashlib.sha256(token_key.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ExportCursorPagination(CursorPagination):
    """Cursor pages in ascending id (creation) order: stable while rows are being added, since
    new rows get higher ids and land after the last page."""

    ordering = ("id",)
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    invalid_cursor_message = "Invalid cursor: use the `next` or `previous` link as given."

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValidationError({self.page_size_query_param: ["Must be a positive integer."]})
        return min(value, self.max_page_size)

    def decode_cursor(self, request):

        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from exc
        # Positions are ids (0 < id < 2**63); anything else was not made by us and would break
        # the query.
        position = cursor.position if cursor is not None else None
        if position is not None and not (
            re.fullmatch(r"[0-9]{1,19}", position) and int(position) < 2**63
        ):
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Rows per page, default {self.page_size}; above {self.max_page_size} "
                    f"gives {self.max_page_size}."
                )
        return parameters

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["required"] = ["next", "previous", "results"]
        return response


class AccountingView(GenericAPIView):
    authentication_classes = [TokenWithRolesAuthentication]
    permission_classes = [role_permission(roles.ACCOUNTING)]
    throttle_classes = [AccountingTokenThrottle]
    renderer_classes = [JSONRenderer, CSVRenderer]
    content_negotiation_class = ExportContentNegotiation

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors are JSON even when CSV was asked for: a client reads them, not a spreadsheet.
        if isinstance(response, Response) and getattr(response, "exception", False):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def wants_csv(self) -> bool:
        return self.request.accepted_renderer.format == CSVRenderer.format


class AccountingListView(AccountingView, ListAPIView):
    """JSON: a cursor page of documents. CSV: every matching row, streamed."""

    pagination_class = ExportCursorPagination
    csv_columns: list[Column] = []
    csv_name = ""
    # Line exports: the column holding the document id, and how many leading columns
    # describe the document (formatted once per document).
    csv_document_key: str | None = None
    csv_document_columns = 0

    def csv_queryset(self, documents):
        """The rows of the CSV for the filtered documents, in document order."""
        return documents.order_by("id")

    def list(self, request, *args, **kwargs):
        documents = self.filter_queryset(self.get_queryset())
        if self.wants_csv():
            period = request.query_params.get("period")
            suffix = f"-{period}" if period else ""
            return csv_response(
                header=csv_header(self.csv_columns),
                rows=csv_rows(
                    self.csv_queryset(documents),
                    self.csv_columns,
                    document_key=self.csv_document_key,
                    document_columns=self.csv_document_columns,
                ),
                filename=f"{self.csv_name}{suffix}.csv",
            )
        page = self.paginate_queryset(self.json_queryset(documents))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def json_queryset(self, documents):
        return documents


# --- Schema helpers -----------------------------------------------------------------------

ERRORS = {
    (400, "application/json"): error_response(
        "Invalid parameter (`invalid`; `errors`: each parameter with its messages).",
        examples=[
            OpenApiExample(
                "Bad period",
                value={
                    "code": "invalid",
                    "message": "the request has invalid fields",
                    "field": "period",
                    "errors": {"period": ["period must look like 2026-10, got '2026-13'"]},
                },
            )
        ],
    ),
    (401, "application/json"): NOT_AUTHENTICATED,
    (403, "application/json"): PERMISSION_DENIED,
    (406, "application/json"): error_response("Unknown `format` or `Accept` (`not_acceptable`)."),
    (429, "application/json"): error_response("Too many requests for this token (`throttled`)."),
}


def csv_doc(columns: list[str], example: str, renamed: dict[str, str] | None = None):
    """The CSV response of an export; `renamed`: CSV column -> the JSON field it holds."""
    also = ""
    if renamed:
        also = " The same data as the JSON, with these columns named for CSV: " + ", ".join(
            f"`{csv}` = JSON `{json}`" for csv, json in renamed.items()
        )
        also += "."
    return OpenApiResponse(
        OpenApiTypes.STR,
        description="CSV (UTF-8, header row, CRLF line ends), streamed. Columns, in this "
        "order: " + ", ".join(f"`{c}`" for c in columns) + "." + also,
        examples=[OpenApiExample("CSV", value=example, media_type="text/csv")],
    )


def _csv_text(header: list[str], rows) -> str:
    return b"".join(csv_chunks(header=header, rows=rows)).decode()


def csv_example(example: dict, columns: list[Column], document_columns: int = 0) -> str:
    """The schema's CSV example: the JSON example through the export's CSV columns."""
    rows = example_csv_rows(example, columns, document_columns=document_columns)
    return _csv_text(csv_header(columns), rows)


def csv_renamed(serializer_class) -> dict[str, str]:
    """CSV column -> JSON field, for the columns whose names differ (lines: `lines[].`)."""
    renamed = {csv: json for json, csv in getattr(serializer_class, "csv_names", {}).items()}
    line_serializer = serializer_class._declared_fields.get("lines")
    if line_serializer is not None:
        line_names = getattr(line_serializer.child, "csv_names", {})
        renamed.update({csv: f"lines[].{json}" for json, csv in line_names.items()})
    return renamed


def list_schema(*, summary: str, description: str, serializer, example: dict, columns, csv_example):
    return extend_schema(
        tags=[TAG],
        summary=summary,
        description=description,
        responses={
            (200, "application/json"): OpenApiResponse(
                serializer(many=True),
                examples=[
                    OpenApiExample(
                        "Page",
                        value={"next": None, "previous": None, "results": [example]},
                        media_type="application/json",
                    )
                ],
            ),
            (200, "text/csv"): csv_doc(
                csv_header(columns), csv_example, renamed=csv_renamed(serializer)
            ),
            **ERRORS,
        },
    )


INVOICE_EXAMPLE = {
    "id": 41,
    "number": "INV-2026-000041",
    "status": "partially_credited",
    "period": "2026-10",
    "customer_id": 7,
    "customer_external_id": "cust-00007",
    "customer_name": "Lantern Games Ltd",
    "customer_address": "1 Century Avenue, Shanghai",
    "customer_tax_id": "91310000000000007",
    "customer_email": "billing@lantern.example.com",
    "issue_date": "2026-11-02",
    "issued_at": "2026-11-02T00:00:00+08:00",
    "currency": "CNY",
    "total": "9600.00",
    "credited_total": "1200.00",
    "updated_at": "2026-11-20T10:15:00+08:00",
    "net_total": "9056.61",
    "vat_total": "543.39",
    "vat_rate": "0.0600",
    "promo_credit_applied": "500.00",
    "lines": [
        {
            "id": 301,
            "position": 1,
            "app_key": "lanternchat",
            "app_name": "Lantern Chat",
            "code": "dau_fee",
            "category": "dau_fee",
            "plan_code": "premium",
            "plan_name": "Premium",
            "description": "Premium DAU fee",
            "quantity": 1,
            "unit_price": "6000.00",
            "amount": "6000.00",
            "first_day": "2026-10-01",
            "last_day": "2026-10-31",
            "days": 31,
            "days_in_month": 31,
            "peak_dau": 5000,
            "peak_day": "2026-10-17",
            "explanation": "peak DAU 5,000 on 2026-10-17 <= 10,000: base fee 6,000.00",
            "net_amount": "5660.38",
            "vat_amount": "339.62",
            "vat_rate": "0.0600",
        },
        {
            "id": 302,
            "position": 2,
            "app_key": "lanternchat",
            "app_name": "Lantern Chat",
            "code": "sensitive_words",
            "category": "sensitive_words",
            "plan_code": "premium",
            "plan_name": "Premium",
            "description": "Sensitive words: 2 extra packs",
            "quantity": 2,
            "unit_price": "1200.00",
            "amount": "2400.00",
            "first_day": "2026-10-01",
            "last_day": "2026-10-31",
            "days": 31,
            "days_in_month": 31,
            "peak_dau": None,
            "peak_day": None,
            "explanation": "2 x 1,200.00",
            "net_amount": "2264.15",
            "vat_amount": "135.85",
            "vat_rate": "0.0600",
        },
    ],
}
INVOICE_CSV_EXAMPLE = csv_example(INVOICE_EXAMPLE, INVOICE_LINE_COLUMNS, INVOICE_DOCUMENT_COLUMNS)

CREDIT_NOTE_EXAMPLE = {
    "id": 3,
    "number": "CN-2026-000003",
    "invoice_id": 41,
    "invoice_number": "INV-2026-000041",
    "period": "2026-10",
    "customer_id": 7,
    "customer_external_id": "cust-00007",
    "customer_name": "Lantern Games Ltd",
    "reason": "Sensitive-word packs cancelled on 2026-10-01",
    "issue_date": "2026-11-20",
    "issued_at": "2026-11-20T10:15:00+08:00",
    "currency": "CNY",
    "total": "1200.00",
    "net_total": "1132.07",
    "vat_total": "67.93",
    "promo_credit_returned": "500.00",
    "paid_balance_returned": "700.00",
    "lines": [
        {
            "id": 5,
            "invoice_line_id": 302,
            "invoice_line_position": 2,
            "app_key": "lanternchat",
            "code": "sensitive_words",
            "category": "sensitive_words",
            "description": "Sensitive words: 2 extra packs",
            "amount": "1200.00",
            "net_amount": "1132.07",
            "vat_amount": "67.93",
        }
    ],
}
CREDIT_NOTE_CSV_EXAMPLE = csv_example(
    CREDIT_NOTE_EXAMPLE, CREDIT_NOTE_LINE_COLUMNS, CREDIT_NOTE_DOCUMENT_COLUMNS
)

LEDGER_EXAMPLE = {
    "id": 88,
    "document_number": "LE-00000088",
    "customer_id": 7,
    "customer_external_id": "cust-00007",
    "kind": "deposit",
    "date": "2026-10-15",
    "created_at": "2026-10-15T09:30:00+08:00",
    "currency": "CNY",
    "amount": "30000.00",
    "reference": "ICBC 2026101500042",
    "reason": "",
    "payment_method": "bank_transfer",
    "top_up_number": "",
    "expires_on": None,
    "promo_grant_document_number": None,
}
LEDGER_CSV_EXAMPLE = csv_example(LEDGER_EXAMPLE, LEDGER_ENTRY_COLUMNS)

CUSTOMER_EXAMPLE = {
    "id": 7,
    "external_id": "cust-00007",
    "name": "Lantern Games Ltd",
    "billing_email": "billing@lantern.example.com",
    "address": "1 Century Avenue, Shanghai",
    "tax_id": "91310000000000007",
    "contact_name": "Li Wei",
    "contact_phone": "+86 21 5555 0100",
    "status": "active",
    "arrears_since": None,
    "suspended_at": None,
    "currency": "CNY",
    "balance": "20400.00",
    "created_at": "2026-01-05T11:00:00+08:00",
    "updated_at": "2026-03-01T16:20:00+08:00",
}
CUSTOMER_CSV_EXAMPLE = csv_example(CUSTOMER_EXAMPLE, CUSTOMER_COLUMNS)


# --- Document lists -----------------------------------------------------------------------


@list_schema(
    summary="Issued invoices with their lines",
    description="Issued, partly credited and credited invoices (never drafts or held ones). "
    "JSON: a cursor page of invoices, each with its `lines`. CSV: one row per invoice line, "
    "the invoice's fields repeated; every matching invoice in one streamed response.",
    serializer=InvoiceExportSerializer,
    example=INVOICE_EXAMPLE,
    columns=INVOICE_LINE_COLUMNS,
    csv_example=INVOICE_CSV_EXAMPLE,
)
class InvoiceExportView(AccountingListView):
    serializer_class = InvoiceExportSerializer
    filterset_class = InvoiceExportFilter
    csv_columns = INVOICE_LINE_COLUMNS
    csv_name = "invoices"
    csv_document_key = "invoice_id"
    csv_document_columns = INVOICE_DOCUMENT_COLUMNS

    def get_queryset(self):
        return export_invoices()

    def json_queryset(self, documents):
        return documents.prefetch_related("lines")

    def csv_queryset(self, documents):
        credited = (
            CreditNote.objects.filter(invoice=OuterRef("invoice_id"))
            .values("invoice")
            .annotate(total=Sum("total"))
            .values("total")
        )
        return (
            InvoiceLine.objects.filter(invoice__in=documents.values("pk"))
            .annotate(invoice_credited_total=Coalesce(Subquery(credited), ZERO))
            .order_by("invoice_id", "position")
        )


@list_schema(
    summary="Credit notes with their lines",
    description="Credit notes against issued invoices; `period` is the billing period of the "
    "credited invoice. CSV: one row per credit-note line.",
    serializer=CreditNoteExportSerializer,
    example=CREDIT_NOTE_EXAMPLE,
    columns=CREDIT_NOTE_LINE_COLUMNS,
    csv_example=CREDIT_NOTE_CSV_EXAMPLE,
)
class CreditNoteExportView(AccountingListView):
    serializer_class = CreditNoteExportSerializer
    filterset_class = CreditNoteExportFilter
    csv_columns = CREDIT_NOTE_LINE_COLUMNS
    csv_name = "credit-notes"
    csv_document_key = "credit_note_id"
    csv_document_columns = CREDIT_NOTE_DOCUMENT_COLUMNS

    def get_queryset(self):
        return export_credit_notes()

    def json_queryset(self, documents):
        return documents.prefetch_related("lines__invoice_line")

    def csv_queryset(self, documents):
        return export_credit_note_lines(documents)


@list_schema(
    summary="Ledger entries",
    description="Every entry of the customers' prepaid ledgers: deposits, invoice debits, "
    "credit-note credits, refunds and manual adjustments. Amounts are signed (positive raises "
    "the balance).",
    serializer=LedgerEntryExportSerializer,
    example=LEDGER_EXAMPLE,
    columns=LEDGER_ENTRY_COLUMNS,
    csv_example=LEDGER_CSV_EXAMPLE,
)
class LedgerEntryExportView(AccountingListView):
    serializer_class = LedgerEntryExportSerializer
    filterset_class = LedgerEntryExportFilter
    csv_columns = LEDGER_ENTRY_COLUMNS
    csv_name = "ledger-entries"

    def get_queryset(self):
        return export_ledger_entries()


@list_schema(
    summary="Customers",
    description="Customer accounts with their billing details, status and prepaid balance.",
    serializer=CustomerExportSerializer,
    example=CUSTOMER_EXAMPLE,
    columns=CUSTOMER_COLUMNS,
    csv_example=CUSTOMER_CSV_EXAMPLE,
)
class CustomerExportView(AccountingListView):
    serializer_class = CustomerExportSerializer
    filterset_class = CustomerExportFilter
    csv_columns = CUSTOMER_COLUMNS
    csv_name = "customers"

    def get_queryset(self):
        return export_customers()


# --- Reports ------------------------------------------------------------------------------


class PeriodQuerySerializer(serializers.Serializer):
    period = serializers.RegexField(
        PERIOD_PATTERN,
        help_text="YYYY-MM",
        error_messages={"invalid": "Use YYYY-MM, e.g. 2026-10."},
    )

    def validate_period(self, value: str) -> Period:
        try:
            return Period.parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc


PERIOD_PARAMETER = OpenApiParameter(
    "period",
    {"type": "string", "pattern": PERIOD_PATTERN},
    OpenApiParameter.QUERY,
    required=True,
    examples=[OpenApiExample("October 2026", value="2026-10")],
)


class JournalQuerySerializer(PeriodQuerySerializer):
    basis = serializers.ChoiceField(
        choices=JournalBasis.CHOICES,
        default=JournalBasis.DEFAULT,
        help_text="`service_month` (default): invoices in their service month; `issue_date`: "
        "invoices on their issue date.",
    )


BASIS_PARAMETER = OpenApiParameter(
    "basis",
    {"type": "string", "enum": list(JournalBasis.CHOICES), "default": JournalBasis.DEFAULT},
    OpenApiParameter.QUERY,
    required=False,
    description="When invoices are posted: `service_month` (default, accrual: revenue in the "
    "month of service, on its last day) or `issue_date` (on the invoice's issue date, the "
    "journal's only basis before issue 17). Credit notes and ledger documents are posted on "
    "their own day on both.",
)


class ReportView(AccountingView):
    """A report of one month (`?period=`, and what `query_serializer_class` adds): JSON, or CSV
    named `<csv_name>-<period><csv_suffix>.csv`."""

    filter_backends: list = []
    query_serializer_class: type[serializers.Serializer] = PeriodQuerySerializer
    csv_columns: list[str] = []
    csv_name = ""

    def query(self) -> dict:
        query = self.query_serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    def period(self) -> Period:
        return self.query()["period"]

    def report(self, query: dict) -> Any:
        raise NotImplementedError

    def csv_rows(self, report: Any) -> Iterable[list]:
        raise NotImplementedError

    def csv_suffix(self, query: dict) -> str:
        return ""

    def json_response(self, report: Any, query: dict) -> HttpResponseBase:
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        query = self.query()
        report = self.report(query)
        if self.wants_csv():
            return csv_response(
                header=self.csv_columns,
                rows=self.csv_rows(report),
                filename=f"{self.csv_name}-{query['period']}{self.csv_suffix(query)}.csv",
            )
        return self.json_response(report, query)


def report_schema(
    *,
    summary: str,
    description: str,
    serializer,
    example_name: str,
    example: dict,
    columns: list[str],
    csv_example: str,
    parameters: tuple[OpenApiParameter, ...] = (PERIOD_PARAMETER,),
):
    """The schema of a report view: JSON (`serializer`, with `example`) or CSV (`columns`)."""
    return extend_schema(
        tags=[TAG],
        summary=summary,
        description=description,
        parameters=list(parameters),
        responses={
            (200, "application/json"): OpenApiResponse(
                serializer,
                examples=[
                    OpenApiExample(example_name, value=example, media_type="application/json")
                ],
            ),
            (200, "text/csv"): csv_doc(columns, csv_example),
            **ERRORS,
        },
    )


REVENUE_EXAMPLE = {
    "period": "2026-10",
    "basis": "billing_period",
    "currency": "CNY",
    "invoice_count": 2,
    "credit_note_count": 1,
    "billed": "25600.00",
    "credited": "1200.00",
    "net": "24400.00",
    "by_category": [
        {
            "key": "dau_fee",
            "label": "DAU fee",
            "billed": "14000.00",
            "credited": "0.00",
            "net": "14000.00",
        },
        {
            "key": "value_added",
            "label": "Value-added services",
            "billed": "4000.00",
            "credited": "0.00",
            "net": "4000.00",
        },
        {"key": "storage", "label": "Storage", "billed": "0.00", "credited": "0.00", "net": "0.00"},
        {
            "key": "sensitive_words",
            "label": "Sensitive words",
            "billed": "2400.00",
            "credited": "1200.00",
            "net": "1200.00",
        },
        {
            "key": "api_rate_limit",
            "label": "API rate limits",
            "billed": "1200.00",
            "credited": "0.00",
            "net": "1200.00",
        },
        {
            "key": "desktop",
            "label": "Desktop client",
            "billed": "0.00",
            "credited": "0.00",
            "net": "0.00",
        },
        {
            "key": "dedicated_service",
            "label": "Dedicated service",
            "billed": "4000.00",
            "credited": "0.00",
            "net": "4000.00",
        },
    ],
    "by_plan": [
        {
            "key": "premium",
            "label": "Premium",
            "billed": "21600.00",
            "credited": "1200.00",
            "net": "20400.00",
        },
        {
            "key": "ultimate",
            "label": "Ultimate",
            "billed": "4000.00",
            "credited": "0.00",
            "net": "4000.00",
        },
    ],
}
REVENUE_CSV_EXAMPLE = _csv_text(REVENUE_COLUMNS, revenue_example_csv_rows(REVENUE_EXAMPLE))


@report_schema(
    summary="Revenue summary of a billing period",
    description="Billed, credited and net amounts of the invoices of `period` (the month of "
    "service) and of the credit notes against them, whenever those were issued: in total, "
    "by category (every category, in a fixed order) and by plan (plans with a line, by "
    "code). `billed` equals the sum of the totals of `/accounting/invoices/?period=` and "
    "`credited` that of `/accounting/credit-notes/?period=`; each breakdown adds up to them. "
    "CSV: one row per category, one per plan, then a `total` row.",
    serializer=RevenueSummarySerializer,
    example_name="Summary",
    example=REVENUE_EXAMPLE,
    columns=REVENUE_COLUMNS,
    csv_example=REVENUE_CSV_EXAMPLE,
)
class RevenueSummaryView(ReportView):
    csv_columns = REVENUE_COLUMNS
    csv_name = "revenue-summary"

    def report(self, query: dict) -> RevenueSummary:
        return revenue_summary(period=query["period"])

    def csv_rows(self, report: RevenueSummary) -> Iterable[list]:
        return revenue_csv_rows(report)

    def json_response(self, report: RevenueSummary, query: dict) -> HttpResponseBase:
        return Response(RevenueSummarySerializer(report).data)


JOURNAL_EXAMPLE = {
    "period": "2026-10",
    "basis": "service_month",
    "currency": "CNY",
    "entries": [
        {
            "date": "2026-10-31",
            "document_type": "invoice",
            "document_number": "INV-2026-000041",
            "billing_period": "2026-10",
            "customer_external_id": "cust-00007",
            "account_code": "2200",
            "account": "Customer prepaid balance",
            "debit": "9600.00",
            "credit": "0.00",
            "currency": "CNY",
            "description": "Invoice INV-2026-000041 for 2026-10",
            "payment_method": "",
            "payment_reference": "",
        },
        {
            "date": "2026-10-31",
            "document_type": "invoice",
            "document_number": "INV-2026-000041",
            "billing_period": "2026-10",
            "customer_external_id": "cust-00007",
            "account_code": "4010",
            "account": "Revenue: DAU fees",
            "debit": "0.00",
            "credit": "6000.00",
            "currency": "CNY",
            "description": "Invoice INV-2026-000041 for 2026-10",
            "payment_method": "",
            "payment_reference": "",
        },
        {
            "date": "2026-10-31",
            "document_type": "invoice",
            "document_number": "INV-2026-000041",
            "billing_period": "2026-10",
            "customer_external_id": "cust-00007",
            "account_code": "4040",
            "account": "Revenue: Sensitive words",
            "debit": "0.00",
            "credit": "3600.00",
            "currency": "CNY",
            "description": "Invoice INV-2026-000041 for 2026-10",
            "payment_method": "",
            "payment_reference": "",
        },
    ],
}
JOURNAL_CSV_EXAMPLE = _csv_text(
    JOURNAL_COLUMNS,
    (
        row
        for entry in JOURNAL_EXAMPLE["entries"]
        for row in example_csv_rows(entry, JOURNAL_ROW_COLUMNS)
    ),
)


@report_schema(
    summary="Double-entry journal of a posting month",
    description="Every accounting event dated in `period` (Asia/Shanghai) on `basis`: "
    "invoices in their service month (posted on its last day; `basis=issue_date`: on their "
    "issue date), credit notes on their issue date with `billing_period` the service month "
    "they correct, deposits, refunds and adjustments on their day. "
    "Each document's rows are consecutive and balance (debits = credits). Accounts: "
    "1100 Bank, 2200 Customer prepaid balance, 4010-4070 Revenue by category (DAU fees, "
    "Value-added services, Storage, Sensitive words, API rate limits, Desktop client, "
    "Dedicated service), 4090 Revenue: Contracted discounts (contra-revenue, debited), 6610 "
    "Promotion expense, 6900 "
    "Balance adjustments. Invoice: debit 2200, credit revenue per category (debit 4090 for "
    "its discounts); the promotional credit it consumed: debit 6610, credit 2200 (grants and "
    "lapses post nothing). Credit note: the reverse. Deposit: debit 1100, credit 2200; refund the "
    "reverse. Adjustment: debit 6900, credit 2200 when it raises the balance, the reverse "
    "when it lowers it. Ledger invoice debits and credit-note credits are the same events "
    "as the documents and are not posted twice; zero amounts post nothing. The whole month "
    "is streamed in one response (JSON or CSV), no pagination.",
    serializer=JournalSerializer,
    example_name="Journal",
    example=JOURNAL_EXAMPLE,
    columns=JOURNAL_COLUMNS,
    csv_example=JOURNAL_CSV_EXAMPLE,
    parameters=(PERIOD_PARAMETER, BASIS_PARAMETER),
)
class JournalView(ReportView):
    query_serializer_class = JournalQuerySerializer
    csv_columns = JOURNAL_COLUMNS
    csv_name = "journal"

    def report(self, query: dict) -> Iterable[JournalRow]:
        return journal_entries(period=query["period"], basis=query["basis"])

    def csv_rows(self, report: Iterable[JournalRow]) -> Iterable[list]:
        return journal_csv_rows(report)

    def csv_suffix(self, query: dict) -> str:
        return "" if query["basis"] == JournalBasis.DEFAULT else f"-{query['basis']}"

    def json_response(self, report: Iterable[JournalRow], query: dict) -> HttpResponseBase:
        return json_stream_response(
            head={"period": str(query["period"]), "basis": query["basis"], "currency": CURRENCY},
            list_key="entries",
            items=journal_json_rows(report),
        )


def _rollforward_example_row(external_id, name, **amounts) -> dict:
    row = {
        "customer_external_id": external_id,
        "customer_name": name,
        "opening_balance": "0.00",
        "deposits_bank_transfer": "0.00",
        "deposits_alipay": "0.00",
        "deposits_wechat_pay": "0.00",
        "deposits": "0.00",
        "invoice_debits": "0.00",
        "credit_notes": "0.00",
        "adjustments": "0.00",
        "refunds": "0.00",
        "closing_balance": "0.00",
        "currency": "CNY",
        "promo_granted": "0.00",
        "promo_used": "0.00",
        "promo_lapsed": "0.00",
        "closing_paid_balance": "0.00",
        "closing_promo_credit": "0.00",
    }
    row.update(amounts)
    if "closing_paid_balance" not in amounts:
        row["closing_paid_balance"] = str(
            Decimal(row["closing_balance"]) - Decimal(row["closing_promo_credit"])
        )
    return row


ROLLFORWARD_EXAMPLE = {
    "period": "2026-11",
    "currency": "CNY",
    "customers": [
        _rollforward_example_row(
            "cust-00007",
            "Lantern Games Ltd",
            opening_balance="30000.00",
            deposits_alipay="5000.00",
            deposits="5000.00",
            invoice_debits="-9600.00",
            credit_notes="1200.00",
            closing_balance="27200.00",
            promo_granted="1000.00",
            promo_used="-400.00",
            closing_promo_credit="600.00",
        ),
        _rollforward_example_row(
            "cust-00012",
            "Harbour Tech",
            opening_balance="60000.00",
            invoice_debits="-68000.00",
            adjustments="-25.50",
            closing_balance="-8025.50",
        ),
    ],
    "total": _rollforward_example_row(
        None,
        None,
        opening_balance="90000.00",
        deposits_alipay="5000.00",
        deposits="5000.00",
        invoice_debits="-77600.00",
        credit_notes="1200.00",
        adjustments="-25.50",
        closing_balance="19174.50",
        promo_granted="1000.00",
        promo_used="-400.00",
        closing_promo_credit="600.00",
    ),
}
ROLLFORWARD_CSV_EXAMPLE = _csv_text(
    ROLLFORWARD_COLUMNS, rollforward_example_csv_rows(ROLLFORWARD_EXAMPLE)
)


@report_schema(
    summary="Prepayment roll-forward of a month",
    description="How the customers' prepaid balance (the liability, account 2200) moved in "
    "`period`, from the ledger by the entries' dates (Asia/Shanghai): per customer with a "
    "balance at the month's start or an entry in it, and in total. Movements are signed as "
    "they move the balance (invoice debits and refunds negative): `opening_balance` + "
    "deposits (by method) + `invoice_debits` + `credit_notes` + `adjustments` + `refunds` "
    "+ `promo_granted` + `promo_used` + `promo_lapsed` "
    "= `closing_balance`, which is the ledger sum at the month's end, to the cent; "
    "`closing_paid_balance` + `closing_promo_credit` = `closing_balance` (promotional credit "
    "is kept apart from what customers paid; the promotional columns come after the first "
    "version's, which keep their places). Invoices "
    "count in the month they were issued (October's, issued on 2 November, in November). "
    "CSV: one row per customer (`row` = `customer`), then the `total` row.",
    serializer=RollForwardSerializer,
    example_name="Roll-forward",
    example=ROLLFORWARD_EXAMPLE,
    columns=ROLLFORWARD_COLUMNS,
    csv_example=ROLLFORWARD_CSV_EXAMPLE,
)
class PrepaymentRollForwardView(ReportView):
    csv_columns = ROLLFORWARD_COLUMNS
    csv_name = "prepayment-rollforward"

    def report(self, query: dict) -> RollForward:
        return prepayment_rollforward(period=query["period"])

    def csv_rows(self, report: RollForward) -> Iterable[list]:
        return rollforward_csv_rows(report)

    def json_response(self, report: RollForward, query: dict) -> HttpResponseBase:
        return Response(RollForwardSerializer(report).data)
