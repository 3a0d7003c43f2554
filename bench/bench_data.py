"""Rows the benchmarks bulk-load with COPY, shared so every bench builds the same customers."""

from __future__ import annotations

import datetime as dt

from accounts.transfer_reference import transfer_reference_new


def copy_customers(cursor, *, count: int, created_at: dt.datetime) -> None:
    """Customers 1..count (`bench-00001`, ...) through a psycopg COPY on `cursor`."""
    with cursor.copy(
        "COPY accounts_customer (id, external_id, name, billing_email, address, tax_id, "
        "contact_name, contact_phone, created_at, preferred_language, monthly_statement, "
        "transfer_reference, low_balance_alert) "
        "FROM STDIN"
    ) as copy:
        for n in range(1, count + 1):
            copy.write_row(
                (
                    n,
                    f"bench-{n:05d}",
                    f"Bench Customer {n}",
                    f"billing{n}@bench.test",
                    f"{n} Bench Road",
                    f"9131{n:014d}",
                    "",
                    "",
                    created_at,
                    "en",
                    False,
                    transfer_reference_new(),
                    "runway",
                )
            )
