"""`manage.py bill --period 2026-10 [--dry-run] [--inline] [--no-wait]`

A month whose run is stalled or was closed as interrupted is resumed, not billed by a second
run; one whose run is making progress is waited for."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from billingsite.audit import system_actor
from billingsite.clock import Period
from billingsite.money import format_cny
from invoices.documents.services import InvoiceError
from invoices.models import BillingRun
from invoices.run.runs import (
    billing_run_bill_inline,
    billing_run_for_period,
    billing_run_nothing_to_bill,
    billing_run_preview,
)

NO_PROGRESS_HINT_SECONDS = 15


class Command(BaseCommand):
    help = (
        "Bill a month: start a billing run (chunks go to the Celery workers) and wait for it. "
        "--dry-run prints what would be billed and writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--period", help="the month to bill, e.g. 2026-10 (default: the previous month)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be billed; write nothing"
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="bill in this process instead of the Celery workers (no worker needed)",
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="queue the run and return at once"
        )
        parser.add_argument("--timeout", type=int, default=3600, help="seconds to wait")

    def handle(
        self, *args, period: str | None, dry_run: bool, inline: bool, no_wait: bool, **options
    ):
        if period is None:
            period = str(Period.containing(timezone.localdate(timezone.now())).previous())
        try:
            billed_period = Period.parse(period)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if dry_run:
            self._dry_run(billed_period)
            return
        now = timezone.now()
        if billed_period.start >= Period.containing(timezone.localdate(now)).start:
            raise CommandError(f"{billed_period} is not over yet: only past months are billed")
        if billing_run_nothing_to_bill(period=billed_period):
            self.stdout.write(
                f"nothing to bill for {billed_period}: every account with fees has its invoice "
                "(or none has fees); no run started"
            )
            return
        # What the run writes names it in the audit trail, as a worker's chunk does
        # (invoices.run.tasks), also when the chunks are billed here (--inline).
        with system_actor(f"billing run {billed_period}"):
            try:
                # In-process: the chunks are billed here, not by a worker; the customers' deliveries
                # still go through the broker (the worker or the sweep sends them).
                run, how = billing_run_for_period(
                    period=billed_period,
                    now=now,
                    origin=BillingRun.Origin.COMMAND,
                    dispatch=not inline,
                )
            except InvoiceError as exc:
                raise CommandError(exc.message) from exc
            verb = {"started": "", "resumed": " resumed", "running": " already running"}[how]
            self.stdout.write(
                f"billing run #{run.pk} for {billed_period}{verb}: {run.accounts_total} accounts in "
                f"{run.chunks_total} chunks"
            )
            if inline:
                run = billing_run_bill_inline(run=run)
                if run.status == BillingRun.Status.RUNNING:
                    self._summary(run)
                    raise CommandError(
                        f"billing run #{run.pk}: {run.chunks_total - run.chunks_done} chunks could "
                        "not be billed (is the database reachable?); run the command again to "
                        "bill what is left"
                    )
        if no_wait:
            return
        run = self._wait(run, options["timeout"])
        self._summary(run)

    def _dry_run(self, period: Period) -> None:
        # Belt and braces: rating only reads, and the transaction is rolled back anyway.
        with transaction.atomic():
            rows = billing_run_preview(period=period)
            transaction.set_rollback(True)
        totals = {"issued": 0, "held": 0, "skipped": 0, "failed": 0}
        for row in rows:
            totals[row.outcome] += 1
            label = {"issued": "ISSUE", "held": "HOLD", "skipped": "SKIP", "failed": "ERROR"}[
                row.outcome
            ]
            line = (
                f"{label:5} {row.external_id:<20} {row.name[:40]:<40} {format_cny(row.total):>14}"
            )
            if row.outcome == "issued":
                line += f"  ({row.lines} lines)"
            self.stdout.write(line)
            for reason in row.hold_reasons:
                self.stdout.write(f"      held: {reason}")
            if row.error:
                self.stdout.write(f"      error: {row.error}")
        amount = sum((row.total for row in rows if row.outcome == "issued"), start=0)
        self.stdout.write(
            f"dry run {period}: {len(rows)} accounts; would issue {totals['issued']} invoices "
            f"({format_cny(amount)}), hold {totals['held']}, skip {totals['skipped']}, "
            f"fail {totals['failed']}. Nothing was written."
        )

    def _wait(self, run: BillingRun, timeout: int) -> BillingRun:
        deadline = time.monotonic() + timeout
        last_done, last_change = -1, time.monotonic()
        hinted = False
        while True:
            run.refresh_from_db()
            if run.status != BillingRun.Status.RUNNING:
                return run
            if run.accounts_done != last_done:
                self.stdout.write(f"  {run.accounts_done}/{run.accounts_total} accounts")
                last_done, last_change = run.accounts_done, time.monotonic()
            elif not hinted and time.monotonic() - last_change > NO_PROGRESS_HINT_SECONDS:
                self.stdout.write(
                    self.style.WARNING(
                        "  no progress: is a Celery worker running? (`make run` starts one; "
                        "or run again with --inline)"
                    )
                )
                hinted = True
            if time.monotonic() > deadline:
                raise CommandError(f"billing run #{run.pk} still running after {timeout}s")
            time.sleep(1)

    def _summary(self, run: BillingRun) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"billing run #{run.pk} {run.status}: {run.invoices_issued} issued, "
                f"{run.invoices_held} held, {run.accounts_skipped} skipped, "
                f"{run.accounts_already_billed} already billed, {run.accounts_failed} failed"
            )
        )
        for error in run.errors.filter(resolved_at__isnull=True).select_related("customer"):
            self.stdout.write(self.style.ERROR(f"  {error.customer}: {error.error}"))
