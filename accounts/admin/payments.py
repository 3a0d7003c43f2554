"""Finance's view of online top-ups: every order with its provider trade and deposit, the
review queue (`needs review`), and the daily provider-vs-ledger reconciliation per method."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.models import TopUp
from accounts.payments.reconciliation import daily_reconciliation
from billingsite.admin import ReadOnlyAdminMixin
from billingsite.clock import billing_date
from billingsite.money import format_cny


class NeedsReviewFilter(admin.SimpleListFilter):
    title = "needs review"
    parameter_name = "needs_review"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status=TopUp.Status.NEEDS_REVIEW)
        if self.value() == "no":
            return queryset.exclude(status=TopUp.Status.NEEDS_REVIEW)
        return queryset


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Written by the portal and the providers' verified notifications only."""

    list_display = [
        "number",
        "created",
        "customer_name",
        "method",
        "amount_display",
        "status",
        "provider_trade_no",
        "paid_amount",
        "deposit_link",
        "review_reason",
    ]
    list_filter = ["method", "status", NeedsReviewFilter]
    list_select_related = ["customer", "deposit"]
    search_fields = ["number", "provider_trade_no", "customer__name", "customer__external_id"]
    date_hierarchy = "created_at"
    fields = [
        "number",
        "customer",
        "method",
        "amount",
        "status",
        "review_reason",
        "provider_trade_no",
        "paid_amount",
        "created_at",
        "expires_at",
        "paid_at",
        "settled_at",
        "deposit",
        "notification",
    ]
    readonly_fields = fields

    def get_urls(self):
        return [
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="accounts_topup_reconciliation",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request,
            {
                "title": "Top-up orders (Alipay, WeChat Pay)",
                "reconciliation_url": reverse("admin:accounts_topup_reconciliation"),
                **(extra_context or {}),
            },
        )

    @admin.display(description="Created", ordering="created_at")
    def created(self, top_up):
        return timezone.localtime(top_up.created_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Customer", ordering="customer__name")
    def customer_name(self, top_up):
        return top_up.customer.name

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, top_up):
        return format_cny(top_up.amount.amount)

    @admin.display(description="Deposit")
    def deposit_link(self, top_up):
        if top_up.deposit_id is None:
            return "—"
        url = reverse("admin:accounts_ledgerentry_change", args=[top_up.deposit_id])
        return format_html('<a href="{}">#{}</a>', url, top_up.deposit_id)

    def reconciliation_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = billing_date(timezone.now())
        try:
            day = (
                dt.date.fromisoformat(request.GET.get("day", ""))
                if request.GET.get("day")
                else today
            )
        except ValueError:
            day, error = today, "The day must be YYYY-MM-DD; showing today."
        else:
            error = ""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Top-up reconciliation {day.isoformat()}",
            "day": day,
            "previous_day": day - dt.timedelta(days=1),
            "next_day": day + dt.timedelta(days=1),
            "report": daily_reconciliation(day=day),
            "error": error,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/accounts/topup/reconciliation.html", context)
