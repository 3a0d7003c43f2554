"""The month-end billing run: pick the accounts, fan them out in chunks over Celery, bill each
account in its own transaction, count outcomes and keep per-account errors.

Nothing here can double-bill: each account is billed under its customer row lock, invoices are
unique per customer and period, and the ledger debit has one idempotency key per customer and
period. So running twice, two runs at once, a redelivered chunk after a worker died, or a retry
all leave exactly one invoice, one number and one debit per account.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from accounts.arrears import arrears_follow
from accounts.events.records import BROKER_ERRORS, deliveries_batched
from accounts.low_balance import low_balance_follow
from accounts.models import Application, Customer, DailyUsage
from billingsite.clock import Period, billing_date
from billingsite.queries import any_of
from invoices.documents.services import (
    ALREADY_BILLED,
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
from invoices.models import BillingRun, BillingRunChunk, BillingRunError, Invoice
from plans.models import DedicatedContract, Plan
from plans.selectors import price_book_for_period
from plans.timeline import contracts_in_effect, plan_changes_in_effect

logger = logging.getLogger(__name__)


def _paid_plan_codes(*, period: Period) -> list[str]:
    book = price_book_for_period(period=period)
    return [code for code, plan in book.plans.items() if plan.is_paid]


def billing_run_candidates(*, period: Period) -> QuerySet[Customer]:
    """Accounts a run for `period` would bill, ordered by id.

    Those with an application on a paid plan on some day of the period, with a dedicated
    contract overlapping it (both in SQL from `plans.timeline`, the one timeline rule), or with
    a day above the (lowest) plan message limit (a held invoice for finance), and without an
    issued invoice for the period yet. Decided in SQL so the count
    is cheap; the per-account step re-checks and skips an account that turns out to owe nothing.
    """
    paid_plan_apps = (
        plan_changes_in_effect(first_day=period.start, last_day=period.end)
        .filter(plan__code__in=_paid_plan_codes(period=period))
        .values("application_id")
    )
    contract_apps = DedicatedContract.objects.filter(
        contracts_in_effect(first_day=period.start, last_day=period.end)
    ).values("application_id")
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


# The connection to the database was lost (killed, restarted, network): the work is retried on
# a new connection; what was committed stays, what was not is billed again.
CONNECTION_LOST = (InterfaceError, OperationalError)


def _connection_alive() -> bool:
    return connection.connection is not None and connection.is_usable()


def _dispatch(
    *, run_id: int, chunks: list[BillingRunChunk], period: Period, now: dt.datetime
) -> None:
    # Circular at import time: the tasks module imports this one.
    from invoices.run.tasks import billing_run_chunk  # noqa: PLC0415

    try:
        for chunk in chunks:
            billing_run_chunk.delay(
                run_id, chunk.customer_ids, str(period), now.isoformat(), chunk.number
            )
    except BROKER_ERRORS:
        # Runs after the run's rows committed: a broker outage must not turn the start into an
        # error. The chunks not queued make no progress, so the run shows as stalled and
        # finance resumes it (or `bill --period` does) once the broker is back.
        logger.exception("billing run %s: broker unavailable, chunks not queued", run_id)


def _chunk_rows(*, run: BillingRun, customer_ids: list[int], first_number: int) -> list:
    return BillingRunChunk.objects.bulk_create(
        BillingRunChunk(run=run, number=first_number + index, customer_ids=ids)
        for index, ids in enumerate(_chunks(customer_ids, settings.BILLING_RUN_CHUNK_SIZE))
    )


def billing_run_start(
    *,
    period: Period,
    now: dt.datetime,
    created_by: User | None = None,
    origin: BillingRun.Origin | None = None,
    dispatch: bool = True,
) -> BillingRun:
    """Create the run for `period` and its chunks, and queue them (after commit, so a worker
    never sees a chunk before its run; `dispatch=False`: the caller bills them in-process with
    `billing_run_bill_inline`). Several runs for one period are safe: accounts billed by one
    are "already billed" for the other. `origin`: what started it (the admin, beat, the
    command line), kept for the audit trail."""
    if period.end >= billing_date(now):
        # Usage of a month under way still arrives and is not versioned for the run's check.
        raise InvoiceError(f"{period} is not over yet: only past months are billed", "period")
    customer_ids = list(billing_run_candidates(period=period).values_list("id", flat=True))
    with transaction.atomic():
        run = BillingRun.objects.create(
            period=period.start,
            status=BillingRun.Status.RUNNING if customer_ids else BillingRun.Status.FINISHED,
            created_at=now,
            started_at=now,
            progress_at=now,
            finished_at=None if customer_ids else now,
            created_by=created_by,
            origin=origin,
            accounts_total=len(customer_ids),
        )
        chunks = _chunk_rows(run=run, customer_ids=customer_ids, first_number=1)
        run.chunks_total = len(chunks)
        run.save(update_fields=["chunks_total"])
        if dispatch:
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
    """Queue again the accounts of `run` whose errors are unresolved, in new chunks. A success
    resolves the error and moves the account from the failed count to its outcome."""
    period = Period.containing(run.period)
    customer_ids = sorted(
        set(
            BillingRunError.objects.filter(run=run, resolved_at__isnull=True).values_list(
                "customer_id", flat=True
            )
        )
    )
    if customer_ids:
        with transaction.atomic():
            locked = BillingRun.objects.select_for_update().get(pk=run.pk)
            last = locked.chunks.aggregate(last=Max("number"))["last"] or 0
            chunks = _chunk_rows(run=locked, customer_ids=customer_ids, first_number=last + 1)
            BillingRun.objects.filter(pk=run.pk).update(
                status=BillingRun.Status.RUNNING,
                finished_at=None,
                progress_at=now,
                chunks_total=last + len(chunks),
            )
            transaction.on_commit(
                lambda: _dispatch(run_id=run.pk, chunks=chunks, period=period, now=now)
            )
    run.refresh_from_db()
    return run


# --- Stalled runs: resume or close ------------------------------------------------------------


def _stalled_before(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(seconds=settings.BILLING_RUN_STALL_AFTER)


def billing_runs_stalled(*, now: dt.datetime) -> QuerySet[BillingRun]:
    """Runs still running whose last progress (start, resume or a finished chunk) is older than
    BILLING_RUN_STALL_AFTER: their chunks were lost (a worker killed with its broker messages
    unacknowledged, a queue purged) or nobody works on them."""
    return BillingRun.objects.filter(
        status=BillingRun.Status.RUNNING, progress_at__lt=_stalled_before(now)
    )


def billing_run_is_stalled(*, run: BillingRun, now: dt.datetime) -> bool:
    """`billing_runs_stalled` for one run already read."""
    return (
        run.status == BillingRun.Status.RUNNING
        and run.progress_at is not None
        and run.progress_at < _stalled_before(now)
    )


def _unfinished_chunks(run: BillingRun) -> list[BillingRunChunk]:
    return list(run.chunks.filter(finished_at__isnull=True).order_by("number"))


def billing_run_resume(*, run: BillingRun, now: dt.datetime, dispatch: bool = True) -> BillingRun:
    """Bill what is left of a stalled or interrupted run: its chunks not finished are queued
    again (`dispatch=False`: the caller bills them with `billing_run_bill_inline`). Accounts
    they already billed are not billed or counted twice. A run still making progress is
    refused (its chunks are queued or under way)."""
    with transaction.atomic():
        locked = BillingRun.objects.select_for_update().get(pk=run.pk)
        resumable = locked.status == BillingRun.Status.INTERRUPTED or billing_run_is_stalled(
            run=locked, now=now
        )
        if not resumable:
            raise InvoiceError(
                f"billing run #{run.pk} is {locked.get_status_display().lower()} and not "
                "stalled: only a stalled or interrupted run can be resumed",
                "status",
            )
        BillingRun.objects.filter(pk=run.pk).update(
            status=BillingRun.Status.RUNNING, finished_at=None, progress_at=now
        )
        chunks = _unfinished_chunks(locked)
        if not chunks:
            _tally(run_id=run.pk, at=now)
        elif dispatch:
            period = Period.containing(locked.period)
            billed_at = _billing_moment(locked)
            transaction.on_commit(
                lambda: _dispatch(run_id=run.pk, chunks=chunks, period=period, now=billed_at)
            )
    logger.warning("billing run %s resumed: %s chunks queued again", run.pk, len(chunks))
    run.refresh_from_db()
    return run


def billing_run_close_interrupted(*, run: BillingRun, now: dt.datetime) -> BillingRun:
    """Close a stalled run as interrupted: it stops waiting for its lost chunks (a chunk still
    delivered later bills nothing) and its counters show what it did. `billing_run_resume`
    bills the rest later; the accounts left are candidates of any later run too."""
    with transaction.atomic():
        locked = BillingRun.objects.select_for_update().get(pk=run.pk)
        if not billing_run_is_stalled(run=locked, now=now):
            raise InvoiceError(
                f"billing run #{run.pk} is not stalled: only a stalled run can be closed as "
                "interrupted",
                "status",
            )
        BillingRun.objects.filter(pk=run.pk).update(
            status=BillingRun.Status.INTERRUPTED, finished_at=now
        )
        _tally(run_id=run.pk, at=now)
    logger.warning("billing run %s closed as interrupted", run.pk)
    run.refresh_from_db()
    return run


def billing_run_nothing_to_bill(*, period: Period) -> bool:
    """No account to bill for `period` and no unfinished run of it to resume: a run started
    now would only record an empty run (the admin and `manage.py bill` start none then; the
    month-end beat still records its run, the trace that the month was closed)."""
    unfinished = BillingRun.objects.filter(
        period=period.start,
        status__in=[BillingRun.Status.RUNNING, BillingRun.Status.INTERRUPTED],
    )
    return not unfinished.exists() and not billing_run_candidates(period=period).exists()


def _billing_moment(run: BillingRun) -> dt.datetime:
    # The moment a run bills at is its start, whenever its chunks are billed.
    assert run.started_at is not None, "a run is created with its start"
    return run.started_at


def billing_run_for_period(
    *,
    period: Period,
    now: dt.datetime,
    origin: BillingRun.Origin,
    created_by: User | None = None,
    dispatch: bool = True,
) -> tuple[BillingRun, str]:
    """What `manage.py bill` (and beat) does for a month: resume its stalled or interrupted
    run, or wait for its run making progress, instead of starting a second one; otherwise
    start a run, recorded as started by `origin`. Returns (run, "started" | "resumed" |
    "running"). In-process billing (`dispatch=False`) takes over any unfinished run: billing
    a chunk twice is harmless."""
    unfinished = (
        BillingRun.objects.filter(
            period=period.start,
            status__in=[BillingRun.Status.RUNNING, BillingRun.Status.INTERRUPTED],
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if unfinished is None:
        run = billing_run_start(
            period=period, now=now, created_by=created_by, origin=origin, dispatch=dispatch
        )
        return run, "started"
    if dispatch and not (
        unfinished.status == BillingRun.Status.INTERRUPTED
        or billing_run_is_stalled(run=unfinished, now=now)
    ):
        return unfinished, "running"
    if not dispatch and unfinished.status == BillingRun.Status.RUNNING:
        BillingRun.objects.filter(pk=unfinished.pk).update(progress_at=now)
        unfinished.refresh_from_db()
        return unfinished, "resumed"
    return billing_run_resume(run=unfinished, now=now, dispatch=dispatch), "resumed"


def billing_run_bill_inline(*, run: BillingRun, attempts: int = 3) -> BillingRun:
    """Bill the unfinished chunks of `run` in this process (`manage.py bill --inline`), at the
    run's billing moment. Customer deliveries go to the broker and never run here: the worker
    or the sweep sends them. A chunk whose database connection is lost is billed again on a
    new connection (up to `attempts` times); one that still fails stays unfinished, the run
    then shows as stalled and can be resumed."""
    period = Period.containing(run.period)
    for chunk in _unfinished_chunks(run):
        for attempt in range(1, attempts + 1):
            try:
                billing_run_chunk_process(
                    run_id=run.pk,
                    customer_ids=chunk.customer_ids,
                    period=period,
                    now=_billing_moment(run),
                    chunk_number=chunk.number,
                )
                break
            except CONNECTION_LOST:
                logger.warning(
                    "billing run %s chunk %s: database connection lost (attempt %s)",
                    run.pk,
                    chunk.number,
                    attempt,
                    exc_info=True,
                )
                connection.close()
    run.refresh_from_db()
    return run


# --- Billing a chunk --------------------------------------------------------------------------


def _wall_clock(run: BillingRun) -> dt.datetime:
    # Wall-clock time of the work, never before the run's own start (tests bill at fixed times).
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
            ).update(error=text, occurred_at=_wall_clock(run))
        else:
            BillingRunError.objects.create(
                run=run, customer_id=customer_id, error=text, occurred_at=_wall_clock(run)
            )


def _tally(*, run_id: int, at: dt.datetime) -> None:
    """Counters of the run derived from what it wrote, SET (not added) under the run's row lock
    held by the caller: its invoices (issued, held or re-rated to a draft), its open errors,
    and what its chunks recorded of the accounts that wrote nothing, each account once. Then
    the run is finished when every chunk is. A few count queries per chunk, none per
    account."""
    by_status = dict(
        Invoice.objects.filter(billing_run_id=run_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    issued = sum(by_status.get(status, 0) for status in Invoice.ISSUED_STATES)
    held = by_status.get(Invoice.Status.HELD, 0) + by_status.get(Invoice.Status.DRAFT, 0)
    failed = BillingRunError.objects.filter(run_id=run_id, resolved_at__isnull=True).count()
    chunks = list(
        BillingRunChunk.objects.filter(run_id=run_id).values_list(
            "finished_at", "skipped_ids", "already_billed_ids"
        )
    )
    skipped = set().union(*(row[1] for row in chunks))
    already_billed = set().union(*(row[2] for row in chunks)) - skipped
    if skipped or already_billed:
        # A later chunk (retry of a failed account) may have written a row for an account an
        # earlier delivery recorded: the row wins.
        nothing_written = skipped | already_billed
        written = set(
            Invoice.objects.filter(
                billing_run_id=run_id, customer_id__in=nothing_written
            ).values_list("customer_id", flat=True)
        ) | set(
            BillingRunError.objects.filter(
                run_id=run_id, customer_id__in=nothing_written, resolved_at__isnull=True
            ).values_list("customer_id", flat=True)
        )
        skipped -= written
        already_billed -= written
    chunks_done = sum(1 for row in chunks if row[0] is not None)
    BillingRun.objects.filter(pk=run_id).update(
        invoices_issued=issued,
        invoices_held=held,
        accounts_failed=failed,
        accounts_skipped=len(skipped),
        accounts_already_billed=len(already_billed),
        accounts_done=issued + held + failed + len(skipped) + len(already_billed),
        chunks_total=len(chunks),
        chunks_done=chunks_done,
        progress_at=at,
    )
    if chunks and chunks_done == len(chunks):
        BillingRun.objects.filter(pk=run_id, status=BillingRun.Status.RUNNING).update(
            status=BillingRun.Status.FINISHED, finished_at=at
        )


def _chunk_of(*, run: BillingRun, customer_ids: list[int]) -> int:
    with transaction.atomic():
        BillingRun.objects.select_for_update().filter(pk=run.pk).first()
        for number, ids in run.chunks.values_list("number", "customer_ids"):
            if ids == customer_ids:
                return number
        last = run.chunks.aggregate(last=Max("number"))["last"] or 0
        BillingRunChunk.objects.create(run=run, number=last + 1, customer_ids=customer_ids)
        return last + 1


def _chunk_finished(
    *, run: BillingRun, chunk_number: int, skipped: list[int], already_billed: list[int]
) -> None:
    at = _wall_clock(run)
    with transaction.atomic():
        # Serialises the tallies of parallel chunks: each one counts after the others commit.
        BillingRun.objects.select_for_update().filter(pk=run.pk).first()
        BillingRunChunk.objects.filter(run_id=run.pk, number=chunk_number).update(
            finished_at=at, skipped_ids=skipped, already_billed_ids=already_billed
        )
        _tally(run_id=run.pk, at=at)


def billing_run_chunk_process(
    *,
    run_id: int,
    customer_ids: list[int],
    period: Period,
    now: dt.datetime,
    chunk_number: int | None = None,
) -> dict[str, int]:
    """Bill a chunk of accounts of a run: one batched rating read for the chunk, then each
    account in its own transaction. A failing account is recorded and the others go on. The
    chunk of a run closed as interrupted bills nothing. `chunk_number` None: the run's chunk
    of exactly these accounts (a message queued before chunks had numbers), or a new one."""
    run = BillingRun.objects.get(pk=run_id)
    if chunk_number is None:
        chunk_number = _chunk_of(run=run, customer_ids=customer_ids)
    if run.status == BillingRun.Status.INTERRUPTED:
        logger.warning("billing run %s is interrupted: chunk %s not billed", run_id, chunk_number)
        return {"interrupted": len(customer_ids)}
    open_errors = set(
        BillingRunError.objects.filter(
            any_of("customer_id", customer_ids), run=run, resolved_at__isnull=True
        ).values_list("customer_id", flat=True)
    )
    invoiced = set(
        Invoice.objects.filter(
            any_of("customer_id", customer_ids), period=period.start
        ).values_list("customer_id", flat=True)
    )
    try:
        prepared = accounts_rate(customer_ids=customer_ids, period=period, issue_at=now)
    except CONNECTION_LOST:
        raise
    except Exception as exc:  # a chunk-wide read failed: every account fails with it, retriable
        logger.exception("billing run %s: rating a chunk failed", run_id)
        prepared = {
            customer_id: PreparedAccount(customer_id, None, {}, error=exc)
            for customer_id in customer_ids
        }
    outcomes: dict[int, str] = {}
    with deliveries_batched():
        with _commits_made_durable_at_the_end():
            for customer_id in customer_ids:
                outcomes[customer_id] = _bill_one(
                    run=run,
                    customer_id=customer_id,
                    period=period,
                    now=now,
                    prepared=prepared[customer_id],
                    open_errors=open_errors,
                    invoice_absent=customer_id not in invoiced,
                )
            # The ledger's arrears rule after the chunk's debits, for all of them at once (the
            # accounts' issues left it to this). Every account this run issued, also those of
            # an earlier delivery of the chunk that died before getting here: the rule only
            # changes a state that does not match the balance.
            issued = [key for key, outcome in outcomes.items() if outcome == ISSUED]
            arrears_follow(customer_ids=issued, now=now)
            # The low-balance alert after the same debits, batched the same way.
            low_balance_follow(customer_ids=issued, now=now)
        # A durable commit: everything committed above is on disk before the customers are
        # told (deliveries leave when the outer block ends) and before the broker forgets the
        # chunk (acks_late: the task returns after this).
        _chunk_finished(
            run=run,
            chunk_number=chunk_number,
            skipped=[key for key, outcome in outcomes.items() if outcome == SKIPPED],
            already_billed=[key for key, outcome in outcomes.items() if outcome == ALREADY_BILLED],
        )
    return dict(Counter(outcomes.values()))


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
        if _connection_alive():
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
    # Applied by the chunk once all its accounts are billed (see billing_run_chunk_process).
    arrears_deferred: set[int] = set()
    try:
        try:
            return bill_account_rerating(
                customer_id=customer_id,
                period=period,
                now=now,
                prepared=prepared,
                billing_run=run,
                unresolved_error=customer_id in open_errors,
                invoice_absent=invoice_absent,
                arrears_deferred=arrears_deferred,
            )
        except CONNECTION_LOST:
            # The transaction died with its connection (or the database gave up on it: a
            # deadlock, a restart): bill the account once more, on a new connection if need be,
            # asking again whether it was invoiced (the commit may have made it).
            logger.warning(
                "billing run %s: customer %s: database error, once more", run.pk, customer_id
            )
            if not _connection_alive():
                connection.close()
            return bill_account_rerating(
                customer_id=customer_id,
                period=period,
                now=now,
                prepared=prepared,
                billing_run=run,
                unresolved_error=customer_id in open_errors,
                invoice_absent=False,
                arrears_deferred=arrears_deferred,
            )
    except Exception as exc:
        if not _connection_alive():
            raise  # nothing can be recorded: the chunk is billed again on a new connection
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
            row = functools.partial(
                PreviewRow,
                customer_id=customer.pk,
                external_id=customer.external_id,
                name=customer.name,
            )
            if account.error is not None:
                rows.append(row(outcome=FAILED, total=ZERO, error=str(account.error)))
            elif not account.billable:
                rows.append(row(outcome=SKIPPED, total=ZERO))
            else:
                rated = account.rated
                assert rated is not None, "billable accounts are rated"
                rows.append(
                    row(
                        outcome=HELD if rated.hold_reasons else ISSUED,
                        total=rated.total,
                        hold_reasons=rated.hold_reasons,
                        lines=len(rated.lines),
                    )
                )
    return rows
