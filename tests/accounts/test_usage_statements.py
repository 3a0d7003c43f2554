"""accounts.usage: one ingest path, two statement builders. On PostgreSQL the same requests go
through `PostgresStatements` and `OrmStatements` (the SQLite builder) and must leave the same
usage rows, revisions, usage versions and answers."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from accounts import usage as usage_module
from accounts.models import Application, DailyUsage, UsageRevision
from accounts.usage import IngestResult, OrmStatements, PostgresStatements, usage_ingest
from tests.conftest import postgres_only
from tests.factories import ApplicationFactory

NOW = dt.datetime(2026, 11, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

# Requests in order: (day of October or November, dau, messages) per application.
REQUESTS = [
    [("a", "2026-10-30", 100, 10), ("a", "2026-11-01", 5, 1), ("b", "2026-10-31", 7, 70)],
    [("a", "2026-10-30", 100, 10), ("b", "2026-10-31", 8, 70), ("b", "2026-11-02", 1, 1)],
    [("a", "2026-10-30", 101, 11), ("a", "2026-11-01", 6, 1), ("b", "2026-10-31", 8, 70)],
]


def state() -> tuple:
    usage = sorted(
        DailyUsage.objects.values_list("application__app_key", "day", "dau", "delivered_messages")
    )
    revisions = sorted(
        UsageRevision.objects.values_list(
            "usage__application__app_key",
            "usage__day",
            "old_dau",
            "old_delivered_messages",
            "new_dau",
            "new_delivered_messages",
            "source",
        )
    )
    versions = sorted(Application.objects.values_list("app_key", "usage_version"))
    return usage, revisions, versions


def ingest_all(statements, monkeypatch, suffix: str) -> tuple:
    monkeypatch.setattr(usage_module, "_statements", lambda: statements)
    apps = {
        name: ApplicationFactory(app_key=f"{name}-{suffix}", created_on=dt.date(2026, 9, 1))
        for name in "ab"
    }
    answers = [
        usage_ingest(
            rows=[
                {
                    "app_key": apps[name].app_key,
                    "date": day,
                    "dau": dau,
                    "delivered_messages": messages,
                }
                for name, day, dau, messages in request
            ],
            now=NOW,
        )
        for request in REQUESTS
    ]
    usage, revisions, versions = state()

    def plain(key: str) -> str:
        return key.split("-")[0]

    return (
        answers,
        [(plain(k), *rest) for k, *rest in usage if k.endswith(suffix)],
        [(plain(k), *rest) for k, *rest in revisions if k.endswith(suffix)],
        [(plain(k), v) for k, v in versions if k.endswith(suffix)],
    )


@postgres_only
@pytest.mark.django_db
def test_both_statement_builders_write_the_same_rows(price_book, monkeypatch):
    with_sql = ingest_all(PostgresStatements, monkeypatch, "pg")
    with_orm = ingest_all(OrmStatements, monkeypatch, "orm")
    assert with_sql == with_orm
    answers, usage, revisions, versions = with_sql
    assert [(a.created, a.updated, a.unchanged) for a in answers] == [
        (3, 0, 0),
        (1, 1, 1),
        (0, 2, 1),
    ]
    assert usage[0] == ("a", dt.date(2026, 10, 30), 101, 11)
    assert len(revisions) == 3
    # Writes to October (over on 16 November) bumped the versions; November's did not.
    assert versions == [("a", 2), ("b", 2)]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_push_that_waited_for_another_sees_the_row_it_committed(price_book):
    # The locks and the stored-rows read travel in one round trip but stay two statements:
    # the read's snapshot is taken once the locks are granted, so it sees the row the push it
    # waited for committed (one statement would insert it again: a unique violation).
    app = ApplicationFactory(created_on=dt.date(2026, 9, 1))
    row = {"app_key": app.app_key, "date": "2026-11-10", "dau": 9, "delivered_messages": 9}
    answers = {}

    def second_push() -> None:
        try:
            answers["second"] = usage_ingest(rows=[row], now=NOW)
        finally:
            connection.close()

    with transaction.atomic():
        # Holds the application's lock until this block commits.
        first = usage_ingest(rows=[row | {"dau": 5, "delivered_messages": 5}], now=NOW)
        other = threading.Thread(target=second_push)
        other.start()
        other.join(timeout=1)
        assert other.is_alive()  # waiting for the lock
    other.join(timeout=30)
    assert first == IngestResult(created=1, updated=0, unchanged=0)
    assert answers["second"] == IngestResult(created=0, updated=1, unchanged=0)
    assert DailyUsage.objects.get(application=app).dau == 9
    (revision,) = UsageRevision.objects.filter(usage__application=app)
    assert (revision.old_dau, revision.new_dau) == (5, 9)


@postgres_only
@pytest.mark.django_db
def test_server_side_binding_takes_the_orm_path(price_book, monkeypatch):
    # Two statements in one execute need Django's default client-side binding cursor.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "server_side_binding", True)
    calls = []
    real = OrmStatements.lock_and_read
    monkeypatch.setattr(
        OrmStatements, "lock_and_read", staticmethod(lambda *a: calls.append(a) or real(*a))
    )
    app = ApplicationFactory(created_on=dt.date(2026, 9, 1))
    row = {"app_key": app.app_key, "date": "2026-11-10", "dau": 9, "delivered_messages": 9}
    assert usage_ingest(rows=[row], now=NOW) == IngestResult(created=1, updated=0, unchanged=0)
    assert usage_ingest(rows=[row | {"dau": 8}], now=NOW) == IngestResult(
        created=0, updated=1, unchanged=0
    )
    assert len(calls) == 2
