"""Arrears: the one policy, from the balance going below zero to suspension and back.

- Arrears start on the Asia/Shanghai day a ledger write takes the balance below zero
  (`Customer.arrears_since`); that day is day 1.
- Days 1 to ARREARS_GRACE_DAYS are the grace period; a warning goes out
  WARNING_DAYS_BEFORE days before the suspension date; on the suspension date
  (`suspension_date`, day ARREARS_GRACE_DAYS + 1) every application of the customer is
  suspended by the daily check (`arrears_enforce`).
- A ledger write that brings the balance back to zero or above ends the arrears and
  reactivates at once.

`update_arrears` applies the start/end rule after one customer's ledger write;
`arrears_follow` applies the same rule to many customers at once (the month-end run, after a
chunk of debits). Both decide with `arrears_change` and write with `_arrears_apply`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum

from django.db import transaction
from django.utils import timezone

from accounts.events.records import (
    customer_event_row,
    record_customer_event,
    record_customer_events,
)
from accounts.locks import lock_customer, lock_customers
from accounts.models import Application, Customer, CustomerEvent
from accounts.selectors import ZERO, ledger_balance, ledger_balances
from billingsite.clock import billing_date
from billingsite.queries import any_of

# Days 1-7 of arrears are the grace period; suspension on day 8. Every text that states the
# grace period (portal banner, e-mails) takes it from here.
ARREARS_GRACE_DAYS = 7
WARNING_DAYS_BEFORE = 2


class ArrearsChange(Enum):
    START = "start"
    END = "end"


def arrears_change(*, balance: Decimal, arrears_since: dt.date | None) -> ArrearsChange | None:
    """What a balance does to the arrears state: below zero with none running starts them, at
    zero or above with some running ends them; otherwise nothing."""
    if balance < 0 and arrears_since is None:
        return ArrearsChange.START
    if balance >= 0 and arrears_since is not None:
        return ArrearsChange.END
    return None


def suspension_date(*, arrears_since: dt.date) -> dt.date:
    """First day without service. The day arrears start is day 1; arrears not restored within
    ARREARS_GRACE_DAYS days are suspended on the day after."""
    return arrears_since + dt.timedelta(days=ARREARS_GRACE_DAYS)


def warning_date(*, arrears_since: dt.date) -> dt.date:
    """The day the customer is told its service stops in WARNING_DAYS_BEFORE days."""
    return suspension_date(arrears_since=arrears_since) - dt.timedelta(days=WARNING_DAYS_BEFORE)


def arrears_started_event(
    *, customer_id: int, today: dt.date, balance: Decimal
) -> tuple[str, dict]:
    """Dedupe key and payload of the arrears-started event."""
    payload = {
        "balance": f"{balance:.2f}",
        "arrears_since": today.isoformat(),
        "suspension_date": suspension_date(arrears_since=today).isoformat(),
    }
    return f"arrears_started:{customer_id}:{today.isoformat()}", payload


def _arrears_apply(*, customers: list[Customer], now: dt.datetime) -> None:
    """Apply `arrears_change` to customers whose rows the caller holds locked, from their
    balances read now. Starts are written together (one UPDATE, one history insert); the
    customer's history gets a row for each change (the fields themselves are not tracked, but
    the accounting export's `updated_at` of a customer, whose status they decide, is its latest
    history row)."""
    if not customers:
        return
    balances = ledger_balances(customer_ids=[customer.pk for customer in customers])
    today = billing_date(now)
    starts: list[Customer] = []
    for customer in customers:
        balance = balances.get(customer.pk, ZERO)
        change = arrears_change(balance=balance, arrears_since=customer.arrears_since)
        if change is ArrearsChange.START:
            customer.arrears_since = today
            starts.append(customer)
        elif change is ArrearsChange.END:
            _arrears_end(customer=customer, balance=balance, now=now)
    if not starts:
        return
    Customer.objects.filter(pk__in=[customer.pk for customer in starts]).update(arrears_since=today)
    Customer.history.bulk_history_create(
        starts, update=True, default_change_reason=None, default_date=timezone.now()
    )
    events = []
    for customer in starts:
        dedupe_key, payload = arrears_started_event(
            customer_id=customer.pk, today=today, balance=balances.get(customer.pk, ZERO)
        )
        events.append(
            customer_event_row(
                customer_id=customer.pk,
                kind=CustomerEvent.Kind.ARREARS_STARTED,
                dedupe_key=dedupe_key,
                payload=payload,
                now=now,
            )
        )
    record_customer_events(events)


def _arrears_end(*, customer: Customer, balance: Decimal, now: dt.datetime) -> None:
    was_suspended = customer.suspended_at is not None
    started = customer.arrears_since
    assert started is not None, "arrears end only where they started"
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


def update_arrears(*, customer: Customer, now: dt.datetime) -> None:
    """Start arrears when the balance is below zero; end them (and lift a suspension) when it
    is back at zero or above. After a ledger write; the caller holds the customer's row lock."""
    _arrears_apply(customers=[customer], now=now)


def arrears_follow(*, customer_ids: Iterable[int], now: dt.datetime) -> list[int]:
    """`update_arrears` for many customers after their ledger writes committed (the month-end
    run applies it once per chunk instead of once per debit). Reads balances and states
    without locks to find the customers whose state changes, then locks those, in id order,
    and decides again under the lock. Idempotent: a customer whose state already matches its
    balance is left alone. Returns the ids whose state changed."""
    ids = sorted(set(customer_ids))
    if not ids:
        return []
    balances = ledger_balances(customer_ids=ids)
    states = Customer.objects.filter(any_of("pk", ids)).values_list("pk", "arrears_since")
    due = [
        pk
        for pk, since in states
        if arrears_change(balance=balances.get(pk, ZERO), arrears_since=since) is not None
    ]
    if not due:
        return []
    with transaction.atomic():
        locked = lock_customers(customer_ids=due)
        _arrears_apply(customers=locked, now=now)
    return due


# --- The daily check: warn, then suspend -------------------------------------------------------


def _warning_due(*, arrears_since: dt.date, today: dt.date) -> bool:
    return (
        warning_date(arrears_since=arrears_since)
        <= today
        < suspension_date(arrears_since=arrears_since)
    )


def _suspension_due(*, arrears_since: dt.date, today: dt.date) -> bool:
    return suspension_date(arrears_since=arrears_since) <= today


def _lock_in_open_arrears(*, customer: Customer) -> tuple[Customer, dt.date | None]:
    """Lock the customer and return it with the day its arrears began, or None when it is not
    in arrears or already suspended. Warning and suspending both re-read this under the lock:
    a deposit or another run may have changed it since the customer was selected."""
    locked = lock_customer(customer=customer)
    if locked.suspended_at is not None:
        return locked, None
    return locked, locked.arrears_since


def customer_suspend(*, customer: Customer, now: dt.datetime) -> bool:
    """Suspend the customer's applications if its arrears are past the grace period. Returns
    whether it did (False: deposit arrived meanwhile, or already suspended)."""
    today = billing_date(now)
    with transaction.atomic():
        locked, since = _lock_in_open_arrears(customer=customer)
        if since is None or not _suspension_due(arrears_since=since, today=today):
            return False
        locked.suspended_at = now
        locked.save(update_fields=["suspended_at"])
        Application.objects.filter(customer=locked).update(status=Application.Status.SUSPENDED)
        record_customer_event(
            customer=locked,
            kind=CustomerEvent.Kind.SUSPENDED,
            dedupe_key=f"suspended:{locked.pk}:{since.isoformat()}",
            payload={
                "balance": f"{ledger_balance(customer=locked):.2f}",
                "arrears_since": since.isoformat(),
                "suspended_on": today.isoformat(),
            },
            now=now,
        )
    return True


def customer_warn(*, customer: Customer, now: dt.datetime) -> bool:
    """Tell the customer its service stops in two days (once per arrears episode)."""
    today = billing_date(now)
    with transaction.atomic():
        locked, since = _lock_in_open_arrears(customer=customer)
        if since is None or not _warning_due(arrears_since=since, today=today):
            return False
        _event, created = record_customer_event(
            customer=locked,
            kind=CustomerEvent.Kind.SUSPENSION_WARNING,
            dedupe_key=f"suspension_warning:{locked.pk}:{since.isoformat()}",
            payload={
                "balance": f"{ledger_balance(customer=locked):.2f}",
                "arrears_since": since.isoformat(),
                "suspension_date": suspension_date(arrears_since=since).isoformat(),
            },
            now=now,
        )
    return created


def arrears_enforce(*, now: dt.datetime) -> dict:
    """Run the day's warnings and suspensions; each customer in its own transaction.

    Returns {"warnings": n, "suspensions": n, "warned": [ids], "suspended": [ids]}. Safe to run
    more than once a day: events are deduplicated and suspended customers are left alone."""
    today = billing_date(now)
    # suspension_date(since) <= today  <=>  since <= today - grace; the same for the warning.
    suspend_cutoff = today - (suspension_date(arrears_since=today) - today)
    warn_cutoff = today - (warning_date(arrears_since=today) - today)
    suspended: list[int] = []
    for customer in Customer.objects.filter(
        arrears_since__lte=suspend_cutoff, suspended_at__isnull=True
    ).order_by("id"):
        if customer_suspend(customer=customer, now=now):
            suspended.append(customer.pk)
    warned: list[int] = []
    for customer in Customer.objects.filter(
        arrears_since__lte=warn_cutoff, arrears_since__gt=suspend_cutoff, suspended_at__isnull=True
    ).order_by("id"):
        if customer_warn(customer=customer, now=now):
            warned.append(customer.pk)
    return {
        "warnings": len(warned),
        "suspensions": len(suspended),
        "warned": warned,
        "suspended": suspended,
    }
