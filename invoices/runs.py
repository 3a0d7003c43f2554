"""The month-end billing run: pick the accounts, fan them out in chunks over Celery, bill each
account in its own transaction, count outcomes and keep per-account errors.

Nothing here can double-bill: each account is billed under its customer row lock, invoices are
unique per customer and period, and the ledger debit has one idempotency key per customer and
period. So running twice, two runs at once, a redelivered chunk after a worker died, or a retry
all leave exactly one invoice, one number and one debit per account.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.events import deliveries_batched
from accounts.models import Application, Customer, DailyUsage
from billingsite.clock import Period, billing_date
from invoices.models import BillingRun, BillingRunError, Invoice
from invoices.services import (
    FAILED,
    HELD,
    ISSUED,
    SKIPPED,
    ZERO,
    InvoiceError,
    PreparedAccount,
    accounts_rate,
    bill_account_rerating,
)
from invoices.statements import billing_run_bump
from plans.models import DedicatedContract, Plan, PlanChange
from plans.selectors import price_book_for_period

logger = logging.getLogger(__name__)


def _paid_plan_codes(*, period: Period) -> list[str]:
    book = price_book_for_period(period=period)
    return [
        code
        for code, plan in book.plans.items()
        if plan.dau_base_fee > 0 or plan.dau_block_price > 0
    ]


def billing_run_candidates(*, period: Period) -> QuerySet[Customer]:
    """Accounts a run for `period` would bill, ordered by id.

    Those with an application on a paid plan on some day of the period, with a dedicated
    contract overlapping it, or with a day above the (lowest) plan message limit (a held invoice
    for finance), and without an issued invoice for the period yet. Decided in SQL so the count
    is cheap; the per-account step re-checks and skips an account that turns out to owe nothing.
    """
    # A plan change covers the period when it starts before the period ends and no later change
    # replaces it on or before the period's first day.
    replaced_before_period = PlanChange.objects.filter(
        application_id=OuterRef("application_id"),
        cancelled_at__isnull=True,
        effective_date__gt=OuterRef("effective_date"),
        effective_date__lte=period.start,
    )
    paid_plan_apps = (
        PlanChange.objects.filter(
            cancelled_at__isnull=True,
            effective_date__lte=period.end,
            plan__code__in=_paid_plan_codes(period=period),
        )
        .exclude(Exists(replaced_before_period))
        .values("application_id")
    )
    contract_apps = (
        DedicatedContract.objects.filter(first_day__lte=period.end)
        .filter(Q(last_day__isnull=True) | Q(last_day__gte=period.start))
        .values("application_id")
    )
    lowest_limit = min(Plan.objects.values_list("daily_message_limit", flat=True), default=None)
    application_filter = Q(id__in=paid_plan_apps) | Q(id__in=contract_apps)
    if lowest_limit is not None:
        high_volume_apps = DailyUsage.objects.filter(
            day__gte=period.start, day__lte=period.end, delivered_messages__gt=lowest_limit
        ).values("application_id")
        application_filter |= Q(id__in=high_volume_apps)
    billed = Invoice.objects.filter(period=period.start, status__in=Invoice.ISSUED_STATES).values(
        "customer_id"
    )
    return (
        Customer.objects.filter(
            id__in=Application.objects.filter(application_filter).values("customer_id")
        )
        .exclude(id__in=billed)
        .order_by("id")
    )


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    size = max(1, size)
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _dispatch(*, run_id: int, chunks: list[list[int]], period: Period, now: dt.datetime) -> None:
    from invoices.tasks import billing_run_chunk

    for customer_ids in chunks:
        billing_run_chunk.delay(run_id, customer_ids, str(period), now.isoformat())


def billing_run_start(*, period: Period, now: dt.datetime, created_by=None) -> BillingRun:
    """Create the run for `period` and queue its chunks (after commit, so a worker never sees
    a chunk before its run). Several runs for one period are safe: accounts billed by one are
    "already billed" for the other."""
    if period.end >= billing_date(now):
        # Usage of a month under way still arrives and is not versioned for the run's check.
        raise InvoiceError(f"{period} is not over yet: only past months are billed", "period")
    customer_ids = list(billing_run_candidates(period=period).values_list("id", flat=True))
    chunks = _chunks(customer_ids, settings.BILLING_RUN_CHUNK_SIZE)
    with transaction.atomic():
        run = BillingRun.objects.create(
            period=period.start,
            status=BillingRun.Status.RUNNING if chunks else BillingRun.Status.FINISHED,
            created_at=now,
            started_at=now,
            finished_at=None if chunks else now,
            created_by=created_by,
            accounts_total=len(customer_ids),
            chunks_total=len(chunks),
        )
        transaction.on_commit(
            lambda: _dispatch(run_id=run.pk, chunks=chunks, period=period, now=now)
        )
    logger.info(
        "billing run %s for %s: %s accounts in %s chunks",
        run.pk,
        period,
        len(customer_ids),
        len(chunks),
    )
    return run


def billing_run_retry_failed(*, run: BillingRun, now: dt.datetime) -> BillingRun:
    """Queue again the accounts of `run` whose errors are unresolved. A success resolves the
    error and moves the account from the failed count to its outcome."""
    period = Period.containing(run.period)
    customer_ids = sorted(
        set(
            BillingRunError.objects.filter(run=run, resolved_at__isnull=True).values_list(
                "customer_id", flat=True
            )
        )
    )
    chunks = _chunks(customer_ids, settings.BILLING_RUN_CHUNK_SIZE)
    if chunks:
        with transaction.atomic():
            BillingRun.objects.filter(pk=run.pk).update(
                status=BillingRun.Status.RUNNING,
                finished_at=None,
                chunks_total=F("chunks_total") + len(chunks),
            )
            transaction.on_commit(
                lambda: _dispatch(run_id=run.pk, chunks=chunks, period=period, now=now)
            )
    run.refresh_from_db()
    return run


def _finished_at(run: BillingRun) -> dt.datetime:
    # Wall-clock end of the work, never before the run's own start (tests bill at fixed times).
    wall = timezone.now()
    return max(wall, run.started_at) if run.started_at else wall


def _record_failure(
    *, run: BillingRun, customer_id: int, exc: BaseException, already_open: bool
) -> None:
    # Errors written for finance read as they are; anything else keeps its type for support.
    text = str(exc) if getattr(exc, "finance_message", False) else f"{type(exc).__name__}: {exc}"
    text = text[:5000]
    with transaction.atomic():
        if already_open:
            BillingRunError.objects.filter(
                run=run, customer_id=customer_id, resolved_at__isnull=True
            ).update(error=text, occurred_at=_finished_at(run))
        else:
            BillingRunError.objects.create(
                run=run, customer_id=customer_id, error=text, occurred_at=_finished_at(run)
            )
            billing_run_bump(run.pk, accounts_done=1, accounts_failed=1)


def _chunk_finished(run: BillingRun) -> None:
    BillingRun.objects.filter(pk=run.pk).update(chunks_done=F("chunks_done") + 1)
    BillingRun.objects.filter(
        pk=run.pk, status=BillingRun.Status.RUNNING, chunks_done__gte=F("chunks_total")
    ).update(status=BillingRun.Status.FINISHED, finished_at=_finished_at(run))


def billing_run_chunk_process(
    *, run_id: int, customer_ids: list[int], period: Period, now: dt.datetime
) -> dict[str, int]:
    """Bill a chunk of accounts of a run: one batched rating read for the chunk, then each
    account in its own transaction. A failing account is recorded and the others go on."""
    run = BillingRun.objects.get(pk=run_id)
    open_errors = set(
        BillingRunError.objects.filter(
            run=run, customer_id__in=customer_ids, resolved_at__isnull=True
        ).values_list("customer_id", flat=True)
    )
    invoiced = set(
        Invoice.objects.filter(customer_id__in=customer_ids, period=period.start).values_list(
            "customer_id", flat=True
        )
    )
    try:
        prepared = accounts_rate(customer_ids=customer_ids, period=period)
    except Exception as exc:  # a chunk-wide read failed: every account fails with it, retriable
        logger.exception("billing run %s: rating a chunk failed", run_id)
        prepared = {
            customer_id: PreparedAccount(customer_id, None, {}, error=exc)
            for customer_id in customer_ids
        }
    outcomes: Counter[str] = Counter()
    with deliveries_batched():
        with _commits_made_durable_at_the_end():
            for customer_id in customer_ids:
                outcomes[
                    _bill_one(
                        run=run,
                        customer_id=customer_id,
                        period=period,
                        now=now,
                        prepared=prepared[customer_id],
                        open_errors=open_errors,
                        invoice_absent=customer_id not in invoiced,
                    )
                ] += 1
        # A durable commit: everything committed above is on disk before the customers are
        # told (deliveries leave when the outer block ends) and before the broker forgets the
        # chunk (acks_late: the task returns after this).
        _chunk_finished(run)
    return dict(outcomes)


@contextmanager
def _commits_made_durable_at_the_end() -> Iterator[None]:
    """PostgreSQL: the accounts' commits inside the block return before their WAL reaches the
    disk (synchronous_commit off), which takes the flush wait off every account; the caller
    ends with a synchronous commit, whose flush covers every earlier commit (the WAL is written
    in order). Only a crash of the database server can lose the accounts of the last moment,
    whole and together with their events and run counters; the chunk, not yet acknowledged,
    is then delivered again and bills them."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        if connection.is_usable():
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")


def _bill_one(
    *,
    run: BillingRun,
    customer_id: int,
    period: Period,
    now: dt.datetime,
    prepared: PreparedAccount,
    open_errors: set[int],
    invoice_absent: bool,
) -> str:
    try:
        return bill_account_rerating(
            customer_id=customer_id,
            period=period,
            now=now,
            prepared=prepared,
            billing_run=run,
            unresolved_error=customer_id in open_errors,
            invoice_absent=invoice_absent,
        )
    except Exception as exc:
        logger.warning(
            "billing run %s: customer %s failed: %s", run.pk, customer_id, exc, exc_info=True
        )
        _record_failure(
            run=run, customer_id=customer_id, exc=exc, already_open=customer_id in open_errors
        )
        open_errors.add(customer_id)
        return FAILED


@dataclass(frozen=True)
class PreviewRow:
    """What a run would do for one account (dry run)."""

    customer_id: int
    external_id: str
    name: str
    outcome: str  # issued | held | skipped | failed
    total: Decimal
    hold_reasons: tuple[str, ...] = ()
    error: str = ""
    lines: int = 0


def billing_run_preview(*, period: Period) -> list[PreviewRow]:
    """Rate every candidate as the run would, in chunks, and write nothing."""
    rows: list[PreviewRow] = []
    book = price_book_for_period(period=period)
    customers = list(billing_run_candidates(period=period).only("id", "external_id", "name"))
    for start in range(0, len(customers), max(1, settings.BILLING_RUN_CHUNK_SIZE)):
        chunk = customers[start : start + settings.BILLING_RUN_CHUNK_SIZE]
        prepared = accounts_rate(customer_ids=[c.pk for c in chunk], period=period, book=book)
        for customer in chunk:
            account = prepared[customer.pk]
            common = {
                "customer_id": customer.pk,
                "external_id": customer.external_id,
                "name": customer.name,
            }
            if account.error is not None:
                rows.append(
                    PreviewRow(**common, outcome=FAILED, total=ZERO, error=str(account.error))
                )
            elif not account.billable:
                rows.append(PreviewRow(**common, outcome=SKIPPED, total=ZERO))
            else:
                rated = account.rated
                rows.append(
                    PreviewRow(
                        **common,
                        outcome=HELD if rated.hold_reasons else ISSUED,
                        total=rated.total,
                        hold_reasons=rated.hold_reasons,
                        lines=len(rated.lines),
                    )
                )
    return rows
