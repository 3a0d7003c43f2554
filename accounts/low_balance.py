"""The low-balance alert: the one rule, from the threshold to the one e-mail and webhook.

- The threshold is the customer's choice (`Customer.low_balance_alert`): by default the
  balance lasting fewer than RUNWAY_DAYS days at the current run-rate, or a set amount, or
  never.
- The run-rate is what the customer's last invoice debited, as a month of RUNWAY_DAYS days:
  the ledger's own figure of what a month costs. `runway` is the one rule of "days left":
  the balance page, the customers list and its export, the dashboard and the invoice e-mail
  show it (through `invoices.selectors.financials_from`). Without an invoice yet there is no
  run-rate, no days left and no runway alert.
- A ledger write that takes the balance below the threshold, while the alert is armed, sends
  one `balance_low` event (e-mail to the warnings contacts; webhook `balance.low`) and
  disarms it (`low_balance_alerted_at`). A write that lifts the balance to the threshold or
  above re-arms it. Below zero the arrears e-mails take over: the alert is disarmed without
  a message of its own.

`low_balance_check` applies the rule after one customer's ledger write (the caller holds the
row lock); `low_balance_follow` applies it to many after their writes committed (the
month-end run, once per chunk, next to `accounts.arrears.arrears_follow`). Both decide with
`low_balance_change` and write with `_low_balance_apply`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import Enum

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils.translation import gettext_lazy as _

from accounts.events.records import record_customer_events
from accounts.locks import lock_customers
from accounts.mail.notify import balance_low_event_row
from accounts.models import Customer, LedgerEntry
from accounts.selectors import ZERO, ledger_balances
from billingsite.money import round_money

RUNWAY_DAYS = 30


class LowBalanceChange(Enum):
    ALERT = "alert"  # crossed below the threshold: tell the customer, disarm
    DISARM = "disarm"  # crossed below zero: the arrears e-mails say it; disarm silently
    REARM = "rearm"  # back at the threshold or above


@dataclass(frozen=True)
class Runway:
    # What a month costs (the last invoice's debit); None before the first invoice.
    monthly_run_rate: Decimal | None
    # Whole days the balance lasts at that rate; None without a run-rate.
    days_left: int | None


def runway(*, balance: Decimal, monthly_run_rate: Decimal | None) -> Runway:
    """Days the balance lasts at `monthly_run_rate` a month of RUNWAY_DAYS days."""
    if not monthly_run_rate or monthly_run_rate <= 0:
        return Runway(monthly_run_rate=None, days_left=None)
    days = (balance * RUNWAY_DAYS / monthly_run_rate).to_integral_value(rounding=ROUND_FLOOR)
    return Runway(monthly_run_rate=monthly_run_rate, days_left=max(0, int(days)))


def low_balance_threshold(
    *, alert: str, amount: Decimal | None, monthly_run_rate: Decimal | None
) -> Decimal | None:
    """The balance below which the customer is alerted; None: no alert."""
    if alert == Customer.LowBalanceAlert.AMOUNT:
        return amount if amount and amount > 0 else None
    if alert == Customer.LowBalanceAlert.RUNWAY and monthly_run_rate and monthly_run_rate > 0:
        # Fewer than RUNWAY_DAYS days at the run-rate <=> below one month of it.
        return round_money(monthly_run_rate)
    return None


def low_balance_change(
    *, balance: Decimal, threshold: Decimal | None, alerted: bool
) -> LowBalanceChange | None:
    """What a balance does to the alert state."""
    if threshold is None or balance >= threshold:
        return LowBalanceChange.REARM if alerted else None
    if alerted:
        return None
    return LowBalanceChange.DISARM if balance < 0 else LowBalanceChange.ALERT


def monthly_run_rates(*, customer_ids: Iterable[int]) -> dict[int, Decimal]:
    """The last invoice debit of each customer (positive), in one query."""
    ids = list(customer_ids)
    if not ids:
        return {}
    last_debit = (
        LedgerEntry.objects.filter(customer_id=OuterRef("pk"), kind=LedgerEntry.Kind.INVOICE_DEBIT)
        .order_by("-created_at", "-id")
        .values("amount")[:1]
    )
    rows = (
        Customer.objects.filter(pk__in=ids)
        .annotate(last_debit=Subquery(last_debit))
        .values_list("pk", "last_debit")
    )
    return {pk: -debit for pk, debit in rows if debit is not None}


def customer_runway(*, customer: Customer, balance: Decimal) -> tuple[Runway, Decimal | None]:
    """The runway and the threshold of one customer (the balance page)."""
    rate = monthly_run_rates(customer_ids=[customer.pk]).get(customer.pk)
    threshold = low_balance_threshold(
        alert=customer.low_balance_alert,
        amount=customer.low_balance_amount,
        monthly_run_rate=rate,
    )
    return runway(balance=balance, monthly_run_rate=rate), threshold


def _decide(
    customers: list[Customer], *, balances: dict[int, Decimal], rates: dict[int, Decimal]
) -> dict[int, tuple[LowBalanceChange, Decimal | None]]:
    changes = {}
    for customer in customers:
        threshold = low_balance_threshold(
            alert=customer.low_balance_alert,
            amount=customer.low_balance_amount,
            monthly_run_rate=rates.get(customer.pk),
        )
        change = low_balance_change(
            balance=balances.get(customer.pk, ZERO),
            threshold=threshold,
            alerted=customer.low_balance_alerted_at is not None,
        )
        if change is not None:
            changes[customer.pk] = (change, threshold)
    return changes


def _low_balance_apply(*, customers: list[Customer], now: dt.datetime) -> list[int]:
    """Apply the rule to customers whose rows the caller holds locked, in a fixed number of
    statements whatever their number (the run applies it to a chunk at once). Returns the ids
    of the customers alerted."""
    if not customers:
        return []
    ids = [customer.pk for customer in customers]
    balances = ledger_balances(customer_ids=ids)
    rates = monthly_run_rates(customer_ids=ids)
    changes = _decide(customers, balances=balances, rates=rates)
    rearmed = [pk for pk, (change, _) in changes.items() if change is LowBalanceChange.REARM]
    disarmed = [pk for pk in changes if pk not in rearmed]
    if rearmed:
        Customer.objects.filter(pk__in=rearmed).update(low_balance_alerted_at=None)
    if disarmed:
        Customer.objects.filter(pk__in=disarmed).update(low_balance_alerted_at=now)
    events = []
    for customer in customers:
        if customer.pk in changes:
            customer.low_balance_alerted_at = None if customer.pk in rearmed else now
        change, threshold = changes.get(customer.pk, (None, None))
        if change is not LowBalanceChange.ALERT:
            continue
        balance = balances.get(customer.pk, ZERO)
        events.append(
            balance_low_event_row(
                customer_id=customer.pk,
                balance=balance,
                days_left=runway(
                    balance=balance, monthly_run_rate=rates.get(customer.pk)
                ).days_left,
                recommended_balance=None,
                threshold=threshold,
                # One event per crossing: the crossing is named by the moment it disarmed.
                dedupe_key=f"{customer.pk}:{now.isoformat()}",
                now=now,
            )
        )
    record_customer_events(events)
    return [row["customer_id"] for row in events]


def low_balance_check(*, customer: Customer, now: dt.datetime) -> bool:
    """The rule after one customer's ledger write or threshold change; the caller holds the
    customer's row lock (and `customer` is that locked row). Returns whether it alerted."""
    return bool(_low_balance_apply(customers=[customer], now=now))


def low_balance_follow(*, customer_ids: Iterable[int], now: dt.datetime) -> list[int]:
    """`low_balance_check` for many customers after their ledger writes committed: reads
    without locks to find those whose state changes, then locks those (id order) and decides
    again under the lock. Returns the ids alerted."""
    ids = sorted(set(customer_ids))
    if not ids:
        return []
    customers = list(
        Customer.objects.filter(pk__in=ids).only(
            "pk", "low_balance_alert", "low_balance_amount", "low_balance_alerted_at"
        )
    )
    due = sorted(
        _decide(
            customers,
            balances=ledger_balances(customer_ids=ids),
            rates=monthly_run_rates(customer_ids=ids),
        )
    )
    if not due:
        return []
    with transaction.atomic():
        locked = lock_customers(customer_ids=due)
        return _low_balance_apply(customers=locked, now=now)


class LowBalanceSettingError(ValueError):
    """The customer's threshold form was refused; nothing changed."""


def low_balance_alert_set(
    *, customer: Customer, alert: str, amount: Decimal | None, now: dt.datetime
) -> Customer:
    """The customer chooses the threshold (balance page). The new threshold applies at once:
    a balance already below it alerts now; one above it re-arms."""
    if alert not in Customer.LowBalanceAlert.values:
        raise LowBalanceSettingError(_("Choose when to be alerted."))
    if alert == Customer.LowBalanceAlert.AMOUNT:
        if amount is None or not amount.is_finite() or amount <= 0:
            raise LowBalanceSettingError(_("Enter an amount above zero."))
        if amount >= Decimal("1e12") or round_money(amount) != amount:
            raise LowBalanceSettingError(_("Enter an amount in CNY with at most two decimals."))
    else:
        amount = None
    with transaction.atomic():
        (locked,) = lock_customers(customer_ids=[customer.pk])
        locked.low_balance_alert = alert
        locked.low_balance_amount = amount
        locked.save(update_fields=["low_balance_alert", "low_balance_amount"])
        low_balance_check(customer=locked, now=now)
    return locked
