"""Django's PostgreSQL backend, with a connection health check that costs no round trip while
the connection is quiet.

With CONN_MAX_AGE and CONN_HEALTH_CHECKS (billingsite/settings.py) Django checks a kept
connection before the first query of every request by sending `SELECT 1`: one more round trip
on every request (a third of a quote's: bench/README.md, "The request pipeline"). A connection
the server or a pooler closed while it sat idle says so on its socket (PostgreSQL's
termination notice, then the end of the stream), so an idle connection whose socket has
nothing to read is usable as it is; one with something to read, or in any state but idle,
gets Django's `SELECT 1` as before. A kept connection that was closed is still replaced
before the request's first query, not answered with a 500.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None:
            return False
        if not is_psycopg3 or not hasattr(select, "poll"):
            return super().is_usable()
        from psycopg import pq  # noqa: PLC0415 - psycopg 3 only (checked above)

        if connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        try:
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            events = poller.poll(0)
        except (OSError, ValueError):
            return False
        # Anything to read on an idle connection (a notice, a notification, the end of the
        # stream) is for libpq to interpret: ask the server.
        return super().is_usable() if events else True
