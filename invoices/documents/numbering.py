"""Gapless document numbers: INV-2026-000001, CN-2026-000001.

A number is taken inside the transaction that issues the document, from a NumberSequence row
locked with SELECT ... FOR UPDATE. If that transaction rolls back, so does the bump, so a number
is either on an issued document or was never given. Concurrent issuers queue on the row lock;
callers take the number as late as they can so the lock is held briefly.
"""

from __future__ import annotations

from django.db import transaction

from invoices.models import NumberSequence

INVOICE_SERIES = "INV"
CREDIT_NOTE_SERIES = "CN"
NUMBER_DIGITS = 6


def format_number(*, series: str, year: int, number: int) -> str:
    return f"{series}-{year:04d}-{number:0{NUMBER_DIGITS}d}"


def number_bump_sql(*, rows_from: str = "") -> str:
    """The statement that takes the next number: an upsert whose first run in a year creates
    the row and whose later runs bump it, returning the new last number. The bump row-locks the
    sequence until the transaction ends (SQLite: its writers take turns), so concurrent issuers
    queue and a rollback gives the number back. Parameters: series, year. `rows_from`: a FROM
    clause the new row depends on (a statement that must run first, such as a row lock)."""
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    table = quote(NumberSequence._meta.db_table)
    last = quote(NumberSequence._meta.get_field("last_number").column)
    source = f" FROM {rows_from}" if rows_from else ""
    return (
        f"INSERT INTO {table} (series, year, {last}) SELECT %s, %s, 1{source} "
        f"ON CONFLICT (series, year) DO UPDATE SET {last} = {table}.{last} + 1 "
        f"RETURNING {last}"
    )


def number_allocate(*, series: str, year: int) -> str:
    """The next number of `series` in `year`. Must run inside the issuing transaction."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("numbers are allocated inside the issuing transaction")
    with connection.cursor() as cursor:
        cursor.execute(number_bump_sql(), [series, year])
        (number,) = cursor.fetchone()
    return format_number(series=series, year=year, number=number)
