"""Write paths for customers' money: the append-only ledger and the arrears state it drives.

Every function locks the customer row first, so concurrent deposits and debits serialize and
the arrears state always matches the balance that caused it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Field, Model, Sum
from moneyed import Money

from accounts.arrears import update_arrears
from accounts.locks import lock_customer
from accounts.low_balance import low_balance_check
from accounts.mail.contacts import primary_contact_ensure
from accounts.mail.notify import payment_received_notify
from accounts.models import (
    AdjustmentRequest,
    Application,
    Customer,
    LedgerEntry,
)
from accounts.selectors import ledger_balance
from billingsite.clock import billing_date, start_of_day
from billingsite.money import CURRENCY, CurrencyError, round_money
from billingsite.refusals import Refusal
from billingsite.text import invisible_character_message


class LedgerError(Refusal):
    """A ledger write was refused; `field` names the offending input."""

    code = "invalid_amount"

    def __init__(self, message: str, *, field: str | None = "amount"):
        super().__init__(message)
        self.field = field


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different entry."""

    code = "idempotency_conflict"


def _money_amount(amount: Decimal | Money) -> Decimal:
    if isinstance(amount, Money):
        if str(amount.currency) != CURRENCY:
            raise LedgerError(CurrencyError.message, field="currency")
        amount = amount.amount
    if isinstance(amount, float) or not isinstance(amount, Decimal):
        raise LedgerError("amount must be a Decimal")
    if not amount.is_finite():
        raise LedgerError("amount must be a finite number")
    if round_money(amount) != amount:
        raise LedgerError("amount must have at most two decimal places")
    return amount


def _max_length(model: type[Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.max_length is not None, f"{name} is not text"
    return field.max_length


# Reasons of adjustments and credit notes are shown to the customer: a sentence or two.
MAX_REASON_LENGTH = 1000


def ledger_record(
    *,
    customer: Customer,
    kind: str,
    amount: Decimal | Money,
    idempotency_key: str,
    now: dt.datetime,
    reference: str = "",
    reason: str = "",
    method: str | None = None,
    created_by: User | None = None,
    expires_on: dt.date | None = None,
    promo_grant: LedgerEntry | None = None,
) -> tuple[LedgerEntry, bool]:
    """Append one entry, once per idempotency key. Returns (entry, created).

    `method` is how a deposit's money arrived (`LedgerEntry.Method`, a bank transfer unless
    said); other kinds take none. `expires_on`: a promotional credit grant's last valid day
    (grants only); `promo_grant`: the grant a promotional credit use or lapse draws on.

    Sending the same key again returns the first entry; the same key with another customer,
    kind or amount raises IdempotencyConflict. Updates arrears and the low-balance alert after
    the entry.
    """
    value = _money_amount(amount)
    if kind not in LedgerEntry.Kind.values:
        raise LedgerError(f"unknown ledger entry kind {kind!r}", field="kind")
    if value == 0:
        raise LedgerError("amount cannot be zero")
    if kind == LedgerEntry.Kind.DEPOSIT and value <= 0:
        raise LedgerError("a deposit must be a positive amount")
    if kind == LedgerEntry.Kind.DEPOSIT and method is None:
        method = LedgerEntry.Method.BANK_TRANSFER
    if kind == LedgerEntry.Kind.DEPOSIT and method not in LedgerEntry.Method.values:
        raise LedgerError("a deposit needs its method of payment", field="method")
    if kind != LedgerEntry.Kind.DEPOSIT and method is not None:
        raise LedgerError("only a deposit has a method of payment", field="method")
    if kind == LedgerEntry.Kind.ADJUSTMENT and not reason.strip():
        raise LedgerError("a manual adjustment needs a reason", field="reason")
    _check_promo_fields(
        kind=kind, value=value, reason=reason, expires_on=expires_on, promo_grant=promo_grant
    )
    if len(reason) > MAX_REASON_LENGTH:
        raise LedgerError(
            f"the reason is longer than {MAX_REASON_LENGTH:,} characters", field="reason"
        )
    if len(reference) > _max_length(LedgerEntry, "reference"):
        raise LedgerError("the reference is longer than 200 characters", field="reference")
    if not idempotency_key:
        raise LedgerError("an idempotency key is required", field="idempotency_key")
    with transaction.atomic():
        locked = lock_customer(customer=customer)
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_entry(
                existing, customer_id=locked.pk, kind=kind, amount=value, method=method
            ), False
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    customer=locked,
                    kind=kind,
                    # (django-stubs types djmoney's MoneyField as its DecimalField base)
                    amount=Money(value, CURRENCY),  # type: ignore[misc]
                    idempotency_key=idempotency_key,
                    reference=reference,
                    reason=reason,
                    method=method,
                    created_by=created_by,
                    created_at=now,
                    expires_on=expires_on,
                    promo_grant=promo_grant,
                )
        except IntegrityError:
            # Another transaction used the key for another customer (whose row we did not lock).
            existing = LedgerEntry.objects.get(idempotency_key=idempotency_key)
            return _same_entry(
                existing, customer_id=locked.pk, kind=kind, amount=value, method=method
            ), False
        update_arrears(customer=locked, now=now)
        low_balance_check(customer=locked, now=now)
    return entry, True


def _check_promo_fields(
    *,
    kind: str,
    value: Decimal,
    reason: str,
    expires_on: dt.date | None,
    promo_grant: LedgerEntry | None,
) -> None:
    """What the promotional credit kinds need (the database checks the same)."""
    if kind == LedgerEntry.Kind.PROMO_GRANT:
        if value <= 0:
            raise LedgerError("promotional credit must be a positive amount")
        if expires_on is None:
            raise LedgerError("promotional credit needs an expiry date", field="expires_on")
        if not reason.strip():
            raise LedgerError("promotional credit needs a reason", field="reason")
    elif expires_on is not None:
        raise LedgerError("only promotional credit has an expiry date", field="expires_on")
    if kind in LedgerEntry.PROMO_DRAW_KINDS:
        if value >= 0:
            raise LedgerError("a use or lapse of promotional credit is a negative amount")
        if promo_grant is None or promo_grant.kind != LedgerEntry.Kind.PROMO_GRANT:
            raise LedgerError(
                "a use or lapse draws on a promotional credit grant", field="promo_grant"
            )
    elif promo_grant is not None:
        raise LedgerError(
            "only a use or lapse draws on a promotional credit grant", field="promo_grant"
        )


def _same_entry(
    existing: LedgerEntry, *, customer_id: int, kind: str, amount: Decimal, method: str | None
) -> LedgerEntry:
    same_method = existing.method is None or existing.method == method
    if (existing.customer_id, existing.kind, existing.amount.amount) != (
        customer_id,
        kind,
        amount,
    ) or not same_method:
        raise IdempotencyConflict(
            "this idempotency key was already used for a different entry", field="idempotency_key"
        )
    return existing


def record_deposit(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reference: str,
    idempotency_key: str,
    now: dt.datetime,
    method: str = LedgerEntry.Method.BANK_TRANSFER,
    created_by: User | None = None,
) -> tuple[LedgerEntry, bool]:
    """A deposit, with its receipt e-mailed (in the same transaction: one receipt, never
    none, however often the caller retries)."""
    with transaction.atomic():
        entry, created = ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.DEPOSIT,
            amount=amount,
            reference=reference,
            method=method,
            idempotency_key=idempotency_key,
            now=now,
            created_by=created_by,
        )
        if created:
            payment_received_notify(
                customer=customer,
                amount=entry.amount.amount,
                reference=reference,
                source_key=f"ledger:{entry.pk}",
                balance_after=ledger_balance(customer=customer),
                now=now,
                method=entry.deposit_method,
            )
    return entry, created


def record_adjustment(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reason: str,
    idempotency_key: str,
    now: dt.datetime,
    created_by: User | None = None,
) -> tuple[LedgerEntry, bool]:
    """An adjustment that needs no approval (see `adjustment_needs_approval`); any other is
    refused: it goes through `adjustment_submit` and a manager's `adjustment_approve`."""
    if not (reason or "").strip():
        # Bad input is named before the approval rule.
        raise LedgerError("a manual adjustment needs a reason", field="reason")
    if adjustment_needs_approval(amount=_money_amount(amount)):
        raise AdjustmentApprovalRequired(
            "an adjustment of this amount needs a finance manager's approval: propose it"
        )
    return ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=amount,
        reason=reason,
        idempotency_key=idempotency_key,
        now=now,
        created_by=created_by,
    )


# --- Promotional credit ------------------------------------------------------------------------


def promo_credit_grant(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reason: str,
    expires_on: dt.date,
    granted_by: User | None,
    now: dt.datetime,
    idempotency_key: str,
) -> tuple[LedgerEntry, bool]:
    """Grant promotional credit (`accounts.promo_credit`): a positive amount with a reason,
    valid through `expires_on` (an Asia/Shanghai day after today). Recorded once per
    idempotency key by `ledger_record` (lock, arrears, low-balance alert). Returns (entry,
    created)."""
    reason = (reason or "").strip()
    if not reason:
        raise LedgerError("promotional credit needs a reason", field="reason")
    if not isinstance(expires_on, dt.date) or isinstance(expires_on, dt.datetime):
        raise LedgerError("the expiry must be a date", field="expires_on")
    if expires_on <= billing_date(now):
        raise LedgerError("the expiry date must be in the future", field="expires_on")
    if _money_amount(amount) <= 0:
        raise LedgerError("promotional credit must be a positive amount")
    return ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.PROMO_GRANT,
        amount=amount,
        reason=reason,
        expires_on=expires_on,
        idempotency_key=idempotency_key,
        now=now,
        created_by=granted_by,
    )


def promo_lapse_moment(expires_on: dt.date) -> dt.datetime:
    """When a grant's credit lapses: the start of the Asia/Shanghai day after its expiry."""
    return start_of_day(expires_on + dt.timedelta(days=1))


def promo_credit_lapse_due(*, now: dt.datetime) -> int:
    """Lapse what is left of every grant whose expiry day is over at `now`: one `promo_lapse`
    per grant, dated at `promo_lapse_moment`, for the amount the grant has left under the
    customer's lock (so a use written meanwhile is counted). Safe to rerun and to race: the
    key and the unique lapse per grant, and the lock. Returns how many lapses it wrote."""
    today = billing_date(now)
    due = (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PROMO_GRANT, expires_on__lt=today)
        .exclude(promo_draws__kind=LedgerEntry.Kind.PROMO_LAPSE)
        .order_by("customer_id", "id")
        .values_list("customer_id", "id")
    )
    written = 0
    for customer_id, grant_id in list(due):
        with transaction.atomic():
            customer = lock_customer(customer=customer_id)
            grant = LedgerEntry.objects.get(pk=grant_id)
            assert grant.expires_on is not None, "grants have an expiry (database CHECK)"
            left = grant.amount.amount + (
                grant.promo_draws.aggregate(total=Sum("amount"))["total"] or Decimal("0.00")
            )
            if left <= 0:
                continue
            _, created = ledger_record(
                customer=customer,
                kind=LedgerEntry.Kind.PROMO_LAPSE,
                amount=-left,
                promo_grant=grant,
                reference=f"promo:{grant.pk}",
                reason=f"Promotional credit expired on {grant.expires_on.isoformat()}",
                idempotency_key=f"promo-lapse:{grant.pk}",
                now=promo_lapse_moment(grant.expires_on),
            )
            written += created
    return written


# --- Manual adjustments that need approval --------------------------------------------------

APPROVE_ADJUSTMENTS = "accounts.approve_adjustmentrequest"


class AdjustmentApprovalRequired(LedgerError):
    """A direct adjustment above the approval threshold was refused."""


class AdjustmentDecisionError(LedgerError):
    """An approval or rejection was refused (wrong person, or already decided otherwise)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, field=field)


def adjustment_needs_approval(*, amount: Decimal) -> bool:
    """The one rule: an adjustment above BILLING_ADJUSTMENT_APPROVAL_ABOVE (default 0.00: every
    positive one) waits for a finance manager. Taking money away (negative) never waits."""
    return amount > settings.BILLING_ADJUSTMENT_APPROVAL_ABOVE


def _audited_save(
    request: AdjustmentRequest, *, user: User | None, now: dt.datetime, **kwargs: Any
) -> None:
    # simple-history's row names who did it and when, also outside an admin request.
    # (attributes simple-history reads but does not declare)
    request._history_user = user  # type: ignore[attr-defined]
    request._history_date = now  # type: ignore[attr-defined]
    request.save(**kwargs)


@dataclass(frozen=True)
class AdjustmentSubmission:
    # The posted entry; None while the adjustment waits for approval.
    entry: LedgerEntry | None
    # The approval record; None when the adjustment needed no approval.
    request: AdjustmentRequest | None
    # False: this idempotency key was submitted before, nothing new was written.
    created: bool


def adjustment_submit(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reason: str,
    idempotency_key: str,
    submitted_by: User | None,
    now: dt.datetime,
) -> AdjustmentSubmission:
    """A manual adjustment as finance enters it:

    - no approval needed: posted at once (no request);
    - approval needed, from someone who may not approve: proposed, no entry yet;
    - approval needed, from a manager: proposed and approved by them in one step (a manager
      may credit a customer on his own authority, as with credit notes).

    The same idempotency key again returns what the first submission did."""
    value = _money_amount(amount)
    reason = (reason or "").strip()
    if value == 0:
        raise LedgerError("amount cannot be zero")
    if not reason:
        raise LedgerError("a manual adjustment needs a reason", field="reason")
    if not idempotency_key:
        raise LedgerError("an idempotency key is required", field="idempotency_key")
    if not adjustment_needs_approval(amount=value):
        entry, created = record_adjustment(
            customer=customer,
            amount=value,
            reason=reason,
            idempotency_key=idempotency_key,
            now=now,
            created_by=submitted_by,
        )
        return AdjustmentSubmission(entry=entry, request=None, created=created)
    created = False
    with transaction.atomic():
        request = (
            AdjustmentRequest.objects.select_for_update()
            .filter(idempotency_key=idempotency_key)
            .first()
        )
        if request is None:
            try:
                with transaction.atomic():
                    request = AdjustmentRequest(
                        customer=customer,
                        # (django-stubs types djmoney's MoneyField as its DecimalField base)
                        amount=Money(value, CURRENCY),  # type: ignore[misc]
                        reason=reason,
                        idempotency_key=idempotency_key,
                        proposed_by=submitted_by,
                        proposed_at=now,
                    )
                    _audited_save(request, user=submitted_by, now=now)
                    created = True
            except IntegrityError:
                # The same form posted twice at once: the other post proposed it.
                request = AdjustmentRequest.objects.get(idempotency_key=idempotency_key)
        if (request.customer_id, request.amount.amount) != (customer.pk, value):
            raise IdempotencyConflict(
                "this idempotency key was already used for a different adjustment",
                field="idempotency_key",
            )
        if (
            request.status == AdjustmentRequest.Status.PROPOSED
            and submitted_by is not None
            and submitted_by.has_perm(APPROVE_ADJUSTMENTS)
        ):
            entry = _post_approved(request=request, approved_by=submitted_by, now=now)
            return AdjustmentSubmission(entry=entry, request=request, created=created)
    return AdjustmentSubmission(entry=request.ledger_entry, request=request, created=created)


def adjustment_approve(
    *, request: AdjustmentRequest, approved_by: User | None, now: dt.datetime
) -> LedgerEntry:
    """A finance manager approves someone else's proposal: the ledger entry is posted once
    (approving again returns it). A rejected request stays rejected."""
    if approved_by is None or not approved_by.has_perm(APPROVE_ADJUSTMENTS):
        raise AdjustmentDecisionError("only a finance manager may approve an adjustment")
    with transaction.atomic():
        locked = AdjustmentRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status == AdjustmentRequest.Status.APPROVED:
            # The check constraint: an approved request has its entry.
            assert locked.ledger_entry is not None
            return locked.ledger_entry
        if locked.status == AdjustmentRequest.Status.REJECTED:
            raise AdjustmentDecisionError("this adjustment was rejected; propose it again")
        if locked.proposed_by_id == approved_by.pk:
            raise AdjustmentDecisionError(
                "you proposed this adjustment: another finance manager must approve it"
            )
        entry = _post_approved(request=locked, approved_by=approved_by, now=now)
    request.refresh_from_db()
    return entry


def _post_approved(
    *, request: AdjustmentRequest, approved_by: User | None, now: dt.datetime
) -> LedgerEntry:
    """Post the locked, proposed request's entry and record the decision. The key is the
    request's, so the entry exists once whatever retries or races happen."""
    entry, _created = ledger_record(
        customer=request.customer,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=request.amount.amount,
        reason=request.reason,
        idempotency_key=f"adjustment-request:{request.pk}",
        now=now,
        created_by=approved_by,
    )
    request.status = AdjustmentRequest.Status.APPROVED
    request.decided_by = approved_by
    request.decided_at = now
    request.ledger_entry = entry
    _audited_save(
        request,
        user=approved_by,
        now=now,
        update_fields=["status", "decided_by", "decided_at", "ledger_entry"],
    )
    return entry


def adjustment_reject(
    *, request: AdjustmentRequest, rejected_by: User | None, now: dt.datetime
) -> None:
    """A finance manager rejects a proposal: nothing reaches the ledger. Rejecting again is a
    no-op; an approved adjustment cannot be rejected (its entry is posted: correct it with a
    new adjustment)."""
    if rejected_by is None or not rejected_by.has_perm(APPROVE_ADJUSTMENTS):
        raise AdjustmentDecisionError("only a finance manager may reject an adjustment")
    with transaction.atomic():
        locked = AdjustmentRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status == AdjustmentRequest.Status.REJECTED:
            return
        if locked.status == AdjustmentRequest.Status.APPROVED:
            raise AdjustmentDecisionError("this adjustment is approved and posted already")
        locked.status = AdjustmentRequest.Status.REJECTED
        locked.decided_by = rejected_by
        locked.decided_at = now
        _audited_save(
            locked, user=rejected_by, now=now, update_fields=["status", "decided_by", "decided_at"]
        )
    request.refresh_from_db()


# --- Customers and applications ------------------------------------------------------------

# Both identifiers appear in API paths (/customers/{external_id}/, /applications/{app_key}/),
# so they are limited to characters that need no escaping in a URL path segment.
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class AccountError(Refusal):
    """A customer or application write was refused. `code` names the rule, `field` the input."""

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field


class DuplicateError(AccountError):
    """The external id or app key is already taken (409 in the API)."""

    def __init__(self, message: str, *, field: str):
        super().__init__(message, code="duplicate", field=field)


def _required_text(value: str, *, field: str, max_length: int) -> str:
    text = (value or "").strip()
    if not text:
        raise AccountError(f"{field} is required", field=field)
    if len(text) > max_length:
        raise AccountError(f"{field} is longer than {max_length} characters", field=field)
    return text


def _identifier(value: str, *, field: str) -> str:
    text = (value or "").strip()
    if not IDENTIFIER_PATTERN.match(text):
        raise AccountError(
            f"{field} must be 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter "
            "or digit",
            field=field,
        )
    return text


def customer_create(
    *,
    external_id: str,
    name: str,
    billing_email: str,
    address: str = "",
    tax_id: str = "",
    contact_name: str = "",
    contact_phone: str = "",
    preferred_language: str = Customer.Language.ENGLISH,
    now: dt.datetime,
) -> Customer:
    """Create a customer account with its billing_email as first billing contact. A taken
    `external_id` raises DuplicateError."""
    external_id = _identifier(external_id, field="external_id")
    name = _required_text(name, field="name", max_length=200)
    billing_email = _required_text(billing_email, field="billing_email", max_length=254)
    try:
        validate_email(billing_email)
    except ValidationError:
        raise AccountError(
            "billing_email is not a valid e-mail address", field="billing_email"
        ) from None
    for value, field in (
        (address, "address"),
        (tax_id, "tax_id"),
        (contact_name, "contact_name"),
        (contact_phone, "contact_phone"),
    ):
        limit = _max_length(Customer, field)
        if len(value or "") > limit:
            raise AccountError(f"{field} is longer than {limit} characters", field=field)
    for value, field in (
        (name, "name"),
        (address, "address"),
        (tax_id, "tax_id"),
        (contact_name, "contact_name"),
        (contact_phone, "contact_phone"),
    ):
        refusal = invisible_character_message(
            value or "", label=field, multiline=field == "address"
        )
        if refusal is not None:
            raise AccountError(refusal, field=field)
    if preferred_language not in Customer.Language.values:
        choices = ", ".join(Customer.Language.values)
        raise AccountError(
            f"preferred_language must be one of {choices}", field="preferred_language"
        )
    if Customer.objects.filter(external_id=external_id).exists():
        raise DuplicateError(
            f"a customer with external_id {external_id!r} exists", field="external_id"
        )
    try:
        with transaction.atomic():
            customer = Customer.objects.create(
                external_id=external_id,
                name=name,
                billing_email=billing_email,
                address=address or "",
                tax_id=(tax_id or "").strip(),
                contact_name=(contact_name or "").strip(),
                contact_phone=(contact_phone or "").strip(),
                preferred_language=preferred_language,
            )
            primary_contact_ensure(customer=customer)
            return customer
    except IntegrityError:
        # Two requests raced for the same external id; the loser gets the same answer as above.
        raise DuplicateError(
            f"a customer with external_id {external_id!r} exists", field="external_id"
        ) from None


def application_register(
    *,
    customer: Customer,
    app_key: str,
    name: str,
    data_center: str,
    now: dt.datetime,
) -> Application:
    """The application's row, created today (Asia/Shanghai), without a plan: callers create
    applications with `plans.services.application_create`, which gives it its Free plan in the
    same transaction.

    The customer row is locked so the application cannot miss a suspension that is being
    recorded at the same moment: an application of a suspended customer starts suspended.
    """

    app_key = _identifier(app_key, field="app_key")
    name = _required_text(name, field="name", max_length=200)
    refusal = invisible_character_message(name, label="name")
    if refusal is not None:
        raise AccountError(refusal, field="name")
    if data_center not in Application.DataCenter.values:
        choices = ", ".join(Application.DataCenter.values)
        raise AccountError(f"data_center must be one of {choices}", field="data_center")
    today = billing_date(now)
    with transaction.atomic():
        locked = lock_customer(customer=customer)
        if Application.objects.filter(app_key=app_key).exists():
            raise DuplicateError(f"an application with app_key {app_key!r} exists", field="app_key")
        status = (
            Application.Status.SUSPENDED
            if locked.suspended_at is not None
            else Application.Status.ACTIVE
        )
        try:
            with transaction.atomic():
                application = Application.objects.create(
                    customer=locked,
                    app_key=app_key,
                    name=name,
                    data_center=data_center,
                    created_on=today,
                    status=status,
                )
        except IntegrityError:
            raise DuplicateError(
                f"an application with app_key {app_key!r} exists", field="app_key"
            ) from None
    return application


def deposit_record_by_key(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reference: str,
    idempotency_key: str,
    now: dt.datetime,
    created_by: User | None = None,
) -> tuple[LedgerEntry, bool]:
    """A deposit sent with a client's Idempotency-Key (the provisioning API).

    The key is recorded once: sending it again returns the first entry. The same key with
    another customer, amount or reference raises IdempotencyConflict and records nothing.
    """
    key = (idempotency_key or "").strip()
    if not key or len(key) > 150:
        raise LedgerError("the Idempotency-Key must be 1-150 characters", field="idempotency_key")
    entry, created = record_deposit(
        customer=customer,
        amount=amount,
        reference=reference,
        idempotency_key=f"api-deposit:{key}",
        now=now,
        created_by=created_by,
    )
    if not created and entry.reference != reference:
        raise IdempotencyConflict(
            "this idempotency key was already used for a different deposit",
            field="idempotency_key",
        )
    return entry, created
