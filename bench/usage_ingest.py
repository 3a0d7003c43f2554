"""Benchmark: usage ingest through the real HTTP endpoint on PostgreSQL.

Creates 20,000 applications, then pushes 31 days of usage for all of them (620,000 rows)
to POST /api/v1/usage/ in 10,000-row requests against a separate server process
(`manage.py runserver --noreload`, DEBUG off), and prints rows per second and the server's
peak resident memory. Three passes: new rows, the same rows again (all unchanged), and every
value changed (updates plus one revision each).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench_usage \
        .venv/bin/python bench/usage_ingest.py

The database named in DATABASE_URL is DROPPED and recreated: give it a database of its own.
Options: --apps, --days, --batch, --clients (concurrent HTTP clients, default 1), --port,
--month past|current (a month that is over, the default, or this month up to today).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/billing_bench_usage"


def recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name.startswith(("billing_bench", "bench")):
        sys.exit(f"refusing to drop {name!r}: the benchmark database name must start with 'bench'")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict, *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def create_applications(count: int, first_day: dt.date) -> tuple[list[str], str]:
    """Bulk-creates customers (ten applications each), applications on the Free plan and an
    Ingest token. Setup, not what is measured."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from accounts import roles
    from accounts.models import Application, Customer
    from plans.models import Plan, PlanChange

    customers = Customer.objects.bulk_create(
        [
            Customer(external_id=f"bench-{n:05d}", name=f"Bench {n}", billing_email=f"b{n}@x.test")
            for n in range((count + 9) // 10)
        ],
        batch_size=2000,
    )
    apps = Application.objects.bulk_create(
        [
            Application(
                customer=customers[n // 10],
                app_key=f"benchapp{n:06d}",
                name=f"Bench app {n}",
                data_center=Application.DataCenter.SINGAPORE,
                created_on=first_day,
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    free = Plan.objects.get(code="free")
    now = dt.datetime.now(dt.UTC)
    PlanChange.objects.bulk_create(
        [
            PlanChange(application=app, plan=free, effective_date=first_day, created_at=now)
            for app in apps
        ],
        batch_size=2000,
    )
    user = get_user_model().objects.create_user("bench-ingest")
    user.groups.add(Group.objects.get(name=roles.INGEST))
    token = Token.objects.create(user=user).key
    return [app.app_key for app in apps], token


def bodies(app_keys: list[str], days: list[dt.date], batch: int, seed: int) -> list[bytes]:
    """Day by day, every application: how the platform reports (all apps for a day)."""
    rng = random.Random(seed)
    rows = [
        {
            "app_key": key,
            "date": day.isoformat(),
            "dau": rng.randrange(0, 60_000),
            "delivered_messages": rng.randrange(0, 2_500_000),
        }
        for day in days
        for key in app_keys
    ]
    return [
        json.dumps(rows[start : start + batch], separators=(",", ":")).encode()
        for start in range(0, len(rows), batch)
    ]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit("the server did not start")


def post_all(port: int, token: str, payloads: list[bytes], clients: int) -> dict[str, int]:
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    lock = threading.Lock()
    queue = list(enumerate(payloads))
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if not queue:
                    break
                _index, body = queue.pop(0)
            conn.request(
                "POST",
                "/api/v1/usage/",
                body=body,
                headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                failures.append(f"{response.status}: {answer[:300]!r}")
                break
            counts = json.loads(answer)
            with lock:
                for key in totals:
                    totals[key] += counts[key]
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"request failed: {failures[0]}")
    return totals


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument(
        "--month",
        choices=["past", "current"],
        default="past",
        help="past: a month that is over (a backfill; every write bumps the applications' "
        "usage version); current: this month up to today (the daily pushes; no bump)",
    )
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgres"):
        sys.exit("the benchmark runs on PostgreSQL: set DATABASE_URL=postgres://...")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingsite.settings")
    sys.path.insert(0, str(ROOT))
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }

    # A past month with `--days` days, or this month up to today: no row is in the future.
    today = dt.date.today()
    if args.month == "current":
        first_day = today.replace(day=1)
        days = [first_day + dt.timedelta(days=n) for n in range(min(args.days, today.day))]
    else:
        first_day = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        while (first_day + dt.timedelta(days=args.days - 1)) >= today:
            first_day = (first_day - dt.timedelta(days=1)).replace(day=1)
        days = [first_day + dt.timedelta(days=n) for n in range(args.days)]

    print(f"database {url}: recreating, migrating, loading the price book ...", flush=True)
    recreate_database(url)
    manage(env, "migrate", "--noinput")
    manage(env, "load_price_book")
    started = time.monotonic()
    app_keys, token = create_applications(args.apps, first_day)
    print(f"{len(app_keys):,} applications created in {time.monotonic() - started:.1f}s")

    passes = [
        ("new rows", bodies(app_keys, days, args.batch, seed=1)),
        ("same rows again", None),
        ("every value changed", bodies(app_keys, days, args.batch, seed=2)),
    ]
    passes[1] = ("same rows again", passes[0][1])
    total_rows = len(app_keys) * len(days)
    print(
        f"{total_rows:,} rows per pass in {len(passes[0][1])} requests of up to "
        f"{args.batch:,} rows, {args.clients} client(s)",
        flush=True,
    )

    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{args.port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(args.port)
        print(f"server: manage.py runserver --noreload, pid {server.pid}")
        results = []
        for name, payloads in passes:
            started = time.monotonic()
            totals = post_all(args.port, token, payloads, args.clients)
            elapsed = time.monotonic() - started
            results.append((name, elapsed, totals))
            print(
                f"  {name:<22} {elapsed:7.2f}s  {total_rows / elapsed:>9,.0f} rows/s  {totals}",
                flush=True,
            )
        peak = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    from accounts.models import DailyUsage, UsageRevision

    stored, revisions = DailyUsage.objects.count(), UsageRevision.objects.count()
    assert stored == total_rows, (stored, total_rows)
    assert revisions == results[2][2]["updated"], revisions
    print(f"stored rows: {stored:,}; revisions: {revisions:,}")
    print(
        f"RESULT: {total_rows / results[0][1]:,.0f} rows/s (new rows), peak server RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
