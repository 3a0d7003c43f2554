import logging

from celery import shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)

# About 8 hours of retries at the capped backoff (30 s doubling up to 1 h).
WEBHOOK_MAX_RETRIES = 12


@shared_task(bind=True, name="accounts.tasks.deliver_customer_event", max_retries=None)
def deliver_customer_event(self, event_id: int) -> dict:
    """E-mail and webhook delivery of a CustomerEvent, retried with exponential backoff until
    both went out (each webhook attempt is a WebhookDelivery row)."""
    from accounts.models import CustomerEvent
    from accounts.notifications import event_deliver, webhook_retry_countdown

    event = CustomerEvent.objects.select_related("customer").filter(pk=event_id).first()
    if event is None:
        return {"event": event_id, "missing": True}
    result = event_deliver(event=event, now=timezone.now())
    outcome = {
        "event": event_id,
        "email_sent": result.email_sent,
        "webhook_status": result.webhook.status_code if result.webhook else None,
    }
    if result.retry:
        if self.request.retries >= WEBHOOK_MAX_RETRIES:
            logger.error(
                "customer event %s: giving up after %s retries", event_id, WEBHOOK_MAX_RETRIES
            )
            return {**outcome, "gave_up": True}
        raise self.retry(countdown=webhook_retry_countdown(self.request.retries))
    return outcome
