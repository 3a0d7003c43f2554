from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField
from simple_history.models import HistoricalRecords

# Finance may raise an add-on's maximum up to here and no further (invoices.documents.limits shows why
# every invoice line and total still fits its money column).
ADDON_QUANTITY_CEILING = 100_000

MONEY = {
    "max_digits": 14,
    "decimal_places": 2,
    "default_currency": "CNY",
    "currency_choices": [("CNY", "CNY")],
}


def validate_first_of_month(value) -> None:
    # A price applies to whole periods: the price valid on the 1st bills the whole month.
    if value.day != 1:
        raise ValidationError("Prices take effect on the first day of a month.")


class Plan(models.Model):
    class Activation(models.TextChoices):
        AUTOMATIC = "automatic", "Automatic"
        CUSTOMER = "customer", "Activated by the customer"

    # Stable code used by the API, the data file and invoices; never renamed.
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    # The name customers read in Simplified Chinese (blank: the English name).
    name_zh = models.CharField("name (Chinese)", max_length=100, blank=True)
    activation = models.CharField(max_length=16, choices=Activation.choices)
    # Higher rank = bigger plan; moving to a lower rank is a downgrade (takes effect next month).
    rank = models.PositiveSmallIntegerField(default=0)
    supports_ultragroups = models.BooleanField(default=False)
    # Above this many delivered messages on any day an application is high-volume and needs a
    # dedicated-service contract instead of the DAU table.
    daily_message_limit = models.PositiveBigIntegerField(default=2_000_000)
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.name


class PlanPrice(models.Model):
    """The plan's money terms from `valid_from` on. A change is a new row, never an edit of an
    old one, so any past month is re-rated with the terms it was billed with."""

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="prices")
    valid_from = models.DateField(validators=[validate_first_of_month])
    minimum_deposit = MoneyField(**MONEY)
    dau_base_fee = MoneyField(**MONEY)
    included_dau = models.PositiveIntegerField(default=10_000)
    dau_block_size = models.PositiveIntegerField(default=10_000)
    dau_block_price = MoneyField(**MONEY)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["plan__rank", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "valid_from"], name="plan_price_once_per_date"),
            models.CheckConstraint(
                condition=Q(dau_block_size__gt=0), name="plan_block_size_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} from {self.valid_from}"


class AddOn(models.Model):
    class Category(models.TextChoices):
        VALUE_ADDED = "value_added", "Value-added service"
        STORAGE = "storage", "Storage"
        SENSITIVE_WORDS = "sensitive_words", "Sensitive words"
        API_RATE_LIMIT = "api_rate_limit", "API rate limit"
        DESKTOP = "desktop", "Desktop client"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    # The name customers read in Simplified Chinese (blank: the English name).
    name_zh = models.CharField("name (Chinese)", max_length=200, blank=True)
    category = models.CharField(max_length=24, choices=Category.choices)
    # What one unit of quantity buys, e.g. "half-year extended" or "+100 calls/s".
    unit_description = models.CharField(max_length=200, blank=True)
    unit_description_zh = models.CharField("unit description (Chinese)", max_length=200, blank=True)
    # True for on/off services (quantity is always 1).
    is_switch = models.BooleanField(default=True)
    # The most units one application may have: keeps every order inside what an invoice can
    # hold (see invoices.documents.limits for the arithmetic behind ADDON_QUANTITY_CEILING).
    max_quantity = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(ADDON_QUANTITY_CEILING)],
        help_text=f"Most units one application may have (1 for on/off services; at most "
        f"{ADDON_QUANTITY_CEILING:,}).",
    )
    # An extension of another add-on (chat room storage extension -> chat room storage): it
    # can only start while that one is active and ends when that one ends.
    requires = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="extensions",
        help_text="The add-on this one extends; it needs that one active.",
    )
    sort_order = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "code"]
        verbose_name = "add-on"
        constraints = [
            models.CheckConstraint(
                condition=Q(is_switch=False) | Q(max_quantity=1), name="addon_switch_max_one"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.is_switch and self.max_quantity != 1:
            raise ValidationError({"max_quantity": "An on/off service has a maximum of 1."})
        if self.requires_id is not None and self.requires_id == self.pk:
            raise ValidationError({"requires": "An add-on cannot extend itself."})


class AddOnPrice(models.Model):
    """What one unit of an add-on costs per month on one plan, from `valid_from` on."""

    class Availability(models.TextChoices):
        PRICED = "priced", "Priced"
        INCLUDED = "included", "Included"
        UNAVAILABLE = "unavailable", "Not available"

    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="prices")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="addon_prices")
    valid_from = models.DateField(validators=[validate_first_of_month])
    availability = models.CharField(max_length=16, choices=Availability.choices)
    unit_price = MoneyField(**MONEY, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["addon__sort_order", "plan__rank", "-valid_from"]
        verbose_name = "add-on price"
        constraints = [
            models.UniqueConstraint(
                fields=["addon", "plan", "valid_from"], name="addon_price_once_per_date"
            ),
            models.CheckConstraint(
                condition=Q(availability="priced") | Q(unit_price=0),
                name="addon_price_zero_unless_priced",
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="addon_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.addon.code} on {self.plan.code} from {self.valid_from}"


class VatRate(models.Model):
    """Whether the price book's prices include VAT and at which rate, from `valid_from` on:
    dated like prices (a change is a new row from a future month; a row in force never
    changes, the database refuses it). The row valid on a period's 1st taxes the whole period
    (plans.rating.tax). Migration plans/0007 records the default: prices include 6%."""

    valid_from = models.DateField(unique=True, validators=[validate_first_of_month])
    # 0.0600 = 6%; 0 <= rate < 1 (the database refuses anything else).
    rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.9999"))],
        help_text="VAT rate as a fraction: 0.0600 = 6%.",
    )
    prices_include_vat = models.BooleanField(
        default=True, help_text="The price book's prices are gross (VAT included)."
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-valid_from"]
        verbose_name = "VAT rate"
        constraints = [
            models.CheckConstraint(
                condition=Q(rate__gte=0) & Q(rate__lt=1), name="vat_rate_from_zero_below_one"
            ),
        ]

    def __str__(self) -> str:
        included = "included" if self.prices_include_vat else "excluded"
        return f"VAT {self.rate:%} ({included}) from {self.valid_from}"


class PlanChange(models.Model):
    """One plan decision for an application, effective on a day (Asia/Shanghai).

    The plan history is the list of these rows ordered by `effective_date`; each covers the days
    up to the next one. Rows are never edited; a pending change that a later decision overrides
    gets `cancelled_at` and stays for the record.
    """

    application = models.ForeignKey(
        "accounts.Application", on_delete=models.PROTECT, related_name="plan_changes"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    effective_date = models.DateField()
    requested_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["application_id", "effective_date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "effective_date"],
                condition=Q(cancelled_at__isnull=True),
                name="one_live_plan_change_per_day",
            )
        ]

    def __str__(self) -> str:
        return f"{self.application_id}: {self.plan_id} from {self.effective_date}"


class AddOnChange(models.Model):
    """One add-on decision for an application: from `effective_date` the quantity is this
    (0 = ended). Same append-only rules as PlanChange."""

    application = models.ForeignKey(
        "accounts.Application", on_delete=models.PROTECT, related_name="addon_changes"
    )
    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()
    effective_date = models.DateField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["application_id", "addon_id", "effective_date", "id"]
        verbose_name = "add-on change"
        constraints = [
            models.UniqueConstraint(
                fields=["application", "addon", "effective_date"],
                condition=Q(cancelled_at__isnull=True),
                name="one_live_addon_change_per_day",
            )
        ]


class DedicatedContract(models.Model):
    """A negotiated monthly fee for a high-volume application. While one covers a day, the
    application is priced by it instead of the DAU table."""

    application = models.ForeignKey(
        "accounts.Application", on_delete=models.PROTECT, related_name="dedicated_contracts"
    )
    monthly_fee = MoneyField(**MONEY)
    first_day = models.DateField()
    last_day = models.DateField(null=True, blank=True)
    reference = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["application_id", "first_day"]
        constraints = [
            models.CheckConstraint(condition=Q(monthly_fee__gt=0), name="contract_fee_positive"),
            models.CheckConstraint(
                condition=Q(last_day__isnull=True) | Q(last_day__gte=models.F("first_day")),
                name="contract_days_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"Contract {self.reference or self.pk} for {self.application_id}"


class Discount(models.Model):
    """A contracted discount for a customer (all its applications) or one application, on the
    days `first_day`..`last_day` (None: open-ended): `percent` off the charges of those days,
    or `amount_off` a month, pro rata by the days in effect. The rating engine bills it as its
    own line (plans.rating.engine: `DiscountSegment`), never taking a bill below zero.

    Added through plans.services.discount_add (no overlap with another discount of the same
    scope, no day in a month an issued invoice froze); the amount and days are what re-rating
    uses, so they are fixed once saved."""

    # Exactly one of customer and application (discount_one_scope).
    customer = models.ForeignKey(
        "accounts.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="discounts",
    )
    application = models.ForeignKey(
        "accounts.Application",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="discounts",
    )
    # Exactly one of percent (above 0, at most 100) and amount_off (positive): discount_one_kind.
    percent = models.DecimalField(
        "percentage off",
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
    )
    amount_off = MoneyField("fixed amount off a month", **MONEY, null=True, blank=True)
    first_day = models.DateField()
    last_day = models.DateField(null=True, blank=True)
    reference = models.CharField(max_length=100, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["first_day", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=True, application__isnull=False)
                | Q(customer__isnull=False, application__isnull=True),
                name="discount_one_scope",
            ),
            models.CheckConstraint(
                condition=Q(percent__isnull=False, amount_off__isnull=True)
                | Q(percent__isnull=True, amount_off__isnull=False),
                name="discount_one_kind",
            ),
            models.CheckConstraint(
                condition=Q(percent__isnull=True) | Q(percent__gt=0, percent__lte=100),
                name="discount_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(amount_off__isnull=True) | Q(amount_off__gt=0),
                name="discount_amount_positive",
            ),
            models.CheckConstraint(
                condition=Q(last_day__isnull=True) | Q(last_day__gte=models.F("first_day")),
                name="discount_days_ordered",
            ),
        ]

    def __str__(self) -> str:
        off = f"{self.percent}%" if self.percent is not None else f"{self.amount_off}"
        return f"Discount {self.reference or self.pk}: {off} from {self.first_day}"
