"""The daily arrears check: warn two days before the suspension date, suspend on it.

Arrears day 1 is the Asia/Shanghai day the balance went below zero (`Customer.arrears_since`,
kept by the ledger services). Days 1-7 are the grace period; on day 8
(`accounts.services.suspension_date`) every application of the customer is suspended. A deposit
that brings the balance back to zero or above ends the arrears and reactivates at once; that
lives in `accounts.services.update_arrears`, next to the ledger write that causes it.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from accounts.events.records import record_customer_event
from accounts.models import Application, Customer, CustomerEvent
from accounts.selectors import ledger_balance
from accounts.services import ARREARS_GRACE_DAYS, lock_customer, suspension_date
from billingsite.clock import billing_date

WARNING_DAYS_BEFORE = 2


def _warning_due(*, arrears_since: dt.date, today: dt.date) -> bool:
    suspend_on = suspension_date(arrears_since=arrears_since)
    return suspend_on - dt.timedelta(days=WARNING_DAYS_BEFORE) <= today < suspend_on


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
    # arrears_since <= today - 7 days  <=>  suspension_date <= today.
    suspend_cutoff = today - dt.timedelta(days=ARREARS_GRACE_DAYS)
    warn_cutoff = today - dt.timedelta(days=ARREARS_GRACE_DAYS - WARNING_DAYS_BEFORE)
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
