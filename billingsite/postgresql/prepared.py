"""Statements prepared on the PostgreSQL server, once per connection.

Django's PostgreSQL cursors bind parameters on the client and never prepare: the server parses
and plans every statement again. For the short reads of a portal page that is most of what the
server spends on them (measured on the invoice page's reads: 110-200 us of server CPU each
with the parameters inlined, 55-65 us prepared; bench/README.md, "Prepared reads"). Statements
whose text is fixed per process (the month-end run's two per-account statements, the compiled
reads of `billingsite.queries`) are therefore sent with server-side binding and prepared the
first time a connection runs them; later runs send only the parameters.

`BILLING_RUN_PREPARED_STATEMENTS=0` turns this off (behind a pooler in transaction mode that
does not keep prepared statements, PgBouncer before 1.21): the same statements are then sent
through Django's cursors with their parameters inlined, like every other query.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import Cursor as ServerBindingCursor


class _PreparingCursor(ServerBindingCursor):
    """psycopg's cursor that sends parameters apart from the statement (server-side binding),
    preparing each statement on the server the first time its connection runs it."""

    def execute(  # type: ignore[override]  # (prepare: always, whatever the caller says)
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Any:
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_statements_on(db: BaseDatabaseWrapper) -> bool:
    return db.vendor == "postgresql" and settings.BILLING_RUN_PREPARED_STATEMENTS


def fetch_fixed(
    db: BaseDatabaseWrapper, sql: str, params: Sequence[Any] | dict[str, Any], *, one: bool = False
) -> Any:
    """The rows of a statement whose text is fixed per process (`one`: its first row, or
    None): prepared on the server where `prepared_statements_on(db)` (`fetch_prepared`),
    otherwise through a Django cursor with the parameters inlined."""
    if prepared_statements_on(db):
        return fetch_prepared(db, sql, params, one=one)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if one else cursor.fetchall()


# SQLSTATEs of a prepared statement gone stale on its connection: "cached plan must not change
# result type" (a migration altered a column it returns, while this process kept running) and
# "prepared statement does not exist" (a pooler lost it). psycopg keeps using the statement's
# name after either, so every later call on that connection would fail the same way.
_STALE_STATEMENT = frozenset({"0A000", "26000"})


def fetch_prepared(
    db: BaseDatabaseWrapper, sql: str, params: Sequence[Any] | dict[str, Any], *, one: bool = False
) -> Any:
    """Run `sql` (Django's `%s` placeholders) prepared on `db`'s server connection and return
    its rows (`one`: its first row, or None), as a Django cursor would: the kept connection's
    health check first, the cursor wrapped as Django wraps its own (execute wrappers, database
    errors), and the query log (DEBUG, tests) gets the statement with its parameters inlined,
    as Django logs its own queries. PostgreSQL only, when `prepared_statements_on(db)`;
    otherwise use a Django cursor.

    A statement gone stale (`_STALE_STATEMENT`) outside a transaction is sent again once on a
    new connection, which prepares it anew; inside one the error stands (the transaction is
    aborted whatever happens, and its rollback clears the connection's prepared statements)."""
    started = time.monotonic()
    try:
        rows = _execute_prepared(db, sql, params, one=one)
    except DatabaseError as error:
        if db.in_atomic_block or getattr(error.__cause__, "sqlstate", None) not in _STALE_STATEMENT:
            raise
        db.close()
        rows = _execute_prepared(db, sql, params, one=one)
    if db.queries_logged:
        db.queries_log.append(
            {
                "sql": db.ops.compose_sql(sql, params),  # type: ignore[attr-defined]  # (PostgreSQL's)
                "time": f"{time.monotonic() - started:.3f}",
            }
        )
    return rows


def _execute_prepared(
    db: BaseDatabaseWrapper, sql: str, params: Sequence[Any] | dict[str, Any], *, one: bool
) -> Any:
    # What Django's `connection.cursor()` does before a query: replace a kept connection that
    # fails its health check (closed by the server or a pooler while idle), connect, refuse
    # the connection of another thread.
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    threshold = raw.prepare_threshold
    if threshold is None:
        # Django turns psycopg's automatic preparing off (for connection poolers), and psycopg
        # then ignores prepare=True too. A threshold no statement reaches, for this call only:
        # left set, psycopg would count every other query of the connection in its cache
        # (their text with the values inlined: a 10,000-row usage push is ~200 kB).
        raw.prepare_threshold = 2**31
    try:
        with db.wrap_database_errors:
            preparing_cursor = _PreparingCursor(raw)
        # (Django wraps any DB-API cursor; the stubs accept only its own)
        with db.make_cursor(preparing_cursor) as cursor:  # type: ignore[arg-type]
            cursor.execute(sql, params)
            return cursor.fetchone() if one else cursor.fetchall()
    finally:
        raw.prepare_threshold = threshold
