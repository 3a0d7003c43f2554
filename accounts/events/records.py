"""Customer events: recorded once (dedupe key), then delivered by e-mail and signed webhook
after the transaction that raised them commits."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
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


def record_customer_event(
    *, customer: Customer, kind: str, dedupe_key: str, payload: dict, now: dt.datetime
) -> tuple[CustomerEvent, bool]:
    """Record the event unless its dedupe key exists; returns (event, created). One INSERT ...
    ON CONFLICT DO NOTHING statement (the billing run raises one per invoice)."""
    meta = CustomerEvent._meta
    field = meta.get_field
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {meta.db_table} (customer_id, kind, dedupe_key, payload, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            [
                customer.pk,
                kind,
                dedupe_key,
                field("payload").get_db_prep_save(payload, connection),
                field("created_at").get_db_prep_save(now, connection),
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return CustomerEvent.objects.get(dedupe_key=dedupe_key), False
    event = CustomerEvent(
        pk=row[0],
        customer=customer,
        kind=kind,
        dedupe_key=dedupe_key,
        payload=payload,
        created_at=now,
    )
    deliver_after_commit(event.pk)
    return event, True


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
