import datetime as dt
import logging
import time

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts.events import webhooks
from accounts.events.webhooks import event_deliver
from accounts.mail.sending import EmailNotFinished, deliveries_send
from accounts.models import CustomerEvent, EmailDelivery

logger = logging.getLogger(__name__)

# About 8 hours of retries at the capped backoff (30 s doubling up to 1 h).
WEBHOOK_MAX_RETRIES = 12
# The sweep re-sends events older than this whose e-mail never went out.
PENDING_AFTER = dt.timedelta(minutes=15)
PENDING_WITHIN = dt.timedelta(days=3)


def _deliver_now(event_id: int):

    event = CustomerEvent.objects.select_related("customer").filter(pk=event_id).first()
    if event is None:
        return None, {"event": event_id, "missing": True}
    result = event_deliver(event=event, now=timezone.now())
    return result, {
        "event": event_id,
        "email_sent": result.email_sent,
        "webhook_status": result.webhook.status_code if result.webhook else None,
    }


def broker_wait_limit() -> int:
    """The longest countdown a task may wait for inside a worker. A broker with a visibility
    timeout (Redis) gives a message not acknowledged by then to another worker, so a longer
    wait would run twice (and each copy retry again): longer backoffs wait in hops."""
    return max(1, settings.CELERY_BROKER_VISIBILITY_TIMEOUT // 2)


@shared_task(bind=True, name="accounts.tasks.deliver_customer_event", max_retries=None)
def deliver_customer_event(self, event_id: int, not_before: float | None = None) -> dict:
    """E-mail and webhook delivery of a CustomerEvent, retried with exponential backoff until
    both went out (each webhook attempt is a WebhookDelivery row). `not_before` (Unix time):
    a backoff longer than `broker_wait_limit`, waited for in hops."""

    remaining = (not_before or 0) - time.time()
    if remaining > 1 and not self.request.is_eager:
        self.apply_async(
            (event_id,),
            {"not_before": not_before},
            countdown=min(remaining, broker_wait_limit()),
            retries=self.request.retries,
        )
        return {"event": event_id, "waiting": round(remaining)}
    result, outcome = _deliver_now(event_id)
    if result is not None and result.retry:
        if self.request.retries >= WEBHOOK_MAX_RETRIES:
            logger.error(
                "customer event %s: giving up after %s retries", event_id, WEBHOOK_MAX_RETRIES
            )
            return {**outcome, "gave_up": True}
        countdown = webhooks.webhook_retry_countdown(self.request.retries)
        limit = broker_wait_limit()
        if countdown <= limit:
            raise self.retry(args=(event_id,), kwargs={}, countdown=countdown)
        raise self.retry(
            args=(event_id,),
            kwargs={"not_before": time.time() + countdown},
            countdown=limit,
        )
    return outcome


@shared_task(name="accounts.tasks.deliver_customer_events")
def deliver_customer_events(event_ids: list[int]) -> dict:
    """First attempt for a batch of events (the billing run raises hundreds); each one that
    needs another attempt continues as its own retried `deliver_customer_event`."""

    delivered, retried = 0, 0
    for event_id in event_ids:
        try:
            result, _outcome = _deliver_now(event_id)
        except Exception:
            logger.exception("customer event %s: delivery failed", event_id)
            result = None
            retry = True
        else:
            retry = result is not None and result.retry
        if retry:
            deliver_customer_event.apply_async(
                (event_id,),
                countdown=min(webhooks.webhook_retry_countdown(0), broker_wait_limit()),
                retries=1,
            )
            retried += 1
        else:
            delivered += 1
    return {"delivered": delivered, "retried": retried}


@shared_task(name="accounts.tasks.deliver_pending_events")
def deliver_pending_events() -> int:
    """Beat safety net: events whose e-mail never went out (the process that raised them died
    before handing them to the broker, or the broker was down) are delivered again."""

    now = timezone.now()
    # Age is wall-clock time since the row was written: a run's events carry its billing
    # moment as created_at, which is days old when a stalled run is resumed.
    written_between = Q(
        recorded_at__lt=now - PENDING_AFTER, recorded_at__gte=now - PENDING_WITHIN
    ) | Q(
        recorded_at__isnull=True,
        created_at__lt=now - PENDING_AFTER,
        created_at__gte=now - PENDING_WITHIN,
    )
    pending = list(
        CustomerEvent.objects.filter(written_between, email_sent_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)[:5000]
    )
    for start in range(0, len(pending), 100):
        deliver_customer_events.delay(pending[start : start + 100])
    return len(pending)


# Finance's resends: a few attempts, then the row stays pending for finance to see.
RESEND_MAX_RETRIES = 5


@shared_task(bind=True, name="accounts.tasks.send_email_deliveries", max_retries=RESEND_MAX_RETRIES)
def send_email_deliveries(self, delivery_ids: list[int]) -> dict:
    """Send e-mail delivery rows made by a resend (each row once: see accounts.mail.sending)."""
    rows = list(
        EmailDelivery.objects.select_related("event__customer")
        .filter(pk__in=delivery_ids)
        .order_by("id")
    )
    sent, unfinished = 0, False
    for event_id in dict.fromkeys(row.event_id for row in rows):
        event_rows = [row for row in rows if row.event_id == event_id]
        try:
            sent += deliveries_send(rows=event_rows, event=event_rows[0].event, now=timezone.now())
        except EmailNotFinished:
            unfinished = True
    if unfinished and self.request.retries < RESEND_MAX_RETRIES:
        countdown = min(webhooks.webhook_retry_countdown(self.request.retries), broker_wait_limit())
        raise self.retry(args=(delivery_ids,), countdown=countdown)
    return {"sent": sent, "unfinished": unfinished}
