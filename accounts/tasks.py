from celery import shared_task


@shared_task
def deliver_customer_event(event_id: int) -> None:
    """E-mail and webhook delivery of a CustomerEvent (implemented by the notifications work)."""
