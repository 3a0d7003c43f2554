"""Request and response shapes of the quote API. Shape and type checks only; what a code
means and what it costs is decided by plans.quotes and the rating engine."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from billingsite.clock import Period
from billingsite.money import CURRENCY

# Beyond these a request is a typo, not a sales question (and would only make huge numbers).
MAX_PEAK_DAU = 1_000_000_000
MAX_DAILY_MESSAGES = 1_000_000_000_000
PERIOD_PATTERN = re.compile(r"^\d{4}-\d{2}$")


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: DRF's IntegerField would take "25000", 25000.0 and
    (via int(True)) booleans, which for a price quote are more likely mistakes than intent."""

    default_error_messages = {
        "invalid": "A whole number is required (a JSON integer, not a string, decimal or boolean)."
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"})
class PeriodField(serializers.CharField):
    default_error_messages = {"invalid": "period must look like 2026-10 (year-month)."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not PERIOD_PATTERN.match(data):
            self.fail("invalid")
        try:
            return Period.parse(data)
        except ValueError:
            self.fail("invalid")

    def to_representation(self, value):
        return str(value)


# Component "QuoteRequest" (COMPONENT_SPLIT_REQUEST appends "Request" to the name).
@extend_schema_serializer(component_name="Quote")
class QuoteRequestSerializer(serializers.Serializer):
    plan = serializers.CharField(max_length=64, help_text="Plan code: free, premium or ultimate.")
    peak_dau = StrictIntegerField(
        min_value=0,
        max_value=MAX_PEAK_DAU,
        help_text="Highest daily active users expected in the period.",
    )
    addons = serializers.DictField(
        child=StrictIntegerField(
            min_value=1,
            error_messages={
                "min_value": "Quantity must be at least 1; leave the add-on out instead."
            },
        ),
        required=False,
        default=dict,
        help_text="Add-on code -> quantity (1 for on/off services, at most the add-on's "
        "max_quantity in the price book), active on the same days as the plan.",
    )
    currency = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=8,
        help_text="Optional; only CNY (or RMB, the same currency) is quoted (anything else: "
        "contract pricing). The answer says CNY.",
    )
    period = PeriodField(
        required=False,
        allow_null=True,
        help_text="Billing month YYYY-MM (Asia/Shanghai); default: the current month.",
    )
    active_from = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="First active day inside the period (pro rata); default: the 1st.",
    )
    active_to = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="Last active day inside the period (pro rata); default: the last day.",
    )
    peak_daily_messages = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_DAILY_MESSAGES,
        help_text="Highest delivered messages on one day; above the plan's daily limit the "
        "application is high-volume and needs a dedicated-service contract.",
    )

    default_error_messages = {"invalid": "The request body must be a JSON object, got {datatype}."}

    def to_internal_value(self, data):
        # A misspelt field ("addon", "peak_DAU") would otherwise be ignored and the quote would
        # silently price something other than what was asked.
        expected = ", ".join(self.fields)
        unknown = {
            name: [f"unknown field; expected one of: {expected}"]
            for name in (sorted(set(data) - set(self.fields)) if isinstance(data, dict) else [])
        }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                exc.detail.update(serializers.ValidationError(unknown).detail)
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class QuoteLineSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Plan code for the DAU fee line, else add-on code.")
    category = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=2)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    days = serializers.IntegerField()
    explanation = serializers.CharField()


class QuoteResponseSerializer(serializers.Serializer):
    """A plans.quotes.Quote."""

    currency = serializers.SerializerMethodField()
    period = serializers.CharField()
    plan = serializers.CharField(source="plan.code")
    plan_name = serializers.CharField(source="plan.name")
    active_from = serializers.DateField()
    active_to = serializers.DateField()
    days = serializers.IntegerField()
    days_in_month = serializers.IntegerField(source="period.days")
    peak_dau = serializers.IntegerField()
    peak_daily_messages = serializers.IntegerField(allow_null=True)
    lines = QuoteLineSerializer(source="rated.lines", many=True)
    total = serializers.DecimalField(source="rated.total", max_digits=14, decimal_places=2)
    high_volume = serializers.BooleanField(source="rated.high_volume")
    message = serializers.CharField(
        allow_null=True, help_text="Why the table price does not apply (high volume), else null."
    )

    def get_currency(self, quote) -> str:
        return CURRENCY
