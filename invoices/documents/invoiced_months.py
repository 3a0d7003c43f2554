"""Keeps `accounts.InvoicedMonth` equal to the invoices: one row per invoice with its period,
status and number. The frozen-month policy (`accounts.frozen_months`) reads those rows, so
plan, add-on, contract and usage changes never read `invoices`.

Every write of an invoice (create, re-rate, hold, issue, credit) calls `invoiced_month_keep`,
and every delete of a draft or held invoice calls `invoiced_month_forget`, in the same
transaction, under the customer's row lock that every invoice writer and every change holds.
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db import connection

from accounts.models import InvoicedMonth
from invoices.models import Invoice


def invoiced_month_keep(
    *, customer_id: int, period: dt.date, status: str, number: str | None
) -> None:
    """The customer's invoice for `period` now has `status` and `number`: one upsert (the same
    statement on PostgreSQL and SQLite; the month-end run calls it once per account, so it
    skips the ORM's statement building)."""
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(), [customer_id, period, status, number])


@functools.cache
def _upsert_sql() -> str:
    return invoiced_month_upsert_sql(customer_id="%s", period="%s", status="%s", number="%s")


def invoiced_month_upsert_sql(*, customer_id: str, period: str, status: str, number: str) -> str:
    """`invoiced_month_keep`'s upsert over the given SQL expressions (placeholders): for the
    run's one-statement issue on PostgreSQL, which writes it with the invoice."""
    table = InvoicedMonth._meta.db_table
    return (
        f"INSERT INTO {table} (customer_id, period, status, number) "
        f"VALUES ({customer_id}, {period}, {status}, {number}) "
        "ON CONFLICT (customer_id, period) DO UPDATE "
        "SET status = excluded.status, number = excluded.number"
    )


def invoice_kept(invoice: Invoice) -> None:
    """`invoiced_month_keep` for an invoice just written."""
    invoiced_month_keep(
        customer_id=invoice.customer_id,
        period=invoice.period,
        status=str(invoice.status),
        number=invoice.number,
    )


def invoiced_month_forget(*, customer_id: int, period: dt.date) -> None:
    """The customer's draft or held invoice for `period` was deleted."""
    InvoicedMonth.objects.filter(customer_id=customer_id, period=period).delete()


def invoiced_months_from_invoices() -> set[tuple[int, dt.date, str, str | None]]:
    """What the invoices say, as (customer_id, period, status, number): what InvoicedMonth must
    hold (the data migration wrote it from this; tests compare the two)."""
    return set(Invoice.objects.values_list("customer_id", "period", "status", "number"))


def invoiced_months_stored() -> set[tuple[int, dt.date, str, str | None]]:
    return set(InvoicedMonth.objects.values_list("customer_id", "period", "status", "number"))
