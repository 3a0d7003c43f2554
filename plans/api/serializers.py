"""Request and response shapes of the quote API. Shape and type checks only; what a code
means and what it costs is decided by plans.quotes and the rating engine."""

from __future__ import annotations

import datetime as dt
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


# --- The request path without building serializers ------------------------------------------
# Building QuoteRequestSerializer and QuoteResponseSerializer deep-copies ~40 DRF fields per
# request: a third of a quote's own CPU (bench/README.md, "The request pipeline"). The two
# functions below give the same validated data and the same response body; the serializers
# stay the definition (and the OpenAPI schema). tests/plans/test_quote_parsing.py holds them
# equal.

_FIELD_NAMES = frozenset(QuoteRequestSerializer._declared_fields)
_PLAIN_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PLAIN_CURRENCY = re.compile(r"^[A-Za-z]{1,8}$")
_PLAIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Larger add-on quantities are refused by the price book's maximum; they take the slow path.
_PLAIN_MAX_QUANTITY = 1_000_000


def _plain_int(value, *, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _plainly_valid(data) -> dict | None:
    """The validated data of a body that every field's DRF check accepts as it is (the
    common case); None for anything else, which the serializer then checks and words."""
    if type(data) is not dict or not _FIELD_NAMES.issuperset(data):
        return None
    plan, peak_dau = data.get("plan"), data.get("peak_dau")
    if type(plan) is not str or not _PLAIN_CODE.match(plan):
        return None
    if not _plain_int(peak_dau, low=0, high=MAX_PEAK_DAU):
        return None
    validated: dict = {"plan": plan, "peak_dau": peak_dau}
    addons = data.get("addons", {})
    if type(addons) is not dict:
        return None
    for code, quantity in addons.items():
        if not _PLAIN_CODE.match(code) or not _plain_int(quantity, low=1, high=_PLAIN_MAX_QUANTITY):
            return None
    validated["addons"] = dict(addons)
    if "currency" in data:
        currency = data["currency"]
        if currency is not None and (
            type(currency) is not str or not _PLAIN_CURRENCY.match(currency)
        ):
            return None
        validated["currency"] = currency
    if "period" in data:
        period = data["period"]
        if period is not None:
            if type(period) is not str or not PERIOD_PATTERN.match(period):
                return None
            try:
                period = Period.parse(period)
            except ValueError:
                return None
        validated["period"] = period
    for name in ("active_from", "active_to"):
        if name in data:
            day = data[name]
            if day is not None:
                if type(day) is not str or not _PLAIN_DATE.match(day):
                    return None
                try:
                    day = dt.date.fromisoformat(day)
                except ValueError:
                    return None
            validated[name] = day
    if "peak_daily_messages" in data:
        messages = data["peak_daily_messages"]
        if messages is not None and not _plain_int(messages, low=0, high=MAX_DAILY_MESSAGES):
            return None
        validated["peak_daily_messages"] = messages
    return validated


def quote_request_data(data) -> dict:
    """QuoteRequestSerializer(data=data)'s validated data; raises its ValidationError."""
    validated = _plainly_valid(data)
    if validated is not None:
        return validated
    serializer = QuoteRequestSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# DRF's own conversion of an amount (COERCE_DECIMAL_TO_STRING, two places), built once.
_AMOUNT = serializers.DecimalField(max_digits=14, decimal_places=2)


def quote_response_body(quote) -> dict:
    """QuoteResponseSerializer(quote).data, for a plans.quotes.Quote."""
    rated = quote.rated
    return {
        "currency": CURRENCY,
        "period": str(quote.period),
        "plan": quote.plan.code,
        "plan_name": quote.plan.name,
        "active_from": quote.active_from.isoformat(),
        "active_to": quote.active_to.isoformat(),
        "days": quote.days,
        "days_in_month": quote.period.days,
        "peak_dau": quote.peak_dau,
        "peak_daily_messages": quote.peak_daily_messages,
        "lines": [
            {
                "code": line.code,
                "category": line.category,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": _AMOUNT.to_representation(line.unit_price),
                "amount": _AMOUNT.to_representation(line.amount),
                "first_day": line.first_day.isoformat(),
                "last_day": line.last_day.isoformat(),
                "days": line.days,
                "explanation": line.explanation,
            }
            for line in rated.lines
        ],
        "total": _AMOUNT.to_representation(rated.total),
        "high_volume": rated.high_volume,
        "message": quote.message,
    }
