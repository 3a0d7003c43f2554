"""Benchmark: the month-end billing run through Celery on PostgreSQL.

Builds 10,000 customers with 20,000 applications (mixed Free/Premium/Ultimate plans, mid-month
upgrades, add-ons, a few high-volume applications with and without dedicated contracts) and 31
days of usage for October 2026, with bulk inserts into a template database. Then, for each
worker count, copies the template, starts that many `celery worker` processes (solo pool, one
process each) on the broker, starts the billing run for 2026-10 and waits for it to finish.

Prints accounts billed per second (run start to last chunk committed), SQL statements per
account (counted inside the workers, SAVEPOINT/RELEASE included; COMMITs are not statements),
and each worker's peak resident memory. Notification deliveries the run queued (one e-mail per
issued invoice and arrears event; no webhook configured) are drained afterwards and timed
separately.

    .venv/bin/python bench/billing_run.py [--workers 1,2] [--customers 10000] [--apps 20000]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/billing_bench_run; that
database and <name>_template are DROPPED and recreated), CELERY_BROKER_URL (default
redis://127.0.0.1:6379/9), BILLING_RUN_CHUNK_SIZE (default 200).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/billing_bench_run"
DEFAULT_BROKER = "redis://127.0.0.1:6379/9"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
PERIOD = (2026, 10)
BILLING_MOMENT = dt.datetime(2026, 11, 2, 0, 0, tzinfo=SHANGHAI)
CHUNK_TASK = "invoices.tasks.billing_run_chunk"
DELIVERY_TASKS = ("accounts.tasks.deliver_customer_events", "accounts.tasks.deliver_customer_event")


def db_url_with_name(url: str, name: str) -> str:
    return urlparse(url)._replace(path=f"/{name}").geturl()


def db_name(url: str) -> str:
    name = urlparse(url).path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: the benchmark database name must contain 'bench'")
    return name


def admin_execute(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(db_url_with_name(url, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


# --- Worker mode: a celery worker that counts its SQL statements per task ----------------------


def worker_main(queue: str, tag: str) -> None:
    import django

    django.setup()
    import redis
    from celery.signals import task_postrun, task_prerun, worker_ready
    from django.conf import settings
    from django.db import connection

    from billingsite.celery import app

    store = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    statements = {"n": 0, "at_start": 0, "cpu_at_start": 0.0}

    def count(execute, sql, params, many, context):
        statements["n"] += 1
        return execute(sql, params, many, context)

    # Solo pool: tasks run on this thread, whose connection object lives as long as the worker.
    connection.execute_wrappers.append(count)

    @task_prerun.connect(weak=False)
    def started(task=None, **kwargs):
        statements["at_start"] = statements["n"]
        statements["cpu_at_start"] = time.process_time()

    @task_postrun.connect(weak=False)
    def finished(task=None, retval=None, **kwargs):
        used = statements["n"] - statements["at_start"]
        cpu_microseconds = int((time.process_time() - statements["cpu_at_start"]) * 1_000_000)
        store.incrby(f"{tag}:statements:{task.name}", used)
        store.incrby(f"{tag}:cpu_us:{task.name}", cpu_microseconds)
        store.incrby(f"{tag}:tasks:{task.name}", 1)
        if task.name == CHUNK_TASK and isinstance(retval, dict):
            store.incrby(f"{tag}:accounts", sum(retval.values()))

    @worker_ready.connect(weak=False)
    def ready(**kwargs):
        store.incr(f"{tag}:ready")

    app.worker_main(
        [
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"{queue}-{os.getpid()}@%h",
        ]
    )


# --- Building the data set ----------------------------------------------------------------------


def build_template(*, url: str, customers: int, apps: int, seed: int) -> dict:
    """Migrate and fill the template database. Returns what was built."""
    import django
    from bench_data import copy_customers  # bench/ is the script's folder

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from plans.price_book import load_price_book

    load_price_book()
    from plans.models import AddOn, AddOnPrice, Plan

    rng = random.Random(seed)
    plans = {plan.code: plan.pk for plan in Plan.objects.all()}
    addon_ids = {addon.code: addon.pk for addon in AddOn.objects.all()}
    switches = {addon.code for addon in AddOn.objects.filter(is_switch=True)}
    offered: dict[str, list[str]] = {"premium": [], "ultimate": []}
    for price in AddOnPrice.objects.select_related("addon", "plan"):
        if price.plan.code in offered and price.availability != "unavailable":
            offered[price.plan.code].append(price.addon.code)
    # Premium add-ons stay available after an upgrade to Ultimate.
    premium_addons = sorted(set(offered["premium"]) & set(offered["ultimate"]))
    ultimate_addons = sorted(offered["ultimate"])

    period_start = dt.date(*PERIOD, 1)
    created_on = dt.date(2026, 9, 1)
    created_at = dt.datetime(2026, 9, 1, 9, tzinfo=SHANGHAI)
    started = time.monotonic()
    raw = connection.connection if connection.connection else None
    connection.ensure_connection()
    raw = connection.connection

    # Applications per customer: 1, 2 or 3 so that the total is `apps`.
    per_customer = [1] * customers
    extra = apps - customers
    index = 0
    while extra > 0:
        bump = 1 if per_customer[index] < 3 else 0
        per_customer[index] += bump
        extra -= bump
        index = (index + rng.randrange(1, 4)) % customers

    stats = {
        "customers": customers,
        "applications": 0,
        "plan_changes": 0,
        "addon_changes": 0,
        "contracts": 0,
        "usage_rows": 0,
        "high_volume": 0,
    }
    with raw.cursor() as cur:
        copy_customers(cur, count=customers, created_at=created_at)
        with cur.copy(
            "COPY accounts_ledgerentry (customer_id, kind, amount_currency, amount, "
            "idempotency_key, reference, reason, created_at) FROM STDIN"
        ) as copy:
            for n in range(1, customers + 1):
                # About one account in eight goes below zero when billed (arrears).
                amount = rng.choice([3000, 8000, 20000, 50000, 100000, 200000, 300000, 500000])
                copy.write_row(
                    (
                        n,
                        "deposit",
                        "CNY",
                        f"{amount}.00",
                        f"bench-deposit:{n}",
                        "BENCH",
                        "",
                        created_at,
                    )
                )

        app_id = 0
        apps_rows, plan_rows, addon_rows, contract_rows = [], [], [], []
        usage_plan: list[tuple[int, int, bool]] = []  # (app_id, peak dau, high volume)
        for customer_id, count in enumerate(per_customer, start=1):
            for _ in range(count):
                app_id += 1
                apps_rows.append(
                    (
                        app_id,
                        customer_id,
                        f"benchapp{app_id:06d}",
                        f"Bench App {app_id}",
                        "singapore",
                        created_on,
                        "active",
                        created_at,
                        app_id % 5,  # usage versions as if the platform had sent corrections
                    )
                )
                plan = rng.choices(["free", "premium", "ultimate"], weights=[25, 45, 30])[0]
                plan_rows.append((app_id, plans[plan], created_on, created_at, ""))
                if plan == "premium" and rng.random() < 0.1:
                    plan_rows.append(
                        (app_id, plans["ultimate"], dt.date(2026, 10, 15), created_at, "")
                    )
                if plan != "free":
                    choices = premium_addons if plan == "premium" else ultimate_addons
                    for code in rng.sample(choices, rng.randint(0, 4)):
                        quantity = 1 if code in switches else rng.randint(1, 3)
                        first = (
                            created_on
                            if rng.random() < 0.8
                            else period_start.replace(day=rng.randint(2, 28))
                        )
                        addon_rows.append(
                            (app_id, addon_ids[code], quantity, first, created_at, "")
                        )
                high_volume = plan != "free" and rng.random() < 0.01
                if high_volume and rng.random() < 0.5:
                    contract_rows.append(
                        (app_id, "CNY", "30000.00", created_on, "DS-BENCH", "", created_at)
                    )
                stats["high_volume"] += high_volume
                usage_plan.append((app_id, rng.randint(50, 60_000), high_volume))
        stats["applications"] = app_id
        stats["plan_changes"] = len(plan_rows)
        stats["addon_changes"] = len(addon_rows)
        stats["contracts"] = len(contract_rows)
        copies = [
            (
                "COPY accounts_application (id, customer_id, app_key, name, data_center, "
                "created_on, status, created_at, usage_version) FROM STDIN",
                apps_rows,
            ),
            (
                "COPY plans_planchange (application_id, plan_id, effective_date, created_at, "
                "note) FROM STDIN",
                plan_rows,
            ),
            (
                "COPY plans_addonchange (application_id, addon_id, quantity, effective_date, "
                "created_at, note) FROM STDIN",
                addon_rows,
            ),
            (
                "COPY plans_dedicatedcontract (application_id, monthly_fee_currency, "
                "monthly_fee, first_day, reference, notes, created_at) FROM STDIN",
                contract_rows,
            ),
        ]
        for sql, rows in copies:
            with cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        days = [period_start + dt.timedelta(days=n) for n in range(31)]
        with cur.copy(
            "COPY accounts_dailyusage (application_id, day, dau, delivered_messages, updated_at) "
            "FROM STDIN"
        ) as copy:
            for app, peak, high_volume in usage_plan:
                busy_day = rng.randrange(31)
                for index, day in enumerate(days):
                    dau = peak if index == 17 else rng.randint(peak // 2, peak)
                    messages = min(dau * 40, 1_900_000)
                    if high_volume and index == busy_day:
                        messages = 2_600_000
                    copy.write_row((app, day, dau, messages, created_at))
                    stats["usage_rows"] += 1
        for table in ("accounts_customer", "accounts_application"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    raw.commit() if not raw.autocommit else None
    with raw.cursor() as cur:
        cur.execute("ANALYZE")
    connection.close()
    stats["build_seconds"] = round(time.monotonic() - started, 1)
    return stats


# --- One measured scenario ------------------------------------------------------------------------


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def scenario(*, url: str, template: str, workers: int, broker: str) -> dict:
    from django.db import connection

    name = db_name(url)
    connection.close()
    admin_execute(
        url,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
    )
    connection.settings_dict["NAME"] = name
    import redis

    store = redis.Redis.from_url(broker)
    queue = f"bench-billing-{uuid.uuid4().hex[:8]}"
    tag = f"bench:{queue}"
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "BILLING_WEBHOOK_URL": "",
            "DEBUG": "0",
            "SECRET_KEY": "bench-only",
            "LOG_LEVEL": "WARNING",
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", "--queue", queue, "--tag", tag],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + 60
        while int(store.get(f"{tag}:ready") or 0) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                sys.exit("workers did not start")
            time.sleep(0.1)

        from accounts.models import CustomerEvent
        from billingsite.celery import app
        from billingsite.clock import Period
        from invoices.models import BillingRun
        from invoices.run.runs import billing_run_start

        app.conf.task_default_queue = queue
        app.conf.task_always_eager = False
        started = time.monotonic()
        run = billing_run_start(period=Period(*PERIOD), now=BILLING_MOMENT)
        while True:
            run.refresh_from_db()
            if run.status != BillingRun.Status.RUNNING:
                break
            if any(p.poll() is not None for p in procs):
                sys.exit("a worker died during the run")
            time.sleep(0.05)
        billed_seconds = time.monotonic() - started
        # Then the notifications the run raised.
        events = CustomerEvent.objects.count()
        while CustomerEvent.objects.filter(email_sent_at__isnull=True).exists():
            time.sleep(0.1)
        drained_seconds = time.monotonic() - started
        chunk_statements = int(store.get(f"{tag}:statements:{CHUNK_TASK}") or 0)
        accounts = int(store.get(f"{tag}:accounts") or 0)
        chunk_cpu = int(store.get(f"{tag}:cpu_us:{CHUNK_TASK}") or 0) / 1000
        delivery_statements = sum(
            int(store.get(f"{tag}:statements:{name}") or 0) for name in DELIVERY_TASKS
        )
        memory = [vm_hwm_mb(p.pid) for p in procs]
        return {
            "workers": workers,
            "run": run,
            "seconds": billed_seconds,
            "accounts_per_second": run.accounts_done / billed_seconds,
            "statements_per_account": chunk_statements / max(accounts, 1),
            "events": events,
            "notification_seconds": drained_seconds - billed_seconds,
            "statements_per_delivery": delivery_statements / max(events, 1),
            "worker_cpu_ms_per_account": chunk_cpu / max(accounts, 1),
            "peak_memory_mb": memory,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for key in store.scan_iter(f"{tag}:*"):
            store.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--reuse-template", action="store_true", help="skip building the data")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingsite.settings")
    if args.worker:
        worker_main(args.queue, args.tag)
        return

    url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    broker = os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER)
    if not broker.startswith("redis://"):
        sys.exit("the benchmark counts statements in Redis: use a redis:// CELERY_BROKER_URL")
    name = db_name(url)
    template = f"{name}_template"
    os.environ.update(
        {
            "DATABASE_URL": db_url_with_name(url, template),
            "CELERY_BROKER_URL": broker,
            "DEBUG": "0",
            "SECRET_KEY": "bench-only",
            "LOG_LEVEL": "WARNING",
        }
    )
    if not args.apps >= args.customers or args.apps > 3 * args.customers:
        sys.exit("--apps must be between --customers and 3 x --customers")
    if not args.reuse_template:
        admin_execute(
            url,
            f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)',
            f'CREATE DATABASE "{template}"',
        )
        stats = build_template(url=url, customers=args.customers, apps=args.apps, seed=args.seed)
        print(
            "built {customers:,} customers, {applications:,} applications, "
            "{plan_changes:,} plan changes, {addon_changes:,} add-on rows, {contracts} "
            "contracts, {high_volume} high-volume applications, {usage_rows:,} usage rows "
            "in {build_seconds}s".format(**stats)
        )
    else:
        import django

        django.setup()
    from django.conf import settings

    print(
        f"billing {PERIOD[0]}-{PERIOD[1]:02d} on PostgreSQL, broker {broker}, "
        f"chunk size {settings.BILLING_RUN_CHUNK_SIZE}, {os.cpu_count()} CPUs"
    )
    results = []
    for workers in [int(n) for n in args.workers.split(",")]:
        result = scenario(url=url, template=template, workers=workers, broker=broker)
        results.append(result)
        run = result["run"]
        memory = ", ".join(f"{mb:.0f} MB" for mb in result["peak_memory_mb"] if mb)
        print(
            f"{workers} worker(s): {run.accounts_done:,} accounts in {result['seconds']:.1f}s = "
            f"{result['accounts_per_second']:.0f} accounts/s; "
            f"{result['statements_per_account']:.1f} SQL statements and "
            f"{result['worker_cpu_ms_per_account']:.2f} ms worker CPU per account; "
            f"issued {run.invoices_issued:,}, held {run.invoices_held}, failed "
            f"{run.accounts_failed}; peak memory per worker: {memory}"
        )
        print(
            f"    then {result['events']:,} customer events e-mailed in "
            f"{result['notification_seconds']:.1f}s "
            f"({result['statements_per_delivery']:.1f} SQL statements each)"
        )


if __name__ == "__main__":
    main()
