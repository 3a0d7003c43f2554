"""Celery entry points of the billing run and the daily arrears check. Thin: they parse their
arguments and call the services."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from accounts.arrears import arrears_enforce
from accounts.services import promo_credit_lapse_due
from billingsite.audit import system_actor
from billingsite.clock import Period, billing_date
from invoices.mail.account_statement import monthly_statements_record
from invoices.models import BillingRun
from invoices.run.runs import billing_run_chunk_process, billing_run_for_period


def _moment(now: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(now) if now else timezone.now()


@shared_task(name="invoices.tasks.start_monthly_billing")
def start_monthly_billing(now: str | None = None) -> int:
    """Beat, 00:00 on the 2nd (Asia/Shanghai): bill the previous month (resuming its stalled
    run rather than starting a second one). Returns the run id."""

    moment = _moment(now)
    period = Period.containing(billing_date(moment)).previous()
    with system_actor(f"billing run {period}"):
        run, _how = billing_run_for_period(
            period=period, now=moment, origin=BillingRun.Origin.SCHEDULE
        )
    return run.pk


# Acknowledged when it returns (after the chunk's durable commit), given back to the broker
# when its worker process dies, and restored by the broker after the visibility timeout
# (settings) when the whole worker died: billing a chunk again is harmless. A lost database
# connection is retried on a new one.
@shared_task(
    name="invoices.tasks.billing_run_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(InterfaceError, OperationalError),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=10,
)
def billing_run_chunk(
    run_id: int, customer_ids: list[int], period: str, now: str, chunk_number: int | None = None
) -> dict:

    with system_actor(f"billing run {period}"):
        return billing_run_chunk_process(
            run_id=run_id,
            customer_ids=list(customer_ids),
            period=Period.parse(period),
            now=dt.datetime.fromisoformat(now),
            chunk_number=chunk_number,
        )


@shared_task(name="invoices.tasks.lapse_promo_credit")
def lapse_promo_credit(now: str | None = None) -> int:
    """Beat, daily before the arrears check: what is left of expired promotional credit
    lapses (`accounts.services.promo_credit_lapse_due`; safe to rerun)."""

    with system_actor("promotional credit lapse"):
        return promo_credit_lapse_due(now=_moment(now))


@shared_task(name="invoices.tasks.enforce_arrears")
def enforce_arrears(now: str | None = None) -> dict:
    """Beat, daily: suspension warnings and suspensions for arrears."""

    with system_actor("arrears check"):
        return arrears_enforce(now=_moment(now))


@shared_task(name="invoices.tasks.send_monthly_statements")
def send_monthly_statements(now: str | None = None) -> int | None:
    """Beat, every hour of the 2nd: the previous month's statements, once its run finished."""
    moment = _moment(now)
    period = Period.containing(billing_date(moment)).previous()
    with system_actor("monthly statements"):
        return monthly_statements_record(period=period, now=moment)
