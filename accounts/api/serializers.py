"""Request and response shapes of the provisioning and usage API. Validation of business
rules lives in the services; request serializers only check types, response serializers are
what the views answer (so the published schema is what the code returns). Refusals have the
API's one error shape (billingsite.api_errors)."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Application, Customer
from accounts.services import IDENTIFIER_PATTERN
from accounts.usage import MAX_DAU, MAX_MESSAGES
from billingsite.money import CURRENCY, format_amount

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
class PeriodTextField(serializers.Field):
    """A billing month in answers, YYYY-MM (from a Period or the date of its 1st)."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return value if isinstance(value, str) else f"{value.year:04d}-{value.month:02d}"


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


@extend_schema_field({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "example": "6000.00"})
class AmountTextField(serializers.Field):
    """An amount in answers: CNY, a string with two decimals (from a Decimal or Money)."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return format_amount(value)


@extend_schema_field({"type": "string", "enum": [CURRENCY]})
class CurrencyField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(read_only=True, source="*", **kwargs)

    def to_representation(self, value):
        return CURRENCY


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
    preferred_language = serializers.ChoiceField(
        choices=Customer.Language.choices,
        required=False,
        default=Customer.Language.ENGLISH,
        help_text="Language of the customer's e-mails and PDFs: `en` (default) or `zh-hans`.",
    )


class CustomerSerializer(serializers.Serializer):
    """{"customer": Customer, "financials": invoices.selectors.CustomerFinancials}."""

    external_id = serializers.CharField(source="customer.external_id")
    name = serializers.CharField(source="customer.name")
    billing_email = serializers.EmailField(source="customer.billing_email")
    address = serializers.CharField(source="customer.address")
    tax_id = serializers.CharField(source="customer.tax_id")
    contact_name = serializers.CharField(source="customer.contact_name")
    contact_phone = serializers.CharField(source="customer.contact_phone")
    preferred_language = serializers.ChoiceField(
        source="customer.preferred_language", choices=Customer.Language.choices
    )
    transfer_reference = serializers.CharField(
        source="customer.transfer_reference",
        read_only=True,
        help_text="What the customer writes in the remark of a bank transfer, so the deposit "
        "finds its account (given by the billing system; never changes).",
    )
    status = serializers.SerializerMethodField()
    balance = AmountTextField(source="financials.balance", help_text="Sum of the prepaid ledger.")
    in_arrears_since = serializers.DateField(source="financials.arrears_since", allow_null=True)
    suspension_date = serializers.DateField(
        source="financials.suspension_date",
        allow_null=True,
        help_text="First day without service if the arrears are not restored.",
    )
    recommended_balance = AmountTextField(
        source="financials.recommended_balance",
        help_text="Three whole months of fees at today's plans and add-ons.",
    )
    monthly_run_rate = AmountTextField(
        source="financials.monthly_run_rate", help_text="This month's estimated bill."
    )

    @extend_schema_field(serializers.ChoiceField(choices=Application.Status.choices))
    def get_status(self, value) -> str:
        status = Application.Status
        return (status.SUSPENDED if value["financials"].suspended else status.ACTIVE).value


class DepositRequestSerializer(serializers.Serializer):
    amount = AmountField(help_text='CNY, positive, at most two decimals, e.g. "6000.00".')
    reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="Bank reference."
    )
    currency = serializers.CharField(
        required=False, default="CNY", help_text="Only CNY is accepted (may be omitted)."
    )


class DepositSerializer(serializers.Serializer):
    """{"entry": LedgerEntry, "customer": Customer, "key": str, "balance_after": Decimal}."""

    id = serializers.IntegerField(source="entry.pk")
    customer = serializers.CharField(source="customer.external_id", help_text="external_id")
    amount = AmountTextField(source="entry.amount")
    currency = CurrencyField()
    reference = serializers.CharField(source="entry.reference")
    idempotency_key = serializers.CharField(source="key")
    created_at = serializers.DateTimeField(source="entry.created_at")
    balance_after = AmountTextField(help_text="Balance right after this deposit.")


# --- applications --------------------------------------------------------------------------


class ApplicationCreateSerializer(serializers.Serializer):
    app_key = IdentifierField()
    name = serializers.CharField(max_length=200)
    customer = IdentifierField(help_text="The customer's external_id.")
    data_center = serializers.ChoiceField(choices=Application.DataCenter.values)


class PlanRowSerializer(serializers.Serializer):
    """A row of plans.selectors.plan_history."""

    plan = serializers.CharField(source="code")
    name = serializers.CharField()
    first_day = serializers.DateField()
    last_day = serializers.DateField(allow_null=True)


class CancelledPlanChangeSerializer(PlanRowSerializer):
    """A pending plans.models.PlanChange a newer decision cancelled, as a plan row."""

    plan = serializers.CharField(source="plan.code")
    name = serializers.CharField(source="plan.name")
    first_day = serializers.DateField(source="effective_date")
    last_day = serializers.SerializerMethodField()

    class Meta:
        # The same component as a plan row: the schema does not tell them apart.
        ref_name = None

    def get_last_day(self, change) -> dt.date | None:
        return None


class AddOnRowSerializer(serializers.Serializer):
    """A row of plans.selectors.addon_history."""

    addon = serializers.CharField(source="code")
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    first_day = serializers.DateField()
    last_day = serializers.DateField(allow_null=True)


class ContractRowSerializer(serializers.Serializer):
    monthly_fee = AmountTextField()
    first_day = serializers.DateField()
    last_day = serializers.DateField(allow_null=True)
    reference = serializers.CharField()


class ApplicationSerializer(serializers.Serializer):
    """{"application": Application, "current_plan", "plan_history", "addons",
    "addon_history": history rows, "dedicated_contracts": DedicatedContract rows}."""

    app_key = serializers.CharField(source="application.app_key")
    name = serializers.CharField(source="application.name")
    customer = serializers.CharField(source="application.customer.external_id")
    data_center = serializers.CharField(source="application.data_center")
    status = serializers.ChoiceField(
        source="application.status", choices=Application.Status.choices
    )
    created_on = serializers.DateField(source="application.created_on")
    current_plan = PlanRowSerializer(allow_null=True)
    plan_history = PlanRowSerializer(many=True)
    addons = AddOnRowSerializer(many=True, help_text="Add-ons active today.")
    addon_history = AddOnRowSerializer(many=True)
    dedicated_contracts = ContractRowSerializer(many=True)


class PlanChangeRequestSerializer(serializers.Serializer):
    plan = PlanCodeField(help_text="Plan code, e.g. premium.")
    effective_date = serializers.DateField()


class PlanChangeSerializer(serializers.Serializer):
    """{"application": Application, "result": plans.services.PlanChangeResult}."""

    application = serializers.CharField(source="application.app_key")
    plan = serializers.CharField(source="result.change.plan.code")
    requested_date = serializers.DateField(source="result.requested_date")
    effective_date = serializers.DateField(
        source="result.effective_date",
        help_text="The day it really takes effect: a downgrade moves to the 1st of next month.",
    )
    kind = serializers.ChoiceField(
        source="result.kind", choices=["upgrade", "downgrade", "unchanged"]
    )
    ended_addons = serializers.ListField(
        source="result.ended_addons",
        child=serializers.CharField(),
        help_text="Add-ons ended because the plan lacks them.",
    )
    cancelled_changes = CancelledPlanChangeSerializer(source="result.cancelled_changes", many=True)


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
    """A plans.models.AddOnChange."""

    application = serializers.CharField(source="application.app_key")
    addon = serializers.CharField(source="addon.code")
    quantity = serializers.IntegerField(help_text="0 when ended.")
    effective_date = serializers.DateField()


# --- estimate and invoices -----------------------------------------------------------------


class PricedLineSerializer(serializers.Serializer):
    """A rating engine PricedLine or an InvoiceLine."""

    app_key = serializers.CharField()
    code = serializers.CharField()
    category = serializers.CharField()
    plan_code = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = AmountTextField()
    amount = AmountTextField()
    first_day = serializers.DateField()
    last_day = serializers.DateField()
    days = serializers.IntegerField()
    peak_dau = serializers.IntegerField(allow_null=True)
    peak_day = serializers.DateField(allow_null=True)
    explanation = serializers.CharField()


class EstimateSerializer(serializers.Serializer):
    """{"customer": Customer, "period": Period, "as_of": date, "usage_received": bool,
    "usage_through": date | None, "rated": RatedAccount}."""

    customer = serializers.CharField(source="customer.external_id")
    period = PeriodTextField(help_text="YYYY-MM")
    as_of = serializers.DateField()
    usage_received = serializers.BooleanField(
        help_text="False while no usage has arrived for the month yet: the total then prices "
        "no DAU at all (fixed fees only) and is not a forecast of the bill."
    )
    usage_through = serializers.DateField(
        allow_null=True,
        help_text="The last day of the month with usage received; null when none has arrived.",
    )
    total = AmountTextField(source="rated.total")
    hold_reasons = serializers.ListField(source="rated.hold_reasons", child=serializers.CharField())
    lines = PricedLineSerializer(source="rated.lines", many=True)


class CreditNoteRowSerializer(serializers.Serializer):
    number = serializers.CharField()
    total = AmountTextField()
    issue_date = serializers.DateField()
    reason = serializers.CharField()


class InvoiceSerializer(serializers.Serializer):
    """An issued invoices.models.Invoice with its lines and credit notes."""

    number = serializers.CharField()
    period = PeriodTextField(help_text="YYYY-MM")
    status = serializers.CharField()
    issue_date = serializers.DateField()
    total = AmountTextField()
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
