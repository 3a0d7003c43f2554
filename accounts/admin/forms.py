"""Admin forms for customers and applications. They check the shape of the input only; the
rules (minimum deposits, availability of add-ons, billed months...) are the services', whose
refusals the admin shows as errors on these forms."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Application, Customer
from accounts.services import MAX_REASON_LENGTH
from billingsite.money import AmountTooLarge, parse_amount
from plans.models import ADDON_QUANTITY_CEILING

# A CSV of a month of usage for thousands of applications stays well below this.
MAX_USAGE_CSV_BYTES = 20 * 1024 * 1024
MAX_AMOUNT = Decimal("999999999999.99")
# The browser's date picker; it posts ISO dates whatever the reader's locale shows.
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class TokenField(forms.CharField):
    """The hidden per-page token that becomes the idempotency key of the write."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        try:
            uuid.UUID(hex=value)
        except ValueError:
            raise ValidationError(
                "This form is stale or was tampered with; reload the page."
            ) from None
        return value


class CnyAmountField(forms.DecimalField):
    """A CNY amount as finance types it: "6000.00" or "6,000.00" (grouping commas are
    accepted only in their right places, so "60,00" is still refused, not read as 6000).
    What may be typed is `billingsite.money.parse_amount`'s: no exponent, NaN or Infinity."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                value = parse_amount(value)
            except AmountTooLarge:
                # A well-formed number: the maximum's message says how large it may be.
                value = value.strip().removeprefix("¥").strip().replace(",", "")
            except ValueError:
                raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        return super().to_python(value)


def money_field(*, label: str, help_text: str = "", allow_negative: bool = False):
    return CnyAmountField(
        label=label,
        max_digits=14,
        decimal_places=2,
        min_value=None if allow_negative else Decimal("0.01"),
        max_value=MAX_AMOUNT,
        help_text=help_text,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


class DepositForm(forms.Form):
    amount = money_field(label="Amount (CNY)", help_text="What the bank received, e.g. 6000.00")
    bank_reference = forms.CharField(
        max_length=200,
        help_text="The bank's transaction reference, as on the statement.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 40}),
    )
    token = TokenField()

    def clean_bank_reference(self):
        reference = self.cleaned_data["bank_reference"].strip()
        if not reference:
            raise ValidationError("The bank reference is required.")
        return reference


class AdjustmentForm(forms.Form):
    amount = money_field(
        label="Amount (CNY)",
        help_text="Positive gives the customer money (above the approval limit it waits for a "
        "finance manager's approval), negative takes it away.",
        allow_negative=True,
    )
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: why the balance is corrected. The customer may see it.",
    )
    token = TokenField()

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise ValidationError("An adjustment of 0.00 changes nothing.")
        if amount < -MAX_AMOUNT:
            raise ValidationError("This amount is too large.")
        return amount

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("A manual adjustment needs a reason.")
        return reason


class PromoCreditForm(forms.Form):
    amount = money_field(
        label="Amount (CNY)",
        help_text="Promotional credit, kept apart from the paid balance; invoices use it first.",
    )
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: why it is granted (e.g. the campaign). The customer sees it.",
    )
    expires_on = forms.DateField(
        label="Expires on",
        help_text="The last day (Asia/Shanghai) it can pay an invoice; after it, what is left "
        "lapses. YYYY-MM-DD, after today.",
        widget=DATE_INPUT,
    )
    token = TokenField()


class UsageImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Header: app_key,date,dau,delivered_messages (date as 2026-10-31). "
        "All rows are checked first; any bad row and nothing is imported.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".csv"):
            raise ValidationError("Choose a .csv file.")
        if upload.size == 0:
            raise ValidationError("The file is empty.")
        if upload.size > MAX_USAGE_CSV_BYTES:
            raise ValidationError(
                f"The file is larger than {MAX_USAGE_CSV_BYTES // (1024 * 1024)} MB; split it."
            )
        return upload


class CustomerCreateForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = [
            "external_id",
            "name",
            "billing_email",
            "address",
            "tax_id",
            "contact_name",
            "contact_phone",
            "preferred_language",
        ]
        widgets = {"address": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Optional as in the API: English unless finance picks Chinese.
        self.fields["preferred_language"].required = False

    def clean_preferred_language(self):
        return self.cleaned_data.get("preferred_language") or Customer.Language.ENGLISH


class ApplicationCreateForm(forms.ModelForm):
    class Meta:
        model = Application
        fields = ["customer", "app_key", "name", "data_center"]
        help_texts = {
            "app_key": "The IM platform's app key; it can never change or be reused.",
        }


class ContractForm(forms.Form):
    monthly_fee = money_field(label="Monthly fee (CNY)", help_text="The negotiated fee a month.")
    first_day = forms.DateField(
        help_text="The first day the contract fee replaces the DAU table.",
        widget=DATE_INPUT,
    )
    last_day = forms.DateField(
        required=False,
        help_text="The last day it applies; leave empty for an open-ended contract.",
        widget=DATE_INPUT,
    )
    reference = forms.CharField(max_length=100, required=False, help_text="Contract number.")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    token = TokenField()

    def clean(self):
        cleaned = super().clean()
        first_day, last_day = cleaned.get("first_day"), cleaned.get("last_day")
        if first_day and last_day and last_day < first_day:
            self.add_error("last_day", "The last day cannot be before the first day.")
        return cleaned


class PlanChangeForm(forms.Form):
    plan_code = forms.ChoiceField(label="New plan")
    effective_date = forms.DateField(
        help_text="Upgrades take effect on this day (today at the earliest); downgrades on "
        "the 1st of the next month.",
        widget=DATE_INPUT,
    )
    token = TokenField()

    def __init__(self, *args, plan_choices: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan_code"].choices = plan_choices


class AddOnForm(forms.Form):
    addon_code = forms.ChoiceField(label="Add-on")
    quantity = forms.IntegerField(
        min_value=0,
        max_value=ADDON_QUANTITY_CEILING,
        help_text="0 ends the add-on; on/off services use 1; at most the add-on's maximum "
        "quantity in the price book.",
    )
    effective_date = forms.DateField(
        help_text="A start or more: today at the earliest; less or an end: tomorrow at the "
        "earliest (today is billed).",
        widget=DATE_INPUT,
    )
    token = TokenField()

    def __init__(self, *args, addon_choices: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["addon_code"].choices = addon_choices
