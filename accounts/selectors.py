"""Reads of the prepaid ledger: the balance is the sum of the customer's ledger entries, and
every balance anywhere (services, API, portal, admin, exports) is read through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import (
    DecimalField,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import Coalesce

from accounts.models import Customer, LedgerEntry
from billingsite.queries import any_of, compiled_read

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
_BALANCE: DecimalField[Decimal, Decimal] = DecimalField(max_digits=16, decimal_places=2)


def customer_pk(customer: Customer | int) -> int:
    """A selector's `customer` argument (a Customer or its id) as the id."""
    return customer if isinstance(customer, int) else customer.pk


def ledger_sum(entries: QuerySet[LedgerEntry]) -> Decimal:
    """The sum of these ledger entries to the cent (0.00 when there are none)."""
    return _to_cent(entries.aggregate(total=Sum("amount"))["total"])


def _to_cent(total: Decimal | None) -> Decimal:
    return (total or ZERO).quantize(CENT)


def ledger_balance(
    *,
    customer: Customer | int,
    through: LedgerEntry | None = None,
    before: dt.datetime | None = None,
) -> Decimal:
    """The prepaid balance: the sum of the customer's ledger entries. With `through`: the
    balance right after that entry was written (a customer's entries are written under its
    row lock, so their ids follow commit order and that balance never changes). With
    `before`: the balance at that moment by the entries' dates (`created_at`), as a month-end
    report sees it (e.g. the start of a month: the closing balance of the month before)."""
    if through is None and before is None:
        return _to_cent(_balance_now.first(customer_id=customer_pk(customer)))
    entries = LedgerEntry.objects.filter(customer_id=customer_pk(customer))
    if through is not None:
        entries = entries.filter(id__lte=through.id)
    if before is not None:
        entries = entries.filter(created_at__lt=before)
    return ledger_sum(entries)


@compiled_read
def _balance_now(*, customer_id: int) -> QuerySet:
    """`ledger_sum` of all the customer's entries as a one-row read (no row: no entries), the
    form a compiled read can send again: every portal page shows the balance."""
    return (
        LedgerEntry.objects.filter(customer_id=customer_id)
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .values_list("total", flat=True)
    )


def ledger_balances(*, customer_ids: Iterable[int]) -> dict[int, Decimal]:
    """`ledger_balance` of many customers in one query (customers without entries: absent)."""
    rows = (
        LedgerEntry.objects.filter(any_of("customer_id", customer_ids))
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["customer_id"]: (row["total"] or ZERO).quantize(CENT) for row in rows}


def with_ledger_balance(customers: QuerySet[Customer], *, name: str) -> QuerySet[Customer]:
    """The customers annotated with their `ledger_balance` as `name` (sortable, filterable)."""
    total = (
        LedgerEntry.objects.filter(customer=OuterRef("pk"))
        .order_by()
        .values("customer")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return customers.annotate(
        **{
            name: Coalesce(
                Subquery(total, output_field=_BALANCE), Value(ZERO), output_field=_BALANCE
            )
        }
    )


# The customer's statement lists entries by time, then id; its running balance follows it.
STATEMENT_ORDER = (F("created_at").asc(), F("id").asc())


def ledger_statement(*, customer: Customer | int) -> QuerySet[LedgerEntry]:
    """The customer's entries, newest first, each with `balance_after`: the balance after it in
    the statement's order (time, then id)."""
    return (
        LedgerEntry.objects.filter(customer_id=customer_pk(customer))
        .annotate(
            balance_after=Window(
                Sum("amount"), order_by=list(STATEMENT_ORDER), output_field=_BALANCE
            )
        )
        .order_by("-created_at", "-id")
    )


def _up_to_in_statement(*, created_at: dt.datetime | OuterRef, entry_id: int | OuterRef) -> Q:
    """The entries up to and including one in the statement's order (time, then id);
    `created_at` and `entry_id` are values or OuterRefs."""
    return Q(created_at__lt=created_at) | Q(created_at=created_at, id__lte=entry_id)


def ledger_balance_in_statement(*, entry: LedgerEntry) -> Decimal:
    """The balance after `entry` in the customer's statement (time, then id), as
    `ledger_statement` shows it next to the entry."""
    return ledger_sum(
        LedgerEntry.objects.filter(customer_id=entry.customer_id).filter(
            _up_to_in_statement(created_at=entry.created_at, entry_id=entry.id)
        )
    )


def with_balance_in_statement(entries: QuerySet[LedgerEntry]) -> QuerySet[LedgerEntry]:
    """`entries`, each annotated with `balance_in_statement`: what
    `ledger_balance_in_statement` gives for it, read in the same query."""
    up_to = (
        LedgerEntry.objects.filter(customer_id=OuterRef("customer_id"))
        .filter(_up_to_in_statement(created_at=OuterRef("created_at"), entry_id=OuterRef("id")))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return entries.annotate(
        balance_in_statement=Coalesce(Subquery(up_to), Value(ZERO), output_field=_BALANCE)
    )
