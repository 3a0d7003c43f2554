from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy
from djmoney.models.fields import MoneyField
from simple_history.models import HistoricalRecords

from accounts.transfer_reference import transfer_reference_new
from billingsite.text import VisibleText

MONEY = {
    "max_digits": 14,
    "decimal_places": 2,
    "default_currency": "CNY",
    "currency_choices": [("CNY", "CNY")],
}


class Customer(models.Model):
    """The account that owns applications, prepays and receives one invoice per period."""

    # The developer console's id for this account; stable, used by the provisioning API.
    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, validators=[VisibleText(gettext_lazy("name"))])
    billing_email = models.EmailField()
    # Frozen onto every invoice and printed on its PDF: an address, not a document.
    address = models.CharField(
        max_length=500,
        blank=True,
        validators=[VisibleText(gettext_lazy("address"), multiline=True)],
    )
    tax_id = models.CharField(
        max_length=64, blank=True, validators=[VisibleText(gettext_lazy("tax ID"))]
    )
    contact_name = models.CharField(
        max_length=200, blank=True, validators=[VisibleText(gettext_lazy("contact name"))]
    )
    contact_phone = models.CharField(
        max_length=64, blank=True, validators=[VisibleText(gettext_lazy("contact phone"))]
    )
    # Defaults of the customer's fapiao requests (the buyer title is `name`, the tax id
    # `tax_id`, the registered address `address`); a special VAT fapiao needs all of them.
    fapiao_phone = models.CharField(
        "registered phone (fapiao)",
        max_length=40,
        blank=True,
        default="",
        db_default="",
        validators=[VisibleText(gettext_lazy("registered phone"))],
    )
    fapiao_bank = models.CharField(
        "bank (fapiao)",
        max_length=200,
        blank=True,
        default="",
        db_default="",
        validators=[VisibleText(gettext_lazy("bank"))],
    )
    fapiao_bank_account = models.CharField(
        "bank account (fapiao)",
        max_length=64,
        blank=True,
        default="",
        db_default="",
        validators=[VisibleText(gettext_lazy("bank account"))],
    )
    # Asia/Shanghai day the ledger balance went below zero; None while it is >= 0.
    # Derived from the ledger by the services, never typed in by hand.
    arrears_since = models.DateField(null=True, blank=True)
    # Set when service was shut down for arrears past the grace period
    # (accounts.arrears.ARREARS_GRACE_DAYS); cleared on reactivation.
    suspended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        CHINESE = "zh-hans", "简体中文 (Simplified Chinese)"

    # Every e-mail, the first language of the PDFs and the invoice page's default (a login's
    # own switch on the page wins for that browser). Webhooks carry codes, never words.
    preferred_language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.ENGLISH
    )
    # Opt-in: one e-mail after each month's run with the month's documents and balance as a
    # PDF statement (accounts.mail.statements).
    monthly_statement = models.BooleanField(default=False)
    # What the customer quotes in a bank transfer's remark (accounts.transfer_reference):
    # unique, never changes, check character valid. Given when the row is created.
    transfer_reference = models.CharField(
        max_length=16, unique=True, default=transfer_reference_new, editable=False
    )

    class LowBalanceAlert(models.TextChoices):
        RUNWAY = "runway", gettext_lazy("When the balance lasts fewer than 30 days")
        AMOUNT = "amount", gettext_lazy("When the balance is below an amount")
        OFF = "off", gettext_lazy("Never")

    # The customer's low-balance threshold (accounts.low_balance): the runway at the current
    # run-rate (default), a set amount (`low_balance_amount`, > 0, required then), or none.
    low_balance_alert = models.CharField(
        max_length=8, choices=LowBalanceAlert.choices, default=LowBalanceAlert.RUNWAY
    )
    low_balance_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    # Set when the alert of the current crossing was sent; cleared (re-armed) by the write
    # that lifts the balance to the threshold or above. Written only by accounts.low_balance,
    # under the customer's row lock.
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords(
        excluded_fields=["arrears_since", "suspended_at", "low_balance_alerted_at"]
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(low_balance_alert="amount") | Q(low_balance_amount__gt=0),
                name="customer_low_balance_amount_set",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class InvoicedMonth(models.Model):
    """A month of a customer that has an invoice, with that invoice's status and number.

    The invoices' own record, copied down for the apps below them: plan, add-on, contract and
    usage changes ask `accounts.frozen_months` which months are frozen, so `accounts` and
    `plans` never read `invoices`. Written only by `invoices.documents.invoiced_months` in the
    transaction of every invoice write and delete, under the customer's row lock: at every
    commit there is one row per invoice, with its period, status and number
    (`tests/invoices/test_invoiced_months.py` compares them after runs, re-runs, issues and
    credit notes).
    """

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="invoiced_months", db_index=False
    )
    # First day of the invoiced month (Asia/Shanghai), as Invoice.period.
    period = models.DateField()
    # The invoice's status: draft, held, issued, partially_credited or credited.
    status = models.CharField(max_length=24)
    # The invoice's number: set exactly when it is issued (and then never changes).
    number = models.CharField(max_length=32, null=True, blank=True)

    class Meta:
        ordering = ["customer_id", "period"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period"], name="one_invoiced_month_per_customer_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.period:%Y-%m}: {self.number or self.status}"


class BillingContact(models.Model):
    """An address that receives the customer's billing e-mails of the kinds ticked. The
    customer's `billing_email` is always one of them (kept by `accounts.mail.contacts`)."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="billing_contacts"
    )
    email = models.EmailField(max_length=254)
    name = models.CharField(
        max_length=200, blank=True, validators=[VisibleText(gettext_lazy("contact name"))]
    )
    # Invoices, credit notes and monthly statements.
    receives_invoices = models.BooleanField("invoices", default=True)
    # Low balance, arrears, suspension warning, suspension and reactivation.
    receives_warnings = models.BooleanField("balance and arrears warnings", default=True)
    # Deposit and top-up receipts.
    receives_receipts = models.BooleanField("receipts", default=True)
    # The last time the address was refused for good (a permanent SMTP error, the provider's
    # bounce or complaint notice, a returned message: accounts.mail.bounces), and why; cleared
    # when a later message to it is accepted. Finance reads it in the admin.
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"), "customer", name="billing_contact_one_per_address"
            ),
        ]

    def __str__(self) -> str:
        return self.email


class CustomerUser(models.Model):
    """Links a Django login to the one customer whose documents it may read."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_link"
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="users")

    def __str__(self) -> str:
        return f"{self.user} -> {self.customer}"


class Application(models.Model):
    class DataCenter(models.TextChoices):
        SINGAPORE = "singapore", "Singapore"
        NORTH_AMERICA = "north_america", "North America"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="applications")
    # The IM platform's app key: unique forever, never reused or edited.
    app_key = models.CharField(max_length=64, unique=True)
    # Frozen on every invoice line of the application (`app_name`): the customer reads it.
    name = models.CharField(max_length=200, validators=[VisibleText(gettext_lazy("name"))])
    data_center = models.CharField(max_length=20, choices=DataCenter.choices)
    # Asia/Shanghai date the application was created: usage and plan changes before it are refused.
    created_on = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped in the transaction of every usage write that adds or changes a day of this
    # application in a month that is over (the only months a run can be billing), under its
    # row lock; never goes down. The month-end run reads it before the usage it rates and
    # compares it under lock before issuing, so usage that arrives in between is rated again,
    # never billed stale.
    usage_version = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["app_key"]

    def __str__(self) -> str:
        return f"{self.app_key} ({self.name})"


class DailyUsage(models.Model):
    """One row per application and Asia/Shanghai day, as reported by the IM platform.

    Replaced only while its month is not invoiced; every replacement leaves a UsageRevision.
    """

    # Indexed by the unique (application, day) constraint, whose first column it is.
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="usage", db_index=False
    )
    day = models.DateField()
    dau = models.PositiveIntegerField()
    delivered_messages = models.PositiveBigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["application", "day"], name="usage_one_row_per_app_day"
            ),
        ]
        ordering = ["application_id", "day"]
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.application_id} {self.day}: dau={self.dau}"


class UsageRevision(models.Model):
    """Append-only record of a replaced usage value: who, when, old and new."""

    usage = models.ForeignKey(DailyUsage, on_delete=models.PROTECT, related_name="revisions")
    old_dau = models.PositiveIntegerField()
    old_delivered_messages = models.PositiveBigIntegerField()
    new_dau = models.PositiveIntegerField()
    new_delivered_messages = models.PositiveBigIntegerField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    changed_at = models.DateTimeField()
    source = models.CharField(max_length=20, default="api")

    class Meta:
        ordering = ["-changed_at"]


class LedgerEntry(models.Model):
    """The prepaid balance is the sum of these rows. Rows are never edited or deleted.

    Signed amounts: deposits and credits are positive, debits and refunds negative.
    """

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        INVOICE_DEBIT = "invoice_debit", "Invoice debit"
        CREDIT_NOTE_CREDIT = "credit_note_credit", "Credit note credit"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Manual adjustment"
        # Promotional credit (accounts.promo_credit): granted by finance, kept apart from the
        # paid balance by its kinds; used by invoices before the paid balance; what is left
        # on the day after its expiry lapses.
        PROMO_GRANT = "promo_grant", "Promotional credit granted"
        PROMO_USE = "promo_use", "Promotional credit used"
        PROMO_LAPSE = "promo_lapse", "Promotional credit lapsed"

    PROMO_KINDS = (Kind.PROMO_GRANT, Kind.PROMO_USE, Kind.PROMO_LAPSE)
    # A use or a lapse draws on one grant (`promo_grant`).
    PROMO_DRAW_KINDS = (Kind.PROMO_USE, Kind.PROMO_LAPSE)

    class Method(models.TextChoices):
        """How a deposit's money arrived; the journal posts each to its own clearing account."""

        # Labels are translated: receipts name the method in the customer's language.
        BANK_TRANSFER = "bank_transfer", gettext_lazy("Bank transfer")
        ALIPAY = "alipay", gettext_lazy("Alipay")
        WECHAT_PAY = "wechat_pay", gettext_lazy("WeChat Pay")

        @classmethod
        def of_deposit(cls, method: str | None) -> str:
            """A deposit's method; NULL on deposits recorded before methods existed, which
            were all bank transfers typed in by finance."""
            return method or cls.BANK_TRANSFER

    # Indexed by the (customer, created_at) index, whose first column it is.
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    amount = MoneyField(**MONEY)
    # A retried form post, API call or billing task carries the same key and is recorded once.
    idempotency_key = models.CharField(max_length=200, unique=True)
    # Bank reference for deposits, document number for debits and credits.
    reference = models.CharField(max_length=200, blank=True)
    # Deposits only (NULL on every other kind, the database checks it). Deposits recorded before
    # the field existed are NULL too: all of them were bank transfers typed in by finance, which
    # `deposit_method` reports; every deposit written since carries its method.
    method = models.CharField(max_length=16, choices=Method.choices, null=True, blank=True)
    reason = models.TextField(blank=True)
    # Promotional credit grants only (NULL on every other kind; required on grants): the last
    # Asia/Shanghai day the credit can pay an invoice, inclusive.
    expires_on = models.DateField(null=True, blank=True)
    # Uses and lapses only (required on them, NULL otherwise): the grant of the same customer
    # they draw on. The database refuses a draw that takes the grant below zero, one on another
    # customer's grant, a second lapse of a grant and a second use of a grant by one invoice.
    promo_grant = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="promo_draws"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["customer", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | ~Q(reason=""), name="ledger_adjustment_has_reason"
            ),
            models.CheckConstraint(
                condition=~Q(kind="deposit") | Q(amount__gt=0), name="ledger_deposit_positive"
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_not_zero"),
            # The sign is what the kind means: a positive debit would raise the balance.
            models.CheckConstraint(
                condition=Q(kind__in=["deposit", "credit_note_credit", "promo_grant"], amount__gt=0)
                | Q(kind__in=["invoice_debit", "refund", "promo_use", "promo_lapse"], amount__lt=0)
                | Q(kind="adjustment"),
                name="ledger_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind="promo_grant", expires_on__isnull=False)
                | (~Q(kind="promo_grant") & Q(expires_on__isnull=True)),
                name="ledger_expiry_only_on_promo_grants",
            ),
            models.CheckConstraint(
                condition=~Q(kind="promo_grant") | ~Q(reason=""),
                name="ledger_promo_grant_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["promo_use", "promo_lapse"], promo_grant__isnull=False)
                | (~Q(kind__in=["promo_use", "promo_lapse"]) & Q(promo_grant__isnull=True)),
                name="ledger_promo_draw_has_grant",
            ),
            # A retried or re-run issue never uses a grant twice for one invoice (the
            # reference is the invoice's number); a grant lapses once.
            models.UniqueConstraint(
                fields=["promo_grant", "reference"],
                condition=Q(kind="promo_use"),
                name="ledger_one_promo_use_per_grant_and_invoice",
            ),
            models.UniqueConstraint(
                fields=["promo_grant"],
                condition=Q(kind="promo_lapse"),
                name="ledger_one_lapse_per_promo_grant",
            ),
            models.CheckConstraint(condition=Q(amount_currency="CNY"), name="ledger_cny_only"),
            models.CheckConstraint(
                condition=Q(kind="deposit") | Q(method__isnull=True),
                name="ledger_method_only_on_deposits",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} ({self.customer_id})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_allow_update", False):
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("ledger entries are append-only")

    @property
    def deposit_method(self) -> str | None:
        """The method of a deposit (legacy NULL deposits were bank transfers); None otherwise."""
        if self.kind != self.Kind.DEPOSIT:
            return None
        return self.Method.of_deposit(self.method)


class CustomerEvent(models.Model):
    """Something the customer is told about: by e-mail and by a signed webhook.

    The dedupe key makes each event happen once even when the task that raises it is retried.
    """

    class Kind(models.TextChoices):
        INVOICE_ISSUED = "invoice_issued", "Invoice issued"
        ARREARS_STARTED = "arrears_started", "Arrears started"
        SUSPENSION_WARNING = "suspension_warning", "Suspension in 2 days"
        SUSPENDED = "suspended", "Suspended"
        REACTIVATED = "reactivated", "Reactivated"
        CREDIT_NOTE_ISSUED = "credit_note_issued", "Credit note issued"
        # E-mail only (no webhook: the platform's service does not change).
        PAYMENT_RECEIVED = "payment_received", "Payment received"
        BALANCE_LOW = "balance_low", "Balance low"
        MONTHLY_STATEMENT = "monthly_statement", "Monthly statement"
        # Finance recorded the fapiao a customer requested (its file is on the invoice page),
        # or rejected the request with a reason. E-mail only.
        FAPIAO_ISSUED = "fapiao_issued", "Fapiao issued"
        FAPIAO_REJECTED = "fapiao_rejected", "Fapiao request rejected"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    dedupe_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField(default=dict)
    # The business moment the event belongs to (a run's events carry the run's billing moment,
    # however late a resumed run writes them).
    created_at = models.DateTimeField()
    # Wall-clock time the row was written: what the pending-events sweep measures age by.
    # Empty on events written before it existed (the sweep falls back to created_at).
    recorded_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class EmailDelivery(models.Model):
    """One e-mail of one event to one address. The unique (event, recipient, resend) row is
    claimed before the message goes to the mail server, so a retried or re-run delivery never
    sends it twice; finance's explicit resend is a new row (resend = 1, 2, ...)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        # Claimed by a worker. A row left here (its process died during the SMTP exchange)
        # is never sent again automatically: it may have gone out. Finance may resend.
        SENDING = "sending", "Sending (outcome unknown if it stays)"
        SENT = "sent", "Sent"
        # The mail server refused the address permanently (5xx), or a bounce notice came
        # later (accounts.mail.bounces): not retried.
        REFUSED = "refused", "Refused by the mail server"

    event = models.ForeignKey(
        CustomerEvent, on_delete=models.CASCADE, related_name="email_deliveries"
    )
    contact = models.ForeignKey(
        BillingContact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    recipient = models.EmailField(max_length=254)
    # 0: the event's own message; 1, 2, ...: finance's resends.
    resend = models.PositiveIntegerField(default=0)
    language = models.CharField(max_length=8, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    attachments = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "e-mail deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "recipient", "resend"], name="email_delivery_once_per_recipient"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.recipient} ({self.status})"


class WebhookDelivery(models.Model):
    """Every attempt to deliver an event to the IM platform, successful or not."""

    event = models.ForeignKey(CustomerEvent, on_delete=models.CASCADE, related_name="deliveries")
    url = models.URLField(max_length=500)
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempted_at = models.DateTimeField()
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["-attempted_at"]
        verbose_name_plural = "webhook deliveries"


class AdjustmentRequest(models.Model):
    """A manual adjustment that needs a manager's approval before it reaches the ledger (a
    positive one gives the customer money: economically a credit note). The proposer and the
    approver are two people; approving posts one ledger entry, however often it is sent.

    The history rows are the audit trail: the creating row's user is the proposer, the row
    that changes the status is the manager's decision."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Waiting for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="adjustment_requests"
    )
    amount = MoneyField(**MONEY)
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED)
    # The proposing form's token: a double submit proposes once.
    idempotency_key = models.CharField(max_length=200, unique=True)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    ledger_entry = models.OneToOneField(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="adjustment_request",
    )

    # The decision's row already names its user and time; the status change is its content.
    history = HistoricalRecords(excluded_fields=["decided_by", "decided_at", "ledger_entry"])

    class Meta:
        ordering = ["-proposed_at", "-id"]
        permissions = [("approve_adjustmentrequest", "Can approve or reject adjustment requests")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount=0), name="adjustment_request_amount_not_zero"
            ),
            models.CheckConstraint(
                condition=Q(amount_currency="CNY"), name="adjustment_request_cny_only"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="adjustment_request_has_reason"),
            models.CheckConstraint(
                condition=~Q(status="approved") | Q(ledger_entry__isnull=False),
                name="adjustment_request_approved_has_entry",
            ),
        ]

    def __str__(self) -> str:
        return f"Adjustment {self.amount} for {self.customer_id} ({self.status})"


class TopUp(models.Model):
    """One attempt by a customer to top up the balance online (Alipay, WeChat Pay).

    The provider tells us the outcome (a signed notification, or our query when it is lost);
    `accounts.payments.services.top_up_settle` is the one place that turns it into a deposit.
    A paid order has exactly one deposit; a provider's trade is credited at most once (its
    trade number is the deposit's idempotency key and unique per method here).
    """

    class Method(models.TextChoices):
        # The online subset of LedgerEntry.Method: bank transfers are not ordered here.
        ALIPAY = "alipay", "Alipay"
        WECHAT_PAY = "wechat_pay", "WeChat Pay"

    class Status(models.TextChoices):
        CREATED = "created", "Created"  # waiting for the customer to pay
        PAID = "paid", "Paid"  # credited
        FAILED = "failed", "Failed"  # the provider could not start or closed it unpaid
        EXPIRED = "expired", "Expired"  # never paid in time; closed at the provider
        NEEDS_REVIEW = "needs_review", "Needs review"  # finance looks at `review_reason`

    # Our order number, the provider's out_trade_no: letters and digits, <= 32 (WeChat's limit).
    number = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="top_ups")
    amount = MoneyField(**MONEY)
    method = models.CharField(max_length=16, choices=Method.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    # The provider's own number of the payment; set once a verified answer names it.
    provider_trade_no = models.CharField(max_length=64, null=True, blank=True)
    # What the provider says was paid (may differ from `amount`: then nothing is credited).
    paid_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    # The verified notification (or order-query answer) that settled the order, as received.
    notification = models.JSONField(null=True, blank=True, editable=False)
    # WeChat Native: the code_url the QR code encodes; empty for Alipay.
    code_url = models.CharField(max_length=200, blank=True, editable=False)
    review_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    # After this moment the order is closed at the provider and no longer offered to pay.
    expires_at = models.DateTimeField()
    # The provider's payment time (from its answer), and when we settled it.
    paid_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # The ledger deposit this payment produced; at most one per order.
    deposit = models.OneToOneField(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="top_up",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "top-up order"
        indexes = [models.Index(fields=["status", "created_at"], name="topup_status_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["method", "provider_trade_no"],
                condition=Q(provider_trade_no__isnull=False),
                name="topup_trade_no_unique_per_method",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="topup_amount_positive"),
            models.CheckConstraint(condition=Q(amount_currency="CNY"), name="topup_cny_only"),
            models.CheckConstraint(
                condition=Q(method__in=["alipay", "wechat_pay"]), name="topup_method_online"
            ),
            models.CheckConstraint(
                condition=~Q(status="paid")
                | Q(deposit__isnull=False, provider_trade_no__isnull=False),
                name="topup_paid_has_deposit",
            ),
            models.CheckConstraint(
                condition=Q(deposit__isnull=True) | Q(provider_trade_no__isnull=False),
                name="topup_deposit_has_trade_no",
            ),
            models.CheckConstraint(
                condition=~Q(status="needs_review") | ~Q(review_reason=""),
                name="topup_review_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Top-up {self.number} ({self.method}, {self.status})"


class MailBounce(models.Model):
    """One recipient of a bounce or complaint notice: the mail provider's webhook, or a
    returned delivery status notification (RFC 3464). Recorded once per (notice, recipient):
    a notice delivered twice changes nothing the second time. Finance reads them in the admin;
    the delivery they refused and the contact they bounced show them too."""

    class Kind(models.TextChoices):
        # The address is refused for good: the delivery is refused, the contact bounced.
        BOUNCE = "bounce", "Bounce"
        # The recipient marked the message as spam: it was delivered; only this row records it.
        COMPLAINT = "complaint", "Complaint"

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Provider webhook"
        DSN = "dsn", "Returned message (DSN)"

    # The provider's id of the notice (webhook-id / svix-id), or the DSN's Message-ID.
    notice_id = models.CharField(max_length=255)
    source = models.CharField(max_length=16, choices=Source.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    recipient = models.EmailField(max_length=254)
    reason = models.CharField(max_length=500, blank=True)
    # The latest message sent to the recipient before the notice (None: none found).
    delivery = models.ForeignKey(
        EmailDelivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="bounces"
    )
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["notice_id", "recipient"], name="mail_bounce_once_per_notice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.recipient} ({self.notice_id})"


class BankStatement(models.Model):
    """One bank statement file finance uploaded (CSV in the bank's export format, or MT940).
    Its lines are stored once per bank transaction (BankStatementLine.dedupe_key): a file
    uploaded again, or one overlapping an earlier one, adds only the transactions not seen."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        MT940 = "mt940", "MT940"

    file_name = models.CharField(max_length=255)
    format = models.CharField(max_length=8, choices=Format.choices)
    # The issuer's bank account the statement is of (MT940 :25:, or BILLING_BANK_ACCOUNT).
    account = models.CharField(max_length=64)
    # SHA-256 of the uploaded bytes, to recognise the same file uploaded again.
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField()
    # Transactions in the file, and how many of them earlier statements already held.
    lines_in_file = models.PositiveIntegerField(default=0)
    lines_seen_before = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.uploaded_at:%Y-%m-%d %H:%M})"


class BankStatementLine(models.Model):
    """One bank transaction of the issuer's account. A credit that quotes a customer's
    transfer reference becomes that customer's deposit (accounts.payments.bank_reconciliation);
    one that does not waits for finance (assigned to a customer, or not ours)."""

    class Direction(models.TextChoices):
        CREDIT = "credit", "Credit (money in)"
        DEBIT = "debit", "Debit (money out)"

    class Status(models.TextChoices):
        MATCHED = "matched", "Matched: deposited"
        UNMATCHED = "unmatched", "Unmatched: waits for finance"
        NOT_OURS = "not_ours", "Not ours"
        IGNORED = "ignored", "Ignored (debit or own transfer)"

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines")
    # The bank's id of the transaction; empty when the export gives none.
    bank_transaction_id = models.CharField(max_length=100, blank=True)
    # "<account>:<bank transaction id>", or "<account>:h:<hash of date, amount, payer,
    # remark>" without an id: one row per bank transaction, however many statements repeat it.
    # The deposit's idempotency key is built from it too.
    dedupe_key = models.CharField(max_length=200, unique=True)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    # The transaction's amount, positive in both directions.
    amount = MoneyField(**MONEY)
    booked_on = models.DateField()
    payer_name = models.CharField(max_length=200, blank=True)
    payer_account = models.CharField(max_length=64, blank=True)
    remark = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    # Why an ignored line is ignored, or why a line is not ours (finance's note).
    note = models.CharField(max_length=300, blank=True)
    # Matched lines: the customer and the deposit they became (exactly one).
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bank_statement_lines",
    )
    deposit = models.OneToOneField(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bank_statement_line",
    )
    # Who assigned or dismissed the line (empty: matched by its reference on upload).
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-booked_on", "-id"]
        indexes = [models.Index(fields=["status", "booked_on"], name="bankline_status_booked")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="bankline_amount_positive"),
            models.CheckConstraint(condition=Q(amount_currency="CNY"), name="bankline_cny_only"),
            models.CheckConstraint(
                condition=(
                    Q(status="matched", deposit__isnull=False, customer__isnull=False)
                    | (~Q(status="matched") & Q(deposit__isnull=True))
                ),
                name="bankline_matched_has_deposit",
            ),
            models.CheckConstraint(
                condition=Q(direction="credit") | Q(status="ignored"),
                name="bankline_debit_ignored",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.booked_on} {self.get_direction_display()} {self.amount} ({self.status})"
