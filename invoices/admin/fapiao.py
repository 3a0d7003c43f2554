"""The fapiao queue: customers' requests, finance's record of each fapiao, the batch export.

Finance opens a pending request and either records the fapiao the tax system issued (number,
code, date, amount and its PDF/OFD file) or rejects it with a reason the customer reads; the
rules are `invoices.documents.fapiao`'s. "Export pending requests (CSV)" writes the batch-import
file of the tax-control software. A credit note on an invoice with an issued fapiao flags the
row "red-letter fapiao needed". The file is served only through this admin (finance) and the
customer's own portal page.
"""

from __future__ import annotations

import csv
import io

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from billingsite.money import format_cny
from invoices.documents.fapiao import (
    EXPORT_COLUMNS,
    FapiaoError,
    fapiao_amounts,
    fapiao_export_rows,
    fapiao_file_response,
    fapiao_issue_record,
    fapiao_reject,
)
from invoices.models import FapiaoRequest

ISSUE, REJECT = "issue", "reject"


class FapiaoDecisionForm(forms.ModelForm):
    """Issue (number, code, date, amount, file) or reject (reason) a pending request. The
    decision is written by the service when the form is cleaned (inside the admin's
    transaction), so any refusal is a form error and nothing is written."""

    decision = forms.ChoiceField(
        label=_("Decision"),
        choices=[(ISSUE, _("Record the issued fapiao")), (REJECT, _("Reject the request"))],
        widget=forms.RadioSelect,
    )

    class Meta:
        model = FapiaoRequest
        fields = [
            "fapiao_number",
            "fapiao_code",
            "fapiao_date",
            "fapiao_amount",
            "file",
            "rejection_reason",
        ]
        widgets = {"fapiao_date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        now = timezone.now()
        # The instance as stored (construct_instance has not run yet: clean comes first).
        request = FapiaoRequest.objects.select_related("invoice").get(pk=self.instance.pk)
        try:
            if cleaned.get("decision") == ISSUE:
                if not cleaned.get("file"):
                    raise FapiaoError(_("Attach the fapiao's PDF or OFD file."), field="file")
                self.result = fapiao_issue_record(
                    request=request,
                    number=cleaned.get("fapiao_number", ""),
                    code=cleaned.get("fapiao_code", ""),
                    date=cleaned.get("fapiao_date"),
                    amount=cleaned.get("fapiao_amount"),
                    upload=cleaned["file"],
                    now=now,
                    handled_by=self.user,
                )
            else:
                self.result = fapiao_reject(
                    request=request,
                    reason=cleaned.get("rejection_reason", ""),
                    now=now,
                    handled_by=self.user,
                )
        except FapiaoError as refusal:
            field = refusal.field if refusal.field in self.fields else None
            self.add_error(field, refusal.message)
        return cleaned


@admin.register(FapiaoRequest)
class FapiaoRequestAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "invoice_number",
        "customer",
        "kind",
        "buyer_title",
        "status",
        "requested_at",
        "red_letter",
        "fapiao_number",
    ]
    list_filter = ["status", "kind", ("red_letter_needed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["invoice", "customer"]
    search_fields = ["invoice__number", "customer__name", "buyer_title", "buyer_tax_id"]
    actions = ["export_pending_csv"]
    readonly_fields = [
        "invoice_number",
        "customer",
        "kind",
        "status",
        "buyer_title",
        "buyer_tax_id",
        "buyer_address",
        "buyer_phone",
        "buyer_bank",
        "buyer_account",
        "amounts",
        "requested_at",
        "handled_at",
        "handled_by",
        "red_letter",
        "file_link",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None and obj.status == FapiaoRequest.Status.PENDING:
            if self.has_change_permission(request, obj):
                fields += ["decision", *FapiaoDecisionForm.Meta.fields]
        elif obj is not None and obj.status == FapiaoRequest.Status.ISSUED:
            fields += ["fapiao_number", "fapiao_code", "fapiao_date", "fapiao_amount"]
        elif obj is not None:
            fields += ["rejection_reason"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == FapiaoRequest.Status.PENDING:
            return self.readonly_fields
        # Handled requests are the record: read-only.
        return self.get_fields(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None and obj.status == FapiaoRequest.Status.PENDING:
            kwargs["form"] = FapiaoDecisionForm
            kwargs["fields"] = ["decision", *FapiaoDecisionForm.Meta.fields]
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and obj.status == FapiaoRequest.Status.PENDING:
            user = request.user

            class BoundDecisionForm(form):
                def __init__(self, *args, **inner):
                    super().__init__(*args, user=user, **inner)

            return BoundDecisionForm
        return form

    def save_model(self, request, obj, form, change):
        # The service wrote the decision while the form was cleaned; nothing else to save.
        pass

    @admin.display(description=_("Invoice"), ordering="invoice__number")
    def invoice_number(self, fapiao):
        url = reverse("admin:invoices_invoice_change", args=[fapiao.invoice_id])
        return format_html('<a href="{}">{}</a>', url, fapiao.invoice.number)

    @admin.display(description=_("Red-letter fapiao needed"), boolean=True)
    def red_letter(self, fapiao):
        return fapiao.red_letter_needed_at is not None

    @admin.display(description=_("Amount, VAT, total"))
    def amounts(self, fapiao):
        amounts = fapiao_amounts(invoice=fapiao.invoice)
        return (
            f"{format_cny(amounts.net)} + {format_cny(amounts.vat)} "
            f"({amounts.rate * 100:.2f}%) = {format_cny(amounts.gross)}"
        )

    @admin.display(description=_("Fapiao file"))
    def file_link(self, fapiao):
        if not fapiao.file:
            return "—"
        url = reverse("admin:invoices_fapiaorequest_file", args=[fapiao.pk])
        return format_html('<a href="{}">{}</a>', url, _("Download"))

    def get_urls(self):
        return [
            path(
                "<int:object_id>/file/",
                self.admin_site.admin_view(self.file_view),
                name="invoices_fapiaorequest_file",
            ),
            *super().get_urls(),
        ]

    def file_view(self, request, object_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        fapiao = get_object_or_404(FapiaoRequest.objects.select_related("invoice"), pk=object_id)
        return fapiao_file_response(fapiao)

    @admin.action(description=_("Export pending requests (CSV for the tax software)"))
    def export_pending_csv(self, request, queryset):
        out = io.StringIO()
        # A BOM: the tax software and Excel read the Chinese columns as UTF-8.
        out.write("\ufeff")
        writer = csv.writer(out)
        writer.writerow([name for name, _label in EXPORT_COLUMNS])
        writer.writerow([label for _name, label in EXPORT_COLUMNS])
        writer.writerows(fapiao_export_rows(queryset))
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="fapiao-pending.csv"'
        return response
