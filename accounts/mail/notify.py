"""Events other code raises to send a customer e-mail: a payment receipt (deposits today,
online top-ups later) and the low-balance alert. Both go through the outbox like every event:
recorded once per dedupe key, e-mailed after the transaction commits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from accounts.events.records import customer_event_row, record_customer_event
from accounts.models import Customer, CustomerEvent
from billingsite.clock import billing_date
from billingsite.money import format_amount


def payment_received_notify(
    *,
    customer: Customer,
    amount: Decimal,
    reference: str,
    source_key: str,
    balance_after: Decimal | None,
    now: dt.datetime,
    method: str | None = None,
) -> tuple[CustomerEvent, bool]:
    """Send a receipt for money that reached the balance. `source_key` names the payment
    once (a ledger entry, a payment provider's id): a retried caller sends one receipt."""
    return record_customer_event(
        customer=customer,
        kind=CustomerEvent.Kind.PAYMENT_RECEIVED,
        dedupe_key=f"payment_received:{source_key}",
        payload={
            "amount": format_amount(amount),
            "reference": reference,
            "method": method,
            "received_on": billing_date(now).isoformat(),
            "balance_after": None if balance_after is None else format_amount(balance_after),
        },
        now=now,
    )


def balance_low_event_row(
    *,
    customer_id: int,
    balance: Decimal,
    days_left: int | None,
    recommended_balance: Decimal | None,
    dedupe_key: str,
    now: dt.datetime,
    threshold: Decimal | None = None,
) -> dict:
    """The row of a low-balance event (for `record_customer_events`, many at once)."""
    return customer_event_row(
        customer_id=customer_id,
        kind=CustomerEvent.Kind.BALANCE_LOW,
        dedupe_key=f"balance_low:{dedupe_key}",
        payload={
            "balance": format_amount(balance),
            "days_left": days_left,
            "recommended_balance": None
            if recommended_balance is None
            else format_amount(recommended_balance),
            "threshold": None if threshold is None else format_amount(threshold),
        },
        now=now,
    )


def balance_low_notify(
    *,
    customer: Customer,
    balance: Decimal,
    days_left: int | None,
    recommended_balance: Decimal | None,
    dedupe_key: str,
    now: dt.datetime,
    threshold: Decimal | None = None,
) -> tuple[CustomerEvent, bool]:
    """Send the low-balance alert (kind `balance_low`: the e-mail, and the webhook
    `balance.low`). `accounts.low_balance` decides when a balance is low and tells once per
    crossing (its `dedupe_key`)."""
    row = balance_low_event_row(
        customer_id=customer.pk,
        balance=balance,
        days_left=days_left,
        recommended_balance=recommended_balance,
        dedupe_key=dedupe_key,
        now=now,
        threshold=threshold,
    )
    return record_customer_event(
        customer=customer,
        kind=row["kind"],
        dedupe_key=row["dedupe_key"],
        payload=row["payload"],
        now=now,
    )
