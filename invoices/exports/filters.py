"""Filters of the accounting export (django-filter). Bad values are a 400 naming the parameter.

Shared meanings across the endpoints:
- `period` (YYYY-MM): the billing period for invoices and credit notes (a credit note belongs to
  the period of the invoice it credits); the Asia/Shanghai month of the entry for ledger entries.
- `customer`: the customer's `external_id` (the developer console's account id).
- `issue_date_from` / `issue_date_to` (dates, inclusive): the document's issue date; for ledger
  entries `date_from` / `date_to`, the entry's Asia/Shanghai date.
- `updated_since` (ISO 8601 timestamp, inclusive): rows created or changed at or after it, for
  incremental pulls. Invoices change only in status (when credited); credit notes and ledger
  entries never change, so for them it is their creation time.
"""

from __future__ import annotations

import datetime as dt
import re

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema_field

from accounts.models import Customer, LedgerEntry
from billingsite.clock import Period, start_of_day
from invoices.exports.reports import CUSTOMER_STATUSES, period_bounds
from invoices.models import CreditNote, Invoice

PERIOD_PATTERN = r"^2\d{3}-(0[1-9]|1[0-2])$"
# Dates and times outside these years are refused: nothing is billed there, and extreme values
# would overflow when converted between time zones.
YEAR_RANGE = (2000, 2999)


def refuse_empty(value) -> None:
    """A parameter given with no value is an error, not "no filter": a client that sends
    `?period=` has a bug we should tell it about. (An absent parameter arrives as None.)"""
    if isinstance(value, str) and value.strip() == "":
        raise ValidationError("This parameter cannot be empty.", code="empty")


def check_year(value: dt.date | dt.datetime) -> None:
    if not YEAR_RANGE[0] <= value.year <= YEAR_RANGE[1]:
        raise ValidationError(
            f"must be between the years {YEAR_RANGE[0]} and {YEAR_RANGE[1]}", code="out_of_range"
        )


class PeriodFormField(forms.CharField):
    def __init__(self, **kwargs):
        # "2026-1" or " 2026-10" are refused, as the published pattern says.
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def to_python(self, value):
        refuse_empty(value)
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        if not re.fullmatch(PERIOD_PATTERN, text):
            raise ValidationError(f"period must look like 2026-10, got {text!r}", code="invalid")
        try:
            return Period.parse(text)
        except ValueError as exc:
            raise ValidationError(str(exc), code="invalid") from exc


class BoundedDateFormField(forms.DateField):
    def to_python(self, value):
        refuse_empty(value)
        return super().to_python(value)

    def validate(self, value):
        super().validate(value)
        if value is not None:
            check_year(value)


class BoundedDateTimeFormField(forms.DateTimeField):
    """ISO 8601; a value without an offset is read as Asia/Shanghai time."""

    def to_python(self, value):
        refuse_empty(value)
        try:
            result = super().to_python(value)
        except OverflowError as exc:
            raise ValidationError("Enter a valid date/time.", code="invalid") from exc
        if result is not None:
            check_year(result)
            try:
                # The same moment in UTC: Python takes offsets up to +-23:59, PostgreSQL only
                # up to +-15:59 ("+22:08" was a database error, after a CSV's 200 was sent).
                result = result.astimezone(dt.UTC)
            except OverflowError as exc:
                raise ValidationError("Enter a valid date/time.", code="invalid") from exc
        return result


@extend_schema_field({"type": "string", "pattern": PERIOD_PATTERN, "example": "2026-10"})
class PeriodFilter(django_filters.Filter):
    field_class = PeriodFormField


@extend_schema_field({"type": "string", "format": "date", "example": "2026-11-02"})
class BoundedDateFilter(django_filters.DateFilter):
    field_class = BoundedDateFormField


@extend_schema_field(
    {"type": "string", "format": "date-time", "example": "2026-11-02T00:00:00+08:00"}
)
class UpdatedSinceFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedDateTimeFormField


ISSUED_STATUS_CHOICES = [
    (status.value, status.label) for status in Invoice.Status if status in Invoice.ISSUED_STATES
]


class InvoiceExportFilter(django_filters.FilterSet):
    period = PeriodFilter(method="filter_period", help_text="Billing period, YYYY-MM.")
    status = django_filters.MultipleChoiceFilter(
        choices=ISSUED_STATUS_CHOICES,
        help_text="One or more of the issued states (repeat the parameter). Drafts and held "
        "invoices are never exported.",
    )
    customer = django_filters.CharFilter(
        field_name="customer__external_id", help_text="Customer external id."
    )
    number = django_filters.CharFilter(field_name="number", help_text="Invoice number.")
    issue_date_from = BoundedDateFilter(field_name="issue_date", lookup_expr="gte")
    issue_date_to = BoundedDateFilter(field_name="issue_date", lookup_expr="lte")
    updated_since = UpdatedSinceFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Invoices issued or credited at or after this time.",
    )

    class Meta:
        model = Invoice
        fields: list[str] = []

    def filter_period(self, queryset, name, value: Period):
        return queryset.filter(period=value.start)


class CreditNoteExportFilter(django_filters.FilterSet):
    period = PeriodFilter(
        method="filter_period", help_text="Billing period of the credited invoice, YYYY-MM."
    )
    customer = django_filters.CharFilter(
        field_name="customer__external_id", help_text="Customer external id."
    )
    number = django_filters.CharFilter(field_name="number", help_text="Credit note number.")
    invoice = django_filters.CharFilter(
        field_name="invoice__number", help_text="Number of the credited invoice."
    )
    issue_date_from = BoundedDateFilter(field_name="issue_date", lookup_expr="gte")
    issue_date_to = BoundedDateFilter(field_name="issue_date", lookup_expr="lte")
    updated_since = UpdatedSinceFilter(
        field_name="issued_at",
        lookup_expr="gte",
        help_text="Credit notes issued at or after this time (they never change).",
    )

    class Meta:
        model = CreditNote
        fields: list[str] = []

    def filter_period(self, queryset, name, value: Period):
        return queryset.filter(invoice__period=value.start)


class LedgerEntryExportFilter(django_filters.FilterSet):
    period = PeriodFilter(
        method="filter_period", help_text="Asia/Shanghai month of the entry, YYYY-MM."
    )
    kind = django_filters.MultipleChoiceFilter(
        choices=LedgerEntry.Kind.choices, help_text="One or more kinds (repeat the parameter)."
    )
    customer = django_filters.CharFilter(
        field_name="customer__external_id", help_text="Customer external id."
    )
    date_from = BoundedDateFilter(method="filter_date_from", help_text="Asia/Shanghai date.")
    date_to = BoundedDateFilter(method="filter_date_to", help_text="Asia/Shanghai date.")
    updated_since = UpdatedSinceFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Entries recorded at or after this time (entries never change).",
    )

    class Meta:
        model = LedgerEntry
        fields: list[str] = []

    def filter_period(self, queryset, name, value: Period):
        start, end = period_bounds(value)
        return queryset.filter(created_at__gte=start, created_at__lt=end)

    def filter_date_from(self, queryset, name, value: dt.date):
        return queryset.filter(created_at__gte=start_of_day(value))

    def filter_date_to(self, queryset, name, value: dt.date):
        return queryset.filter(created_at__lt=start_of_day(value + dt.timedelta(days=1)))


class CustomerExportFilter(django_filters.FilterSet):
    customer = django_filters.CharFilter(field_name="external_id", help_text="External id.")
    status = django_filters.MultipleChoiceFilter(
        field_name="status",
        choices=CUSTOMER_STATUSES,
        help_text="One or more statuses (repeat the parameter).",
    )
    updated_since = UpdatedSinceFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Customers created, edited or whose status changed at or after this time.",
    )

    class Meta:
        # `status` and `updated_at` are annotations of `export_customers()`, not columns.
        model = Customer
        fields: list[str] = []
