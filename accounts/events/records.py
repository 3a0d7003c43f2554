"""Customer events: recorded once (dedupe key), then delivered by e-mail and signed webhook
after the transaction that raised them commits."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery.exceptions import Retry
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from accounts.events.tasks import deliver_customer_event, deliver_customer_events
from accounts.models import Customer, CustomerEvent

logger = logging.getLogger(__name__)

# What publishing raises when the broker is down: kombu wraps the transport's connection
# errors in OperationalError (a KombuError); a bare socket error may still get through.
BROKER_ERRORS = (KombuError, OSError)

# Inside `deliveries_batched()` committed events wait here and go to the broker together.
_batch = threading.local()
BATCH_SIZE = 100


def customer_event_row(
    *, customer_id: int, kind: str, dedupe_key: str, payload: dict, now: dt.datetime
) -> dict:
    """The row of a customer event (attname -> value), as every writer of events writes it:
    `created_at` is the business moment `now`, `recorded_at` the wall clock of the write, which
    `accounts.tasks.deliver_pending_events` measures age by."""
    return {
        "customer_id": customer_id,
        "kind": str(kind),
        "dedupe_key": dedupe_key,
        "payload": payload,
        "created_at": now,
        "recorded_at": timezone.now(),
    }


def record_customer_event(
    *, customer: Customer, kind: str, dedupe_key: str, payload: dict, now: dt.datetime
) -> tuple[CustomerEvent, bool]:
    """Record the event unless its dedupe key exists; returns (event, created). One INSERT ...
    ON CONFLICT DO NOTHING statement."""
    row = customer_event_row(
        customer_id=customer.pk, kind=kind, dedupe_key=dedupe_key, payload=payload, now=now
    )
    meta = CustomerEvent._meta
    columns = ", ".join(meta.get_field(name).column for name in row)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(row))}) "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            [
                meta.get_field(name).get_db_prep_save(value, connection)
                for name, value in row.items()
            ],
        )
        inserted = cursor.fetchone()
    if inserted is None:
        return CustomerEvent.objects.get(dedupe_key=dedupe_key), False
    event = CustomerEvent(
        pk=inserted[0],
        customer=customer,
        **{name: value for name, value in row.items() if name != "customer_id"},
    )
    deliver_after_commit(event.pk)
    return event, True


def record_customer_events(rows: list[dict]) -> int:
    """`record_customer_event` for many events (rows of `customer_event_row`) in one INSERT ...
    ON CONFLICT DO NOTHING statement; each inserted one is delivered after commit. Returns how
    many were inserted."""
    if not rows:
        return 0
    meta = CustomerEvent._meta
    names = list(rows[0])
    fields = [meta.get_field(name) for name in names]
    columns = ", ".join(field.column for field in fields)
    values = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(rows))
    params = [
        field.get_db_prep_save(row[field.attname], connection) for row in rows for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {meta.db_table} ({columns}) VALUES {values} "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            params,
        )
        inserted = [row[0] for row in cursor.fetchall()]
    for event_id in inserted:
        deliver_after_commit(event_id)
    return len(inserted)


def deliver_after_commit(event_id: int) -> None:
    """Queue the delivery of an event recorded in the current transaction once it commits
    (for events inserted by other statements than `record_customer_event`)."""
    transaction.on_commit(lambda: _enqueue(event_id))


@contextmanager
def deliveries_batched() -> Iterator[None]:
    """Collect the deliveries of events committed inside the block and hand them to the broker
    when the block ends, in messages of up to BATCH_SIZE events instead of one message each.
    Nothing reaches the broker before the block ends, so a caller that commits asynchronously
    inside it makes its commits durable before it ends (see `invoices.run.runs`). A block that
    ends with an exception hands nothing over (its commits may not be durable):
    `accounts.events.tasks.deliver_pending_events` delivers those events, as it does the events of a
    killed process. A hand-over that fails (broker down; an eager delivery that raises) never
    fails the caller, whose work is committed: the sweep delivers those events too."""
    previous = getattr(_batch, "pending", None)
    pending: list[int] = []
    _batch.pending = pending
    try:
        yield
    finally:
        _batch.pending = previous
    for start in range(0, len(pending), BATCH_SIZE):
        batch = pending[start : start + BATCH_SIZE]
        try:
            _deliver_many(batch)
        except Exception:
            logger.exception("handing %s customer events to the broker failed", len(batch))


def _enqueue(event_id: int) -> None:
    pending = getattr(_batch, "pending", None)
    if pending is None:
        _deliver(event_id)
    else:
        pending.append(event_id)


def _deliver(event_id: int) -> None:

    _hand_to_broker(deliver_customer_event, event_id, event_ids=[event_id])


def _deliver_many(event_ids: list[int]) -> None:

    _hand_to_broker(deliver_customer_events, event_ids, event_ids=event_ids)


def _hand_to_broker(task, *args, event_ids: list[int]) -> None:
    """The one place where committed events are handed to the broker. It runs after the write
    that raised them has committed (a deposit, an invoice), so a broker outage must not turn
    that committed write into an error for its caller: the events stay pending (no e-mail
    sent) and `accounts.events.tasks.deliver_pending_events` delivers them later."""
    try:
        task.delay(*args)
    except BROKER_ERRORS:
        logger.exception(
            "broker unavailable: customer events %s left for the pending-events sweep", event_ids
        )
    except Retry:
        # Eager tasks (bill --inline without a worker, tests) deliver in-process: a delivery
        # that asks for a retry leaves the events to the sweep, as a failed hand-over does.
        logger.warning("customer events %s left for the pending-events sweep", event_ids)
