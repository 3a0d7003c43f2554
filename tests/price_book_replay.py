"""The `price_book` fixture without running the loader in every test.

`load_price_book()` syncs 142 rows one by one: a SELECT, an INSERT and a history INSERT each,
~430 queries per test and the most common setup cost of the suite. The first test of a worker
that asks for the price book runs the real loader on empty price tables and records what it
wrote (the four price tables and their history tables); later tests on empty tables write the
same rows back with one INSERT per table. What differs from a real load is only what a real
load would also change: the timestamps (`created_at`, `history_date`) are the test's now.

The rows keep the primary keys the real load drew from the sequences. Sequences never go back
(a rolled-back test does not return its ids and the flush of the transactional tests does not
reset them), so the next id the database hands out is above all of them.
"""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from plans.models import AddOn, AddOnPrice, Plan, PlanPrice
from plans.price_book import load_price_book

# In insertion order: rows before the rows that point at them.
BASE_MODELS = (Plan, PlanPrice, AddOn, AddOnPrice)
MODELS = BASE_MODELS + tuple(model.history.model for model in BASE_MODELS)

_recorded: dict | None = None


def _attnames(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _tables_empty() -> bool:
    query = " OR ".join(f"EXISTS (SELECT 1 FROM {model._meta.db_table})" for model in MODELS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {query}")
        return not cursor.fetchone()[0]


def _record() -> dict:
    return {model: list(model.objects.order_by("pk").values(*_attnames(model))) for model in MODELS}


def _write(recorded: dict) -> None:
    now = timezone.now()
    for model in MODELS:
        rows = []
        for values in recorded[model]:
            row = model(**values)
            if hasattr(row, "history_date"):
                row.history_date = now
            # `created_at` is auto_now_add: bulk_create stamps it with now, as the loader would.
            rows.append(row)
        model.objects.bulk_create(rows)


def price_book_load() -> None:
    """What `load_price_book()` does on empty price tables, in a few queries after the first."""

    global _recorded
    if not _tables_empty():
        load_price_book()
        return
    if _recorded is None:
        load_price_book()
        _recorded = _record()
        return
    _write(_recorded)


def recorded_rows() -> dict:
    """The rows of the price tables now, as `price_book_load` records them (for its test)."""

    return _record()
