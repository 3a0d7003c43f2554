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
    sequence = NumberSequence.objects.select_for_update().filter(series=series, year=year).first()
    if sequence is None:
        # First number of the year. ON CONFLICT DO NOTHING: when two transactions race to create
        # the row, one inserts it and the other waits for it and then simply locks it below.
        NumberSequence.objects.bulk_create(
            [NumberSequence(series=series, year=year, last_number=0)], ignore_conflicts=True
        )
        sequence = NumberSequence.objects.select_for_update().get(series=series, year=year)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return format_number(series=series, year=year, number=sequence.last_number)
