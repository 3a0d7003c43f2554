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

from django.db.models import BooleanField, DecimalField, ExpressionWrapper, Q, QuerySet, Sum, Value
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


def _valid_at(now: dt.datetime) -> Q:
    """A grant that may pay an invoice at `now`: granted by then, expiring on its billing day
    or later."""
    return Q(created_at__lte=now, expires_on__gte=billing_date(now))


_GRANT_COLUMNS = ("id", "customer_id", "expires_on", "amount", "drawn", "reason")


def _grants(customer_ids: Iterable[int]) -> QuerySet[LedgerEntry]:
    """The customers' grants with what their uses and lapses drew (`drawn`, <= 0), earliest
    expiry first (then the oldest grant)."""
    return (
        LedgerEntry.objects.filter(
            any_of("customer_id", customer_ids), kind=LedgerEntry.Kind.PROMO_GRANT
        )
        .annotate(drawn=Coalesce(Sum("promo_draws__amount"), Value(ZERO), output_field=_MONEY))
        .order_by("expires_on", "id")
    )


def _grant_available(
    grant_id: int,
    customer_id: int,
    expires_on: dt.date | None,
    amount: Decimal,
    drawn: Decimal,
    reason: str,
) -> PromoGrantAvailable | None:
    """A valid grant's row as credit available, or None when nothing is left of it."""
    remaining = (amount + drawn).quantize(CENT)
    assert expires_on is not None, "grants have an expiry (database CHECK)"
    if remaining <= 0:
        return None
    return PromoGrantAvailable(grant_id, customer_id, expires_on, remaining, reason)


def _available(customer_ids: Iterable[int], *, now: dt.datetime) -> list[PromoGrantAvailable]:
    rows = _grants(customer_ids).filter(_valid_at(now)).values_list(*_GRANT_COLUMNS)
    return [grant for row in rows if (grant := _grant_available(*row)) is not None]


@dataclass(frozen=True)
class PromoCredit:
    """A customer's promotional credit: held (`promo_credit_held`) and available at a moment
    (`promo_credit_available`)."""

    held: Decimal
    available: list[PromoGrantAvailable]


def promo_credit(*, customer: Customer | int, now: dt.datetime) -> PromoCredit:
    """`promo_credit_held` and `promo_credit_available` in one query (the balance page's): every
    grant of the customer with what was drawn on it. Held is the sum over all of them of
    granted + drawn, which is the ledger sum of the promotional kinds because every use and
    lapse draws on a grant of its customer (database CHECK `ledger_promo_draw_has_grant`; the
    issue path and the lapse draw on the customer's own grants)."""
    rows = _grants([customer_pk(customer)]).annotate(
        valid=ExpressionWrapper(_valid_at(now), output_field=BooleanField())
    )
    held = ZERO
    available = []
    for *row, valid in rows.values_list(*_GRANT_COLUMNS, "valid"):
        held += row[3] + row[4]
        if valid and (grant := _grant_available(*row)) is not None:
            available.append(grant)
    return PromoCredit(held=held.quantize(CENT), available=available)


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
