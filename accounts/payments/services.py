"""Top-up orders: created by the customer, settled by the provider's word, swept when late.

`top_up_settle` is the one place a provider's payment becomes a ledger deposit. It locks the
order row, then `record_deposit` locks the customer (always in this order). The deposit's
idempotency key is the provider's trade number (`top_up_deposit_key`), so however many
notifications and queries arrive, in whatever order or at once, one trade credits once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from accounts.models import Customer, TopUp
from accounts.payments.providers import (
    ProviderPayment,
    ProviderUnavailable,
    configured_methods,
    provider_for,
)
from accounts.services import record_deposit
from billingsite.clock import BILLING_TZ
from billingsite.money import CURRENCY, AmountTooLarge, parse_amount, round_money

logger = logging.getLogger(__name__)


class TopUpError(ValueError):
    """The customer's top-up request was refused; `field` names the offending input."""

    def __init__(self, message: str, *, field: str = "amount"):
        super().__init__(message)
        self.field = field


class UnknownOrder(LookupError):
    """A verified payment names an order we never created (for this method)."""


# Ours: letters and digits (`_order_number`); the providers' trade numbers: printable ASCII.
ORDER_NUMBER = re.compile(r"[A-Za-z0-9]{1,32}")
TRADE_NO = re.compile(r"[\x21-\x7e]{1,64}")


def _storable(raw: dict) -> bool:
    """PostgreSQL's jsonb holds no NUL and no lone surrogate (text is UTF-8)."""
    try:
        text = json.dumps(raw, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return False
    return "\x00" not in text and "\\u0000" not in text


def top_up_deposit_key(*, method: str, trade_no: str) -> str:
    return f"topup:{method}:{trade_no}"


def top_up_amount(value: object) -> Decimal:
    """The amount a customer typed, checked against the settings' minimum and maximum."""
    try:
        amount = parse_amount(str(value))
    except AmountTooLarge:
        amount = None
    except ValueError as error:
        raise TopUpError("enter an amount in CNY, e.g. 500.00") from error
    if amount is not None and round_money(amount) != amount:
        raise TopUpError("enter an amount with at most two decimal places")
    if amount is None or not settings.BILLING_TOP_UP_MIN <= amount <= settings.BILLING_TOP_UP_MAX:
        raise TopUpError(
            f"the amount must be between {settings.BILLING_TOP_UP_MIN:,.2f} and "
            f"{settings.BILLING_TOP_UP_MAX:,.2f} CNY"
        )
    return amount


def _order_number(now: dt.datetime) -> str:
    # 2 + 14 + 10 = 26 characters: readable by day, unguessable, within WeChat's 32.
    return f"TU{now.astimezone(BILLING_TZ):%Y%m%d%H%M%S}{secrets.token_hex(5).upper()}"


def top_up_create(
    *,
    customer: Customer,
    amount: object,
    method: str,
    now: dt.datetime,
    return_url: Callable[[str], str],
) -> TopUp:
    """Order a top-up and open it at the provider; `return_url(number)` is the page the
    customer comes back to. Sets `redirect_url` (Alipay) or `code_url` (WeChat Pay Native).
    A provider that cannot be reached leaves the order `failed` (nothing was paid) and raises
    ProviderUnavailable."""
    value = top_up_amount(amount)
    if method not in configured_methods():
        raise TopUpError("this payment method is not available", field="method")
    provider = provider_for(method)
    top_up = TopUp.objects.create(
        number=_order_number(now),
        customer=customer,
        amount=value,
        method=method,
        created_at=now,
        expires_at=now + dt.timedelta(minutes=settings.BILLING_TOP_UP_EXPIRE_MINUTES),
    )
    try:
        start = provider.start(top_up=top_up, return_url=return_url(top_up.number))
    except ProviderUnavailable:
        TopUp.objects.filter(pk=top_up.pk, status=TopUp.Status.CREATED).update(
            status=TopUp.Status.FAILED
        )
        raise
    if start.code_url:
        TopUp.objects.filter(pk=top_up.pk).update(code_url=start.code_url)
        top_up.code_url = start.code_url
    # Not a column: where this request sends the customer.
    top_up.redirect_url = start.redirect_url  # type: ignore[attr-defined]
    return top_up


@dataclass(frozen=True)
class Settlement:
    top_up: TopUp
    # True when this call wrote the deposit (False: already credited, or nothing to credit).
    credited: bool


def top_up_settle(*, payment: ProviderPayment, now: dt.datetime) -> Settlement:
    """Apply a verified statement of the provider to its order.

    - paid, amount and currency as ordered, our merchant: one deposit (status paid; an order
      that had expired still gets the money, it was received, and goes to finance's review);
    - paid with another amount or currency: nothing credited, the order waits for review;
    - paid again under another trade number: nothing credited, review;
    - closed unpaid: the order failed (if still waiting); pending: nothing changes.
    Raises UnknownOrder for an order that is not ours, ValueError for another merchant.
    """
    provider = provider_for(payment.method)
    if payment.merchant_id != provider.merchant_id():
        raise ValueError("the payment is for another merchant")
    if not ORDER_NUMBER.fullmatch(payment.order_number):
        raise UnknownOrder(payment.order_number[:40])
    if not TRADE_NO.fullmatch(payment.trade_no) or not _storable(payment.raw):
        # Signed, but not what the provider ever sends: refused, so it cannot reach a column
        # that would refuse it (a database error would make the provider retry forever).
        raise ValueError("malformed trade number or notification")
    with transaction.atomic():
        top_up = (
            TopUp.objects.select_for_update()
            .filter(number=payment.order_number, method=payment.method)
            .first()
        )
        if top_up is None:
            raise UnknownOrder(payment.order_number)
        if not payment.paid:
            if payment.closed and top_up.status == TopUp.Status.CREATED:
                top_up.status = TopUp.Status.FAILED
                top_up.save(update_fields=["status"])
            return Settlement(top_up=top_up, credited=False)
        if top_up.deposit_id is not None or top_up.provider_trade_no:
            if top_up.provider_trade_no != payment.trade_no:
                _review(top_up, f"paid again under trade {payment.trade_no}: not credited")
            return Settlement(top_up=top_up, credited=False)
        top_up.provider_trade_no = payment.trade_no
        top_up.paid_amount = payment.amount
        top_up.notification = payment.raw
        top_up.paid_at = payment.paid_at or now
        top_up.settled_at = now
        if payment.currency != CURRENCY or payment.amount != top_up.amount.amount:
            top_up.status = TopUp.Status.NEEDS_REVIEW
            top_up.review_reason = (
                f"paid {payment.amount} {payment.currency[:16]}, ordered {top_up.amount.amount} "
                f"{CURRENCY}: not credited"
            )
            top_up.save()
            return Settlement(top_up=top_up, credited=False)
        entry, created = record_deposit(
            customer=top_up.customer,
            amount=top_up.amount.amount,
            reference=payment.trade_no,
            idempotency_key=top_up_deposit_key(method=payment.method, trade_no=payment.trade_no),
            now=now,
            method=payment.method,
        )
        top_up.deposit = entry
        if top_up.status == TopUp.Status.CREATED:
            top_up.status = TopUp.Status.PAID
        else:
            top_up.review_reason = f"paid while {top_up.status}: credited"
            top_up.status = TopUp.Status.NEEDS_REVIEW
        top_up.save()
    return Settlement(top_up=top_up, credited=created)


def _review(top_up: TopUp, reason: str) -> None:
    top_up.status = TopUp.Status.NEEDS_REVIEW
    top_up.review_reason = reason[:300]
    top_up.save(update_fields=["status", "review_reason"])


@dataclass
class SweepResult:
    settled: int = 0
    expired: int = 0
    errors: int = 0


def top_ups_sweep(*, now: dt.datetime) -> SweepResult:
    """Ask the provider about orders still waiting a few minutes after creation (a lost
    notification must not lose a deposit) and close and expire the unpaid ones past expiry."""
    result = SweepResult()
    waiting = TopUp.objects.filter(
        status=TopUp.Status.CREATED,
        method__in=configured_methods(),
        created_at__lte=now - dt.timedelta(minutes=settings.BILLING_TOP_UP_QUERY_AFTER_MINUTES),
    ).order_by("created_at", "id")
    for top_up in waiting.iterator():
        try:
            _sweep_one(top_up=top_up, now=now, result=result)
        except (ProviderUnavailable, UnknownOrder, ValueError) as error:
            result.errors += 1
            logger.warning("top-up %s not swept: %s", top_up.number, error)
    return result


def _sweep_one(*, top_up: TopUp, now: dt.datetime, result: SweepResult) -> None:
    provider = provider_for(top_up.method)
    payment = provider.query(top_up=top_up)
    if payment is not None and payment.order_number != top_up.number:
        raise ValueError("the provider answered about another order")
    if payment is not None and payment.paid:
        if top_up_settle(payment=payment, now=now).top_up.deposit_id is not None:
            result.settled += 1
        return
    if now < top_up.expires_at:
        return
    # A trade the provider already closed (its own expiry) needs no close; Alipay would refuse it.
    already_closed = payment is not None and payment.closed
    if not already_closed and not provider.close(top_up=top_up):
        return  # paid meanwhile: the notification or the next sweep settles it
    with transaction.atomic():
        locked = TopUp.objects.select_for_update().get(pk=top_up.pk)
        if locked.status == TopUp.Status.CREATED:
            locked.status = TopUp.Status.EXPIRED
            locked.save(update_fields=["status"])
            result.expired += 1
