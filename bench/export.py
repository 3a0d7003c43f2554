"""Benchmark: the accounting CSV export through the real HTTP API on PostgreSQL.

Builds, with bulk inserts, a month of 10,000 issued invoices with 5 lines each (October 2026,
50,000 lines) and a month twice as big (November 2026: 20,000 invoices, 100,000 lines), plus
an Accounting user with an API token. Then, for each month, starts a fresh server process
(`manage.py runserver --noreload`, DEBUG off), makes one small warm-up request, and downloads
`GET /api/v1/accounting/invoices/?period=<month>&format=csv` as a stream. Prints CSV rows per
second, megabytes, and the server's resident memory before the export and at its peak
(VmHWM). The export streams, so the peak must not grow with the month: the doubled month's
peak is printed next to the first one. The journal of each month's posting month
(`/api/v1/accounting/journal/?basis=issue_date&format=csv`, rows aggregated per invoice and category) is
measured the same way.

    .venv/bin/python bench/export.py [--invoices 10000] [--lines 5] [--port 8765]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/billing_export_bench;
that database is DROPPED and recreated: its name must contain "bench").
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/billing_export_bench"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# (category, code, plan, amount) of the five lines of every invoice: a realistic spread.
LINES = [
    ("dau_fee", "dau_fee", "premium", Decimal("9000.00")),
    ("value_added", "chatroom_keepalive", "premium", Decimal("2000.00")),
    ("storage", "chatroom_storage", "premium", Decimal("1000.00")),
    ("sensitive_words", "sensitive_words", "premium", Decimal("2400.00")),
    ("api_rate_limit", "api_push", "premium", Decimal("1200.00")),
]


def db_name(url: str) -> str:
    name = urlparse(url).path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: the benchmark database name must contain 'bench'")
    return name


def recreate_database(url: str) -> None:
    import psycopg

    name = db_name(url)
    admin = urlparse(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingsite.settings")
    import django

    django.setup()


def build_month(*, customers, year: int, month: int, first_number: int, lines_per_invoice: int):
    """One issued invoice per customer for the month, with `lines_per_invoice` lines."""
    from moneyed import Money

    from billingsite.clock import Period
    from invoices.models import Invoice, InvoiceLine

    period = Period(year, month)
    issued_at = dt.datetime.combine(period.next().start, dt.time(0, 0), tzinfo=SHANGHAI)
    issued_at += dt.timedelta(days=1)  # 00:00 on the 2nd
    lines = [LINES[i % len(LINES)] for i in range(lines_per_invoice)]
    total = sum(amount for *_, amount in lines)
    batch = 2000
    for start in range(0, len(customers), batch):
        chunk = customers[start : start + batch]
        # Drafts first, issued once their lines are in: the database adds no line to an issued
        # invoice.
        invoices = Invoice.objects.bulk_create(
            Invoice(
                customer=customer,
                period=period.start,
                status=Invoice.Status.DRAFT,
                number=f"INV-{issued_at.year}-{first_number + start + offset:06d}",
                customer_name=customer.name,
                customer_address=customer.address,
                customer_tax_id=customer.tax_id,
                customer_email=customer.billing_email,
                total=Money(total, "CNY"),
                rated_at=issued_at,
                issued_at=issued_at,
                issue_date=issued_at.date(),
            )
            for offset, customer in enumerate(chunk)
        )
        InvoiceLine.objects.bulk_create(
            (
                InvoiceLine(
                    invoice=invoice,
                    position=position,
                    app_key=f"app-{invoice.customer_id:06d}",
                    app_name=f"Application {invoice.customer_id}",
                    code=code,
                    category=category,
                    plan_code=plan,
                    plan_name=plan.title(),
                    description=f"{code.replace('_', ' ').capitalize()} ({plan.title()})",
                    quantity=1,
                    unit_price=Money(amount, "CNY"),
                    amount=Money(amount, "CNY"),
                    first_day=period.start,
                    last_day=period.end,
                    days=period.days,
                    days_in_month=period.days,
                    peak_dau=12345 if category == "dau_fee" else None,
                    peak_day=period.start if category == "dau_fee" else None,
                    explanation=(
                        f"peak DAU 12,345 on {period.start}: base 6,000.00 + 1 x 3,000.00"
                        if category == "dau_fee"
                        else f"{amount:,.2f} per month, {period.days}/{period.days} days"
                    ),
                )
                for invoice in invoices
                for position, (category, code, plan, amount) in enumerate(lines, start=1)
            ),
            batch_size=5000,
        )
        Invoice.objects.filter(pk__in=[invoice.pk for invoice in invoices]).update(
            status=Invoice.Status.ISSUED
        )
    return len(customers) * lines_per_invoice


def build(*, invoices: int, lines_per_invoice: int) -> str:
    """Both months and an Accounting token; returns the token key."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from accounts import roles
    from accounts.models import Customer

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    Customer.objects.bulk_create(
        (
            Customer(
                external_id=f"bench-{n:06d}",
                name=f"Bench Customer {n} Ltd",
                billing_email=f"billing{n}@bench.example.com",
                address=f"{n} Century Avenue, Pudong, Shanghai",
                tax_id=f"91310000{n:010d}",
            )
            for n in range(1, 2 * invoices + 1)
        ),
        batch_size=5000,
    )
    customers = list(Customer.objects.order_by("pk"))
    october = build_month(
        customers=customers[:invoices],
        year=2026,
        month=10,
        first_number=1,
        lines_per_invoice=lines_per_invoice,
    )
    november = build_month(
        customers=customers,
        year=2026,
        month=11,
        first_number=invoices + 1,
        lines_per_invoice=lines_per_invoice,
    )
    user = get_user_model().objects.create(username="bench-accounting")
    user.groups.add(Group.objects.get(name=roles.ACCOUNTING))
    token = Token.objects.create(user=user).key
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(
        f"built {invoices:,} + {2 * invoices:,} invoices ({october:,} + {november:,} lines) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return token


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def start_server(port: int, url: str) -> subprocess.Popen:
    import requests

    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only",
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ACCOUNTING_THROTTLE_RATE": "100000/minute",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/schema/", timeout=2)
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.kill()
    sys.exit("the server did not start")


def export(*, port: int, url: str, token: str, path: str, query: dict) -> dict:
    """Stream one CSV export from a fresh server process; returns the figures."""
    import requests

    server = start_server(port, url)
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        base = f"http://127.0.0.1:{port}{path}"
        # Warm-up: imports, first connection, an empty export.
        warm = session.get(base, params={**query, "customer": "nobody", "format": "csv"})
        warm.raise_for_status()
        before = memory_kb(server.pid)["VmRSS"]
        started = time.perf_counter()
        newlines = size = 0
        with session.get(base, params={**query, "format": "csv"}, stream=True) as response:
            response.raise_for_status()
            assert response.headers["Content-Type"].startswith("text/csv")
            for chunk in response.iter_content(chunk_size=256 * 1024):
                newlines += chunk.count(b"\n")
                size += len(chunk)
        elapsed = time.perf_counter() - started
        peak = memory_kb(server.pid)["VmHWM"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = newlines - 1  # the header
    return {
        "rows": rows,
        "seconds": elapsed,
        "rows_per_second": rows / elapsed,
        "megabytes": size / 1e6,
        "rss_before_mb": before / 1024,
        "peak_mb": peak / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    db_name(url)
    recreate_database(url)
    setup_django(url)
    token = build(invoices=args.invoices, lines_per_invoice=args.lines)

    results = []
    for label, invoices, period, posting in (
        ("month", args.invoices, "2026-10", "2026-11"),
        ("doubled month", 2 * args.invoices, "2026-11", "2026-12"),
    ):
        for report, path, query in (
            ("invoice lines", "/api/v1/accounting/invoices/", {"period": period}),
            # The issue-date basis: the month's invoices in the posting month, as measured
            # before the service-month basis became the default (it posts the same rows).
            (
                "journal",
                "/api/v1/accounting/journal/",
                {"period": posting, "basis": "issue_date"},
            ),
        ):
            figures = export(port=args.port, url=url, token=token, path=path, query=query)
            results.append((label, invoices, report, figures))
            print(
                f"{label:>13} ({invoices:,} invoices) {report:<13}: {figures['rows']:>7,} rows "
                f"in {figures['seconds']:5.2f}s = {figures['rows_per_second']:>7,.0f} rows/s, "
                f"{figures['megabytes']:5.1f} MB; server RSS {figures['rss_before_mb']:.0f} MB "
                f"before, peak {figures['peak_mb']:.0f} MB "
                f"(+{figures['peak_mb'] - figures['rss_before_mb']:.0f} MB)"
            )
    for report in ("invoice lines", "journal"):
        single, double = (r[3] for r in results if r[2] == report)
        growth = double["peak_mb"] - single["peak_mb"]
        print(
            f"{report}: rows x{double['rows'] / single['rows']:.2f}, "
            f"server peak {single['peak_mb']:.0f} MB -> {double['peak_mb']:.0f} MB "
            f"({growth:+.0f} MB)"
        )


if __name__ == "__main__":
    main()
