"""The price book in the finance back-office.

A change of price is a new dated row (`valid_from`, the 1st of a month), never an edit of a
row that has already billed a month: rows valid on or before today are shown read-only, rows
dated in the future can still be corrected. Every save is recorded by django-simple-history
(who, when, old and new values) and browsable on each row's History page and in the audit
trail. Finance managers edit prices; everyone else reads them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from billingsite.admin import HistoryViewOnlyMixin, ReadOnlyAdminMixin
from billingsite.clock import billing_date
from billingsite.money import format_cny
from plans.models import (
    AddOn,
    AddOnChange,
    AddOnPrice,
    DedicatedContract,
    Plan,
    PlanChange,
    PlanPrice,
)


def _today() -> dt.date:
    return billing_date(timezone.now())


def price_row_locked(price) -> bool:
    """A saved price row that already applies (valid_from <= today) may have billed a month:
    it stays as it is; a new price is a new row."""
    return price is not None and price.pk is not None and price.valid_from <= _today()


class DatedPriceForm(forms.ModelForm):
    """Existing rows in force are shown disabled, so a post cannot change them either."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if price_row_locked(self.instance):
            for field in self.fields.values():
                field.disabled = True
        if "valid_from" in self.fields:
            self.fields["valid_from"].help_text = "The 1st of a month; it prices whole months."

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            amount = getattr(value, "amount", None)
            if isinstance(amount, Decimal) and amount < 0:
                self.add_error(name, "A price cannot be negative.")
        return cleaned


class PriceInlineMixin:
    form = DatedPriceForm
    extra = 0
    can_delete = False
    show_change_link = True

    def has_delete_permission(self, request, obj=None):
        return False


class PlanPriceInline(PriceInlineMixin, admin.TabularInline):
    model = PlanPrice
    fields = [
        "valid_from",
        "minimum_deposit",
        "dau_base_fee",
        "included_dau",
        "dau_block_size",
        "dau_block_price",
        "note",
    ]
    ordering = ["-valid_from"]
    verbose_name_plural = "Prices (a change of price is a new row with a later valid-from)"


class AddOnPriceInline(PriceInlineMixin, admin.TabularInline):
    model = AddOnPrice
    fields = ["plan", "valid_from", "availability", "unit_price"]
    ordering = ["plan__rank", "-valid_from"]
    verbose_name_plural = "Prices per plan (a change of price is a new row)"


class PriceHistoryMixin(HistoryViewOnlyMixin):
    """The row's History page lists who saved what, when; nothing can be reverted."""

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            inline_form.instance._history_user = request.user
        super().save_formset(request, form, formset, change)


@admin.register(Plan)
class PlanAdmin(PriceHistoryMixin, SimpleHistoryAdmin):
    list_display = [
        "name",
        "code",
        "activation",
        "price_today",
        "daily_message_limit",
        "supports_ultragroups",
    ]
    inlines = [PlanPriceInline]
    fields = [
        "code",
        "name",
        "activation",
        "rank",
        "supports_ultragroups",
        "daily_message_limit",
        "notes",
        "price_changes",
    ]

    def get_readonly_fields(self, request, obj=None):
        # Codes are referenced by the API, invoices and the data file: never renamed.
        return ["price_changes", "code"] if obj else ["price_changes"]

    @admin.display(description="Price today")
    def price_today(self, plan):
        price = plan.prices.filter(valid_from__lte=_today()).order_by("-valid_from").first()
        if price is None:
            return "—"
        return (
            f"{format_cny(price.dau_base_fee)} + {format_cny(price.dau_block_price)} "
            f"per {price.dau_block_size:,} DAU above {price.included_dau:,}"
        )

    @admin.display(description="Price change history")
    def price_changes(self, plan):
        if plan.pk is None:
            return "—"
        records = (
            PlanPrice.history.filter(plan_id=plan.pk)
            .select_related("history_user")
            .order_by("-history_date")[:50]
        )
        return render_to_string(
            "admin/billing/_price_history.html",
            {"records": records, "url_name": "admin:plans_planprice_history"},
        )


@admin.register(AddOn)
class AddOnAdmin(PriceHistoryMixin, SimpleHistoryAdmin):
    list_display = ["name", "code", "category", "unit_description", "is_switch"]
    list_filter = ["category"]
    search_fields = ["code", "name"]
    inlines = [AddOnPriceInline]
    fields = [
        "code",
        "name",
        "category",
        "unit_description",
        "is_switch",
        "sort_order",
        "notes",
        "price_changes",
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["price_changes", "code"] if obj else ["price_changes"]

    @admin.display(description="Price change history")
    def price_changes(self, addon):
        if addon.pk is None:
            return "—"
        records = (
            AddOnPrice.history.filter(addon_id=addon.pk)
            .select_related("history_user", "plan")
            .order_by("-history_date")[:50]
        )
        return render_to_string(
            "admin/billing/_price_history.html",
            {"records": records, "url_name": "admin:plans_addonprice_history", "addon": True},
        )


class DatedPriceAdmin(PriceHistoryMixin, SimpleHistoryAdmin):
    form = DatedPriceForm
    date_hierarchy = "valid_from"

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # A row in force is read by everyone and changed by no one (it may have billed).
        if price_row_locked(obj):
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["created_at"]


@admin.register(PlanPrice)
class PlanPriceAdmin(DatedPriceAdmin):
    list_display = [
        "plan",
        "valid_from",
        "minimum_deposit",
        "dau_base_fee",
        "included_dau",
        "dau_block_size",
        "dau_block_price",
    ]
    list_filter = ["plan"]
    list_select_related = ["plan"]


@admin.register(AddOnPrice)
class AddOnPriceAdmin(DatedPriceAdmin):
    list_display = ["addon", "plan", "valid_from", "availability", "unit_price"]
    list_filter = ["plan", "availability", "addon__category"]
    list_select_related = ["addon", "plan"]
    search_fields = ["addon__code", "addon__name"]


@admin.register(DedicatedContract)
class DedicatedContractAdmin(PriceHistoryMixin, SimpleHistoryAdmin):
    """Contracts are added from their application ("Add dedicated-service contract", which calls
    plans.services.contract_add). Here finance reads them and may fix the reference or notes;
    the fee and days are what re-rating uses, so they are fixed once saved."""

    list_display = [
        "application",
        "customer",
        "monthly_fee_display",
        "first_day",
        "last_day",
        "reference",
        "created_by",
    ]
    list_select_related = ["application__customer", "created_by"]
    search_fields = ["application__app_key", "application__customer__name", "reference"]
    fields = [
        "application_link",
        "monthly_fee",
        "first_day",
        "last_day",
        "reference",
        "notes",
        "created_at",
        "created_by",
    ]
    readonly_fields = [
        "application_link",
        "monthly_fee",
        "first_day",
        "last_day",
        "created_at",
        "created_by",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Customer")
    def customer(self, contract):
        return contract.application.customer.name

    @admin.display(description="Monthly fee", ordering="monthly_fee")
    def monthly_fee_display(self, contract):
        return format_cny(contract.monthly_fee)

    @admin.display(description="Application")
    def application_link(self, contract):
        url = reverse("admin:accounts_application_change", args=[contract.application_id])
        return format_html('<a href="{}">{}</a>', url, contract.application)


class ChangeRowAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Plan and add-on decisions are append-only rows written by plans.services."""

    list_select_related = ["application", "created_by"]
    search_fields = ["application__app_key", "application__customer__name"]
    date_hierarchy = "effective_date"


@admin.register(PlanChange)
class PlanChangeAdmin(ChangeRowAdmin):
    list_display = [
        "application",
        "plan",
        "effective_date",
        "requested_date",
        "created_by",
        "created_at",
        "cancelled_at",
    ]
    list_filter = ["plan"]
    list_select_related = ["application", "created_by", "plan"]


@admin.register(AddOnChange)
class AddOnChangeAdmin(ChangeRowAdmin):
    list_display = [
        "application",
        "addon",
        "quantity",
        "effective_date",
        "created_by",
        "created_at",
        "cancelled_at",
    ]
    list_filter = ["addon"]
    list_select_related = ["application", "created_by", "addon"]
