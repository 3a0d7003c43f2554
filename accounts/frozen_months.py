"""Which months are frozen for a kind of change: the one policy that plan, add-on and contract
decisions (`plans.change_policy`) and the usage ingest (`accounts.usage`) go through.

A month's bill is decided by the plan, add-on and contract history and the usage of its days.
Whoever may still rewrite a month after it was rated (or reviewed, or issued) can make its fee
disappear, so:

- plan and add-on changes: a month with an invoice in any state (draft, held, issued,
  credited) is frozen, and so is every month before it: the run or finance already rated it
  from this history;
- dedicated contracts and contracted discounts: only an issued invoice freezes (its month
  and the ones before): adding the contract (or discount) and re-rating is how finance
  reviews a held invoice;
- usage: only the month of an issued invoice, exactly: the platform reports days that
  happened, and a draft or held invoice is only made stale (issuing it re-rates).

The months come from `InvoicedMonth`, the copy of the customer's invoices that
`invoices.documents.invoiced_months` keeps in every invoice write, so this module reads no invoice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.db import connection

from accounts.models import InvoicedMonth


class Change(StrEnum):
    """The kinds of change to what an application is billed."""

    PLAN_UPGRADE = "plan_upgrade"
    # The plan already in effect that day: cancels pending changes after it.
    PLAN_KEEP = "plan_keep"
    PLAN_DOWNGRADE = "plan_downgrade"
    ADDON_START = "addon_start"  # start an add-on or increase its quantity
    ADDON_REDUCE = "addon_reduce"  # reduce its quantity or end it
    CONTRACT = "contract"
    DISCOUNT = "discount"
    USAGE = "usage"


@dataclass(frozen=True)
class Freeze:
    # Only an issued invoice freezes (else: an invoice in any state).
    issued_only: bool
    # Only the invoice's own month (else: that month and every month before it).
    own_month_only: bool


ANY_INVOICE_AND_BEFORE = Freeze(issued_only=False, own_month_only=False)
ISSUED_AND_BEFORE = Freeze(issued_only=True, own_month_only=False)
ISSUED_MONTH_ONLY = Freeze(issued_only=True, own_month_only=True)

FREEZE: dict[Change, Freeze] = {
    Change.PLAN_UPGRADE: ANY_INVOICE_AND_BEFORE,
    Change.PLAN_KEEP: ANY_INVOICE_AND_BEFORE,
    Change.PLAN_DOWNGRADE: ANY_INVOICE_AND_BEFORE,
    Change.ADDON_START: ANY_INVOICE_AND_BEFORE,
    Change.ADDON_REDUCE: ANY_INVOICE_AND_BEFORE,
    Change.CONTRACT: ISSUED_AND_BEFORE,
    Change.DISCOUNT: ISSUED_AND_BEFORE,
    Change.USAGE: ISSUED_MONTH_ONLY,
}


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def frozen_by(*, change: Change, customer_id: int, day: dt.date) -> InvoicedMonth | None:
    """The invoiced month that freezes `day` for a `change` of the customer (the earliest one
    when several do), or None when the change may be dated that day."""
    key = (customer_id, _month(day))
    return frozen_months(change=change, customer_months={key}).get(key)


def frozen_months(
    *, change: Change, customer_months: set[tuple[int, dt.date]]
) -> dict[tuple[int, dt.date], InvoicedMonth]:
    """(customer_id, first day of a month) -> the invoiced month that freezes it for `change`
    (the earliest when several do), for the pairs given that are frozen; one query for a whole
    usage request."""
    if not customer_months:
        return {}
    freeze = FREEZE[change]
    months = {month for _, month in customer_months}
    customer_ids = {customer_id for customer_id, _ in customer_months}
    read = _rows_postgresql if connection.vendor == "postgresql" else _rows_orm
    by_customer: dict[int, list[InvoicedMonth]] = {}
    for row in read(freeze=freeze, customer_ids=customer_ids, months=months):
        by_customer.setdefault(row.customer_id, []).append(row)
    found = {}
    for customer_id, month in customer_months:
        for row in by_customer.get(customer_id, []):
            if row.period == month or (not freeze.own_month_only and row.period > month):
                found[(customer_id, month)] = row
                break
    return found


def _rows_orm(
    *, freeze: Freeze, customer_ids: set[int], months: set[dt.date]
) -> Iterable[InvoicedMonth]:
    """The customers' invoiced months that can freeze one of `months`, by period."""
    rows = InvoicedMonth.objects.filter(customer_id__in=customer_ids)
    if freeze.issued_only:
        rows = rows.filter(number__isnull=False)
    if freeze.own_month_only:
        rows = rows.filter(period__in=months)
    else:
        rows = rows.filter(period__gte=min(months))
    return rows.order_by("period")


def _rows_postgresql(
    *, freeze: Freeze, customer_ids: set[int], months: set[dt.date]
) -> Iterable[InvoicedMonth]:
    """`_rows_orm` in one fixed statement: every usage push that writes asks (one row, most
    of the time), and building the ORM's query cost more than the rest of the push's Python
    (bench/README.md, "The request pipeline")."""
    fields = InvoicedMonth._meta.concrete_fields
    columns = ", ".join(f'"{field.column}"' for field in fields)
    conditions = ['"customer_id" = ANY(%s)']
    params: list = [sorted(customer_ids)]
    if freeze.issued_only:
        conditions.append('"number" IS NOT NULL')
    if freeze.own_month_only:
        conditions.append('"period" = ANY(%s)')
        params.append(sorted(months))
    else:
        conditions.append('"period" >= %s')
        params.append(min(months))
    sql = (
        f'SELECT {columns} FROM "{InvoicedMonth._meta.db_table}" '
        f'WHERE {" AND ".join(conditions)} ORDER BY "period", "id"'
    )
    names = [field.attname for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [InvoicedMonth.from_db(connection.alias, names, row) for row in cursor.fetchall()]
