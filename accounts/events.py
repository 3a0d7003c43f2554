"""Customer events: recorded once (dedupe key), then delivered by e-mail and signed webhook
after the transaction that raised them commits."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from accounts.models import Customer, CustomerEvent


def record_customer_event(
    *, customer: Customer, kind: str, dedupe_key: str, payload: dict, now: dt.datetime
) -> tuple[CustomerEvent, bool]:
    event, created = CustomerEvent.objects.get_or_create(
        dedupe_key=dedupe_key,
        defaults={"customer": customer, "kind": kind, "payload": payload, "created_at": now},
    )
    if created:
        transaction.on_commit(lambda: _deliver(event.pk))
    return event, created


def _deliver(event_id: int) -> None:
    from accounts.tasks import deliver_customer_event

    deliver_customer_event.delay(event_id)
