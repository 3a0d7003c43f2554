"""Admin forms for invoices, credit notes and billing runs: input shape only. Whether a line
may be credited by that much, or a period billed now, is for the services to say."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from accounts.admin.forms import CnyAmountField, TokenField
from accounts.services import MAX_REASON_LENGTH
from billingsite.clock import Period
from billingsite.money import format_cny


class CreditNoteForm(forms.Form):
    WHOLE, LINES = "whole", "lines"

    mode = forms.ChoiceField(
        label="What to credit",
        choices=[
            (WHOLE, "The whole invoice (everything not credited yet)"),
            (LINES, "Chosen lines, with the amounts below"),
        ],
        widget=forms.RadioSelect,
        initial=LINES,
    )
    reason = forms.CharField(
        max_length=MAX_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Printed on the credit note; say what was wrong.",
    )
    token = TokenField()

    def __init__(self, *args, lines, remaining: dict[int, Decimal], **kwargs):
        """`lines`: the invoice's lines; `remaining`: per line id, what is left to credit."""
        super().__init__(*args, **kwargs)
        self.line_fields: list[tuple] = []
        for line in lines:
            left = remaining.get(line.pk, Decimal("0.00"))
            if left <= 0:
                continue
            name = f"line_{line.pk}"
            self.fields[name] = CnyAmountField(
                label=f"{line.app_key} · {line.description}",
                required=False,
                max_digits=14,
                decimal_places=2,
                min_value=Decimal("0.01"),
                max_value=left,
                help_text=f"up to {format_cny(left)}",
                widget=forms.TextInput(
                    attrs={"inputmode": "decimal", "size": 12, "autocomplete": "off"}
                ),
            )
            self.line_fields.append((line, self[name], left))

    def clean(self):
        cleaned = super().clean()
        amounts = {
            line.pk: cleaned[f"line_{line.pk}"]
            for line, _field, _left in self.line_fields
            if cleaned.get(f"line_{line.pk}") is not None
        }
        mode = cleaned.get("mode")
        if not self.line_fields:
            raise ValidationError("Everything on this invoice has been credited already.")
        if mode == self.LINES and not amounts and not self.errors:
            raise ValidationError("Enter the amount to credit on at least one line.")
        if mode == self.WHOLE and amounts:
            raise ValidationError(
                "Either credit the whole invoice or enter line amounts, not both."
            )
        cleaned["line_amounts"] = amounts if mode == self.LINES else None
        return cleaned


class BillingRunStartForm(forms.Form):
    period = forms.CharField(
        max_length=7,
        help_text="The month to bill, as YYYY-MM (e.g. 2026-10).",
        widget=forms.TextInput(attrs={"placeholder": "2026-10", "size": 10}),
    )
    # Set by the confirmation page: the first post only shows how many accounts it will bill.
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, today, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def clean_period(self):
        try:
            period = Period.parse(self.cleaned_data["period"].strip())
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if period >= Period.containing(self.today):
            # A month is billed once it is over (settled at 24:00 on its last day).
            raise ValidationError(f"{period} has not ended yet; bill a past month.")
        return period
