"""Invoices, credit notes and billing runs in the finance back-office.

Invoices and credit notes are never edited here: every page is read-only, and the buttons call
`invoices.documents.services` (re-rate, issue, credit note), `invoices.run.runs` (start, re-run failed) and
`invoices.documents.pdf` (PDF). Issued documents cannot be changed or deleted (no admin permission, and
the database refuses it anyway).
"""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import DecimalField, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from import_export.formats import base_formats
from simple_history.admin import SimpleHistoryAdmin

from accounts.balance_preview import balance_change_preview
from accounts.selectors import ledger_balance, ledger_balances
from billingsite.admin import (
    HistoryViewOnlyMixin,
    ReadOnlyAdminMixin,
    TitledChangeViewMixin,
    add_service_error,
    error_message,
    new_form_token,
    render_form_page,
    require_perm,
    require_post,
    service_errors,
)
from billingsite.admin_confirm import EDIT, balance_moved, is_confirmed, render_confirm_page
from billingsite.clock import Period, billing_date
from billingsite.exports import FinanceExportMixin
from billingsite.money import format_cny
from invoices.admin.dashboard import applications_needing_contract, held_invoices, run_starter
from invoices.admin.exports import CreditNoteResource, InvoiceResource
from invoices.admin.forms import BillingRunStartForm, CreditNoteForm
from invoices.documents.pdf import render_credit_note_pdf, render_invoice_pdf
from invoices.documents.services import (
    credit_note_create,
    credit_note_returns,
    credited_by_line,
    invoice_issue,
    invoice_rerate,
)
from invoices.models import (
    BillingRun,
    BillingRunError,
    CreditNote,
    CreditNoteLine,
    Invoice,
    NumberSequence,
)
from invoices.run import runs
from invoices.run.runs import (
    billing_run_close_interrupted,
    billing_run_is_stalled,
    billing_run_resume,
    billing_run_retry_failed,
)
from plans.models import DedicatedContract, Plan

OPEN_STATES = (Invoice.Status.DRAFT, Invoice.Status.HELD)
MONEY_OUTPUT = DecimalField(max_digits=14, decimal_places=2)


def _next_url(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _contracts_added_since_rating(*, invoice: Invoice) -> list[DedicatedContract]:
    """Dedicated-service contracts covering the invoice's period added after it was rated: the
    invoice does not price them until it is re-rated."""
    period = Period.containing(invoice.period)
    return list(
        DedicatedContract.objects.filter(
            application__customer_id=invoice.customer_id,
            created_at__gt=invoice.rated_at,
            first_day__lte=period.end,
        )
        .filter(Q(last_day__isnull=True) | Q(last_day__gte=period.start))
        .select_related("application")
        .order_by("application__app_key", "first_day")
    )


def _invoice_url(invoice) -> str:
    return reverse("admin:invoices_invoice_change", args=[invoice.pk])


def _document_name(invoice: Invoice) -> str:
    return invoice.number or f"draft-{invoice.customer.external_id}-{invoice.period:%Y-%m}"


# --- list filters -----------------------------------------------------------------------------


class PeriodFilter(admin.SimpleListFilter):
    title = "period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        months = Invoice.objects.dates("period", "month", order="DESC")[:24]
        return [(f"{month:%Y-%m}", f"{month:%Y-%m}") for month in months]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            period = Period.parse(self.value())
        except ValueError:
            return queryset.none()
        return queryset.filter(period=period.start)


class HeldFilter(admin.SimpleListFilter):
    title = "held for review"
    parameter_name = "held"

    def lookups(self, request, model_admin):
        return [("yes", "Held"), ("no", "Not held")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status=Invoice.Status.HELD)
        if self.value() == "no":
            return queryset.exclude(status=Invoice.Status.HELD)
        return queryset


class PlanFilter(admin.SimpleListFilter):
    title = "plan"
    parameter_name = "plan"

    def lookups(self, request, model_admin):

        return [(plan.code, plan.name) for plan in Plan.objects.order_by("rank")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(lines__plan_code=self.value()).distinct()
        return queryset


class CustomerFilter(admin.SimpleListFilter):
    """A text box (an account list of thousands would not fit): the customer's external id
    exactly, or part of its name."""

    title = "customer"
    parameter_name = "customer"
    template = "admin/billing/input_filter.html"

    def lookups(self, request, model_admin):
        # One dummy choice so the filter is shown; the template renders a text box.
        return [("", "")]

    def choices(self, changelist):
        query = changelist.get_filters_params()
        query.pop(self.parameter_name, None)
        yield {
            "value": self.value() or "",
            "parameter_name": self.parameter_name,
            "other_params": [(key, value) for key, values in query.items() for value in values],
        }

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset

        return queryset.filter(
            Q(customer__external_id=value)
            | Q(customer__name__icontains=value)
            | Q(customer_name__icontains=value)
        )


# --- invoices ---------------------------------------------------------------------------------


def _frozen_amount(value):
    """A frozen net or VAT column of an invoice or credit note; NULL on documents frozen
    before VAT was recorded (their total is the gross alone)."""
    if value is None:
        return "—"
    return format_html('<span class="billing-amount">{}</span>', format_cny(value))


@admin.register(Invoice)
class InvoiceAdmin(
    FinanceExportMixin, TitledChangeViewMixin, HistoryViewOnlyMixin, SimpleHistoryAdmin
):
    change_title = "Invoice"
    list_display = [
        "document",
        "customer_link",
        "period_label",
        "status_badge",
        "net_display",
        "vat_display",
        "total_display",
        "hold_reason_short",
        "issue_date",
    ]
    list_filter = [PeriodFilter, "status", HeldFilter, CustomerFilter, PlanFilter]
    search_fields = [
        "number",
        "customer_name",
        "customer__name",
        "customer__external_id",
        "lines__app_key",
    ]
    list_select_related = ["customer"]
    list_per_page = 50
    ordering = ["-period", "status", "customer_name"]
    resource_classes = [InvoiceResource]
    actions = [
        "rerate_selected",
        "issue_selected",
        "credit_selected",
        "download_pdf",
        "export_csv",
    ]
    change_form_template = "admin/invoices/invoice/change_form.html"
    change_list_template = "admin/invoices/invoice/change_list.html"
    # The list's totals row (templates/admin/billing/change_list_results_totals.html).
    list_total_field, list_total_column = "total", "total_display"
    fields = ["customer", "period", "status", "number", "total"]

    # Read-only everywhere: the change permission only unlocks the service buttons.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_issue_permission(self, request):
        return request.user.has_perm("invoices.change_invoice")

    def has_credit_permission(self, request):
        return request.user.has_perm("invoices.add_creditnote")

    def lookup_allowed(self, lookup, value, request=None):
        if lookup in ("billing_run__id__exact", "customer__id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    # List columns.
    @admin.display(description="Invoice", ordering="number")
    def document(self, invoice):
        if invoice.number:
            return format_html('<span class="billing-nowrap">{}</span>', invoice.number)
        return mark_safe('<span class="billing-muted">not issued</span>')

    @admin.display(description="Customer", ordering="customer_name")
    def customer_link(self, invoice):
        url = reverse("admin:accounts_customer_change", args=[invoice.customer_id])
        return format_html('<a href="{}">{}</a>', url, invoice.customer_name)

    @admin.display(description="Period", ordering="period")
    def period_label(self, invoice):
        return f"{invoice.period:%Y-%m}"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, invoice):
        return format_html(
            '<span class="billing-status billing-status-{} billing-nowrap">{}</span>',
            invoice.status,
            invoice.get_status_display(),
        )

    @admin.display(description="Net", ordering="net_total")
    def net_display(self, invoice):
        return _frozen_amount(invoice.net_total)

    @admin.display(description="VAT", ordering="vat_total")
    def vat_display(self, invoice):
        return _frozen_amount(invoice.vat_total)

    @admin.display(description="Total", ordering="total")
    def total_display(self, invoice):
        return format_html('<span class="billing-amount">{}</span>', format_cny(invoice.total))

    @admin.display(description="Hold reason")
    def hold_reason_short(self, invoice):
        if invoice.status != Invoice.Status.HELD:
            return ""
        # The first reason, shortened; the invoice page and the review queue show them all.
        reason = (invoice.hold_reason or "").split("\n")[0]
        return reason if len(reason) <= 60 else reason[:57] + "…"

    # The detail page.
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._detail_context(request, obj))
            if not obj.is_issued:
                # Not "Invoice": finance must see at once that nothing was issued yet.
                state = "held for review" if obj.status == Invoice.Status.HELD else "draft"
                context["title"] = f"Invoice {state}: {obj.customer_name}, {obj.period:%Y-%m}"
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _detail_context(self, request, invoice: Invoice) -> dict:

        credited = credited_by_line(invoice=invoice)
        groups: dict[str, dict] = {}
        for line in invoice.lines.order_by("position"):
            group = groups.setdefault(
                line.app_key,
                {"app_key": line.app_key, "app_name": line.app_name, "lines": [], "total": 0},
            )
            line.credited = credited.get(line.pk, Decimal("0.00"))
            group["lines"].append(line)
            group["total"] += line.amount.amount
        user = request.user
        is_open = invoice.status in OPEN_STATES
        return {
            "invoice": invoice,
            "line_groups": list(groups.values()),
            "credit_notes": invoice.credit_notes.select_related("created_by").order_by("issued_at"),
            "credited_total": sum(credited.values(), Decimal("0.00")),
            "customer_balance": ledger_balance(customer=invoice.customer_id),
            "needs_contract": applications_needing_contract(invoice=invoice)
            if invoice.status == Invoice.Status.HELD
            else [],
            "can_rerate": is_open and self.has_issue_permission(request),
            "can_issue": is_open and self.has_issue_permission(request),
            "can_credit": invoice.is_issued
            and invoice.status != Invoice.Status.CREDITED
            and self.has_credit_permission(request),
            "can_add_contract": user.has_perm("plans.add_dedicatedcontract"),
            "invoice_url": _invoice_url(invoice),
            "contracts_since_rating": _contracts_added_since_rating(invoice=invoice)
            if is_open
            else [],
        }

    def get_urls(self):
        def view(route, func, name):
            return path(route, self.admin_site.admin_view(func), name=f"invoices_invoice_{name}")

        return [
            view("review/", self.review_queue_view, "review"),
            view("<int:invoice_id>/rerate/", self.rerate_view, "rerate"),
            view("<int:invoice_id>/issue/", self.issue_view, "issue"),
            view("<int:invoice_id>/credit/", self.credit_view, "credit"),
            view("<int:invoice_id>/pdf/", self.pdf_view, "pdf"),
        ] + super().get_urls()

    # Service calls, one invoice at a time; each returns a message and whether it worked.
    def _rerate(self, request, invoice) -> tuple[bool, str]:

        if invoice.status not in OPEN_STATES:
            return False, f"{invoice} is {invoice.get_status_display().lower()}: not re-rated."
        try:
            rerated = invoice_rerate(invoice=invoice, now=timezone.now())
        except service_errors() as exc:
            return False, f"{invoice}: {error_message(exc)}"
        state = rerated.get_status_display().lower()
        return True, (
            f"{rerated.customer_name} {rerated.period:%Y-%m} re-rated: "
            f"{format_cny(rerated.total)}, {state}."
        )

    def _issue(self, request, invoice) -> tuple[bool, str]:

        if invoice.status not in OPEN_STATES:
            return False, f"{invoice} is already issued."
        try:
            issued = invoice_issue(invoice=invoice, now=timezone.now(), issued_by=request.user)
        except service_errors() as exc:
            return False, f"{invoice}: {error_message(exc)}"
        return True, (
            f"Issued {issued.number} to {issued.customer_name}: {format_cny(issued.total)} "
            "debited from the balance."
        )

    def _post_one(self, request, invoice_id, action):
        refused = require_post(request)
        if refused:
            return refused
        require_perm(request, "invoices.change_invoice")
        invoice = get_object_or_404(Invoice, pk=invoice_id)
        ok, message = action(request, invoice)
        (messages.success if ok else messages.error)(request, message)
        return HttpResponseRedirect(_next_url(request, _invoice_url(invoice)))

    def rerate_view(self, request, invoice_id):
        return self._post_one(request, invoice_id, self._rerate)

    def issue_view(self, request, invoice_id):
        return self._post_one(request, invoice_id, self._issue)

    def credit_view(self, request, invoice_id):
        require_perm(request, "invoices.add_creditnote")
        invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
        if not invoice.is_issued:
            messages.error(request, "Only issued invoices can be credited.")
            return HttpResponseRedirect(_invoice_url(invoice))

        lines = list(invoice.lines.order_by("position"))
        credited = credited_by_line(invoice=invoice)
        remaining = {
            line.pk: line.amount.amount - credited.get(line.pk, Decimal("0.00")) for line in lines
        }
        for line in lines:
            line.credited = credited.get(line.pk, Decimal("0.00"))
        form_kwargs = {"lines": lines, "remaining": remaining}
        if request.method == "POST":
            token = request.POST.get("token", "")
            sent_before = CreditNote.objects.filter(
                invoice=invoice, idempotency_key=f"admin-credit:{token}"
            ).first()
            if token and sent_before is not None:
                # A second submit of a page that already issued its note: show that note.
                messages.info(
                    request,
                    f"Credit note {sent_before.number} was already issued from this page "
                    "(the form was sent twice); nothing was credited again.",
                )
                return HttpResponseRedirect(_invoice_url(invoice))
            form = CreditNoteForm(request.POST, **form_kwargs)
            if form.is_valid() and EDIT not in request.POST:
                data = form.cleaned_data
                now = timezone.now()
                amount = sum((data["line_amounts"] or remaining).values(), start=Decimal("0.00"))
                preview = balance_change_preview(
                    customer=invoice.customer, amount=amount, today=billing_date(now)
                )
                moved = is_confirmed(request) and balance_moved(
                    request, balance=preview.balance_before
                )
                if not is_confirmed(request) or moved:
                    promo_part, paid_part = credit_note_returns(
                        invoice=invoice, credit_total=amount
                    )
                    return render_confirm_page(
                        request,
                        model_admin=self,
                        obj=invoice,
                        title=f"Confirm: credit note of {format_cny(amount)} for {invoice.number}",
                        preview=preview,
                        facts=[
                            ("Invoice", invoice.number),
                            ("Customer", invoice.customer_name),
                            ("Credit note", format_cny(amount)),
                            ("Returned as promotional credit", format_cny(promo_part)),
                            ("Credited to the paid balance", format_cny(paid_part)),
                            ("Reason", data["reason"]),
                        ],
                        notes=[
                            "The credit note gets the next number of its series and can never "
                            "be changed; a mistake in it needs another credit note."
                        ],
                        moved=moved,
                        submit_label="Confirm: issue credit note",
                    )
                try:
                    note = credit_note_create(
                        invoice=invoice,
                        line_amounts=data["line_amounts"],
                        reason=data["reason"],
                        now=now,
                        idempotency_key=f"admin-credit:{data['token']}",
                        created_by=request.user,
                    )
                except service_errors() as exc:
                    add_service_error(form, exc, field_map={"line_amounts": "mode"})
                else:
                    # Promotional credit an invoice used goes back as promotional credit
                    # (`credit_note_promo_split`): the message says where each part went.
                    promo_returned = note.promo_credit_returned or Decimal("0")
                    paid_returned = note.total.amount - promo_returned
                    where = (
                        f"{format_cny(paid_returned)} credited to {invoice.customer_name}'s balance"
                        if not promo_returned
                        else f"{format_cny(promo_returned)} returned as promotional credit, "
                        f"{format_cny(paid_returned)} credited to the paid balance"
                    )
                    messages.success(
                        request,
                        f"Credit note {note.number} of {format_cny(note.total)} issued: {where}.",
                    )
                    return HttpResponseRedirect(_invoice_url(invoice))
        else:
            form = CreditNoteForm(initial={"token": new_form_token()}, **form_kwargs)
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            obj=invoice,
            title=f"Credit note for {invoice.number}",
            submit_label="Issue credit note",
            template="admin/billing/credit_note_form.html",
            extra={"invoice": invoice, "remaining": remaining, "credited": credited},
        )

    def pdf_view(self, request, invoice_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
        return self._pdf_response(request, [invoice]) or HttpResponseRedirect(_invoice_url(invoice))

    def _pdf_response(self, request, invoices):
        if len(invoices) == 1:
            invoice = invoices[0]
            response = HttpResponse(
                render_invoice_pdf(invoice=invoice), content_type="application/pdf"
            )
            response["Content-Disposition"] = (
                f'attachment; filename="{_document_name(invoice)}.pdf"'
            )
            return response
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for invoice in invoices:
                archive.writestr(
                    f"{_document_name(invoice)}.pdf", render_invoice_pdf(invoice=invoice)
                )
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="invoices.zip"'
        return response

    def review_queue_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied

        page = Paginator(held_invoices(), 50).get_page(request.GET.get("p"))
        balances = ledger_balances(customer_ids=[invoice.customer_id for invoice in page])
        rows = [
            {
                "invoice": invoice,
                "balance": balances.get(invoice.customer_id, Decimal("0.00")),
                "applications": applications_needing_contract(invoice=invoice),
            }
            for invoice in page
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Review queue: invoices held for finance",
            "subtitle": "Add a dedicated-service contract and re-rate, or issue as it is.",
            "rows": rows,
            "page": page,
            "can_issue": self.has_issue_permission(request),
            "can_add_contract": request.user.has_perm("plans.add_dedicatedcontract"),
            "queue_url": reverse("admin:invoices_invoice_review"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/billing/review_queue.html", context)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Invoices",
            **(extra_context or {}),
            "held_count": Invoice.objects.filter(status=Invoice.Status.HELD).count(),
        }
        return super().changelist_view(request, extra_context)

    # Bulk actions.
    def _bulk(self, request, queryset, action, verb):
        done, failed = 0, []
        for invoice in queryset.select_related("customer").order_by("id"):
            ok, message = action(request, invoice)
            if ok:
                done += 1
            else:
                failed.append(message)
        if done:
            messages.success(request, f"{verb} {done} invoice{'s' if done != 1 else ''}.")
        for message in failed:
            messages.error(request, message)

    @admin.action(description="Re-rate selected draft or held invoices", permissions=["issue"])
    def rerate_selected(self, request, queryset):
        self._bulk(request, queryset, self._rerate, "Re-rated")

    @admin.action(description="Issue selected invoices as they are", permissions=["issue"])
    def issue_selected(self, request, queryset):
        self._bulk(request, queryset, self._issue, "Issued")

    @admin.action(description="Credit note for the selected invoice", permissions=["credit"])
    def credit_selected(self, request, queryset):
        if queryset.count() != 1:
            messages.error(request, "Select exactly one issued invoice to credit.")
            return None
        invoice = queryset.get()
        return HttpResponseRedirect(reverse("admin:invoices_invoice_credit", args=[invoice.pk]))

    @admin.action(description="Download PDF of selected invoices", permissions=["view"])
    def download_pdf(self, request, queryset):
        return self._pdf_response(request, list(queryset.select_related("customer")))

    @admin.action(description="Export selected invoices as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        # The Export button's columns and CSV (InvoiceResource), for the ticked rows.
        return self._do_file_export(
            base_formats.CSV(), request, queryset.order_by("period", "number", "id")
        )


# --- credit notes -----------------------------------------------------------------------------


class CreditNoteLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CreditNoteLine
    fields = ["invoice_line_app", "description", "amount_display"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Application")
    def invoice_line_app(self, line):
        return line.invoice_line.app_key

    @admin.display(description="Amount credited")
    def amount_display(self, line):
        return format_cny(line.amount)


@admin.register(CreditNote)
class CreditNoteAdmin(
    FinanceExportMixin,
    TitledChangeViewMixin,
    HistoryViewOnlyMixin,
    ReadOnlyAdminMixin,
    SimpleHistoryAdmin,
):
    change_title = "Credit note"
    list_display = [
        "number",
        "invoice_link",
        "customer",
        "net_display",
        "vat_display",
        "total_display",
        "issue_date",
        "created_by",
    ]
    list_select_related = ["invoice", "customer", "created_by"]
    resource_classes = [CreditNoteResource]
    search_fields = ["number", "invoice__number", "customer__name", "customer__external_id"]
    date_hierarchy = "issue_date"
    fields = [
        "number",
        "invoice_link",
        "customer",
        "net_display",
        "vat_display",
        "total_display",
        "reason",
        "issued_at",
        "created_by",
    ]
    readonly_fields = fields
    inlines = [CreditNoteLineInline]
    change_form_template = "admin/invoices/creditnote/change_form.html"
    actions = ["download_pdf"]

    @admin.display(description="Invoice", ordering="invoice__number")
    def invoice_link(self, note):
        return format_html('<a href="{}">{}</a>', _invoice_url(note.invoice), note.invoice.number)

    @admin.display(description="Net", ordering="net_total")
    def net_display(self, note):
        return _frozen_amount(note.net_total)

    @admin.display(description="VAT given back", ordering="vat_total")
    def vat_display(self, note):
        return _frozen_amount(note.vat_total)

    @admin.display(description="Total", ordering="total")
    def total_display(self, note):
        return format_html('<span class="billing-amount">{}</span>', format_cny(note.total))

    def get_urls(self):
        return [
            path(
                "<int:note_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoices_creditnote_pdf",
            )
        ] + super().get_urls()

    def _pdf(self, request, notes):
        if len(notes) == 1:
            response = HttpResponse(
                render_credit_note_pdf(credit_note=notes[0]), content_type="application/pdf"
            )
            response["Content-Disposition"] = f'attachment; filename="{notes[0].number}.pdf"'
            return response
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for note in notes:
                archive.writestr(f"{note.number}.pdf", render_credit_note_pdf(credit_note=note))
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="credit-notes.zip"'
        return response

    def pdf_view(self, request, note_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        note = get_object_or_404(CreditNote, pk=note_id)
        return self._pdf(request, [note]) or HttpResponseRedirect(
            reverse("admin:invoices_creditnote_change", args=[note.pk])
        )

    @admin.action(description="Download PDF of selected credit notes", permissions=["view"])
    def download_pdf(self, request, queryset):
        return self._pdf(request, list(queryset))


# --- billing runs -----------------------------------------------------------------------------


def run_started_by(run: BillingRun) -> str:
    """Who started `run`, as the runs list and the run's page say it. Beat and `manage.py bill`
    start runs with no user: they read as the system user, as the ledger's rows written by a
    service do (not the list's empty "-"), with what started them, so that finance can tell a
    scheduled run from one an operator started by hand. Runs recorded before their origin was
    kept (invoices migration 0015) say only the system user."""
    starter, started = run_starter(run)
    return starter if started is None or not run.origin else f"{starter} ({started})"


@admin.register(BillingRun)
class BillingRunAdmin(TitledChangeViewMixin, admin.ModelAdmin):
    change_title = "Billing run"
    list_display = [
        "run_label",
        "run_status",
        "progress",
        "invoices_issued",
        "invoices_held",
        "accounts_skipped",
        "accounts_already_billed",
        "accounts_failed",
        "started_at",
        "finished_at",
        "started_by",
    ]
    list_filter = ["status"]
    list_select_related = ["created_by"]
    change_form_template = "admin/invoices/billingrun/change_form.html"
    fields = ["period", "status"]

    def has_change_permission(self, request, obj=None):
        # Runs are written by invoices.run.runs only; the change permission unlocks "re-run".
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # Runs are never changed here: not Django's "Select billing run to change".
        return super().changelist_view(request, {"title": "Billing runs", **(extra_context or {})})

    @admin.display(description="Run", ordering="period")
    def run_label(self, run):
        return f"{run.period:%Y-%m} #{run.pk}"

    @admin.display(description="Created by", ordering="created_by__username")
    def started_by(self, run):
        return run_started_by(run)

    @admin.display(description="Accounts done")
    def progress(self, run):
        return f"{run.accounts_done} / {run.accounts_total}"

    @admin.display(description="Status", ordering="status")
    def run_status(self, run):

        if billing_run_is_stalled(run=run, now=timezone.now()):
            return format_html(
                '<span class="billing-bad" data-testid="run-stalled">{}</span>', "Stalled"
            )
        return run.get_status_display()

    def get_urls(self):
        return [
            path(
                "<int:run_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name="invoices_billingrun_retry",
            ),
            path(
                "<int:run_id>/resume/",
                self.admin_site.admin_view(self.resume_view),
                name="invoices_billingrun_resume",
            ),
            path(
                "<int:run_id>/close-interrupted/",
                self.admin_site.admin_view(self.close_interrupted_view),
                name="invoices_billingrun_close_interrupted",
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            errors = BillingRunError.objects.filter(run=obj).select_related("customer")
            may_change = request.user.has_perm("invoices.change_billingrun")
            stalled = billing_run_is_stalled(run=obj, now=timezone.now())
            context.update(
                run=obj,
                started_by=run_started_by(obj),
                run_errors=errors.order_by("resolved_at", "-occurred_at"),
                unresolved_errors=errors.filter(resolved_at__isnull=True).count(),
                can_retry=may_change,
                stalled=stalled,
                can_resume=may_change and (stalled or obj.status == BillingRun.Status.INTERRUPTED),
                can_close=may_change and stalled,
                percent_done=int(100 * obj.accounts_done / obj.accounts_total)
                if obj.accounts_total
                else (100 if obj.status == BillingRun.Status.FINISHED else 0),
                in_progress=not stalled
                and obj.status in (BillingRun.Status.PENDING, BillingRun.Status.RUNNING),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def add_view(self, request, form_url="", extra_context=None):
        """Start a run: pick the period, see how many accounts it will bill, confirm."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        today = billing_date(timezone.now())
        if request.method != "POST":
            form = BillingRunStartForm(
                initial={"period": str(Period.containing(today).previous())}, today=today
            )
            return self._start_page(request, form)
        form = BillingRunStartForm(request.POST, today=today)
        if not form.is_valid():
            return self._start_page(request, form)
        period = form.cleaned_data["period"]

        try:
            candidates = runs.billing_run_candidates(period=period).count()
        except service_errors() as exc:
            add_service_error(form, exc)
            return self._start_page(request, form)
        if candidates == 0:
            # Checked again on the confirming post: another run may have billed them meanwhile.
            form = BillingRunStartForm(initial={"period": str(period)}, today=today)
            return self._start_page(request, form, nothing_for=period)
        if not form.cleaned_data["confirmed"]:
            confirm = BillingRunStartForm(
                initial={"period": str(period), "confirmed": True}, today=today
            )
            return self._start_page(request, confirm, confirm_period=period, candidates=candidates)
        try:
            run = runs.billing_run_start(
                period=period,
                now=timezone.now(),
                created_by=request.user,
                origin=BillingRun.Origin.ADMIN,
            )
        except service_errors() as exc:
            add_service_error(form, exc)
            return self._start_page(request, form)
        self.log_addition(request, run, [{"added": {}}])
        messages.success(request, f"Billing run for {period} started.")
        return HttpResponseRedirect(reverse("admin:invoices_billingrun_change", args=[run.pk]))

    def _start_page(self, request, form, *, confirm_period=None, candidates=None, nothing_for=None):
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            title=f"Start the billing run for {confirm_period}"
            if confirm_period
            else "Start a billing run",
            submit_label=f"Yes, bill {candidates} account{'s' if candidates != 1 else ''}"
            if confirm_period
            else "Next: see how many accounts",
            template="admin/billing/run_start.html",
            extra={
                "confirm_period": confirm_period,
                "candidates": candidates,
                "nothing_for": nothing_for,
            },
        )

    def _run_action(self, request, run_id, action, done: str):
        """POST only, finance managers only (the change permission of runs)."""
        refused = require_post(request)
        if refused:
            return refused
        require_perm(request, "invoices.change_billingrun")
        run = get_object_or_404(BillingRun, pk=run_id)
        try:
            action(run=run, now=timezone.now())
        except service_errors() as exc:
            messages.error(request, error_message(exc))
        else:
            self.log_change(request, run, done)
            messages.success(request, done)
        return HttpResponseRedirect(reverse("admin:invoices_billingrun_change", args=[run.pk]))

    def retry_view(self, request, run_id):

        return self._run_action(
            request, run_id, billing_run_retry_failed, "The failed accounts are being billed again."
        )

    def resume_view(self, request, run_id):

        return self._run_action(
            request,
            run_id,
            billing_run_resume,
            "The run was resumed: what is left is being billed.",
        )

    def close_interrupted_view(self, request, run_id):

        return self._run_action(
            request, run_id, billing_run_close_interrupted, "The run was closed as interrupted."
        )


@admin.register(NumberSequence)
class NumberSequenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["series", "year", "last_number"]
