"""What a money write would do to a customer, said before it is written: the admin's
confirmation pages for deposits, adjustments and credit notes show it, then post the same form
(and idempotency token) again to write.

Reads only. The arrears and suspension dates come from the rules the write itself applies
(`accounts.arrears.arrears_change`, `suspension_date`), so the page cannot announce a date
the ledger write would not keep."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from accounts.arrears import ArrearsChange, arrears_change, suspension_date
from accounts.models import Customer
from accounts.selectors import ledger_balance
from billingsite.money import format_cny


@dataclass(frozen=True)
class BalancePreview:
    balance_before: Decimal
    balance_after: Decimal
    # The arrears start after the write (None: not in arrears) and the first day without
    # service they lead to (None: no suspension ahead, or already suspended).
    arrears_since: dt.date | None
    suspension_on: dt.date | None
    # One sentence on the customer's state after the write, with its dates.
    consequence: str

    @property
    def balance_before_display(self) -> str:
        return format_cny(self.balance_before)

    @property
    def balance_after_display(self) -> str:
        return format_cny(self.balance_after)


def balance_change_preview(
    *, customer: Customer, amount: Decimal, today: dt.date
) -> BalancePreview:
    """The balance and arrears of `customer` once `amount` (positive gives money) is on the
    ledger on `today` (a billing date)."""
    before = ledger_balance(customer=customer)
    after = before + amount
    change = arrears_change(balance=after, arrears_since=customer.arrears_since)
    if change == ArrearsChange.START:
        since = today
    elif change == ArrearsChange.END:
        since = None
    else:
        since = customer.arrears_since
    suspended = customer.suspended_at is not None
    name = customer.name
    suspension_on = None
    if since is None:
        if customer.arrears_since is None:
            consequence = f"{name} stays out of arrears: nothing else changes."
        elif suspended:
            consequence = f"{name} is out of arrears; its suspended applications are reactivated."
        else:
            planned = suspension_date(arrears_since=customer.arrears_since)
            consequence = (
                f"{name} is out of arrears; the suspension planned for {planned.isoformat()} "
                "is called off."
            )
    elif suspended:
        consequence = (
            f"{name} stays in arrears (since {since.isoformat()}); its applications stay "
            "suspended until the balance is back at zero or above."
        )
    else:
        suspension_on = suspension_date(arrears_since=since)
        start = (
            "goes into arrears"
            if customer.arrears_since is None
            else f"stays in arrears (since {since.isoformat()})"
        )
        consequence = (
            f"{name} {start}; its applications will be suspended on "
            f"{suspension_on.isoformat()} unless the balance is back at zero or above before then."
        )
    return BalancePreview(
        balance_before=before,
        balance_after=after,
        arrears_since=since,
        suspension_on=suspension_on,
        consequence=consequence,
    )
