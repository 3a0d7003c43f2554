"""Beat task of online top-ups (the name keeps the `accounts.tasks.` prefix of the schedule's
other entries)."""

from celery import shared_task
from django.utils import timezone

from accounts.payments.services import top_ups_sweep
from billingsite.audit import system_actor


@shared_task(name="accounts.tasks.settle_pending_top_ups")
def settle_pending_top_ups() -> dict:
    """Every 2 minutes: online top-ups still waiting are asked for at their provider and
    settled; unpaid ones past their expiry are closed there and expire."""
    with system_actor("top-up settlement"):
        result = top_ups_sweep(now=timezone.now())
    return {"settled": result.settled, "expired": result.expired, "errors": result.errors}
