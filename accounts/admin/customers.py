"""Customers, applications, usage and the ledger in the finance back-office.

Every write here is one service call: `accounts.services` (customers, applications, deposits,
adjustments), `accounts.usage` (CSV import) and `plans.services` (contracts, plan and add-on
changes). Services are imported inside the views so this module loads before they exist.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.contrib.admin.views.main import ORDER_VAR
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, IntegerField, OuterRef, Subquery, Value, When
from django.forms import Textarea
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from moneyed import Money
from simple_history.admin import SimpleHistoryAdmin

from accounts import services as account_services
from accounts.admin.exports import CustomerResource, LedgerEntryResource
from accounts.admin.forms import (
    AddOnForm,
    AdjustmentForm,
    ApplicationCreateForm,
    ContractForm,
    CustomerCreateForm,
    DepositForm,
    PlanChangeForm,
    PromoCreditForm,
    UsageImportForm,
)
from accounts.admin.mail import BillingContactInline, EmailDeliveryInline, resend_to_contacts
from accounts.arrears import suspension_date
from accounts.balance_preview import balance_change_preview
from accounts.mail.contacts import primary_contact_ensure
from accounts.models import (
    AdjustmentRequest,
    Application,
    Customer,
    CustomerEvent,
    CustomerUser,
    DailyUsage,
    LedgerEntry,
    UsageRevision,
    WebhookDelivery,
)
from accounts.promo_credit import paid_balance, promo_credit_held
from accounts.selectors import ledger_balance, with_ledger_balance
from accounts.services import (
    adjustment_approve,
    adjustment_reject,
    customer_create,
)
from accounts.usage import usage_import_csv
from billingsite.admin import (
    HistoryViewOnlyMixin,
    ReadOnlyAdminMixin,
    TitledChangeViewMixin,
    add_service_error,
    new_form_token,
    render_form_page,
    require_perm,
    service_errors,
)
from billingsite.admin_confirm import EDIT, balance_moved, is_confirmed, render_confirm_page
from billingsite.audit import recorded_by as author_of
from billingsite.clock import Period, billing_date
from billingsite.exports import FinanceExportMixin
from billingsite.money import format_cny
from invoices.charts import usage_month_chart
from invoices.models import Invoice
from invoices.selectors import (
    customer_financials,
    customers_below_recommended,
    financials_for_customers,
    rated_financials,
    usage_month,
)
from plans import services as plan_services
from plans.models import AddOn, Plan, PlanChange
from plans.services import application_create, contract_add, plan_change_request
from plans.timeline import addon_history, plan_changes_in_effect, plan_history

# The money forms of the customer page: what each records (its label and page title).
PROMO_CREDIT = "promo_credit"
LABELS = {"deposit": "Deposit", "adjustment": "Adjustment", PROMO_CREDIT: "Promotional credit"}
TITLES = {
    "deposit": "Record a deposit",
    "adjustment": "Manual balance adjustment",
    PROMO_CREDIT: "Grant promotional credit",
}


def _today() -> dt.date:
    return billing_date(timezone.now())


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- customers ------------------------------------------------------------------------------


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


class ApplicationInline(ReadOnlyTabularInline):
    model = Application
    fields = ["app_link", "name", "data_center", "status", "created"]
    readonly_fields = fields
    verbose_name_plural = "Applications"
    show_change_link = False

    @admin.display(description="App key")
    def app_link(self, application):
        url = reverse("admin:accounts_application_change", args=[application.pk])
        return format_html('<a href="{}">{}</a>', url, application.app_key)

    @admin.display(description="Created on")
    def created(self, application):
        return application.created_on.isoformat()


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _signed_amount_html(*, amount: Money) -> SafeString:
    """A ledger amount as the inline and the ledger list both show it: red when it lowers the
    balance, so the two pages read the same."""
    return format_html(
        '<span class="billing-amount {}">{}</span>',
        "billing-bad" if amount.amount < 0 else "",
        format_cny(amount),
    )


class LedgerEntryInline(ReadOnlyTabularInline):
    model = LedgerEntry
    fields = ["when", "kind", "signed_amount", "reference", "reason", "recorded_by"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]
    verbose_name_plural = "Ledger (newest first)"
    show_change_link = False

    @admin.display(description="When")
    def when(self, entry):
        return format_html('<span class="billing-nowrap">{}</span>', _when(entry.created_at))

    @admin.display(description="Amount")
    def signed_amount(self, entry):
        return _signed_amount_html(amount=entry.amount)

    @admin.display(description="Recorded by")
    def recorded_by(self, entry):
        return author_of(entry.created_by)


class InvoiceInline(ReadOnlyTabularInline):
    model = Invoice
    fields = ["document", "period_label", "status", "invoice_total", "issued_on", "hold_reason"]
    readonly_fields = fields
    verbose_name_plural = "Invoices"
    show_change_link = False

    @admin.display(description="Invoice")
    def document(self, invoice):
        url = reverse("admin:invoices_invoice_change", args=[invoice.pk])
        return format_html('<a href="{}">{}</a>', url, invoice.number or "Draft")

    @admin.display(description="Period")
    def period_label(self, invoice):
        return f"{invoice.period:%Y-%m}"

    @admin.display(description="Total")
    def invoice_total(self, invoice):
        return format_cny(invoice.total)

    @admin.display(description="Issued on")
    def issued_on(self, invoice):
        return invoice.issue_date.isoformat() if invoice.issue_date else "—"


class RecommendedBalanceFilter(admin.SimpleListFilter):
    title = "recommended balance"
    parameter_name = "recommended"

    def lookups(self, request, model_admin):
        return [("below", "Below recommended balance")]

    def queryset(self, request, queryset):
        if self.value() == "below":
            # The dashboard's list of the same name: one rule for both pages.
            rows = customers_below_recommended(today=_today())
            return queryset.filter(pk__in=[row.customer.pk for row in rows])
        return queryset


class ArrearsFilter(admin.SimpleListFilter):
    title = "arrears"
    parameter_name = "arrears"

    def lookups(self, request, model_admin):
        return [
            ("in_arrears", "In arrears"),
            ("suspended", "Suspended"),
            ("none", "Not in arrears"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "in_arrears":
            return queryset.filter(arrears_since__isnull=False)
        if self.value() == "suspended":
            return queryset.filter(suspended_at__isnull=False)
        if self.value() == "none":
            return queryset.filter(arrears_since__isnull=True)
        return queryset


@admin.register(Customer)
class CustomerAdmin(
    FinanceExportMixin, TitledChangeViewMixin, HistoryViewOnlyMixin, SimpleHistoryAdmin
):
    change_title = "Customer"
    list_display = [
        "name",
        "external_id",
        "transfer_reference",
        "balance_display",
        "recommended_display",
        "days_left_display",
        "arrears_display",
    ]
    list_filter = [ArrearsFilter, RecommendedBalanceFilter]
    search_fields = [
        "name",
        "external_id",
        "transfer_reference",
        "billing_email",
        "applications__app_key",
    ]
    resource_classes = [CustomerResource]
    list_per_page = 50
    inlines = [BillingContactInline, ApplicationInline, LedgerEntryInline, InvoiceInline]
    change_form_template = "admin/accounts/customer/change_form.html"
    fieldsets = [
        (
            "Balance",
            {
                "fields": [
                    "balance_now",
                    "arrears_state",
                    "run_rate",
                    "recommended_balance",
                    "days_left",
                ],
                "description": "The balance is the sum of the ledger. Run-rate: this month's "
                "fees so far. Recommended: three whole months of fees at today's plans and "
                "add-ons; days left at those fees.",
            },
        ),
        (
            "Account",
            {
                "fields": ["external_id", "transfer_reference", "name", "billing_email"],
                "description": "The transfer reference is what the customer writes in a bank "
                "transfer's remark; uploaded bank statements match it (fixed once created).",
            },
        ),
        ("Invoice details", {"fields": ["address", "tax_id"]}),
        (
            "Fapiao details",
            {
                "fields": ["fapiao_phone", "fapiao_bank", "fapiao_bank_account"],
                "description": "Defaults of the customer's fapiao requests (with the name, "
                "tax ID and address above); a special VAT fapiao needs all of them.",
            },
        ),
        ("Contact", {"fields": ["contact_name", "contact_phone"]}),
        (
            "Communications",
            {
                "fields": ["preferred_language", "monthly_statement"],
                "description": "The language of every e-mail, the first language of the PDFs "
                "and the invoice page's default. A monthly statement is one e-mail after each "
                "month's run with the month's invoice, deposits, credit notes and balance.",
            },
        ),
        (
            "Low-balance alert",
            {
                "fields": ["low_balance_alert", "low_balance_amount", "low_balance_alerted_at"],
                "description": "Chosen by the customer on the balance page. Alerted: the alert "
                "of the current crossing was sent; a deposit above the threshold re-arms it.",
            },
        ),
    ]
    financial_fields = [
        "balance_now",
        "arrears_state",
        "run_rate",
        "recommended_balance",
        "days_left",
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # A few lines on the invoice: a text box (the model caps its length).
        if db_field.name == "address":
            kwargs["widget"] = Textarea(attrs={"rows": 3, "cols": 60})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # A changed billing e-mail becomes a contact too (the API contract reads it).
        primary_contact_ensure(customer=form.instance)

    def get_readonly_fields(self, request, obj=None):
        # The console's id is the account's key in other systems: fixed once created.
        return [
            "external_id",
            "transfer_reference",
            "low_balance_alert",
            "low_balance_amount",
            "low_balance_alerted_at",
            *self.financial_fields,
        ]

    def get_queryset(self, request):
        queryset = with_ledger_balance(super().get_queryset(request), name="ledger_total")
        if self._sorted_by_days_left(request):
            queryset = queryset.annotate(days_left_rank=self._days_left_rank(request))
        return queryset

    _LIST_URL_NAMES = frozenset({"accounts_customer_changelist", "accounts_customer_export"})

    def _sorted_by_days_left(self, request) -> bool:
        """The list (or its export) is sorted by days left: only then is every customer's
        figure needed."""
        match = request.resolver_match
        if match is None or match.url_name not in self._LIST_URL_NAMES:
            return False
        columns = list(self.get_list_display(request))
        if self.get_actions(request):
            columns = ["action_checkbox", *columns]
        column = str(columns.index("days_left_display"))
        return any(part.lstrip("-") == column for part in request.GET.get(ORDER_VAR, "").split("."))

    @staticmethod
    def _rated(request) -> dict:
        """Every rated customer's figures, once per request (the list, its filter and its
        export share them)."""
        if not hasattr(request, "_rated_financials"):
            request._rated_financials = rated_financials(today=_today())
        return request._rated_financials

    def _days_left_rank(self, request) -> Case:
        """Days left as a column the database can sort by: the figures are computed by the
        one rule (`financials_from`), then handed to the query grouped by value (a few
        hundred distinct values at most). No fees: NULL, sorted after every number."""
        by_days: dict[int, list[int]] = {}
        for customer_id, figures in self._rated(request).items():
            if figures.days_left is not None:
                by_days.setdefault(figures.days_left, []).append(customer_id)
        return Case(
            *[When(pk__in=ids, then=Value(days)) for days, ids in sorted(by_days.items())],
            default=Value(None),
            output_field=IntegerField(),
        )

    def get_export_resource_kwargs(self, request, **kwargs):
        return {
            **super().get_export_resource_kwargs(request, **kwargs),
            "financials": self._rated(request),
        }

    # The list's run-rate columns are rated for the whole page at once (see changelist_view).
    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Customers", **(extra_context or {})}
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            customers = list(changelist.result_list)
            figures = financials_for_customers(customers=customers, today=_today())
            for customer in customers:
                customer._financials = figures.get(customer.pk)
        return response

    @admin.display(description="Balance", ordering="ledger_total")
    def balance_display(self, customer):
        return format_html(
            '<span class="billing-amount {}">{}</span>',
            "billing-bad" if customer.ledger_total < 0 else "",
            format_cny(customer.ledger_total),
        )

    @staticmethod
    def _list_figures(customer):
        figures = getattr(customer, "_financials", None)
        return None if figures is None or isinstance(figures, Exception) else figures

    @admin.display(description="Recommended")
    def recommended_display(self, customer):
        figures = self._list_figures(customer)
        if figures is None:
            return "—"
        if figures.recommended_balance > 0 and figures.balance < figures.recommended_balance:
            return format_html(
                '<span class="billing-warn">{}</span>', format_cny(figures.recommended_balance)
            )
        return format_cny(figures.recommended_balance)

    @admin.display(description="Days left", ordering=F("days_left_rank").asc(nulls_last=True))
    def days_left_display(self, customer):
        figures = self._list_figures(customer)
        if figures is None or figures.days_left is None:
            return "—"
        return figures.days_left

    @admin.display(description="Arrears")
    def arrears_display(self, customer):
        if customer.arrears_since is None:
            return "—"

        if customer.suspended_at is not None:
            return mark_safe('<span class="billing-bad">suspended</span>')
        return format_html(
            '<span class="billing-warn">suspension on {}</span><br>'
            '<span class="billing-muted">in arrears since {}</span>',
            suspension_date(arrears_since=customer.arrears_since).isoformat(),
            customer.arrears_since.isoformat(),
        )

    # Detail page figures: invoices.selectors.customer_financials, once per request.
    def _financials(self, customer):
        cached = getattr(customer, "_detail_financials", None)
        if cached is None:
            try:
                cached = customer_financials(customer=customer, today=_today())
            except Exception as exc:  # noqa: BLE001 - shown, not hidden: a page must render
                cached = exc
            customer._detail_financials = cached
        return cached

    def _figure(self, customer, render):
        if customer is None or customer.pk is None:
            return "—"
        figures = self._financials(customer)
        if isinstance(figures, Exception):
            return format_html('<span class="billing-bad">cannot rate: {}</span>', figures)
        return render(figures)

    @admin.display(description="Balance now")
    def balance_now(self, customer):
        return self._figure(
            customer,
            lambda f: format_html(
                '<strong class="billing-amount {}" data-testid="balance">{}</strong>',
                "billing-bad" if f.balance < 0 else "",
                format_cny(f.balance),
            ),
        )

    @admin.display(description="Arrears")
    def arrears_state(self, customer):
        def render(f):
            if f.arrears_since is None:
                return "Not in arrears"
            if f.suspended:
                return format_html(
                    '<span class="billing-bad">Suspended (arrears since {})</span>',
                    f.arrears_since.isoformat(),
                )
            return format_html(
                '<span class="billing-warn">In arrears since {}; service is suspended on {} '
                "unless the balance is back to zero or above</span>",
                f.arrears_since.isoformat(),
                f.suspension_date.isoformat(),
            )

        return self._figure(customer, render)

    @admin.display(description="Fees this month (run-rate)")
    def run_rate(self, customer):
        return self._figure(customer, lambda f: format_cny(f.monthly_run_rate))

    @admin.display(description="Recommended balance")
    def recommended_balance(self, customer):
        def render(f):
            if f.recommended_balance > 0 and f.balance < f.recommended_balance:
                return format_html(
                    '{} <span class="billing-warn">(short by {})</span>',
                    format_cny(f.recommended_balance),
                    format_cny(f.recommended_balance - f.balance),
                )
            return format_cny(f.recommended_balance)

        return self._figure(customer, render)

    @admin.display(description="Days the balance lasts")
    def days_left(self, customer):
        return self._figure(
            customer,
            lambda f: (
                "no invoice yet to measure it by"
                if f.days_left is None
                else f"{f.days_left} days at the last invoice ({format_cny(f.last_invoice_debit)} a month)"
            ),
        )

    def get_urls(self):
        return [
            path(
                "<int:customer_id>/deposit/",
                self.admin_site.admin_view(self.deposit_view),
                name="accounts_customer_deposit",
            ),
            path(
                "<int:customer_id>/adjust/",
                self.admin_site.admin_view(self.adjustment_view),
                name="accounts_customer_adjust",
            ),
            path(
                "<int:customer_id>/promo-credit/",
                self.admin_site.admin_view(self.promo_credit_view),
                name="accounts_customer_promo_credit",
            ),
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_record_deposit"] = request.user.has_perm("accounts.add_ledgerentry")
        context["show_save_and_add_another"] = False
        context["can_add_application"] = request.user.has_perm("accounts.add_application")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CustomerCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                customer = customer_create(**form.cleaned_data, now=timezone.now())
            except service_errors() as exc:
                add_service_error(form, exc)
            else:
                self.log_addition(request, customer, [{"added": {}}])
                messages.success(request, f"Customer {customer.name} created.")
                return HttpResponseRedirect(
                    reverse("admin:accounts_customer_change", args=[customer.pk])
                )
        return render_form_page(
            request, model_admin=self, form=form, title="Add customer", submit_label="Create"
        )

    def _ledger_form_view(self, request, customer_id, *, form_class, kind):
        require_perm(request, "accounts.add_ledgerentry")
        customer = get_object_or_404(Customer, pk=customer_id)
        if request.method == "POST":
            form = form_class(request.POST)
            if form.is_valid() and EDIT not in request.POST:
                data = form.cleaned_data
                key = f"admin-{kind}:{data['token']}"
                now = timezone.now()
                preview = balance_change_preview(
                    customer=customer, amount=data["amount"], today=billing_date(now)
                )
                sent_before = (
                    LedgerEntry.objects.filter(idempotency_key=key).exists()
                    or AdjustmentRequest.objects.filter(idempotency_key=key).exists()
                )
                moved = is_confirmed(request) and balance_moved(
                    request, balance=preview.balance_before
                )
                if not sent_before and (not is_confirmed(request) or moved):
                    return self._ledger_confirm_page(
                        request,
                        customer=customer,
                        kind=kind,
                        data=data,
                        preview=preview,
                        moved=moved,
                    )
                try:
                    if kind == PROMO_CREDIT:
                        entry, created = account_services.promo_credit_grant(
                            customer=customer,
                            amount=data["amount"],
                            reason=data["reason"],
                            expires_on=data["expires_on"],
                            granted_by=request.user,
                            now=now,
                            idempotency_key=key,
                        )
                    elif kind == "deposit":
                        entry, created = account_services.record_deposit(
                            customer=customer,
                            amount=data["amount"],
                            reference=data["bank_reference"],
                            idempotency_key=key,
                            now=now,
                            created_by=request.user,
                        )
                    else:
                        submission = account_services.adjustment_submit(
                            customer=customer,
                            amount=data["amount"],
                            reason=data["reason"],
                            idempotency_key=key,
                            submitted_by=request.user,
                            now=now,
                        )
                        entry, created = submission.entry, submission.created
                except service_errors() as exc:
                    add_service_error(form, exc, field_map={"reference": "bank_reference"})
                else:
                    label = LABELS[kind]
                    if entry is None:
                        messages.warning(
                            request,
                            f"Adjustment of {format_cny(submission.request.amount)} proposed: "
                            "it reaches the balance once a finance manager approves it.",
                        )
                    elif created:
                        messages.success(
                            request, f"{label} of {format_cny(entry.amount)} recorded."
                        )
                    else:
                        messages.info(
                            request,
                            f"This {label.lower()} of {format_cny(entry.amount)} was already "
                            "recorded (the form was sent twice); it was not recorded again.",
                        )
                    return HttpResponseRedirect(
                        reverse("admin:accounts_customer_change", args=[customer.pk])
                    )
        else:
            form = form_class(initial={"token": new_form_token()})

        title = TITLES[kind]
        intro = f"Current balance: {format_cny(ledger_balance(customer=customer))}."
        if kind == PROMO_CREDIT:
            intro += (
                f" Paid balance: {format_cny(paid_balance(customer=customer))}; promotional "
                f"credit: {format_cny(promo_credit_held(customer=customer))}."
            )
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            obj=customer,
            title=f"{title}: {customer.name}",
            intro=intro,
            submit_label=f"Record {LABELS[kind].lower()}",
        )

    def _ledger_confirm_page(self, request, *, customer, kind, data, preview, moved):
        amount = format_cny(data["amount"])
        if kind == "deposit":
            facts = [("Deposit", amount), ("Bank reference", data["bank_reference"])]
            notes = []
        elif kind == PROMO_CREDIT:
            facts = [
                ("Promotional credit", amount),
                ("Reason", data["reason"]),
                ("Expires on", data["expires_on"].isoformat()),
            ]
            notes = [
                "Invoices issued through the expiry date use it before the paid balance; what "
                "is left lapses the day after."
            ]
        else:
            facts = [("Adjustment", amount), ("Reason", data["reason"])]
            notes = []
            if account_services.adjustment_needs_approval(
                amount=data["amount"]
            ) and not request.user.has_perm(account_services.APPROVE_ADJUSTMENTS):
                notes.append(
                    "This adjustment needs a finance manager's approval: confirming proposes "
                    "it, and the balance changes only once it is approved."
                )
        label = f"Record {LABELS[kind].lower()}"
        return render_confirm_page(
            request,
            model_admin=self,
            obj=customer,
            title=f"Confirm: {label.lower()} of {amount} for {customer.name}",
            preview=preview,
            facts=facts,
            notes=notes,
            moved=moved,
            submit_label=f"Confirm: {label.lower()}",
        )

    def deposit_view(self, request, customer_id):
        return self._ledger_form_view(request, customer_id, form_class=DepositForm, kind="deposit")

    def promo_credit_view(self, request, customer_id):
        return self._ledger_form_view(
            request, customer_id, form_class=PromoCreditForm, kind=PROMO_CREDIT
        )

    def adjustment_view(self, request, customer_id):
        return self._ledger_form_view(
            request, customer_id, form_class=AdjustmentForm, kind="adjustment"
        )

    def has_delete_permission(self, request, obj=None):
        # Customers carry a ledger and invoices: they are never deleted.
        return False


# --- applications ---------------------------------------------------------------------------


def _current_plan_subquery(today: dt.date):

    return Subquery(
        plan_changes_in_effect(first_day=today, last_day=today)
        .filter(application=OuterRef("pk"))
        .values("plan__name")[:1]
    )


@admin.register(Application)
class ApplicationAdmin(TitledChangeViewMixin, admin.ModelAdmin):
    change_title = "Application"
    list_display = ["app_key", "name", "customer", "current_plan", "status", "data_center"]
    list_filter = ["status", "data_center"]
    search_fields = ["app_key", "name", "customer__name", "customer__external_id"]
    list_select_related = ["customer"]
    list_per_page = 50
    change_form_template = "admin/accounts/application/change_form.html"
    fieldsets = [
        (None, {"fields": ["app_key", "name", "customer", "data_center", "created", "status"]}),
        ("Plan history", {"fields": ["plan_history_table"]}),
        ("Add-ons", {"fields": ["addons_table"]}),
        ("Dedicated-service contracts", {"fields": ["contracts_table"]}),
        ("Usage", {"fields": ["usage_months"]}),
    ]
    readonly_fields = [
        "app_key",
        "customer",
        "data_center",
        "created",
        "status",
        "plan_history_table",
        "addons_table",
        "contracts_table",
        "usage_months",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(plan_name=_current_plan_subquery(_today()))

    @admin.display(description="Plan today")
    def current_plan(self, application):
        return application.plan_name or "—"

    @admin.display(description="Created on")
    def created(self, application):
        return application.created_on.isoformat()

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Applications", **(extra_context or {})})

    @admin.display(description="Plans")
    def plan_history_table(self, application):

        rows = plan_history(application_ids=[application.pk]).get(application.pk, [])
        cancelled = PlanChange.objects.filter(
            application=application, cancelled_at__isnull=False
        ).select_related("plan")
        return render_to_string(
            "admin/billing/_history_rows.html",
            {"rows": rows, "today": _today(), "cancelled": cancelled, "what": "plan"},
        )

    @admin.display(description="Add-ons")
    def addons_table(self, application):

        rows = addon_history(application_ids=[application.pk]).get(application.pk, [])
        rows = sorted(rows, key=lambda row: (row.code, row.first_day))
        return render_to_string(
            "admin/billing/_history_rows.html",
            {"rows": rows, "today": _today(), "what": "add-on", "quantities": True},
        )

    @admin.display(description="Contracts")
    def contracts_table(self, application):
        contracts = application.dedicated_contracts.order_by("first_day")
        return render_to_string(
            "admin/billing/_contracts.html", {"contracts": contracts, "today": _today()}
        )

    @admin.display(description="Months with usage")
    def usage_months(self, application):
        months = application.usage.dates("day", "month", order="DESC")
        return render_to_string(
            "admin/billing/_usage_months.html",
            {"application": application, "months": [Period.containing(m) for m in months]},
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        user = request.user
        context.update(
            show_save_and_add_another=False,
            can_add_contract=user.has_perm("plans.add_dedicatedcontract"),
            can_change_plan=user.has_perm("plans.add_planchange"),
            can_set_addon=user.has_perm("plans.add_addonchange"),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        def view(func, name):
            return path(
                f"<int:application_id>/{name}/",
                self.admin_site.admin_view(func),
                name=f"accounts_application_{name}",
            )

        return [
            view(self.usage_view, "usage"),
            view(self.contract_view, "contract"),
            view(self.plan_view, "plan"),
            view(self.addon_view, "addon"),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApplicationCreateForm(request.POST or None, initial=request.GET.dict())
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                application = application_create(
                    customer=data["customer"],
                    app_key=data["app_key"],
                    name=data["name"],
                    data_center=data["data_center"],
                    now=timezone.now(),
                    created_by=request.user,
                )
            except service_errors() as exc:
                add_service_error(form, exc)
            else:
                self.log_addition(request, application, [{"added": {}}])
                messages.success(
                    request, f"Application {application.app_key} created on the Free plan."
                )
                return HttpResponseRedirect(
                    reverse("admin:accounts_application_change", args=[application.pk])
                )
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            title="Add application",
            intro="A new application starts on the Free plan today.",
            submit_label="Create",
        )

    def usage_view(self, request, application_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        application = get_object_or_404(
            Application.objects.select_related("customer"), pk=application_id
        )

        try:
            period = Period.parse(request.GET.get("period", ""))
        except ValueError:
            period = Period.containing(_today())
        month = usage_month(application=application, period=period)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": application,
            "title": f"Usage of {application.app_key} in {period}",
            "month": month,
            "usage_chart": usage_month_chart(application=application, month=month),
            "period": period,
            "previous_period": period.previous(),
            "next_period": period.next(),
            "invoice": Invoice.objects.filter(
                customer_id=application.customer_id, period=period.start
            ).first(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/billing/usage_month.html", context)

    def _plans_form_view(
        self, request, application_id, *, perm, build_form, call, title, submit, intro=""
    ):
        require_perm(request, perm)
        application = get_object_or_404(
            Application.objects.select_related("customer"), pk=application_id
        )
        change_url = reverse("admin:accounts_application_change", args=[application.pk])
        next_url = _safe_next(request, change_url)
        if request.method == "POST":
            form = build_form(request.POST)
            if form.is_valid():
                try:
                    message = call(application, form.cleaned_data)
                except service_errors() as exc:
                    add_service_error(form, exc)
                else:
                    messages.success(request, message)
                    return HttpResponseRedirect(next_url)
        else:
            form = build_form(None, initial={"token": new_form_token(), **request.GET.dict()})
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            obj=application,
            title=f"{title}: {application.app_key} ({application.customer.name})",
            submit_label=submit,
            intro=intro,
            extra={"next_url": next_url},
        )

    def contract_view(self, request, application_id):
        # Opened from a held invoice (`?period=2026-10`): the contract starts with its month.
        try:
            held_period = Period.parse(request.GET.get("period", ""))
        except ValueError:
            held_period = None
        for_invoice = (
            f"Prefilled for the held invoice of {held_period}: the contract starts on "
            f"{held_period.start.isoformat()}; leave the last day empty for an open-ended "
            f"contract, or set {held_period.end.isoformat()} for that month only. "
            if held_period
            else ""
        )

        def build_form(data, initial=None):
            if held_period and initial is not None:
                initial = {**initial, "first_day": held_period.start}
            return ContractForm(data, initial=initial)

        def call(application, data):

            contract = contract_add(
                application=application,
                monthly_fee=data["monthly_fee"],
                first_day=data["first_day"],
                last_day=data["last_day"],
                reference=data["reference"],
                notes=data["notes"],
                now=timezone.now(),
                created_by=request.user,
            )
            return (
                f"Dedicated-service contract of {format_cny(contract.monthly_fee)} a month from "
                f"{contract.first_day} added to {application.app_key}. Re-rate its invoices "
                "for the change to show."
            )

        return self._plans_form_view(
            request,
            application_id,
            perm="plans.add_dedicatedcontract",
            build_form=build_form,
            call=call,
            title="Add a dedicated-service contract",
            submit="Add contract",
            intro=for_invoice
            + "From its first day the contract's monthly fee prices the application instead "
            "of the DAU table (pro rata for part of a month). Contracts of one application never "
            "overlap, and months already invoiced cannot change. Re-rate a held invoice after.",
        )

    def plan_view(self, request, application_id):

        choices = [(plan.code, plan.name) for plan in Plan.objects.order_by("rank")]

        def call(application, data):

            result = plan_change_request(
                application=application,
                plan_code=data["plan_code"],
                effective_date=data["effective_date"],
                now=timezone.now(),
                created_by=request.user,
            )
            message = f"Plan change to {data['plan_code']} effective {result.effective_date}."
            if result.ended_addons:
                message += f" Ended add-ons: {', '.join(result.ended_addons)}."
            return message

        return self._plans_form_view(
            request,
            application_id,
            perm="plans.add_planchange",
            build_form=lambda data, **kw: PlanChangeForm(data, plan_choices=choices, **kw),
            call=call,
            title="Change plan",
            submit="Change plan",
            intro="An upgrade needs a balance of at least the new plan's minimum deposit and "
            "takes effect on the date; a downgrade takes effect on the 1st of the next month.",
        )

    def addon_view(self, request, application_id):

        choices = [(addon.code, addon.name) for addon in AddOn.objects.order_by("sort_order")]

        def call(application, data):
            if data["quantity"] == 0:
                change = plan_services.addon_end(
                    application=application,
                    addon_code=data["addon_code"],
                    effective_date=data["effective_date"],
                    now=timezone.now(),
                    created_by=request.user,
                )
                return f"Add-on {data['addon_code']} ends from {change.effective_date}."
            change = plan_services.addon_set(
                application=application,
                addon_code=data["addon_code"],
                quantity=data["quantity"],
                effective_date=data["effective_date"],
                now=timezone.now(),
                created_by=request.user,
            )
            return f"Add-on {data['addon_code']} x {change.quantity} from {change.effective_date}."

        return self._plans_form_view(
            request,
            application_id,
            perm="plans.add_addonchange",
            build_form=lambda data, **kw: AddOnForm(data, addon_choices=choices, **kw),
            call=call,
            title="Set an add-on",
            submit="Save add-on",
        )


# --- usage ----------------------------------------------------------------------------------


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["application", "day", "dau", "delivered_messages", "updated_at"]
    list_select_related = ["application"]
    search_fields = ["application__app_key", "application__name"]
    date_hierarchy = "day"
    list_per_page = 100
    change_list_template = "admin/accounts/dailyusage/change_list.html"
    show_full_result_count = False

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="accounts_dailyusage_import",
            )
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_import": request.user.has_perm("accounts.add_dailyusage"),
        }
        return super().changelist_view(request, extra_context)

    def import_view(self, request):
        require_perm(request, "accounts.add_dailyusage")
        form = UsageImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = usage_import_csv(
                    file_obj=form.cleaned_data["file"], now=timezone.now(), changed_by=request.user
                )
            except service_errors() as exc:
                add_service_error(form, exc)
            else:
                messages.success(
                    request,
                    f"Usage imported: {result.created} new rows, {result.updated} replaced, "
                    f"{result.unchanged} unchanged.",
                )
                return HttpResponseRedirect(reverse("admin:accounts_dailyusage_changelist"))
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            title="Import usage from a CSV file",
            intro="A value that differs from the stored one replaces it and keeps a revision; "
            "days of months already invoiced are refused.",
            submit_label="Import",
        )


@admin.register(UsageRevision)
class UsageRevisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "usage",
        "old_dau",
        "new_dau",
        "old_delivered_messages",
        "new_delivered_messages",
        "changed_by",
        "changed_at",
        "source",
    ]
    list_select_related = ["usage", "changed_by"]
    list_filter = ["source"]
    search_fields = ["usage__application__app_key"]


# --- ledger and events ----------------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(FinanceExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Append-only: written by the deposit and adjustment forms and by issuing and crediting.
    Filter by who recorded it: the audit of deposits."""

    list_display = [
        "when",
        "customer_name",
        "kind",
        "amount_display",
        "reference",
        "reason_short",
        "recorded_by",
    ]
    list_display_links = ["when"]
    # The list's totals row (templates/admin/billing/change_list_results_totals.html).
    list_total_field, list_total_column = "amount", "amount_display"
    list_filter = ["kind", ("created_by", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["customer", "created_by"]
    resource_classes = [LedgerEntryResource]
    search_fields = ["customer__name", "customer__external_id", "reference", "reason"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    fields = [
        "customer",
        "kind",
        "amount",
        "reference",
        "reason",
        "created_by",
        "created_at",
        "idempotency_key",
    ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request, {"title": "Ledger: every deposit, debit, credit and adjustment"}
        )

    @admin.display(description="When", ordering="created_at")
    def when(self, entry):
        return format_html('<span class="billing-nowrap">{}</span>', _when(entry.created_at))

    @admin.display(description="Customer", ordering="customer__name")
    def customer_name(self, entry):
        return entry.customer.name

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, entry):
        return _signed_amount_html(amount=entry.amount)

    @admin.display(description="Reason")
    def reason_short(self, entry):
        return entry.reason if len(entry.reason) <= 60 else entry.reason[:57] + "…"

    @admin.display(description="Recorded by", ordering="created_by__username")
    def recorded_by(self, entry):
        return author_of(entry.created_by)


@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(HistoryViewOnlyMixin, ReadOnlyAdminMixin, SimpleHistoryAdmin):
    """Adjustments waiting for a finance manager (proposed by a clerk through the customer's
    "Manual adjustment" page). Approve or reject with the list's actions; the services refuse
    an approval by the proposer, and approving twice posts one ledger entry."""

    list_display = [
        "proposed",
        "customer_name",
        "amount_display",
        "reason_short",
        "status",
        "proposed_by",
        "decided_by",
        "decided",
        "ledger_entry",
    ]
    list_display_links = ["proposed"]
    list_filter = ["status"]
    list_select_related = ["customer", "proposed_by", "decided_by", "ledger_entry"]
    search_fields = ["customer__name", "customer__external_id", "reason"]
    ordering = ["-proposed_at", "-id"]
    actions = ["approve_selected", "reject_selected"]
    fields = [
        "customer",
        "amount",
        "reason",
        "status",
        "proposed_by",
        "proposed_at",
        "decided_by",
        "decided_at",
        "ledger_entry",
    ]

    def has_approve_permission(self, request):
        return request.user.has_perm("accounts.approve_adjustmentrequest")

    @admin.action(description="Approve selected adjustments", permissions=["approve"])
    def approve_selected(self, request, queryset):

        self._decide(request, queryset, decide=adjustment_approve, user_arg="approved_by")

    @admin.action(description="Reject selected adjustments", permissions=["approve"])
    def reject_selected(self, request, queryset):

        self._decide(request, queryset, decide=adjustment_reject, user_arg="rejected_by")

    def _decide(self, request, queryset, *, decide, user_arg):
        done = 0
        for proposal in queryset.select_related("customer"):
            try:
                decide(request=proposal, now=timezone.now(), **{user_arg: request.user})
            except service_errors() as exc:
                messages.error(
                    request,
                    f"{proposal.customer.name} {format_cny(proposal.amount)}: {exc}",
                )
            else:
                done += 1
        if done:
            verb = "approved" if user_arg == "approved_by" else "rejected"
            messages.success(request, f"{done} adjustment(s) {verb}.")

    @admin.display(description="Proposed", ordering="proposed_at")
    def proposed(self, proposal):
        return format_html('<span class="billing-nowrap">{}</span>', _when(proposal.proposed_at))

    @admin.display(description="Decided", ordering="decided_at")
    def decided(self, proposal):
        return _when(proposal.decided_at)

    @admin.display(description="Customer", ordering="customer__name")
    def customer_name(self, proposal):
        return proposal.customer.name

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, proposal):
        return _signed_amount_html(amount=proposal.amount)

    @admin.display(description="Reason")
    def reason_short(self, proposal):
        return proposal.reason if len(proposal.reason) <= 60 else proposal.reason[:57] + "…"


class WebhookDeliveryInline(ReadOnlyTabularInline):
    model = WebhookDelivery
    fields = ["attempted_at", "attempt", "url", "status_code", "succeeded", "error"]
    readonly_fields = fields
    show_change_link = False


@admin.register(CustomerEvent)
class CustomerEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "customer", "kind", "email_sent_at"]
    list_filter = ["kind"]
    list_select_related = ["customer"]
    search_fields = ["customer__name", "customer__external_id"]
    inlines = [EmailDeliveryInline, WebhookDeliveryInline]
    actions = [resend_to_contacts]


@admin.register(CustomerUser)
class CustomerUserAdmin(admin.ModelAdmin):
    """Portal logins: which Django user reads which customer's documents (superusers only)."""

    list_display = ["user", "customer"]
    search_fields = ["user__username", "customer__name", "customer__external_id"]
    autocomplete_fields = ["customer"]
    raw_id_fields = ["user"]


class StaffUserAdmin(DjangoUserAdmin):
    """Users are deactivated, never deleted: what they did is frozen with their id (issued
    invoices, decisions, history rows the database never lets change), so deleting one would
    have the database refuse the cascade. Untick "Active" instead."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
