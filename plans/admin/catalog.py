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
from django.contrib import admin, messages
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.db.models import QuerySet, TextField
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from accounts.balance_preview import balance_change_preview
from billingsite.admin import (
    HistoryViewOnlyMixin,
    ReadOnlyAdminMixin,
    UniqueRaceFormErrorMixin,
    add_service_error,
    render_form_page,
    require_perm,
)
from billingsite.admin_confirm import EDIT, is_confirmed, render_confirm_page
from billingsite.clock import billing_date
from billingsite.money import AmountTooLarge, format_cny, parse_amount
from plans.models import (
    AddOn,
    AddOnChange,
    AddOnPrice,
    DedicatedContract,
    Discount,
    Plan,
    PlanChange,
    PlanPrice,
    VatRate,
)
from plans.selectors import price_in_force
from plans.services import SubscriptionError, discount_add, discount_end, discount_end_check


def _today() -> dt.date:
    return billing_date(timezone.now())


def price_row_locked(price) -> bool:
    return price_in_force(price=price, today=_today())


class TypedNumbersMixin:
    """The form's number and money fields read what a person types as
    `billingsite.money.parse_amount` does: Django's own fields take "1e3", "NaN" (then refused
    as a number), or full-width digits ("１０" is 10)."""

    def clean(self):
        cleaned = super().clean()
        for name, field in self.fields.items():
            if field.disabled or name in self.errors:
                continue
            if isinstance(field, forms.MultiValueField):  # django-money: amount, currency
                raw = self.data.get(self.add_prefix(name) + "_0", "")
            elif isinstance(field, forms.DecimalField | forms.IntegerField):
                raw = self.data.get(self.add_prefix(name), "")
            else:
                continue
            if not isinstance(raw, str) or not raw.strip():
                continue
            try:
                parse_amount(raw)
            except AmountTooLarge:
                pass  # a number: the field's own limits say how large it may be
            except ValueError:
                self.add_error(name, "Enter a number.")
        return cleaned


class DatedPriceForm(TypedNumbersMixin, forms.ModelForm):
    """Existing rows in force are shown disabled, so a post cannot change them either."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if price_row_locked(self.instance):
            for field in self.fields.values():
                field.disabled = True
        if "valid_from" in self.fields:
            self.fields["valid_from"].help_text = "The 1st of a month; it prices whole months."

    def clean_valid_from(self):
        valid_from = self.cleaned_data["valid_from"]
        if (
            valid_from is not None
            and valid_from <= _today()
            and not price_row_locked(self.instance)
        ):
            raise forms.ValidationError(
                "A price change starts on the 1st of a future month; prices in force (and the "
                "months they billed) are never rewritten."
            )
        return valid_from

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            amount = getattr(value, "amount", None)
            if isinstance(amount, Decimal) and amount < 0:
                self.add_error(name, "A price cannot be negative.")
        return cleaned


class PriceInlineMixin:
    extra = 0
    can_delete = False
    show_change_link = True

    def has_delete_permission(self, request, obj=None):
        return False


class PricesInForceInline(PriceInlineMixin):
    """Rows valid on or before today: shown as text, never edited (they may have billed)."""

    classes = ["billing-prices-in-force"]

    @admin.display(description="Valid from")
    def valid_from_day(self, price):
        return price.valid_from.isoformat()

    @staticmethod
    def _cny(value):
        # None only on a row a hand-edited post added to this read-only inline: that row is
        # never saved, but the page that shows the post's other errors still renders it.
        if value is None:
            return "—"
        return format_html('<span class="billing-amount">{}</span>', format_cny(value))

    def get_queryset(self, request):
        return super().get_queryset(request).filter(valid_from__lte=_today())

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FuturePricesInline(PriceInlineMixin):
    """Rows from a future 1st of the month, and new rows: a change of price is added here."""

    form = DatedPriceForm
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).filter(valid_from__gt=_today())

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        # A plain plan list: adding or editing a plan from inside a price row is not wanted.
        if formfield is not None and isinstance(formfield.widget, RelatedFieldWidgetWrapper):
            formfield.widget = formfield.widget.widget
        return formfield

    def get_formset(self, request, obj=None, **kwargs):
        kwargs.setdefault(
            "widgets",
            {
                # A plain date box: the admin's "Today" shortcut is never a valid answer here.
                "valid_from": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                "note": forms.Textarea(attrs={"rows": 2, "cols": 28}),
                "included_dau": forms.NumberInput(attrs={"style": "width: 7em"}),
                "dau_block_size": forms.NumberInput(attrs={"style": "width: 7em"}),
            },
        )
        return super().get_formset(request, obj, **kwargs)


PLAN_PRICE_FIELDS = [
    "valid_from",
    "minimum_deposit",
    "dau_base_fee",
    "included_dau",
    "dau_block_size",
    "dau_block_price",
    "note",
]


class PlanPricesInForceInline(PricesInForceInline, admin.TabularInline):
    model = PlanPrice
    fields = readonly_fields = [
        "valid_from_day",
        "deposit",
        "base_fee",
        "included_dau",
        "dau_block_size",
        "block_price",
        "note",
    ]

    @admin.display(description="Minimum deposit")
    def deposit(self, price):
        return self._cny(price.minimum_deposit)

    @admin.display(description="DAU base fee")
    def base_fee(self, price):
        return self._cny(price.dau_base_fee)

    @admin.display(description="Per block above the included DAU")
    def block_price(self, price):
        return self._cny(price.dau_block_price)

    ordering = ["-valid_from"]
    verbose_name_plural = "Prices in force and past (read-only: they may have billed a month)"


class PlanPriceInline(FuturePricesInline, admin.TabularInline):
    model = PlanPrice
    fields = PLAN_PRICE_FIELDS
    ordering = ["valid_from"]
    verbose_name = "price from a future month"
    verbose_name_plural = (
        "Price changes: add a row from the 1st of a future month (the price in force stays "
        "until then)"
    )


ADDON_PRICE_FIELDS = ["plan", "valid_from", "availability", "unit_price"]


class AddOnPricesInForceInline(PricesInForceInline, admin.TabularInline):
    model = AddOnPrice
    fields = readonly_fields = ["plan", "valid_from_day", "availability", "price"]

    @admin.display(description="Unit price a month")
    def price(self, price):
        return self._cny(price.unit_price)

    ordering = ["plan__rank", "-valid_from"]
    verbose_name_plural = "Prices in force and past, per plan (read-only)"


class AddOnPriceInline(FuturePricesInline, admin.TabularInline):
    model = AddOnPrice
    fields = ADDON_PRICE_FIELDS
    ordering = ["plan__rank", "valid_from"]
    verbose_name = "price from a future month"
    verbose_name_plural = "Price changes: add a row per plan from the 1st of a future month"


class PriceHistoryMixin(UniqueRaceFormErrorMixin, HistoryViewOnlyMixin):
    """The row's History page lists who saved what, when; nothing can be reverted."""

    formfield_overrides = {TextField: {"widget": forms.Textarea(attrs={"rows": 3, "cols": 70})}}

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["show_save_and_add_another"] = False
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            inline_form.instance._history_user = request.user
        super().save_formset(request, form, formset, change)


def _price_history_html(*, history: QuerySet, url_name: str, addon: bool = False) -> str:
    """The latest 50 saved price rows, newest first: the plan and add-on pages show their
    price changes with the same template (`addon` picks the add-on row wording)."""
    records = history.order_by("-history_date")[:50]
    context = {"records": records, "url_name": url_name}
    if addon:
        context["addon"] = True
    return render_to_string("admin/billing/_price_history.html", context)


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
    inlines = [PlanPricesInForceInline, PlanPriceInline]
    fields = [
        "code",
        "name",
        "name_zh",
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
        return _price_history_html(
            history=PlanPrice.history.filter(plan_id=plan.pk).select_related("history_user"),
            url_name="admin:plans_planprice_history",
        )


@admin.register(AddOn)
class AddOnAdmin(PriceHistoryMixin, SimpleHistoryAdmin):
    list_display = ["name", "code", "category", "unit_description", "is_switch", "max_quantity"]
    list_filter = ["category"]
    search_fields = ["code", "name"]
    inlines = [AddOnPricesInForceInline, AddOnPriceInline]
    fields = [
        "code",
        "name",
        "name_zh",
        "category",
        "unit_description",
        "unit_description_zh",
        "is_switch",
        "max_quantity",
        "requires",
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
        return _price_history_html(
            history=AddOnPrice.history.filter(addon_id=addon.pk).select_related(
                "history_user", "plan"
            ),
            url_name="admin:plans_addonprice_history",
            addon=True,
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


class DiscountForm(TypedNumbersMixin, forms.ModelForm):
    """A new discount is written by `plans.services.discount_add` when the form is cleaned
    (inside the admin's transaction), so its checks and its write are one call under the
    customer's lock: a refusal, also one caused by another user's discount saved a moment
    before, is a form error and nothing is written. A saved one shows its terms as text
    (re-rating a month reads them)."""

    class Meta:
        model = Discount
        fields = [
            "customer",
            "application",
            "percent",
            "amount_off",
            "first_day",
            "last_day",
            "reference",
            "notes",
        ]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.saved: Discount | None = None

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None or self.errors:
            return cleaned
        try:
            self.saved = discount_add(
                customer=cleaned.get("customer"),
                application=cleaned.get("application"),
                percent=cleaned.get("percent"),
                amount_off=cleaned.get("amount_off"),
                first_day=cleaned.get("first_day"),
                last_day=cleaned.get("last_day"),
                reference=cleaned.get("reference", ""),
                notes=cleaned.get("notes", ""),
                now=timezone.now(),
                created_by=self.user,
            )
        except SubscriptionError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, exc.message)
        return cleaned


class DiscountEndForm(forms.Form):
    ends_on = forms.DateField(
        label=_("Last day of the discount"),
        help_text=_(
            "The discount still applies on this day and no longer after it. Never before its "
            "first day, nor in a month already invoiced."
        ),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


@admin.register(Discount)
class DiscountAdmin(PriceHistoryMixin, SimpleHistoryAdmin):
    """Contracted discounts: added here through `plans.services.discount_add`; once saved only
    the reference and notes change (the database refuses the rest), and none is deleted."""

    form = DiscountForm
    list_display = [
        "__str__",
        "customer_or_application",
        "off",
        "first_day",
        "last_day",
        "reference",
        "created_by",
    ]
    list_select_related = ["customer", "application__customer", "created_by"]
    search_fields = [
        "customer__name",
        "application__app_key",
        "application__customer__name",
        "reference",
    ]
    raw_id_fields = ["customer", "application"]
    date_hierarchy = "first_day"
    TERMS = ["customer", "application", "percent", "amount_off", "first_day", "last_day"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["created_at", "created_by"]
        return [*self.TERMS, "created_at", "created_by", "end_early"]

    def get_fields(self, request, obj=None):
        fields = [*self.TERMS, "reference", "notes"]
        return fields if obj is None else [*fields, "created_at", "created_by", "end_early"]

    @admin.display(description=_("End early"))
    def end_early(self, discount):
        url = reverse("admin:plans_discount_end", args=[discount.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("End this discount"))

    def get_urls(self):
        return [
            path(
                "<int:object_id>/end/",
                self.admin_site.admin_view(self.end_view),
                name="plans_discount_end",
            ),
            *super().get_urls(),
        ]

    def end_view(self, request, object_id: int):
        """Set or shorten the last day of a running discount (`plans.services.discount_end`),
        after the confirmation step of the other money actions."""
        require_perm(request, "plans.change_discount")
        discount = get_object_or_404(
            Discount.objects.select_related("customer", "application__customer"), pk=object_id
        )
        customer = discount.customer or discount.application.customer
        form = DiscountEndForm(request.POST or None)
        if request.method == "POST" and form.is_valid() and EDIT not in request.POST:
            ends_on = form.cleaned_data["ends_on"]
            now = timezone.now()
            if not is_confirmed(request):
                try:
                    discount_end_check(discount=discount, ends_on=ends_on, now=now)
                except SubscriptionError as exc:
                    add_service_error(form, exc, field_map={"ends_on": "ends_on"})
                else:
                    return render_confirm_page(
                        request,
                        model_admin=self,
                        obj=discount,
                        title=_("End the discount early"),
                        preview=balance_change_preview(
                            customer=customer, amount=Decimal("0.00"), today=billing_date(now)
                        ),
                        facts=[
                            (_("Discount"), str(discount)),
                            (
                                _("Customer or application"),
                                str(self.customer_or_application(discount)),
                            ),
                            (
                                _("Ends now"),
                                discount.last_day.isoformat()
                                if discount.last_day
                                else _("open end"),
                            ),
                            (_("Ends after this"), ends_on.isoformat()),
                        ],
                        notes=[
                            _(
                                "Bills rated from %(day)s on are without this discount; months "
                                "already invoiced do not change."
                            )
                            % {"day": (ends_on + dt.timedelta(days=1)).isoformat()}
                        ],
                        submit_label=_("End the discount"),
                    )
            else:
                try:
                    discount_end(discount=discount, ends_on=ends_on, now=now, ended_by=request.user)
                except SubscriptionError as exc:
                    add_service_error(form, exc)
                else:
                    messages.success(
                        request,
                        _("%(discount)s now ends on %(day)s.")
                        % {"discount": discount, "day": ends_on.isoformat()},
                    )
                    return HttpResponseRedirect(
                        reverse("admin:plans_discount_change", args=[discount.pk])
                    )
        return render_form_page(
            request,
            model_admin=self,
            form=form,
            obj=discount,
            title=_("End the discount early"),
            submit_label=_("Review"),
            intro=_(
                "The discount ends on the day you give: finance's agreed end of a contracted "
                "discount. It can only end earlier than it does now."
            ),
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class DiscountFormOfUser(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, user=user, **inner)

        return DiscountFormOfUser

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # The form's clean wrote the discount (discount_add); the admin's "added" message
        # and redirect read the saved row.
        obj.pk = form.saved.pk
        obj.created_at = form.saved.created_at

    @admin.display(description=_("Customer or application"))
    def customer_or_application(self, discount):
        if discount.application_id is not None:
            return discount.application
        return discount.customer

    @admin.display(description=_("Off"))
    def off(self, discount):
        if discount.percent is not None:
            return f"{discount.percent.normalize():f}%"
        return _("%(amount)s a month") % {"amount": format_cny(discount.amount_off)}


@admin.register(VatRate)
class VatRateAdmin(DatedPriceAdmin):
    """VAT is dated like prices: a change is a row from the 1st of a future month."""

    list_display = ["valid_from", "rate_percent", "prices_include_vat", "note"]
    fields = ["valid_from", "rate", "prices_include_vat", "note", "created_at"]

    @admin.display(description="Rate", ordering="rate")
    def rate_percent(self, row):
        return f"{row.rate * 100:.2f}%"
