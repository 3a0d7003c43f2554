"""Request and response shapes of the provisioning and usage API. Validation of business
rules lives in the services; these only check types and shape the JSON."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Application, Customer
from accounts.services import IDENTIFIER_PATTERN
from accounts.usage import MAX_DAU, MAX_MESSAGES
from billingsite.money import format_amount

# What the services accept for an external_id / app_key, and for a plan or add-on code (codes
# are price-book data, not a fixed list: a slug).
IDENTIFIER_SCHEMA = {
    "type": "string",
    "pattern": IDENTIFIER_PATTERN.pattern,
    "minLength": 1,
    "maxLength": 64,
}
CODE_SCHEMA = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "minLength": 1, "maxLength": 64}


@extend_schema_field(IDENTIFIER_SCHEMA)
class IdentifierField(serializers.CharField):
    """An external_id or app_key. Checked by the services (the API's message names the rule);
    the schema publishes the pattern."""

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)


@extend_schema_field(
    {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "example": "2026-10"}
)
class PeriodTextField(serializers.CharField):
    """A billing month in answers, YYYY-MM."""


@extend_schema_field({**CODE_SCHEMA, "maxLength": 32})
class PlanCodeField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=32, **kwargs)


@extend_schema_field(CODE_SCHEMA)
class AddOnCodeField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: refuses 1.5, "2" and true instead of coercing them."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class AmountField(serializers.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(max_digits=14, decimal_places=2, **kwargs)


# --- errors --------------------------------------------------------------------------------


class DetailSerializer(serializers.Serializer):
    """DRF's refusal before the view runs: no or unknown token (401), wrong role (403)."""

    detail = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The rule that refused the request.")
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, required=False)
    errors = serializers.DictField(
        required=False, help_text="Field messages, for invalid fields (code `invalid`)."
    )


class InsufficientDepositSerializer(serializers.Serializer):
    code = serializers.CharField(default="insufficient_deposit")
    required = serializers.CharField(help_text="The plan's minimum deposit, e.g. 8000.00.")
    balance = serializers.CharField(help_text="The customer's balance, e.g. 5000.00.")


# --- customers -----------------------------------------------------------------------------


class CustomerCreateSerializer(serializers.Serializer):
    external_id = IdentifierField()
    name = serializers.CharField(max_length=200)
    billing_email = serializers.EmailField(max_length=254)
    address = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=Customer._meta.get_field("address").max_length,
    )
    tax_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    contact_name = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200
    )
    contact_phone = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=64
    )


class CustomerSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    billing_email = serializers.EmailField()
    address = serializers.CharField()
    tax_id = serializers.CharField()
    contact_name = serializers.CharField()
    contact_phone = serializers.CharField()
    status = serializers.ChoiceField(choices=Application.Status.choices)
    balance = serializers.CharField(help_text="Sum of the prepaid ledger, CNY.")
    in_arrears_since = serializers.DateField(allow_null=True)
    suspension_date = serializers.DateField(
        allow_null=True, help_text="First day without service if the arrears are not restored."
    )
    recommended_balance = serializers.CharField(
        help_text="Three whole months of fees at today's plans and add-ons."
    )
    monthly_run_rate = serializers.CharField(help_text="This month's estimated bill.")


def customer_payload(*, customer, financials) -> dict:
    return {
        "external_id": customer.external_id,
        "name": customer.name,
        "billing_email": customer.billing_email,
        "address": customer.address,
        "tax_id": customer.tax_id,
        "contact_name": customer.contact_name,
        "contact_phone": customer.contact_phone,
        "status": "suspended" if financials.suspended else "active",
        "balance": format_amount(financials.balance),
        "in_arrears_since": financials.arrears_since,
        "suspension_date": financials.suspension_date,
        "recommended_balance": format_amount(financials.recommended_balance),
        "monthly_run_rate": format_amount(financials.monthly_run_rate),
    }


class DepositRequestSerializer(serializers.Serializer):
    amount = AmountField(help_text='CNY, positive, at most two decimals, e.g. "6000.00".')
    reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="Bank reference."
    )
    currency = serializers.CharField(
        required=False, default="CNY", help_text="Only CNY is accepted (may be omitted)."
    )


class DepositSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer = serializers.CharField(help_text="external_id")
    amount = serializers.CharField()
    currency = serializers.CharField()
    reference = serializers.CharField()
    idempotency_key = serializers.CharField()
    created_at = serializers.DateTimeField()
    balance_after = serializers.CharField(help_text="Balance right after this deposit.")


# --- applications --------------------------------------------------------------------------


class ApplicationCreateSerializer(serializers.Serializer):
    app_key = IdentifierField()
    name = serializers.CharField(max_length=200)
    customer = IdentifierField(help_text="The customer's external_id.")
    data_center = serializers.ChoiceField(choices=Application.DataCenter.values)


class PlanRowSerializer(serializers.Serializer):
    plan = serializers.CharField()
    name = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField(allow_null=True)


class AddOnRowSerializer(serializers.Serializer):
    addon = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    first_day = serializers.DateField()
    last_day = serializers.DateField(allow_null=True)


class ContractRowSerializer(serializers.Serializer):
    monthly_fee = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField(allow_null=True)
    reference = serializers.CharField()


class ApplicationSerializer(serializers.Serializer):
    app_key = serializers.CharField()
    name = serializers.CharField()
    customer = serializers.CharField()
    data_center = serializers.CharField()
    status = serializers.ChoiceField(choices=Application.Status.choices)
    created_on = serializers.DateField()
    current_plan = PlanRowSerializer(allow_null=True)
    plan_history = PlanRowSerializer(many=True)
    addons = AddOnRowSerializer(many=True, help_text="Add-ons active today.")
    addon_history = AddOnRowSerializer(many=True)
    dedicated_contracts = ContractRowSerializer(many=True)


class PlanChangeRequestSerializer(serializers.Serializer):
    plan = PlanCodeField(help_text="Plan code, e.g. premium.")
    effective_date = serializers.DateField()


class PlanChangeSerializer(serializers.Serializer):
    application = serializers.CharField()
    plan = serializers.CharField()
    requested_date = serializers.DateField()
    effective_date = serializers.DateField(
        help_text="The day it really takes effect: a downgrade moves to the 1st of next month."
    )
    kind = serializers.ChoiceField(choices=["upgrade", "downgrade", "unchanged"])
    ended_addons = serializers.ListField(
        child=serializers.CharField(), help_text="Add-ons ended because the plan lacks them."
    )
    cancelled_changes = PlanRowSerializer(many=True)


class AddOnRequestSerializer(serializers.Serializer):
    addon = AddOnCodeField(help_text="Add-on code, e.g. sensitive_words.")
    quantity = StrictIntegerField()
    effective_date = serializers.DateField()


class AddOnUpdateSerializer(serializers.Serializer):
    quantity = StrictIntegerField()
    effective_date = serializers.DateField()


class AddOnEndSerializer(serializers.Serializer):
    effective_date = serializers.DateField()


class AddOnChangeSerializer(serializers.Serializer):
    application = serializers.CharField()
    addon = serializers.CharField()
    quantity = serializers.IntegerField(help_text="0 when ended.")
    effective_date = serializers.DateField()


# --- estimate and invoices -----------------------------------------------------------------


class PricedLineSerializer(serializers.Serializer):
    app_key = serializers.CharField()
    code = serializers.CharField()
    category = serializers.CharField()
    plan_code = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.CharField()
    amount = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    days = serializers.IntegerField()
    peak_dau = serializers.IntegerField(allow_null=True)
    peak_day = serializers.DateField(allow_null=True)
    explanation = serializers.CharField()


def line_payload(line) -> dict:
    """A rating engine PricedLine or an InvoiceLine, as JSON with string amounts."""
    return {
        "app_key": line.app_key,
        "code": line.code,
        "category": line.category,
        "plan_code": line.plan_code,
        "description": line.description,
        "quantity": line.quantity,
        "unit_price": format_amount(line.unit_price),
        "amount": format_amount(line.amount),
        "first_day": line.first_day,
        "last_day": line.last_day,
        "days": line.days,
        "peak_dau": line.peak_dau,
        "peak_day": line.peak_day,
        "explanation": line.explanation,
    }


class EstimateSerializer(serializers.Serializer):
    customer = serializers.CharField()
    period = PeriodTextField(help_text="YYYY-MM")
    as_of = serializers.DateField()
    total = serializers.CharField()
    hold_reasons = serializers.ListField(child=serializers.CharField())
    lines = PricedLineSerializer(many=True)


class CreditNoteRowSerializer(serializers.Serializer):
    number = serializers.CharField()
    total = serializers.CharField()
    issue_date = serializers.DateField()
    reason = serializers.CharField()


class InvoiceSerializer(serializers.Serializer):
    number = serializers.CharField()
    period = PeriodTextField(help_text="YYYY-MM")
    status = serializers.CharField()
    issue_date = serializers.DateField()
    total = serializers.CharField()
    lines = PricedLineSerializer(many=True)
    credit_notes = CreditNoteRowSerializer(many=True)


# --- usage ---------------------------------------------------------------------------------


class UsageRowSerializer(serializers.Serializer):
    """Documentation only: the ingest validates rows in bulk without DRF for speed."""

    app_key = IdentifierField()
    date = serializers.DateField(help_text="Asia/Shanghai day, not in the future.")
    dau = serializers.IntegerField(min_value=0, max_value=MAX_DAU)
    delivered_messages = serializers.IntegerField(min_value=0, max_value=MAX_MESSAGES)


class IngestResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Replaced values (each left a revision).")
    unchanged = serializers.IntegerField()


class UsageRowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(allow_null=True, help_text="Row position, from 0.")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class UsageErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    errors = UsageRowErrorSerializer(many=True, required=False)
    conflicts = serializers.ListField(child=serializers.DictField(), required=False)
