"""The customer row lock: every write of a customer's money (ledger entries, invoices, credit
notes, arrears, plan changes that check the deposit) runs under it, so they never interleave
and the arrears state always matches the balance that caused it.

Writers that lock more than the customer take the customer first (then its applications, then
a number sequence), so that no two writers wait on each other in opposite orders.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from accounts.models import Customer


def _lock_query(customer_id: int) -> QuerySet[Customer]:
    return Customer.objects.select_for_update().filter(pk=customer_id)


def lock_customer(*, customer: Customer | int) -> Customer:
    """Lock the customer's row until the transaction ends; the row as locked (fresh)."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    return _lock_query(customer_id).get()


def lock_customers(*, customer_ids: Iterable[int]) -> list[Customer]:
    """`lock_customer` for many customers at once, in id order (the order every multi-customer
    writer locks in, so two of them cannot deadlock)."""
    return list(
        Customer.objects.select_for_update().filter(pk__in=sorted(set(customer_ids))).order_by("pk")
    )


@functools.cache
def customer_lock_sql() -> tuple[str, list[str]]:
    """`lock_customer`'s own statement as SQL text with one parameter (the customer id), and
    the attnames of the columns it returns in order: for a writer that takes the lock inside a
    larger statement (the month-end run's first statement) and builds the Customer with
    `Customer.from_db`."""
    query = _lock_query(0).query
    sql, params = query.get_compiler(connection=connection).as_sql()
    assert list(params) == [0], params
    names = [field.attname for field in Customer._meta.concrete_fields]
    return sql, names
