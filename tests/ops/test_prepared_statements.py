"""`billingsite.postgresql.prepared.fetch_prepared` behaves like Django's cursors where a kept
connection goes wrong: a connection the server closed is replaced before the read, a statement
a migration made stale is prepared again (outside a transaction), and the connection's other
queries are not counted by psycopg's statement cache."""

import time

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from billingsite.postgresql.prepared import fetch_prepared
from billingsite.sessions import _live_session

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL prepares"),
    # Other connections act on this one's backend and tables: no wrapping test transaction.
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def other_connection():
    connection.ensure_connection()
    with psycopg.connect(connection.connection.info.dsn, autocommit=True) as other:
        yield other


@pytest.fixture
def scratch_table(other_connection):
    other_connection.execute(
        "DROP TABLE IF EXISTS prepared_scratch; CREATE TABLE prepared_scratch (code varchar(10));"
        "INSERT INTO prepared_scratch VALUES ('a')"
    )
    yield "prepared_scratch"
    other_connection.execute("DROP TABLE IF EXISTS prepared_scratch")


@pytest.fixture
def kept_connection(settings):
    """The web's kept connection (DB_CONN_MAX_AGE, health checks), prepared statements on."""
    settings.BILLING_RUN_PREPARED_STATEMENTS = True
    connection.close()
    connection.settings_dict["CONN_HEALTH_CHECKS"] = True
    connection.settings_dict["CONN_MAX_AGE"] = 60
    connection.connect()
    yield connection
    connection.settings_dict["CONN_MAX_AGE"] = 0
    connection.close()


def test_a_kept_connection_the_server_closed_is_replaced_before_a_prepared_read(
    kept_connection, other_connection
):
    session_read = {"session_key": "k" * 32}
    assert _live_session.first(**session_read, now=timezone.now()) is None
    killed = kept_connection.connection.info.backend_pid
    other_connection.execute("SELECT pg_terminate_backend(%s)", [killed])
    time.sleep(0.2)
    kept_connection.close_if_unusable_or_obsolete()  # a new request starts
    assert _live_session.first(**session_read, now=timezone.now()) is None
    assert kept_connection.connection.info.backend_pid != killed


def test_a_statement_a_migration_made_stale_is_prepared_again_outside_a_transaction(
    kept_connection, other_connection, scratch_table
):
    sql = f"SELECT code FROM {scratch_table} WHERE code = %s"
    assert fetch_prepared(kept_connection, sql, ["a"]) == [("a",)]
    # Another process migrates: the column's type changes what the statement returns.
    other_connection.execute(f"ALTER TABLE {scratch_table} ALTER COLUMN code TYPE varchar(20)")
    assert [fetch_prepared(kept_connection, sql, ["a"]) for _ in range(3)] == [[("a",)]] * 3

    other_connection.execute(f"ALTER TABLE {scratch_table} ALTER COLUMN code TYPE varchar(30)")
    # Inside a transaction the error stands (the transaction is aborted either way); its
    # rollback clears the connection's statements, and the next read prepares it anew.
    with pytest.raises(DatabaseError, match="cached plan must not change result type"):
        with transaction.atomic():
            fetch_prepared(kept_connection, sql, ["a"])
    assert fetch_prepared(kept_connection, sql, ["a"]) == [("a",)]


def test_only_these_statements_are_prepared_and_no_other_query_is_counted(
    kept_connection, scratch_table
):
    sql = f"SELECT code FROM {scratch_table} WHERE code = %s"
    fetch_prepared(kept_connection, sql, ["a"])
    raw = kept_connection.connection
    assert raw.prepare_threshold is None  # Django's setting, given back after the call
    with kept_connection.cursor() as cursor:
        for _ in range(10):
            cursor.execute(f"SELECT count(*) FROM {scratch_table} WHERE code = %s", ["a"])
    # psycopg's cache (private): the one prepared statement, nothing counted towards another.
    assert len(raw._prepared._names) == 1 and not raw._prepared._counts
    with kept_connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone() == (1,)
