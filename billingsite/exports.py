"""List exports of the finance admin (customers, invoices, ledger, credit notes) through
django-import-export: one Resource per list names its columns once, and the admin's Export
button writes them as CSV or XLSX. Export only: nothing is ever imported through the admin.

- CSV is UTF-8 with a byte-order mark, so Excel opens Chinese names correctly.
- Amounts are plain decimals ("6000.00" in CSV, a number in XLSX), never "CN¥6,000.00".
- The rows are the admin list's current filters and search (django-import-export builds the
  export from the changelist's queryset); a cell starting with "=", "+", "-" or "@" is escaped
  (IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT), so a customer's name cannot be a spreadsheet formula.
- Who may export: whoever may view the list (IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"),
  which accounts/roles.py gives the finance clerk, the finance manager and the auditor.
- Memory: the queryset is read in chunks (import-export iterates it), the file itself is built
  in memory; a list of 100,000 rows is a few tens of MB.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext
from import_export import resources, widgets
from import_export.admin import ExportMixin
from import_export.fields import Field
from import_export.formats import base_formats
from import_export.forms import ExportForm
from moneyed import Money

from billingsite.money import format_amount, round_money

# A UTF-8 byte-order mark before the CSV: without it Excel reads UTF-8 as the system code page.
CSV_ENCODING = "utf-8-sig"


class AmountWidget(widgets.Widget):
    """A Money or Decimal as a plain two-decimal amount: '6000.00' in CSV, a number in XLSX
    (the currency is always CNY, so it is a column header, not in every cell)."""

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return "" if not kwargs.get("force_native_type") else None
        amount = value.amount if isinstance(value, Money) else Decimal(value)
        if kwargs.get("force_native_type"):
            return round_money(amount)
        return format_amount(amount)


class DateWidget(widgets.Widget):
    """ISO dates (2026-11-02) in every format: one date format, whatever the locale."""

    def render(self, value, obj=None, **kwargs):
        return value.isoformat() if value is not None else ""


class DateTimeWidget(widgets.Widget):
    """A moment on the billing clock (the site's time zone), to the second."""

    def render(self, value, obj=None, **kwargs):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


class FinanceExportMixin(ExportMixin):
    """The Export button of a finance list: CSV (with BOM) or XLSX, the resource's columns."""

    export_formats = [base_formats.CSV, base_formats.XLSX]
    to_encoding = CSV_ENCODING
    # The resource's columns as they are: no per-export column picking.
    export_form_class = ExportForm

    def export_action(self, request):
        # The export builds the list's queryset from the address's filters; one the list cannot
        # apply (a stale bookmark, an edited address) raised IncorrectLookupParameters, a 500.
        # The list itself redirects such filters away; the export goes back to the plain list
        # and says why. Nothing was written: the file is built only from a valid queryset.
        try:
            return super().export_action(request)
        except IncorrectLookupParameters:
            messages.error(
                request,
                gettext(
                    "The export's filters could not be applied (an unknown or malformed filter "
                    "in the address): choose the filters on the list, then export again."
                ),
            )
            opts = self.model._meta
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_changelist")


# A text cell starting with one of these is a formula to a spreadsheet ("=HYPERLINK(...)" as a
# customer name): it is written with a leading apostrophe, as plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class FinanceResource(resources.ModelResource):
    """Columns declared on the subclass; text a spreadsheet would run as a formula escaped
    (amounts are rendered by AmountWidget and stay numbers)."""

    def export_field(self, field, instance, **kwargs):
        value = super().export_field(field, instance, **kwargs)
        if isinstance(field.widget, AmountWidget):
            # A dehydrate_ method's figure goes through the widget too (rendering is idempotent).
            return field.widget.render(value, **kwargs)
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            return "'" + value
        return value


class AuditEntryResource(FinanceResource):
    """The audit trail's rows (invoices.admin.dashboard.AuditEntry), not a model."""

    at = Field(attribute="at", column_name="when", widget=DateTimeWidget())
    actor = Field(attribute="actor", column_name="who")
    kind = Field(attribute="kind_label", column_name="what")
    subject = Field(attribute="subject", column_name="object")
    detail = Field(attribute="detail", column_name="details")

    class Meta:
        fields = ["at", "actor", "kind", "subject", "detail"]
        export_order = fields


def audit_export_response(entries, *, fmt: str) -> HttpResponse:
    file_format = base_formats.XLSX() if fmt == "xlsx" else base_formats.CSV()
    data = file_format.export_data(AuditEntryResource().export(queryset=entries))
    if not file_format.is_binary():
        data = data.encode(CSV_ENCODING)
    response = HttpResponse(data, content_type=file_format.get_content_type())
    response["Content-Disposition"] = (
        f'attachment; filename="audit-trail.{file_format.get_extension()}"'
    )
    return response
