"""Write paths for customers' money: the append-only ledger and the arrears state it drives.

Every function locks the customer row first, so concurrent deposits and debits serialize and
the arrears state always matches the balance that caused it.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from moneyed import Money

from accounts.events import record_customer_event
from accounts.models import Application, Customer, CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from billingsite.clock import billing_date
from billingsite.money import CURRENCY, CurrencyError, round_money

ARREARS_GRACE_DAYS = 7


class LedgerError(ValueError):
    """A ledger write was refused; `field` names the offending input."""

    def __init__(self, message: str, *, field: str = "amount"):
        super().__init__(message)
        self.field = field


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used for a different entry."""


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


def lock_customer(*, customer: Customer | int) -> Customer:
    customer_id = customer if isinstance(customer, int) else customer.pk
    return Customer.objects.select_for_update().get(pk=customer_id)


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
    created_by=None,
) -> tuple[LedgerEntry, bool]:
    """Append one entry, once per idempotency key. Returns (entry, created).

    Sending the same key again returns the first entry; the same key with another customer,
    kind or amount raises IdempotencyConflict. Updates arrears after the entry.
    """
    value = _money_amount(amount)
    if kind not in LedgerEntry.Kind.values:
        raise LedgerError(f"unknown ledger entry kind {kind!r}", field="kind")
    if value == 0:
        raise LedgerError("amount cannot be zero")
    if kind == LedgerEntry.Kind.DEPOSIT and value <= 0:
        raise LedgerError("a deposit must be a positive amount")
    if kind == LedgerEntry.Kind.ADJUSTMENT and not reason.strip():
        raise LedgerError("a manual adjustment needs a reason", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise LedgerError(
            f"the reason is longer than {MAX_REASON_LENGTH:,} characters", field="reason"
        )
    if len(reference) > LedgerEntry._meta.get_field("reference").max_length:
        raise LedgerError("the reference is longer than 200 characters", field="reference")
    if not idempotency_key:
        raise LedgerError("an idempotency key is required", field="idempotency_key")
    with transaction.atomic():
        locked = lock_customer(customer=customer)
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_entry(existing, customer_id=locked.pk, kind=kind, amount=value), False
        try:
            with transaction.atomic():
                entry = LedgerEntry.objects.create(
                    customer=locked,
                    kind=kind,
                    amount=Money(value, CURRENCY),
                    idempotency_key=idempotency_key,
                    reference=reference,
                    reason=reason,
                    created_by=created_by,
                    created_at=now,
                )
        except IntegrityError:
            # Another transaction used the key for another customer (whose row we did not lock).
            existing = LedgerEntry.objects.get(idempotency_key=idempotency_key)
            return _same_entry(existing, customer_id=locked.pk, kind=kind, amount=value), False
        update_arrears(customer=locked, now=now)
    return entry, True


def _same_entry(
    existing: LedgerEntry, *, customer_id: int, kind: str, amount: Decimal
) -> LedgerEntry:
    if (existing.customer_id, existing.kind, existing.amount.amount) != (customer_id, kind, amount):
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
    created_by=None,
) -> tuple[LedgerEntry, bool]:
    return ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.DEPOSIT,
        amount=amount,
        reference=reference,
        idempotency_key=idempotency_key,
        now=now,
        created_by=created_by,
    )


def record_adjustment(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reason: str,
    idempotency_key: str,
    now: dt.datetime,
    created_by=None,
) -> tuple[LedgerEntry, bool]:
    return ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=amount,
        reason=reason,
        idempotency_key=idempotency_key,
        now=now,
        created_by=created_by,
    )


def arrears_started_event(
    *, customer_id: int, today: dt.date, balance: Decimal | None
) -> tuple[str, dict]:
    """Dedupe key and payload of the arrears-started event (`balance` None: left out, for a
    writer that fills it in later)."""
    payload = {
        "balance": None if balance is None else f"{balance:.2f}",
        "arrears_since": today.isoformat(),
        "suspension_date": suspension_date(arrears_since=today).isoformat(),
    }
    return f"arrears_started:{customer_id}:{today.isoformat()}", payload


def update_arrears(*, customer: Customer, now: dt.datetime) -> None:
    """Start arrears when the balance is below zero; end them (and lift a suspension) when it
    is back at zero or above. The caller holds the customer's row lock.

    The customer's history gets a row for each change (the fields themselves are not tracked,
    but the accounting export's `updated_at` of a customer, whose status they decide, is its
    latest history row)."""
    balance = ledger_balance(customer=customer)
    today = billing_date(now)
    if balance < 0 and customer.arrears_since is None:
        customer.arrears_since = today
        customer.save(update_fields=["arrears_since"])
        dedupe_key, payload = arrears_started_event(
            customer_id=customer.pk, today=today, balance=balance
        )
        record_customer_event(
            customer=customer,
            kind=CustomerEvent.Kind.ARREARS_STARTED,
            dedupe_key=dedupe_key,
            payload=payload,
            now=now,
        )
    elif balance >= 0 and customer.arrears_since is not None:
        was_suspended = customer.suspended_at is not None
        started = customer.arrears_since
        customer.arrears_since = None
        customer.suspended_at = None
        customer.save(update_fields=["arrears_since", "suspended_at"])
        if was_suspended:
            Application.objects.filter(customer=customer).update(status=Application.Status.ACTIVE)
            record_customer_event(
                customer=customer,
                kind=CustomerEvent.Kind.REACTIVATED,
                dedupe_key=f"reactivated:{customer.pk}:{started.isoformat()}",
                payload={"balance": f"{balance:.2f}"},
                now=now,
            )


def suspension_date(*, arrears_since: dt.date) -> dt.date:
    """First day without service. The day arrears start is day 1; arrears not restored within
    7 days (days 1-7) are suspended on day 8."""
    return arrears_since + dt.timedelta(days=ARREARS_GRACE_DAYS)


# --- Customers and applications ------------------------------------------------------------

# Both identifiers appear in API paths (/customers/{external_id}/, /applications/{app_key}/),
# so they are limited to characters that need no escaping in a URL path segment.
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class AccountError(ValueError):
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
    now: dt.datetime,
) -> Customer:
    """Create a customer account. A taken `external_id` raises DuplicateError."""
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
        limit = Customer._meta.get_field(field).max_length
        if len(value or "") > limit:
            raise AccountError(f"{field} is longer than {limit} characters", field=field)
    if Customer.objects.filter(external_id=external_id).exists():
        raise DuplicateError(
            f"a customer with external_id {external_id!r} exists", field="external_id"
        )
    try:
        with transaction.atomic():
            return Customer.objects.create(
                external_id=external_id,
                name=name,
                billing_email=billing_email,
                address=address or "",
                tax_id=(tax_id or "").strip(),
                contact_name=(contact_name or "").strip(),
                contact_phone=(contact_phone or "").strip(),
            )
    except IntegrityError:
        # Two requests raced for the same external id; the loser gets the same answer as above.
        raise DuplicateError(
            f"a customer with external_id {external_id!r} exists", field="external_id"
        ) from None


def application_create(
    *,
    customer: Customer,
    app_key: str,
    name: str,
    data_center: str,
    now: dt.datetime,
    created_by=None,
) -> Application:
    """Create an application on the Free plan from today's (Asia/Shanghai) date.

    The customer row is locked so the application cannot miss a suspension that is being
    recorded at the same moment: an application of a suspended customer starts suspended.
    """
    from plans.models import Plan, PlanChange

    app_key = _identifier(app_key, field="app_key")
    name = _required_text(name, field="name", max_length=200)
    if data_center not in Application.DataCenter.values:
        choices = ", ".join(Application.DataCenter.values)
        raise AccountError(f"data_center must be one of {choices}", field="data_center")
    free = Plan.objects.filter(activation=Plan.Activation.AUTOMATIC).order_by("rank").first()
    if free is None:
        raise AccountError("the price book has no automatic (Free) plan: load it first", field=None)
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
        PlanChange.objects.create(
            application=application,
            plan=free,
            effective_date=today,
            requested_date=today,
            created_at=now,
            created_by=created_by,
            note="Free plan on creation",
        )
    return application


def deposit_record_by_key(
    *,
    customer: Customer,
    amount: Decimal | Money,
    reference: str,
    idempotency_key: str,
    now: dt.datetime,
    created_by=None,
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
