"""The columns of the customers and ledger exports (see billingsite/exports.py)."""

from __future__ import annotations

from import_export.fields import Field
from import_export.widgets import Widget

from accounts.models import Customer, LedgerEntry
from billingsite.audit import recorded_by
from billingsite.exports import AmountWidget, DateTimeWidget, DateWidget, FinanceResource


class CustomerResource(FinanceResource):
    """Customers with their balances. The queryset carries the balance (`ledger_total`, the
    admin's annotation); recommended balance and days left come as `financials`, every rated
    customer's figures computed once for the whole export."""

    external_id = Field(attribute="external_id", column_name="external_id")
    name = Field(attribute="name", column_name="name")
    billing_email = Field(attribute="billing_email", column_name="billing_email")
    balance = Field(attribute="ledger_total", column_name="balance_cny", widget=AmountWidget())
    recommended_balance = Field(column_name="recommended_balance_cny", widget=AmountWidget())
    days_left = Field(column_name="days_left", widget=Widget())
    arrears_since = Field(
        attribute="arrears_since", column_name="arrears_since", widget=DateWidget()
    )
    suspended_at = Field(
        attribute="suspended_at", column_name="suspended_at", widget=DateTimeWidget()
    )

    class Meta:
        model = Customer
        fields = [
            "external_id",
            "name",
            "billing_email",
            "balance",
            "recommended_balance",
            "days_left",
            "arrears_since",
            "suspended_at",
        ]
        export_order = fields

    def __init__(self, *, financials: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.financials = financials or {}

    def dehydrate_recommended_balance(self, customer):
        figures = self.financials.get(customer.pk)
        return figures.recommended_balance if figures is not None else None

    def dehydrate_days_left(self, customer):
        figures = self.financials.get(customer.pk)
        return figures.days_left if figures is not None else None


class LedgerEntryResource(FinanceResource):
    created_at = Field(attribute="created_at", column_name="created_at", widget=DateTimeWidget())
    customer_external_id = Field(
        attribute="customer__external_id", column_name="customer_external_id"
    )
    customer_name = Field(attribute="customer__name", column_name="customer_name")
    kind = Field(attribute="kind", column_name="kind")
    amount = Field(attribute="amount", column_name="amount_cny", widget=AmountWidget())
    method = Field(attribute="method", column_name="method")
    reference = Field(attribute="reference", column_name="reference")
    reason = Field(attribute="reason", column_name="reason")
    recorded_by = Field(column_name="recorded_by")

    class Meta:
        model = LedgerEntry
        fields = [
            "created_at",
            "customer_external_id",
            "customer_name",
            "kind",
            "amount",
            "method",
            "reference",
            "reason",
            "recorded_by",
        ]
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("customer", "created_by")

    def dehydrate_recorded_by(self, entry):
        return recorded_by(entry.created_by)
