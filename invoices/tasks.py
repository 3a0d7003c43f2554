"""Celery entry points of the billing run and the daily arrears check. Thin: they parse their
arguments and call the services."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from billingsite.clock import Period, billing_date


def _moment(now: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(now) if now else timezone.now()


@shared_task(name="invoices.tasks.start_monthly_billing")
def start_monthly_billing(now: str | None = None) -> int:
    """Beat, 00:00 on the 2nd (Asia/Shanghai): bill the previous month. Returns the run id."""
    from invoices.runs import billing_run_start

    moment = _moment(now)
    period = Period.containing(billing_date(moment)).previous()
    return billing_run_start(period=period, now=moment).pk


# acks_late (settings): a chunk whose worker dies is delivered again; bill_account makes the
# second delivery harmless.
@shared_task(name="invoices.tasks.billing_run_chunk")
def billing_run_chunk(run_id: int, customer_ids: list[int], period: str, now: str) -> dict:
    from invoices.runs import billing_run_chunk_process

    return billing_run_chunk_process(
        run_id=run_id,
        customer_ids=list(customer_ids),
        period=Period.parse(period),
        now=dt.datetime.fromisoformat(now),
    )


@shared_task(name="invoices.tasks.enforce_arrears")
def enforce_arrears(now: str | None = None) -> dict:
    """Beat, daily: suspension warnings and suspensions for arrears."""
    from accounts.arrears import arrears_enforce

    return arrears_enforce(now=_moment(now))
