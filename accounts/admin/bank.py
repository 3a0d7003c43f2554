"""Finance's bank statements: upload (CSV or MT940), every line with its status, the queue of
unmatched credits, and the two decisions on one: assign it to a customer (a deposit: shown on
the money-action confirmation page first) or mark it not ours.

Thin: reading, matching and depositing live in `accounts.payments.bank_reconciliation`."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.balance_preview import balance_change_preview
from accounts.models import BankStatement, BankStatementLine, Customer
from accounts.payments.bank_reconciliation import (
    BankLineError,
    bank_line_deposit,
    bank_line_not_ours,
    bank_line_suggestions,
    statement_upload,
)
from accounts.payments.bank_statements import (
    MAX_STATEMENT_BYTES,
    StatementError,
    StatementSetupError,
)
from billingsite.admin import (
    ReadOnlyAdminMixin,
    add_service_error,
    render_form_page,
    require_perm,
    service_errors,
)
from billingsite.admin_confirm import EDIT, balance_moved, is_confirmed, render_confirm_page
from billingsite.clock import billing_date
from billingsite.money import format_cny

Status = BankStatementLine.Status


class StatementUploadForm(forms.Form):
    file = forms.FileField(help_text="The bank's CSV export or an MT940 file, up to 10 MB.")
    format = forms.ChoiceField(choices=BankStatement.Format.choices, initial="csv")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_STATEMENT_BYTES:
            raise forms.ValidationError("The file is larger than 10 MB.")
        return upload


class AssignForm(forms.Form):
    customer = forms.CharField(
        label="Customer",
        max_length=64,
        help_text="Its external id or transfer reference (or pick a suggestion).",
    )

    def clean_customer(self):
        value = self.cleaned_data["customer"].strip()
        customer = (
            Customer.objects.filter(external_id=value).first()
            or Customer.objects.filter(transfer_reference=value.replace(" ", "").upper()).first()
        )
        if customer is None:
            raise forms.ValidationError("No customer has this external id or transfer reference.")
        return customer


class NotOursForm(forms.Form):
    note = forms.CharField(
        max_length=300, help_text="Why it is not a customer's payment (kept on the line)."
    )


class BankStatementLineInline(admin.TabularInline):
    model = BankStatementLine
    fields = ["booked_on", "direction", "amount", "payer_name", "remark", "status", "customer"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BankStatement)
class BankStatementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Added only by the upload page; its lines are written by the reconciliation service."""

    list_display = [
        "file_name",
        "format",
        "account",
        "uploaded_at",
        "uploaded_by",
        "lines_in_file",
        "lines_seen_before",
    ]
    list_filter = ["format", "account"]
    fields = [
        "file_name",
        "format",
        "account",
        "sha256",
        "uploaded_at",
        "uploaded_by",
        "lines_in_file",
        "lines_seen_before",
    ]
    readonly_fields = fields
    inlines = [BankStatementLineInline]

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("accounts.add_bankstatement")

    def get_urls(self):
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="accounts_bankstatement_upload",
            ),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:accounts_bankstatement_upload"))

    def upload_view(self, request):
        require_perm(request, "accounts.add_bankstatement", "accounts.add_ledgerentry")
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = statement_upload(
                    data=upload.read(),
                    file_name=upload.name,
                    format=form.cleaned_data["format"],
                    uploaded_by=request.user,
                    now=timezone.now(),
                )
            except StatementSetupError as error:
                form.add_error(None, str(error))
            except StatementError as error:
                form.add_error("file", f"This file cannot be read: {error}")
            except service_errors() as error:
                add_service_error(form, error)
            else:
                messages.success(
                    request,
                    f"{result.statement.lines_in_file} transactions read: {result.new} new, "
                    f"{result.seen_before} already uploaded; {result.matched} deposited by "
                    f"their transfer reference, {result.unmatched} waiting for you.",
                )
                if result.unmatched:
                    return HttpResponseRedirect(
                        reverse("admin:accounts_bankstatementline_changelist")
                        + f"?status__exact={Status.UNMATCHED}"
                    )
                return HttpResponseRedirect(
                    reverse("admin:accounts_bankstatement_change", args=[result.statement.pk])
                )
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            title="Upload a bank statement",
            intro="Credits that quote a customer's transfer reference become deposits at once; "
            "debits and transfers from our own accounts are ignored; the rest wait in the "
            "unmatched queue. A statement uploaded again, or overlapping an earlier one, "
            "deposits nothing twice.",
            submit_label="Upload",
        )


@admin.register(BankStatementLine)
class BankStatementLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The lines of every statement; filter status "unmatched" for the queue."""

    list_display = [
        "booked_on",
        "direction",
        "amount_display",
        "payer_name",
        "payer_account",
        "remark",
        "status",
        "customer",
        "decide_links",
    ]
    list_filter = ["status", "direction", "statement__account"]
    list_select_related = ["customer"]
    search_fields = ["payer_name", "payer_account", "remark", "bank_transaction_id"]
    date_hierarchy = "booked_on"
    fields = [
        "statement",
        "booked_on",
        "direction",
        "amount",
        "bank_transaction_id",
        "payer_name",
        "payer_account",
        "remark",
        "status",
        "note",
        "customer",
        "deposit",
        "decided_by",
        "decided_at",
        "dedupe_key",
    ]
    readonly_fields = fields

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, line):
        return format_cny(line.amount)

    @admin.display(description="Decide")
    def decide_links(self, line):
        if line.status != Status.UNMATCHED:
            return ""
        return format_html(
            '<a href="{}">Assign to a customer</a> · <a href="{}">Not ours</a>',
            reverse("admin:accounts_bankstatementline_assign", args=[line.pk]),
            reverse("admin:accounts_bankstatementline_not_ours", args=[line.pk]),
        )

    def get_urls(self):
        return [
            path(
                "<int:line_id>/assign/",
                self.admin_site.admin_view(self.assign_view),
                name="accounts_bankstatementline_assign",
            ),
            path(
                "<int:line_id>/not-ours/",
                self.admin_site.admin_view(self.not_ours_view),
                name="accounts_bankstatementline_not_ours",
            ),
        ] + super().get_urls()

    def _waiting_line(self, request, line_id):
        require_perm(request, "accounts.change_bankstatementline")
        return get_object_or_404(BankStatementLine, pk=line_id)

    def _back(self, line):
        return HttpResponseRedirect(
            reverse("admin:accounts_bankstatementline_changelist")
            + f"?status__exact={Status.UNMATCHED}"
        )

    def assign_view(self, request, line_id):
        line = self._waiting_line(request, line_id)
        require_perm(request, "accounts.add_ledgerentry")
        suggestions = bank_line_suggestions(line=line) if line.status == Status.UNMATCHED else []
        form = AssignForm(request.POST or None)
        if line.status != Status.UNMATCHED:
            form = AssignForm(None)
            messages.warning(request, f"This line is {line.get_status_display().lower()}.")
        elif request.method == "POST" and form.is_valid() and EDIT not in request.POST:
            customer = form.cleaned_data["customer"]
            now = timezone.now()
            preview = balance_change_preview(
                customer=customer, amount=line.amount.amount, today=billing_date(now)
            )
            moved = is_confirmed(request) and balance_moved(request, balance=preview.balance_before)
            if not is_confirmed(request) or moved:
                amount = format_cny(line.amount)
                return render_confirm_page(
                    request,
                    model_admin=self,
                    obj=line,
                    title=f"Confirm: deposit of {amount} for {customer.name}",
                    preview=preview,
                    facts=[
                        ("Deposit", amount),
                        ("Customer", f"{customer.name} ({customer.external_id})"),
                        ("Booked on", f"{line.booked_on:%Y-%m-%d}"),
                        ("Payer", line.payer_name or "—"),
                        ("Remark", line.remark or "—"),
                    ],
                    moved=moved,
                    submit_label="Confirm: record deposit",
                )
            try:
                line, created = bank_line_deposit(
                    line=line, customer=customer, now=now, decided_by=request.user
                )
            except BankLineError as error:
                form.add_error(None, str(error))
            except service_errors() as error:
                add_service_error(form, error)
            else:
                if created:
                    messages.success(
                        request,
                        f"Deposit of {format_cny(line.amount)} recorded for {customer.name}.",
                    )
                else:
                    messages.info(request, "This line was already deposited; nothing new.")
                return self._back(line)
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            obj=line,
            title=f"Assign {format_cny(line.amount)} of {line.booked_on:%Y-%m-%d} to a customer",
            intro=f"Payer: {line.payer_name or '—'} {line.payer_account}. "
            f"Remark: {line.remark or '—'}. Nothing is written before you confirm.",
            submit_label="Continue",
            template="admin/accounts/bankstatementline/assign.html",
            extra={"suggestions": suggestions, "line": line},
        )

    def not_ours_view(self, request, line_id):
        line = self._waiting_line(request, line_id)
        form = NotOursForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                bank_line_not_ours(
                    line=line,
                    decided_by=request.user,
                    note=form.cleaned_data["note"],
                    now=timezone.now(),
                )
            except BankLineError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, "Marked not ours: it stays out of the queue.")
                return self._back(line)
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            obj=line,
            title=f"Not ours: {format_cny(line.amount)} of {line.booked_on:%Y-%m-%d}",
            intro=f"Payer: {line.payer_name or '—'}. Remark: {line.remark or '—'}. "
            "No deposit is recorded.",
            submit_label="Mark not ours",
        )
