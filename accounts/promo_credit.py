"""Promotional credit: what a customer holds, what is available on a day, and how much of it an
invoice consumes. Reads and the one pure rule; the writes are `accounts.services`
(`promo_credit_grant`, `promo_credit_lapse_due`) and the issue path
(`invoices.documents.issuing.issue_rows`).

Finance grants an amount with a reason and an expiry date (a `promo_grant` ledger entry,
positive). An invoice issued on a day the grant is valid (its Asia/Shanghai date not after
`expires_on`) consumes it before the paid balance (`promo_use` entries, negative, one per grant
it draws on); what is left on the day after the expiry lapses (`promo_lapse`, negative, one per
grant). Every one of these is a ledger entry, so the balance is still the sum of the ledger:
paid balance (every other kind) + promotional credit held (these three kinds) = total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Customer, LedgerEntry
from accounts.selectors import CENT, ZERO, customer_pk, ledger_sum
from billingsite.clock import billing_date
from billingsite.queries import any_of

_MONEY: DecimalField[Decimal, Decimal] = DecimalField(max_digits=16, decimal_places=2)

PROMO = Q(kind__in=LedgerEntry.PROMO_KINDS)


@dataclass(frozen=True)
class PromoGrantAvailable:
    """One grant's credit available: what is left of it (granted - used - lapsed, > 0)."""

    grant_id: int
    customer_id: int
    expires_on: dt.date
    remaining: Decimal
    reason: str = ""


def paid_balance(*, customer: Customer | int) -> Decimal:
    """The balance of money the customer paid (every ledger kind but promotional credit's)."""
    return ledger_sum(LedgerEntry.objects.filter(customer_id=customer_pk(customer)).exclude(PROMO))


def promo_credit_held(*, customer: Customer | int) -> Decimal:
    """The promotional credit in the balance: granted - used - lapsed, expired grants included
    until their lapse is written. `paid_balance` + this = `ledger_balance`."""
    return ledger_sum(LedgerEntry.objects.filter(PROMO, customer_id=customer_pk(customer)))


def balance_split(*, customer: Customer | int) -> tuple[Decimal, Decimal]:
    """(`paid_balance`, `promo_credit_held`) in one query."""
    split = LedgerEntry.objects.filter(customer_id=customer_pk(customer)).aggregate(
        paid=Sum("amount", filter=~PROMO), promo=Sum("amount", filter=PROMO)
    )
    return (split["paid"] or ZERO).quantize(CENT), (split["promo"] or ZERO).quantize(CENT)


def _available(customer_ids: Iterable[int], *, now: dt.datetime) -> list[PromoGrantAvailable]:
    rows = (
        LedgerEntry.objects.filter(
            any_of("customer_id", customer_ids),
            kind=LedgerEntry.Kind.PROMO_GRANT,
            created_at__lte=now,
            expires_on__gte=billing_date(now),
        )
        .annotate(drawn=Coalesce(Sum("promo_draws__amount"), Value(ZERO), output_field=_MONEY))
        .order_by("expires_on", "id")
        .values_list("id", "customer_id", "expires_on", "amount", "drawn", "reason")
    )
    available = []
    for grant_id, customer_id, expires_on, amount, drawn, reason in rows:
        remaining = (amount + drawn).quantize(CENT)
        assert expires_on is not None, "grants have an expiry (database CHECK)"
        if remaining > 0:
            available.append(
                PromoGrantAvailable(grant_id, customer_id, expires_on, remaining, reason)
            )
    return available


def promo_credit_available(
    *, customer: Customer | int, now: dt.datetime
) -> list[PromoGrantAvailable]:
    """The customer's grants valid at `now` (granted by then, expiring on its billing day or
    later) with what is left of each, earliest expiry first (then the oldest grant)."""
    return _available([customer_pk(customer)], now=now)


def promo_credits_available(
    *, customer_ids: Iterable[int], now: dt.datetime
) -> dict[int, list[PromoGrantAvailable]]:
    """`promo_credit_available` of many customers in one query (customers without credit:
    an empty list)."""
    ids = list(customer_ids)
    available: dict[int, list[PromoGrantAvailable]] = {customer_id: [] for customer_id in ids}
    for grant in _available(ids, now=now):
        available[grant.customer_id].append(grant)
    return available


def promo_credit_consumption(
    *, total: Decimal, grants: Sequence[PromoGrantAvailable]
) -> list[tuple[PromoGrantAvailable, Decimal]]:
    """What an invoice of `total` takes from each available grant: the grants in their order
    (earliest expiry first), each as much as it has left, never more than the total in all.
    The invoice's debit takes the rest from the paid balance."""
    taken: list[tuple[PromoGrantAvailable, Decimal]] = []
    due = max(total, ZERO)
    for grant in grants:
        if due <= 0:
            break
        amount = min(grant.remaining, due)
        if amount > 0:
            taken.append((grant, amount))
            due -= amount
    return taken


def credit_note_promo_split(
    *,
    invoice_total: Decimal,
    promo_credit_applied: Decimal,
    already_given_back_promo: Decimal,
    credit_total: Decimal,
) -> tuple[Decimal, Decimal]:
    """(promo_part, paid_part) of a credit note of `credit_total` on an invoice of
    `invoice_total` that promotional credit paid `promo_credit_applied` of: promotional credit
    is given back first (what earlier credit notes of the invoice have not given back yet),
    the paid balance the rest. Giving the promotion back as paid money would turn it into
    spendable and refundable cash. Both parts >= 0, 2-decimal, summing to `credit_total`."""
    credit_total = credit_total.quantize(CENT)
    promo_left = min(promo_credit_applied, invoice_total) - already_given_back_promo
    promo_part = max(min(credit_total, promo_left.quantize(CENT)), ZERO)
    return promo_part, credit_total - promo_part
