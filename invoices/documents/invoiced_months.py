"""Keeps `accounts.InvoicedMonth` equal to the invoices: one row per invoice with its period,
status and number. The frozen-month policy (`accounts.frozen_months`) reads those rows, so
plan, add-on, contract and usage changes never read `invoices`.

Every write of an invoice (create, re-rate, hold, issue, credit) calls `invoiced_month_keep`,
and every delete of a draft or held invoice calls `invoiced_month_forget`, in the same
transaction, under the customer's row lock that every invoice writer and every change holds.
"""

from __future__ import annotations

import datetime as dt

from accounts.models import InvoicedMonth
from invoices.models import Invoice


def invoiced_month_keep(
    *, customer_id: int, period: dt.date, status: str, number: str | None
) -> None:
    """The customer's invoice for `period` now has `status` and `number` (one upsert)."""
    InvoicedMonth.objects.bulk_create(
        [InvoicedMonth(customer_id=customer_id, period=period, status=status, number=number)],
        update_conflicts=True,
        unique_fields=["customer", "period"],
        update_fields=["status", "number"],
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
