"""The health check of a kept PostgreSQL connection (billingsite/postgresql/base.py): no query
while the connection is idle and quiet, and a connection the server closed is still found
unusable and replaced before the request's first query."""

from __future__ import annotations

import select
import time

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql import base as django_postgresql

from billingsite.postgresql.base import DatabaseWrapper
from tests.conftest import postgres_only

pytestmark = [postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def kept():
    """A second connection to the test database, as a web worker keeps one between requests."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def backend_pid(wrapper) -> int:
    return wrapper.connection.info.backend_pid


def sent_select_1(monkeypatch) -> list[bool]:
    """Records each time Django's own check (`SELECT 1`) runs."""
    calls: list[bool] = []
    original = django_postgresql.DatabaseWrapper.is_usable

    def recorded(self):
        calls.append(True)
        return original(self)

    monkeypatch.setattr(django_postgresql.DatabaseWrapper, "is_usable", recorded)
    return calls


def wait_readable(wrapper) -> None:
    poller = select.poll()
    poller.register(wrapper.connection.fileno(), select.POLLIN)
    deadline = time.monotonic() + 5
    while not poller.poll(50):
        assert time.monotonic() < deadline, "the server never closed the connection"


def test_the_production_settings_use_this_backend():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_an_idle_quiet_connection_is_usable_without_a_query(kept, monkeypatch):
    calls = sent_select_1(monkeypatch)
    pid = backend_pid(kept)
    assert kept.is_usable() is True
    assert calls == []
    with kept.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone() == (pid,)


def test_a_connection_the_server_closed_is_unusable_and_replaced(kept, monkeypatch):
    calls = sent_select_1(monkeypatch)
    old_pid = backend_pid(kept)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        assert cursor.fetchone() == (True,)
    wait_readable(kept)

    assert kept.is_usable() is False
    assert calls == [True]  # the socket had something to say: the server was asked

    # What a request does before its first query: the dead connection is closed and the
    # query runs on a new one instead of failing.
    kept.health_check_done = False
    kept.close_if_health_check_failed()
    with kept.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (new_pid,) = cursor.fetchone()
    assert new_pid != old_pid


def test_a_connection_with_something_to_read_asks_the_server(kept, monkeypatch):
    with kept.cursor() as cursor:
        cursor.execute("LISTEN billing_health_check_test")
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        other.execute("NOTIFY billing_health_check_test")
    wait_readable(kept)
    calls = sent_select_1(monkeypatch)
    assert kept.is_usable() is True
    assert calls == [True]


def test_a_connection_inside_a_transaction_asks_the_server(kept, monkeypatch):
    calls = sent_select_1(monkeypatch)
    kept.set_autocommit(False)
    with kept.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert kept.is_usable() is True
    assert calls == [True]
    kept.rollback()
    kept.set_autocommit(True)


def test_a_closed_connection_is_unusable(kept):
    kept.connection.close()
    assert kept.is_usable() is False
