"""The `price_book` fixture writes back what `load_price_book()` wrote (tests/price_book_replay.py):
the same rows in the four price tables and their history, only the timestamps are the test's."""

import datetime as dt

import pytest
from django.db import transaction
from freezegun import freeze_time

from plans.models import Plan
from plans.price_book import load_price_book
from tests import price_book_replay

TIMESTAMPS = {"created_at", "history_date"}


def comparable(recorded: dict) -> dict:
    """The rows without timestamps, each key (primary, foreign, a history row's `id`) replaced
    by the rank of the row it names: the two loads draw different ids in the same order."""

    ranks = {
        model: {row[model._meta.pk.attname]: rank for rank, row in enumerate(rows)}
        for model, rows in recorded.items()
    }
    base_of = {model.history.model: model for model in price_book_replay.BASE_MODELS}
    result = {}
    for model, rows in recorded.items():
        keys = {model._meta.pk.attname: ranks[model]}
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model in ranks:
                keys[field.attname] = ranks[field.related_model]
        if model in base_of:
            keys["id"] = ranks[base_of[model]]
        result[model._meta.label] = [
            {
                name: keys[name][value] if name in keys and value is not None else value
                for name, value in row.items()
                if name not in TIMESTAMPS
            }
            for row in rows
        ]
    return result


def loaded_then_rolled_back(load) -> dict:
    with transaction.atomic():
        load()
        recorded = price_book_replay.recorded_rows()
        transaction.set_rollback(True)
    return recorded


@pytest.mark.django_db
def test_the_written_back_rows_are_the_loaders(monkeypatch):
    monkeypatch.setattr(price_book_replay, "_recorded", None)
    with freeze_time("2026-11-02 10:00:00+08:00"):
        real = loaded_then_rolled_back(load_price_book)
        first = loaded_then_rolled_back(price_book_replay.price_book_load)
    assert price_book_replay._recorded is not None
    with freeze_time("2026-12-01 09:00:00+08:00"):
        written_back = loaded_then_rolled_back(price_book_replay.price_book_load)

    assert comparable(written_back) == comparable(real)
    assert comparable(first) == comparable(real)
    assert len(written_back[Plan]) == 3 and sum(len(rows) for rows in real.values()) == 2 * 142
    later = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
    assert {row["history_date"] for row in written_back[Plan.history.model]} == {later}
    assert {row["created_at"] for row in written_back[price_book_replay.PlanPrice]} == {later}


@pytest.mark.django_db
def test_on_tables_that_are_not_empty_the_loader_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(price_book_replay, "load_price_book", lambda: calls.append("loaded"))
    monkeypatch.setattr(price_book_replay, "_recorded", {})
    Plan.objects.create(code="own", name="Own", activation="automatic", rank=9)

    price_book_replay.price_book_load()

    assert calls == ["loaded"]
