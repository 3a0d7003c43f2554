import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField
from simple_history.models import HistoricalRecords

from billingsite.text import VisibleText

# The money columns of invoices and credit notes (`invoices.documents.limits` reads the digits).
MONEY_MAX_DIGITS = 14
MONEY_DECIMAL_PLACES = 2
MONEY = {
    "max_digits": MONEY_MAX_DIGITS,
    "decimal_places": MONEY_DECIMAL_PLACES,
    "default_currency": "CNY",
    "currency_choices": [("CNY", "CNY")],
}


# A frozen VAT column: the split of a gross amount by plans.rating.tax (net + vat = gross, the
# database checks it). NULL on documents frozen before VAT was recorded: they show gross only.
def vat_amount_field(verbose_name: str) -> models.DecimalField:
    return models.DecimalField(
        verbose_name, max_digits=14, decimal_places=2, null=True, blank=True, editable=False
    )


def vat_rate_field() -> models.DecimalField:
    # The rate of the price book the document was rated with (0.0600 = 6%).
    return models.DecimalField(
        "VAT rate", max_digits=5, decimal_places=4, null=True, blank=True, editable=False
    )


class ImmutableDocumentError(Exception):
    """An issued invoice or credit note was about to be changed or deleted."""


class NumberSequence(models.Model):
    """Last number given in a series and year. Locked and bumped inside the issuing
    transaction, so a rolled-back issue never leaves a gap."""

    series = models.CharField(max_length=8)
    year = models.PositiveIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "year"], name="one_sequence_per_series_year")
        ]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last_number}"


class BillingRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        # Closed by finance before every chunk finished; "resume" bills what is left.
        INTERRUPTED = "interrupted", "Interrupted"

    # First day of the billed month (Asia/Shanghai).
    period = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Origin(models.TextChoices):
        # The labels are what the audit trail names a run by when no person started it.
        ADMIN = "admin", "billing run started in the admin"
        SCHEDULE = "schedule", "scheduled billing run"
        COMMAND = "command", "billing run started from the command line"

    # What started the run (who: `created_by`). Null for runs recorded before it was kept:
    # beat's and `manage.py bill`'s runs could not be told apart then (invoices migration 0015).
    origin = models.CharField(
        max_length=16, choices=Origin.choices, null=True, blank=True, editable=False
    )
    # Last time a chunk finished (or the run started or was resumed): a running run without
    # progress for BILLING_RUN_STALL_AFTER is stalled (`invoices.run.runs.billing_run_is_stalled`).
    progress_at = models.DateTimeField(null=True, blank=True)
    # Counters are derived from what the run wrote (its invoices, open errors and chunks) by
    # `invoices.run.runs._tally` at each chunk's end, under the run's row lock; never added to.
    accounts_total = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    accounts_done = models.PositiveIntegerField(default=0)
    invoices_issued = models.PositiveIntegerField(default=0)
    invoices_held = models.PositiveIntegerField(default=0)
    accounts_skipped = models.PositiveIntegerField(default=0)
    accounts_failed = models.PositiveIntegerField(default=0)
    # Accounts another run (or finance) had already invoiced for the period: nothing was done.
    accounts_already_billed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Billing run {self.period:%Y-%m} #{self.pk}"


class BillingRunChunk(models.Model):
    """One Celery task's share of a run. "Resume" queues the chunks not finished; the outcomes
    that write no row (nothing to bill, invoiced by another run) are kept here by customer, so
    a chunk billed twice counts its accounts once."""

    # Indexed by the unique (run, number) constraint, whose first column it is.
    run = models.ForeignKey(
        BillingRun, on_delete=models.CASCADE, related_name="chunks", db_index=False
    )
    number = models.PositiveIntegerField()
    customer_ids = models.JSONField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skipped_ids = models.JSONField(default=list, blank=True)
    already_billed_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="one_chunk_number_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.run} chunk {self.number}"


class BillingRunError(models.Model):
    """One account that failed in a run; its transaction rolled back, the others went on."""

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="errors")
    customer = models.ForeignKey("accounts.Customer", on_delete=models.CASCADE, related_name="+")
    error = models.TextField()
    occurred_at = models.DateTimeField()
    # Set when a later attempt billed the account.
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at"]


class Invoice(models.Model):
    """One invoice per customer per period. Frozen copy of what it bills: after issue nothing
    on it or its lines changes (the database refuses it); corrections are credit notes."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        HELD = "held", "Held for review"
        ISSUED = "issued", "Issued"
        PARTIALLY_CREDITED = "partially_credited", "Partly credited"
        CREDITED = "credited", "Credited"

    ISSUED_STATES = (Status.ISSUED, Status.PARTIALLY_CREDITED, Status.CREDITED)

    # Indexed by the unique (customer, period) constraint, whose first column it is.
    customer = models.ForeignKey(
        "accounts.Customer", on_delete=models.PROTECT, related_name="invoices", db_index=False
    )
    # First day of the billed month (Asia/Shanghai).
    period = models.DateField()
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.DRAFT)
    # Given at issue from the INV series, gapless per year; None before issue.
    number = models.CharField(max_length=32, unique=True, null=True, blank=True)
    hold_reason = models.TextField(blank=True)
    # Frozen customer details, copied when rated; never edited after issue.
    customer_name = models.CharField(max_length=200)
    customer_address = models.TextField(blank=True)
    customer_tax_id = models.CharField(max_length=64, blank=True)
    customer_email = models.EmailField(blank=True)
    # The gross: what the customer pays, the sum of the lines' amounts.
    total = MoneyField(**MONEY, default=0)
    # Sums of the lines' net and VAT (net_total + vat_total = total); NULL before VAT.
    net_total = vat_amount_field("net total")
    vat_total = vat_amount_field("VAT total")
    vat_rate = vat_rate_field()
    # Promotional credit the invoice consumed when it was issued (its `promo_use` ledger
    # entries; 0.00 <= it <= total), before the paid balance, which its debit takes the rest
    # from (`amount_due_from_balance`). NULL before issue and on invoices issued before
    # promotional credit existed (they used none). A means of payment, not a discount: the
    # total and its VAT do not change.
    promo_credit_applied = models.DecimalField(
        "promotional credit applied",
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        editable=False,
    )
    rated_at = models.DateTimeField()
    # Sum of the customer's applications' usage versions, read before the usage the lines were
    # rated from (None: rated before versions existed). Issuing a draft or held invoice checks
    # it under lock, so usage corrected after the review is rated again before it is billed.
    rated_usage_version = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    issued_at = models.DateTimeField(null=True, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    billing_run = models.ForeignKey(
        BillingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["-period", "number", "id"]
        indexes = [models.Index(fields=["status", "period"]), models.Index(fields=["updated_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period"], name="one_invoice_per_customer_period"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "held"])
                | Q(number__isnull=False, issued_at__isnull=False),
                name="issued_invoice_has_number",
            ),
        ]

    def __str__(self) -> str:
        if self.number:
            return self.number
        state = "Held" if self.status == self.Status.HELD else "Draft"
        return f"{state} {self.customer_name} {self.period:%Y-%m}"

    @property
    def is_issued(self) -> bool:
        return self.status in self.ISSUED_STATES

    @property
    def promo_credit_used(self) -> Decimal:
        """The promotional credit this invoice consumed (0.00 when none, or before issue)."""
        return self.promo_credit_applied or Decimal("0.00")

    @property
    def amount_due_from_balance(self) -> Decimal:
        """What the invoice's debit took from the paid balance: the total less the
        promotional credit it consumed."""
        return self.total.amount - self.promo_credit_used

    def delete(self, *args, **kwargs):
        # PostgreSQL's trigger refuses it too; this also covers SQLite (update-only triggers).
        if (
            self.pk is not None
            and type(self).objects.filter(pk=self.pk, status__in=self.ISSUED_STATES).exists()
        ):
            raise ImmutableDocumentError("issued invoices are never deleted: issue a credit note")
        return super().delete(*args, **kwargs)


class InvoiceLine(models.Model):
    """One priced line from the rating engine, frozen with its names and unit price."""

    class Category(models.TextChoices):
        DAU_FEE = "dau_fee", "DAU fee"
        VALUE_ADDED = "value_added", "Value-added services"
        STORAGE = "storage", "Storage"
        SENSITIVE_WORDS = "sensitive_words", "Sensitive words"
        API_RATE_LIMIT = "api_rate_limit", "API rate limits"
        DESKTOP = "desktop", "Desktop client"
        DEDICATED_SERVICE = "dedicated_service", "Dedicated service"
        # A contracted discount (plans.models.Discount): the one category with a negative amount.
        DISCOUNT = "discount", "Contracted discount"

    # Indexed by the unique (invoice, position) constraint, whose first column it is.
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    position = models.PositiveIntegerField()
    application = models.ForeignKey(
        "accounts.Application", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    app_key = models.CharField(max_length=64)
    app_name = models.CharField(max_length=200)
    code = models.CharField(max_length=64)
    category = models.CharField(max_length=24, choices=Category.choices)
    plan_code = models.CharField(max_length=32)
    plan_name = models.CharField(max_length=100)
    description = models.CharField(max_length=300)
    quantity = models.PositiveIntegerField()
    unit_price = MoneyField(**MONEY)
    # The gross of the line (VAT included): what the customer pays for it.
    amount = MoneyField(**MONEY)
    # net_amount + vat_amount = amount (plans.rating.tax); NULL on lines frozen before VAT.
    net_amount = vat_amount_field("net amount")
    vat_amount = vat_amount_field("VAT amount")
    vat_rate = vat_rate_field()
    first_day = models.DateField()
    last_day = models.DateField()
    days = models.PositiveSmallIntegerField()
    days_in_month = models.PositiveSmallIntegerField()
    peak_dau = models.PositiveIntegerField(null=True, blank=True)
    peak_day = models.DateField(null=True, blank=True)
    # `description` and `explanation` in English, as frozen for exports and PDFs.
    explanation = models.TextField()
    # The same text as data, for every language: {"title": message, "explanation": [message,
    # ...], "plan": {"en": name, "zh-hans": name}}, each message {"id", "params"} from
    # plans/rating/messages.py. NULL on lines frozen before lines carried messages: those read
    # in English in every language.
    messages = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["invoice_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "position"], name="invoice_line_position_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.app_key} {self.code} {self.amount}"


class CreditNote(models.Model):
    """Credits some or all of one issued invoice's lines; the only way to correct a bill.
    Never edited or deleted once created (it is issued at creation)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(
        "accounts.Customer", on_delete=models.PROTECT, related_name="credit_notes"
    )
    # From the CN series, gapless per year.
    number = models.CharField(max_length=32, unique=True)
    reason = models.TextField()
    # Gross given back; net_total + vat_total = total (sums of the lines; NULL: invoice
    # without VAT split).
    total = MoneyField(**MONEY)
    net_total = vat_amount_field("net total")
    vat_total = vat_amount_field("VAT total")
    issued_at = models.DateTimeField()
    issue_date = models.DateField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    # The part of `total` given back as promotional credit (a `promo_grant` ledger entry), the
    # rest is the `credit_note_credit` to the paid balance: 0 <= this <= total, and the
    # invoice's notes never give back more than its `promo_credit_applied`
    # (accounts.promo_credit.credit_note_promo_split). Frozen at creation.
    promo_credit_returned = models.DecimalField(
        "promotional credit returned",
        max_digits=14,
        decimal_places=2,
        default=Decimal("0.00"),
        editable=False,
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="credit_note_positive"),
            models.CheckConstraint(
                condition=Q(promo_credit_returned__gte=0)
                & Q(promo_credit_returned__lte=F("total")),
                name="credit_note_promo_returned_within_total",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    def delete(self, *args, **kwargs):
        raise ImmutableDocumentError("credit notes are never deleted")


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(
        InvoiceLine, on_delete=models.PROTECT, related_name="credit_lines"
    )
    description = models.CharField(max_length=300)
    # Positive: how much of the invoice line this note gives back (gross).
    amount = MoneyField(**MONEY)
    # The VAT given back in proportion (plans.rating.tax.credited_vat); net = amount - VAT.
    net_amount = vat_amount_field("net amount")
    vat_amount = vat_amount_field("VAT amount")

    class Meta:
        ordering = ["credit_note_id", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_line_positive")
        ]


def fapiao_upload_path(instance: "FapiaoRequest", filename: str) -> str:
    # Never under a public URL: the file is served only by the views that check who asks
    # (the invoice's customer, finance); the random part keeps names unguessable anyway.
    suffix = filename.rsplit(".", 1)[-1].lower()
    return f"fapiao/{instance.invoice_id}/{uuid.uuid4().hex}.{suffix}"


class FapiaoRequest(models.Model):
    """A customer's request for a fapiao (VAT invoice of the tax system) for one issued invoice,
    and what finance did with it. Written only by invoices.documents.fapiao."""

    class Kind(models.TextChoices):
        ORDINARY = "ordinary", _("Ordinary VAT fapiao")
        SPECIAL = "special", _("Special VAT fapiao")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ISSUED = "issued", _("Issued")
        REJECTED = "rejected", _("Rejected")

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="fapiao_requests")
    # The invoice's customer (copied so every read is filtered by customer in one place).
    customer = models.ForeignKey(
        "accounts.Customer", on_delete=models.PROTECT, related_name="fapiao_requests"
    )
    kind = models.CharField(_("fapiao type"), max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    buyer_title = models.CharField(
        _("buyer title"), max_length=200, validators=[VisibleText(_("buyer title"))]
    )
    # Unified social credit code (18 characters, check character verified).
    buyer_tax_id = models.CharField(
        _("tax ID"), max_length=18, validators=[VisibleText(_("tax ID"))]
    )
    # Required for the special type, optional for the ordinary one.
    buyer_address = models.CharField(
        _("registered address"),
        max_length=300,
        blank=True,
        validators=[VisibleText(_("registered address"))],
    )
    buyer_phone = models.CharField(
        _("phone"), max_length=40, blank=True, validators=[VisibleText(_("registered phone"))]
    )
    buyer_bank = models.CharField(
        _("bank"), max_length=200, blank=True, validators=[VisibleText(_("bank"))]
    )
    buyer_account = models.CharField(
        _("bank account"), max_length=64, blank=True, validators=[VisibleText(_("bank account"))]
    )
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Recorded by finance once the tax system issued it.
    fapiao_number = models.CharField(_("fapiao number"), max_length=20, blank=True)
    fapiao_code = models.CharField(_("fapiao code"), max_length=20, blank=True)
    fapiao_date = models.DateField(_("fapiao date"), null=True, blank=True)
    fapiao_amount = models.DecimalField(
        _("fapiao amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    file = models.FileField(upload_to=fapiao_upload_path, blank=True, max_length=200)
    rejection_reason = models.TextField(
        _("rejection reason"),
        blank=True,
        validators=[VisibleText(_("rejection reason"), multiline=True)],
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when a credit note is issued on the invoice after its fapiao was issued: finance must
    # issue a red-letter fapiao in the tax system.
    red_letter_needed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["status", "requested_at", "id"]
        verbose_name = _("fapiao request")
        # Django adds an "s" to the name otherwise, also to the Chinese one ("发票申请s").
        verbose_name_plural = _("fapiao requests")
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"],
                condition=~Q(status="rejected"),
                name="one_live_fapiao_request_per_invoice",
            ),
            models.CheckConstraint(
                condition=~Q(status="issued")
                | (
                    ~Q(fapiao_number="")
                    & Q(fapiao_date__isnull=False)
                    & Q(fapiao_amount__isnull=False)
                    & ~Q(file="")
                ),
                name="issued_fapiao_recorded",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(rejection_reason=""),
                name="rejected_fapiao_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(kind="special")
                | (
                    ~Q(buyer_address="")
                    & ~Q(buyer_phone="")
                    & ~Q(buyer_bank="")
                    & ~Q(buyer_account="")
                ),
                name="special_fapiao_has_bank_details",
            ),
        ]

    def __str__(self) -> str:
        return f"Fapiao request {self.pk} for {self.invoice}"
