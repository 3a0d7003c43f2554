"""Real components: a `celery worker` process on the configured broker (Redis in CI) and a
process killed in the middle of an account's transaction.

Both need a database the subprocesses can see, so they run on PostgreSQL (CI sets
DATABASE_URL); SQLite's in-memory test database is private to the test process.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from accounts.models import CustomerEvent, LedgerEntry
from billingsite.celery import app
from invoices.models import BillingRun, Invoice, NumberSequence
from invoices.run.runs import billing_run_start
from tests.conftest import postgres_only
from tests.factories import usage
from tests.invoices.test_billing_run import assert_billed_exactly_once, build_accounts
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = [
    postgres_only,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]
BASE_DIR = Path(settings.BASE_DIR)
WAIT_SECONDS = 90


def worker_database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def queue() -> str:
    """A queue of our own on the shared broker; the test process publishes to it."""

    name = f"billing-test-{uuid.uuid4().hex[:10]}"
    previous = app.conf.task_default_queue
    app.conf.task_always_eager = False
    app.conf.task_default_queue = name
    yield name
    app.conf.task_default_queue = previous
    app.conf.task_always_eager = True
    try:  # best effort: leave no empty queue or binding behind on a shared broker
        with app.connection_for_write() as broker:
            broker.default_channel.queue_delete(name)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def subprocess_env(queue: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": worker_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "BILLING_WEBHOOK_URL": "",
            "DJANGO_SETTINGS_MODULE": "billingsite.settings",
        }
    )
    return env


@pytest.fixture
def start_worker(queue):
    workers: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "billingsite",
                "worker",
                "--pool",
                "solo",
                "--queues",
                queue,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{queue}-{len(workers)}@%h",
            ],
            cwd=BASE_DIR,
            env=subprocess_env(queue),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()


def wait_for(condition, *, what: str, workers=()) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        for worker in workers:
            if worker.poll() is not None:
                output = worker.stdout.read() if worker.stdout else ""
                pytest.fail(f"worker exited with {worker.returncode} before {what}:\n{output}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def run_finished(run_id: int) -> bool:
    return BillingRun.objects.get(pk=run_id).status == BillingRun.Status.FINISHED


def test_a_real_worker_bills_a_run_end_to_end(price_book, start_worker, settings):
    settings.BILLING_RUN_CHUNK_SIZE = 2
    customers = build_accounts(5)
    held, held_app = premium_customer(dau=5000)
    usage(held_app, dt.date(2026, 10, 12), 1, delivered_messages=3_000_000)
    worker = start_worker()

    run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    assert run.chunks_total == 3

    wait_for(lambda: run_finished(run.pk), what="the billing run", workers=[worker])
    run.refresh_from_db()
    assert (run.accounts_total, run.accounts_done) == (6, 6)
    assert (run.invoices_issued, run.invoices_held, run.accounts_failed) == (5, 1, 0)
    assert run.chunks_done == run.chunks_total
    assert_billed_exactly_once(customers)
    assert Invoice.objects.get(customer=held).status == Invoice.Status.HELD
    # The worker also delivered the invoice-issued events it raised (after its commits).
    issued_events = CustomerEvent.objects.filter(kind=CustomerEvent.Kind.INVOICE_ISSUED)
    wait_for(
        lambda: not issued_events.filter(email_sent_at__isnull=True).exists(),
        what="the invoice e-mails",
        workers=[worker],
    )
    assert issued_events.count() == 5


KILLER = textwrap.dedent(
    """
    import datetime as dt, os, sys
    import django
    django.setup()
    import invoices.documents.services as services
    from billingsite.clock import Period
    from invoices.run.runs import billing_run_chunk_process

    run_id, period, now, ids = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    real_debit, calls = services._debit_row, [0]

    def dies_on_the_third_debit(**kwargs):
        calls[0] += 1
        if calls[0] == 3:
            os._exit(9)  # killed inside the 3rd account's transaction, locks held
        return real_debit(**kwargs)

    services._debit_row = dies_on_the_third_debit
    billing_run_chunk_process(
        run_id=run_id,
        customer_ids=[int(i) for i in ids.split(",")],
        period=Period.parse(period),
        now=dt.datetime.fromisoformat(now),
    )
    """
)


def test_worker_killed_mid_transaction_then_rerun_bills_each_account_once(
    price_book, start_worker, queue
):
    customers = build_accounts(5)
    crashed = BillingRun.objects.create(
        period=OCTOBER.start,
        status=BillingRun.Status.RUNNING,
        created_at=BILLING_MOMENT,
        started_at=BILLING_MOMENT,
        accounts_total=5,
        chunks_total=1,
    )
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            str(crashed.pk),
            str(OCTOBER),
            BILLING_MOMENT.isoformat(),
            ",".join(str(c.pk) for c in customers),
        ],
        cwd=BASE_DIR,
        env=subprocess_env(queue),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert killed.returncode == 9, killed.stderr

    # Two accounts committed; the third died with its transaction open and rolled back.
    assert Invoice.objects.count() == 2
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.INVOICE_DEBIT).count() == 2
    assert NumberSequence.objects.get(series="INV", year=2026).last_number == 2
    crashed.refresh_from_db()
    # Its counters are derived when a chunk finishes, and this one never did.
    assert (crashed.status, crashed.invoices_issued) == (BillingRun.Status.RUNNING, 0)

    worker = start_worker()
    rerun = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    assert rerun.accounts_total == 3
    wait_for(lambda: run_finished(rerun.pk), what="the re-run", workers=[worker])
    rerun.refresh_from_db()
    assert (rerun.invoices_issued, rerun.accounts_failed) == (3, 0)
    assert_billed_exactly_once(customers)


# Seconds the broker waits before it gives an unacknowledged chunk to another worker, in the
# kill -9 test (production: settings.CELERY_BROKER_VISIBILITY_TIMEOUT, 180).
TEST_VISIBILITY_TIMEOUT = 5


def test_whole_worker_killed_mid_run_then_restarted_bills_every_account_once(
    price_book, queue, settings
):
    """kill -9 of a worker's whole process group (main process and pool child) in the middle
    of a chunk: the broker gives the unacknowledged chunk to the restarted worker after the
    visibility timeout, and the run finishes with every account billed once, counted once.
    About 25 s: mostly the visibility timeout and the workers' 10 s look for lost messages."""

    settings.BILLING_RUN_CHUNK_SIZE = 2
    customers = build_accounts(6)
    env = {
        **subprocess_env(queue),
        "CELERY_BROKER_VISIBILITY_TIMEOUT": str(TEST_VISIBILITY_TIMEOUT),
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "billingsite",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--queues",
        queue,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    workers: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        worker = subprocess.Popen(
            [*command, "--hostname", f"{queue}-{name}@%h"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, killed whole below
        )
        workers.append(worker)
        return worker

    # The second chunk's first account is locked here: the worker stops inside that chunk.
    locker = psycopg.connect(worker_database_url())
    try:
        locker.execute(
            "SELECT id FROM accounts_customer WHERE id = %s FOR UPDATE", [customers[2].pk]
        )
        first = start("first")
        run = billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
        assert run.chunks_total == 3

        def waiting_on_the_lock() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return cursor.fetchone()[0] > 0

        wait_for(
            lambda: Invoice.objects.count() == 2 and waiting_on_the_lock(),
            what="the worker inside the second chunk",
            workers=[first],
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        locker.rollback()
        assert BillingRun.objects.get(pk=run.pk).status == BillingRun.Status.RUNNING

        started = time.monotonic()
        second = start("second")
        wait_for(lambda: run_finished(run.pk), what="the restarted worker", workers=[second])
        assert time.monotonic() - started < 5 * 60
    finally:
        locker.close()
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()

    run.refresh_from_db()
    assert (run.accounts_total, run.accounts_done, run.invoices_issued) == (6, 6, 6)
    assert (run.accounts_failed, run.accounts_already_billed) == (0, 0)
    assert (run.chunks_done, run.chunks_total) == (3, 3)
    assert_billed_exactly_once(customers)
