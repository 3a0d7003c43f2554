"""The columns of the invoices and credit notes exports (see billingsite/exports.py)."""

from __future__ import annotations

from django.db.models import DecimalField, Sum, Value
from django.db.models.functions import Coalesce
from import_export.fields import Field

from billingsite.audit import recorded_by
from billingsite.exports import AmountWidget, DateTimeWidget, DateWidget, FinanceResource
from invoices.models import CreditNote, Invoice


class InvoiceResource(FinanceResource):
    number = Field(attribute="number", column_name="number")
    status = Field(attribute="status", column_name="status")
    period = Field(column_name="period")
    customer_external_id = Field(
        attribute="customer__external_id", column_name="customer_external_id"
    )
    customer_name = Field(attribute="customer_name", column_name="customer_name")
    customer_tax_id = Field(attribute="customer_tax_id", column_name="customer_tax_id")
    total = Field(attribute="total", column_name="total", widget=AmountWidget())
    # Credit notes issued against the invoice, summed in the export's one query.
    credited = Field(attribute="credited", column_name="credited", widget=AmountWidget())
    currency = Field(column_name="currency")
    issue_date = Field(attribute="issue_date", column_name="issue_date", widget=DateWidget())
    hold_reason = Field(attribute="hold_reason", column_name="hold_reason")
    # The frozen net and VAT (total = net + VAT); empty on invoices frozen before VAT.
    net_total = Field(attribute="net_total", column_name="net", widget=AmountWidget())
    vat_total = Field(attribute="vat_total", column_name="vat", widget=AmountWidget())

    class Meta:
        model = Invoice
        fields = [
            "number",
            "status",
            "period",
            "customer_external_id",
            "customer_name",
            "customer_tax_id",
            "total",
            "credited",
            "currency",
            "issue_date",
            "hold_reason",
            "net_total",
            "vat_total",
        ]
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("customer").annotate(
            credited=Coalesce(
                Sum("credit_notes__total"),
                Value(0),
                output_field=DecimalField(max_digits=14, decimal_places=2),
            )
        )

    def dehydrate_period(self, invoice):
        return f"{invoice.period:%Y-%m}"

    def dehydrate_currency(self, invoice):
        return "CNY"


class CreditNoteResource(FinanceResource):
    number = Field(attribute="number", column_name="number")
    invoice_number = Field(attribute="invoice__number", column_name="invoice_number")
    customer_external_id = Field(
        attribute="customer__external_id", column_name="customer_external_id"
    )
    customer_name = Field(attribute="customer__name", column_name="customer_name")
    total = Field(attribute="total", column_name="total", widget=AmountWidget())
    issue_date = Field(attribute="issue_date", column_name="issue_date", widget=DateWidget())
    issued_at = Field(attribute="issued_at", column_name="issued_at", widget=DateTimeWidget())
    reason = Field(attribute="reason", column_name="reason")
    created_by = Field(column_name="created_by")
    net_total = Field(attribute="net_total", column_name="net", widget=AmountWidget())
    vat_total = Field(attribute="vat_total", column_name="vat", widget=AmountWidget())

    class Meta:
        model = CreditNote
        fields = [
            "number",
            "invoice_number",
            "customer_external_id",
            "customer_name",
            "total",
            "issue_date",
            "issued_at",
            "reason",
            "created_by",
            "net_total",
            "vat_total",
        ]
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("invoice", "customer", "created_by")

    def dehydrate_created_by(self, note):
        return recorded_by(note.created_by)
