"""Liveness and readiness: what a load balancer or an orchestrator asks before sending traffic.

/healthz only says the process answers (no database: a database outage must not make every
web process restart). /readyz checks what serving needs: the database, the migrations of this
code, the Celery broker and a beat that ticked recently; any failing check makes it a 503.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billingsite.celery import app
from billingsite.ops.beat import beat_last_seen

BROKER_TIMEOUT_SECONDS = 2.0

# Once this process has seen every migration applied, it stays so for the code it runs.
_migrations_seen_applied = False


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said in the body
        return Check(False, f"unreachable: {type(exc).__name__}")
    return Check(True, connection.vendor)


def check_migrations() -> Check:
    global _migrations_seen_applied
    if _migrations_seen_applied:
        return Check(True, "applied")
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"cannot read: {type(exc).__name__}")
    if plan:
        return Check(False, f"{len(plan)} not applied (run manage.py migrate)")
    _migrations_seen_applied = True
    return Check(True, "applied")


def check_broker() -> Check:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001
        return Check(False, f"unreachable: {type(exc).__name__}")
    return Check(True, conn.transport_cls if isinstance(conn.transport_cls, str) else "ok")


def check_beat(*, now: float) -> Check:
    try:
        seen = beat_last_seen()
    except Exception as exc:  # noqa: BLE001 - the cache (Redis) is down
        return Check(False, f"cache unreachable: {type(exc).__name__}")
    if seen is None:
        return Check(False, "never seen (is `beat` running, and CACHE_URL shared with it?)")
    age = now - seen
    if age > settings.BEAT_STALE_AFTER_SECONDS:
        return Check(False, f"last seen {age:.0f} s ago")
    return Check(True, f"seen {age:.0f} s ago")


def readiness() -> dict[str, Check]:
    database = check_database()
    return {
        "database": database,
        "migrations": check_migrations() if database.ok else Check(False, "database unreachable"),
        "broker": check_broker(),
        "beat": check_beat(now=time.time()),
    }
