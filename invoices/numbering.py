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


def number_allocate(*, series: str, year: int) -> str:
    """The next number of `series` in `year`. Must run inside the issuing transaction."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("numbers are allocated inside the issuing transaction")
    table = connection.ops.quote_name(NumberSequence._meta.db_table)
    # SELECT ... FOR UPDATE and UPDATE in plain SQL: issuing runs thousands of times a run.
    locked = f"SELECT id, last_number FROM {table} WHERE series = %s AND year = %s"
    if connection.features.has_select_for_update:
        locked += " FOR UPDATE"  # SQLite has no row locks: its writers take turns anyway
    with connection.cursor() as cursor:
        cursor.execute(locked, [series, year])
        row = cursor.fetchone()
        if row is None:
            # First number of the year. ON CONFLICT DO NOTHING: when two transactions race to
            # create the row, one inserts it and the other waits for it, then locks it below.
            NumberSequence.objects.bulk_create(
                [NumberSequence(series=series, year=year, last_number=0)], ignore_conflicts=True
            )
            cursor.execute(locked, [series, year])
            row = cursor.fetchone()
        sequence_id, last_number = row
        cursor.execute(
            f"UPDATE {table} SET last_number = %s WHERE id = %s", [last_number + 1, sequence_id]
        )
    return format_number(series=series, year=year, number=last_number + 1)
