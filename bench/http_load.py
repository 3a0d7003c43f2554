"""Benchmark: the production web server under concurrent clients, with a year of history.

Builds on PostgreSQL (COPY) 10,000 customers with one Premium application each, twelve issued
invoices per customer (November 2025 to October 2026: 120,000 invoices, 240,000 lines), their
ledger (a deposit and twelve debits) and this month's daily usage so far. Prints the SQL
queries of each portal page for a customer with one invoice and one with twelve (they must be
equal), and each endpoint's CPU ms and queries per request in this process (Django's test
client, one request at a time). Then starts the Procfile's `web` (gunicorn, DEBUG=0) and puts
N concurrent clients on six endpoints: the portal's invoice list and an invoice's page, the
portal's estimate of this month, the estimate API, a quote and a one-row usage push. Prints
requests/s and p50/p95/p99 per endpoint, errors (any answer but 200), the load average and
gunicorn's CPU per request. The clients are wrk processes (Debian package `wrk`, one per
endpoint), or Python threads at nice 10 when wrk is missing.

    .venv/bin/python bench/http_load.py [--clients 8 32] [--seconds 30] [--reuse]

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/billing_5_bench_http;
DROPPED and recreated unless --reuse), WEB_CONCURRENCY / WEB_THREADS / WEB_WORKER_CLASS /
WEB_HEAVY_SLOTS / WEB_SWITCH_INTERVAL_MS for gunicorn.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/billing_5_bench_http"
DEFAULT_BROKER = "redis://127.0.0.1:6379/5"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MONTHS = 12
PORTAL_USERS = 500


def month_starts(today: dt.date) -> list[dt.date]:
    first = today.replace(day=1)
    months = []
    for _ in range(MONTHS):
        first = (first - dt.timedelta(days=1)).replace(day=1)
        months.append(first)
    return sorted(months)


def recreate_database(url: str) -> None:
    import psycopg

    name = urlparse(url).path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop {name!r}: the benchmark database name must contain 'bench'")
    admin = urlparse(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def build(*, customers: int, today: dt.date) -> dict:
    from django.core.management import call_command
    from django.db import connection

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    from bench_data import copy_customers  # bench/ is the script's folder

    from plans.models import Plan
    from plans.price_book import load_price_book

    load_price_book()
    premium = Plan.objects.get(code="premium").pk
    months = month_starts(today)
    opened = dt.datetime.combine(months[0], dt.time(9), SHANGHAI)
    connection.ensure_connection()
    raw = connection.connection
    rng = random.Random(7)
    with raw.cursor() as cur:
        copy_customers(cur, count=customers, created_at=opened)
        with cur.copy(
            "COPY accounts_application (id, customer_id, app_key, name, data_center, "
            "created_on, status, created_at, usage_version) FROM STDIN"
        ) as copy:
            for n in range(1, customers + 1):
                copy.write_row(
                    (
                        n,
                        n,
                        f"bench-app-{n:05d}",
                        f"App {n}",
                        "singapore",
                        months[0],
                        "active",
                        opened,
                        0,
                    )
                )
        with cur.copy(
            "COPY plans_planchange (application_id, plan_id, effective_date, created_at, note) "
            "FROM STDIN"
        ) as copy:
            for n in range(1, customers + 1):
                copy.write_row((n, premium, months[0], opened, ""))
        invoice_id = 0
        numbers = {}
        with cur.copy(
            "COPY invoices_invoice (id, customer_id, period, status, number, hold_reason, "
            "customer_name, customer_address, customer_tax_id, customer_email, total_currency, "
            "total, rated_at, rated_usage_version, issued_at, issue_date, created_at, updated_at) "
            "FROM STDIN"
        ) as copy:
            for period in months:
                issued = dt.datetime.combine(
                    (period + dt.timedelta(days=32)).replace(day=2), dt.time(0, 5), SHANGHAI
                )
                for n in range(1, customers + 1):
                    invoice_id += 1
                    year = issued.year
                    numbers[year] = numbers.get(year, 0) + 1
                    copy.write_row(
                        (
                            invoice_id,
                            n,
                            period,
                            "draft",  # issued below, once its lines are in
                            f"INV-{year}-{numbers[year]:06d}",
                            "",
                            f"Bench Customer {n}",
                            f"{n} Bench Road",
                            f"9131{n:014d}",
                            f"billing{n}@bench.test",
                            "CNY",
                            "6000.00",
                            issued,
                            0,
                            issued,
                            issued.date(),
                            issued,
                            issued,
                        )
                    )
        with cur.copy(
            "COPY invoices_invoiceline (invoice_id, position, application_id, app_key, app_name, "
            "code, category, plan_code, plan_name, description, quantity, unit_price_currency, "
            "unit_price, amount_currency, amount, first_day, last_day, days, days_in_month, "
            "peak_dau, peak_day, explanation) FROM STDIN"
        ) as copy:
            invoice_id = 0
            for period in months:
                last = (period + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
                for n in range(1, customers + 1):
                    invoice_id += 1
                    peak = rng.randint(1000, 10000)
                    copy.write_row(
                        (
                            invoice_id,
                            1,
                            n,
                            f"bench-app-{n:05d}",
                            f"App {n}",
                            "premium",
                            "dau_fee",
                            "premium",
                            "Premium",
                            "Premium: DAU fee",
                            1,
                            "CNY",
                            "6000.00",
                            "CNY",
                            "6000.00",
                            period,
                            last,
                            last.day,
                            last.day,
                            peak,
                            period + dt.timedelta(days=14),
                            f"Peak DAU {peak:,} on {period + dt.timedelta(days=14)}: up to 10,000 "
                            "DAU included",
                        )
                    )
                    copy.write_row(
                        (
                            invoice_id,
                            2,
                            n,
                            f"bench-app-{n:05d}",
                            f"App {n}",
                            "message_callback",
                            "value_added",
                            "premium",
                            "Premium",
                            "Message callback",
                            1,
                            "CNY",
                            "0.00",
                            "CNY",
                            "0.00",
                            period,
                            last,
                            last.day,
                            last.day,
                            None,
                            None,
                            "Included in Premium",
                        )
                    )
        # The database takes no line into an issued invoice (README: what the database
        # refuses): the invoices are written as drafts, get their lines, then are issued.
        cur.execute("UPDATE invoices_invoice SET status = 'issued' WHERE status = 'draft'")
        with cur.copy(
            "COPY accounts_ledgerentry (customer_id, kind, amount_currency, amount, "
            "idempotency_key, reference, reason, created_at) FROM STDIN"
        ) as copy:
            for n in range(1, customers + 1):
                copy.write_row(
                    (n, "deposit", "CNY", "100000.00", f"bench-deposit:{n}", "wire", "", opened)
                )
            numbers = {}
            for period in months:
                issued = dt.datetime.combine(
                    (period + dt.timedelta(days=32)).replace(day=2), dt.time(0, 5), SHANGHAI
                )
                for n in range(1, customers + 1):
                    numbers[issued.year] = numbers.get(issued.year, 0) + 1
                    copy.write_row(
                        (
                            n,
                            "invoice_debit",
                            "CNY",
                            "-6000.00",
                            f"invoice-debit:{n}:{period:%Y-%m}",
                            f"INV-{issued.year}-{numbers[issued.year]:06d}",
                            "",
                            issued,
                        )
                    )
        this_month = today.replace(day=1)
        days = [this_month + dt.timedelta(days=d) for d in range((today - this_month).days)]
        with cur.copy(
            "COPY accounts_dailyusage (application_id, day, dau, delivered_messages, updated_at) "
            "FROM STDIN"
        ) as copy:
            for n in range(1, customers + 1):
                for day in days:
                    copy.write_row(
                        (
                            n,
                            day,
                            rng.randint(500, 9000),
                            50_000,
                            dt.datetime.combine(day, dt.time(23), SHANGHAI),
                        )
                    )
        for table in ("accounts_customer", "accounts_application", "invoices_invoice"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        for year, last_number in numbers.items():
            cur.execute(
                "INSERT INTO invoices_numbersequence (series, year, last_number) VALUES "
                "('INV', %s, %s) ON CONFLICT DO NOTHING",
                [year, last_number],
            )
    raw.commit()
    with raw.cursor() as cur:
        cur.execute("ANALYZE")
    raw.commit()
    return {
        "customers": customers,
        "invoices": invoice_id,
        "lines": invoice_id * 2,
        "build_seconds": round(time.monotonic() - started, 1),
    }


def make_logins(*, customers: int) -> dict:
    """Portal sessions for a sample of customers, a staff token (quote, estimate API) and an
    Ingest token. Sessions are written directly: the load measures pages, not logins."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authtoken.models import Token

    from accounts import roles
    from accounts.models import CustomerUser

    sessions = []
    sample = random.Random(3).sample(range(1, customers + 1), min(PORTAL_USERS, customers))
    for n in sample:
        user = User.objects.create_user(username=f"bench-user-{n}", password=None)
        CustomerUser.objects.create(user=user, customer_id=n)
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "billingsite.auth_backend.CompiledModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        sessions.append((n, store.session_key))
    manager = User.objects.create_user(username="bench-manager", is_staff=True)
    manager.groups.add(Group.objects.get(name=roles.FINANCE_MANAGER))
    ingest = User.objects.create_user(username="bench-ingest")
    ingest.groups.add(Group.objects.get(name=roles.INGEST))
    console = User.objects.create_user(username="bench-console")
    console.groups.add(Group.objects.get(name=roles.CONSOLE))
    return {
        "sessions": sessions,
        "manager": Token.objects.create(user=manager).key,
        "ingest": Token.objects.create(user=ingest).key,
        "console": Token.objects.create(user=console).key,
    }


def short_history_customer():
    """A customer like the others (one Premium application) with one invoice instead of 12."""
    from django.db import transaction

    from accounts.models import Customer

    customer = Customer.objects.filter(external_id="bench-short").first()
    if customer is not None:
        return customer
    with transaction.atomic():
        return _create_short_history_customer()


def _create_short_history_customer():
    from accounts.models import Application, Customer, LedgerEntry
    from invoices.models import Invoice
    from plans.models import PlanChange

    model = Invoice.objects.filter(customer_id=1).order_by("-period").first()
    lines = list(model.lines.all())
    customer = Customer.objects.create(
        external_id="bench-short", name="Short History Ltd", billing_email="short@bench.test"
    )
    app = Application.objects.create(
        customer=customer,
        app_key="bench-short-app",
        name="Short App",
        data_center="singapore",
        created_on=model.period,
    )
    PlanChange.objects.create(
        application=app,
        plan_id=PlanChange.objects.filter(application_id=1).first().plan_id,
        effective_date=model.period,
        created_at=model.issued_at,
    )
    invoice = model
    invoice.pk = None
    invoice.customer = customer
    invoice.number = f"{model.number[:9]}999999"
    invoice.customer_name = customer.name
    invoice.status = "draft"  # the database takes no line into an issued invoice
    invoice.save()
    for line in lines:
        line.pk = None
        line.invoice = invoice
        line.application = app
    invoice.lines.model.objects.bulk_create(lines)
    Invoice.objects.filter(pk=invoice.pk).update(status="issued")
    LedgerEntry.objects.create(
        customer=customer,
        kind="deposit",
        amount=100000,
        idempotency_key="bench-short-deposit",
        created_at=model.issued_at,
    )
    LedgerEntry.objects.create(
        customer=customer,
        kind="invoice_debit",
        amount=-6000,
        reference=invoice.number,
        idempotency_key=f"invoice-debit:{customer.pk}:{model.period:%Y-%m}",
        created_at=model.issued_at,
    )
    return customer


def portal_query_counts() -> dict[str, dict[str, int]]:
    """SQL queries of each portal page for a customer with 12 invoices and one with 1."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import CustomerUser
    from invoices.models import Invoice

    short = User.objects.create_user(username="bench-short-history")
    CustomerUser.objects.create(user=short, customer=short_history_customer())
    long_user = User.objects.filter(username__startswith="bench-user-").first()
    counts: dict[str, dict[str, int]] = {}
    client = Client()
    for label, user in (("long", long_user), ("short", short)):
        client.force_login(user)
        customer_id = user.customer_link.customer_id
        number = Invoice.objects.filter(customer_id=customer_id).order_by("-period")[0].number
        pages = {
            "/invoices/": "/invoices/",
            "/invoices/<number>/": f"/invoices/{number}/",
            "/this-month/": "/this-month/",
            "/balance/": "/balance/",
        }
        for key, page in pages.items():
            # Warm (the price book is read once per process and change), as the test counts.
            client.get(page, secure=True)
            with CaptureQueriesContext(connection) as queries:
                status = client.get(page, secure=True).status_code
            assert status == 200, (page, status)
            counts.setdefault(key, {})[label] = len(queries)
    return counts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def load(
    *,
    url: str,
    light_url: str | None,
    logins: dict,
    clients: int,
    seconds: float,
    today: dt.date,
) -> dict:
    import requests

    light = light_url or url

    months = month_starts(today)
    results: dict[str, list[float]] = {}
    errors: dict[str, list[str]] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    yesterday = (today - dt.timedelta(days=1)).isoformat()

    def client(index: int) -> None:
        rng = random.Random(index)
        session = requests.Session()
        customer, session_key = logins["sessions"][index % len(logins["sessions"])]
        cookies = {"sessionid": session_key}
        staff = {"Authorization": f"Token {logins['manager']}"}
        console = {"Authorization": f"Token {logins['console']}"}
        ingest = {"Authorization": f"Token {logins['ingest']}"}
        endpoints = itertools.cycle(
            [
                "portal invoice list",
                "portal invoice detail",
                "portal estimate",
                "estimate API",
                "quote",
                "usage push",
            ]
        )
        # Each client starts at a different endpoint so all are loaded at every moment.
        for _ in range(index % 6):
            next(endpoints)
        while time.monotonic() < stop_at:
            name = next(endpoints)
            started = time.perf_counter()
            try:
                if name == "portal invoice list":
                    r = session.get(f"{url}/invoices/", cookies=cookies)
                elif name == "portal invoice detail":
                    month = rng.randrange(MONTHS)
                    r = session.get(
                        f"{url}/invoices/{logins['numbers'][(customer, months[month])]}/",
                        cookies=cookies,
                    )
                elif name == "portal estimate":
                    r = session.get(f"{url}/this-month/", cookies=cookies)
                elif name == "estimate API":
                    r = session.get(
                        f"{url}/api/v1/customers/bench-{customer:05d}/estimate/", headers=console
                    )
                elif name == "quote":
                    r = session.post(
                        f"{light}/api/v1/quotes/",
                        headers=staff,
                        json=quote_body(rng),
                    )
                else:
                    r = session.post(
                        f"{light}/api/v1/usage/",
                        headers=ingest,
                        json=usage_body(rng, apps=len(logins["apps"]), day=yesterday),
                    )
                ok = r.status_code == 200
                error = None if ok else f"{r.status_code} {r.text[:120]}"
            except Exception as exc:  # noqa: BLE001 - counted as an error
                ok, error = False, repr(exc)
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    results.setdefault(name, []).append(elapsed)
                else:
                    errors.setdefault(name, []).append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    report = {}
    for name, values in sorted(results.items()):
        values.sort()
        report[name] = {
            "requests": len(values),
            "per_second": len(values) / wall,
            "p50": percentile(values, 0.50) * 1000,
            "p95": percentile(values, 0.95) * 1000,
            "p99": percentile(values, 0.99) * 1000,
            "errors": len(errors.get(name, [])),
        }
    return {"wall": wall, "endpoints": report, "errors": errors}


ENDPOINTS = (
    "portal invoice list",
    "portal invoice detail",
    "portal estimate",
    "estimate API",
    "quote",
    "usage push",
)


def profile_requests(*, logins: dict, today: dt.date, repeat: int) -> dict[str, dict]:
    """Each endpoint in this process through Django's test client (the whole middleware stack,
    no HTTP server): CPU ms per request (`time.process_time`, median of `repeat` after a warm-up)
    and SQL queries per request. Unlike latency under load, these do not depend on what else
    the machine is doing."""
    from django.db import connection
    from django.test import Client

    months = month_starts(today)
    rng = random.Random(11)
    customer, session_key = logins["sessions"][0]
    client = Client()
    client.cookies["sessionid"] = session_key
    yesterday = (today - dt.timedelta(days=1)).isoformat()

    def call(name: str):
        if name == "portal invoice list":
            return client.get("/invoices/")
        if name == "portal invoice detail":
            number = logins["numbers"][(customer, months[rng.randrange(MONTHS)])]
            return client.get(f"/invoices/{number}/")
        if name == "portal estimate":
            return client.get("/this-month/")
        if name == "estimate API":
            return client.get(
                f"/api/v1/customers/bench-{customer:05d}/estimate/",
                HTTP_AUTHORIZATION=f"Token {logins['console']}",
            )
        if name == "quote":
            return client.post(
                "/api/v1/quotes/",
                quote_body(rng),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Token {logins['manager']}",
            )
        return client.post(
            "/api/v1/usage/",
            usage_body(rng, apps=len(logins["apps"]), day=yesterday),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {logins['ingest']}",
        )

    report = {}
    for name in ENDPOINTS:
        for _ in range(3):
            response = call(name)
            assert response.status_code == 200, (name, response.status_code)
        statements = []

        def count(execute, sql, params, many, context, statements=statements):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            call(name)
        cpu = []
        for _ in range(repeat):
            started = time.process_time()
            call(name)
            cpu.append((time.process_time() - started) * 1000)
        report[name] = {"queries": len(statements), "cpu_ms": statistics.median(cpu)}
    return report


def quote_body(rng: random.Random) -> dict:
    return {
        "plan": "premium",
        "peak_dau": rng.randint(1000, 90000),
        "addons": {"chatroom_keepalive": 1},
    }


def usage_body(rng: random.Random, *, apps: int, day: str) -> list[dict]:
    return [
        {
            "app_key": f"bench-app-{rng.randint(1, apps):05d}",
            "date": day,
            "dau": rng.randint(500, 9000),
            "delivered_messages": 50_000,
        }
    ]


# One wrk process per endpoint: its Lua script picks a random customer (or body) per request,
# counts every answer that is not a 200 as an error and prints one JSON line at the end.
WRK_COMMON = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; first = "" end
function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if first == "" then first = status .. " " .. string.sub(body or "", 1, 120) end
  end
end
function done(summary, latency, requests)
  local errors, sample = 0, ""
  for _, t in ipairs(threads) do
    errors = errors + t:get("bad")
    if sample == "" then sample = t:get("first") end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.3f, "bad_status": %d, "socket_errors": %d, ' ..
    '"p50": %.3f, "p95": %.3f, "p99": %.3f, "first_error": "%s"}\n',
    summary.requests, summary.duration / 1e6, errors,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, string.gsub(sample, '[%c"\\]', " ")))
end
"""


def _lua_list(items: list[str]) -> str:
    return "{" + ", ".join(f'"{item}"' for item in items) + "}"


def wrk_scripts(*, logins: dict, today: dt.date, folder: Path) -> dict[str, Path]:
    sessions = [key for _, key in logins["sessions"]]
    details = [
        (key, number)
        for customer, key in logins["sessions"]
        for (owner, _period), number in logins["numbers"].items()
        if owner == customer
    ]
    customers = [f"bench-{customer:05d}" for customer, _ in logins["sessions"]]
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    bodies = {
        "portal invoice list": f"""
local sessions = {_lua_list(sessions)}
request = function()
  return wrk.format("GET", "/invoices/", {{Cookie = "sessionid=" .. sessions[math.random(#sessions)]}})
end""",
        "portal invoice detail": f"""
local sessions = {_lua_list([key for key, _ in details])}
local numbers = {_lua_list([number for _, number in details])}
request = function()
  local i = math.random(#sessions)
  return wrk.format("GET", "/invoices/" .. numbers[i] .. "/", {{Cookie = "sessionid=" .. sessions[i]}})
end""",
        "portal estimate": f"""
local sessions = {_lua_list(sessions)}
request = function()
  return wrk.format("GET", "/this-month/", {{Cookie = "sessionid=" .. sessions[math.random(#sessions)]}})
end""",
        "estimate API": f"""
local customers = {_lua_list(customers)}
request = function()
  return wrk.format("GET", "/api/v1/customers/" .. customers[math.random(#customers)] .. "/estimate/",
    {{Authorization = "Token {logins["console"]}"}})
end""",
        "quote": f"""
request = function()
  return wrk.format("POST", "/api/v1/quotes/",
    {{Authorization = "Token {logins["manager"]}", ["Content-Type"] = "application/json"}},
    '{{"plan": "premium", "peak_dau": ' .. math.random(1000, 90000) ..
    ', "addons": {{"chatroom_keepalive": 1}}}}')
end""",
        "usage push": f"""
request = function()
  return wrk.format("POST", "/api/v1/usage/",
    {{Authorization = "Token {logins["ingest"]}", ["Content-Type"] = "application/json"}},
    string.format('[{{"app_key": "bench-app-%05d", "date": "{yesterday}", "dau": %d, ' ..
      '"delivered_messages": 50000}}]', math.random(1, {len(logins["apps"])}), math.random(500, 9000)))
end""",
    }
    paths = {}
    for index, (name, body) in enumerate(bodies.items()):
        path = folder / f"endpoint{index}.lua"
        path.write_text(f"math.randomseed({index + 1})\n{body}\n{WRK_COMMON}")
        paths[name] = path
    return paths


# What the proxy in front sends to the light pool's port (docs/deploying.md, section 3): of
# the six, only the quote (`billingsite.ops.admission.LIGHT_ROUTES`; a usage push can carry
# 10,000 rows).
LIGHT_ENDPOINTS = ("quote",)


def load_wrk(
    *, url: str, light_url: str | None, scripts: dict[str, Path], clients: int, seconds: float
) -> dict:
    """`clients` connections spread over one wrk process per endpoint, all at once; the light
    endpoints go to `light_url` when the server has a light pool."""
    import json

    share = {name: clients // len(ENDPOINTS) for name in ENDPOINTS}
    for name in ENDPOINTS[: clients % len(ENDPOINTS)]:
        share[name] += 1
    procs = {
        name: subprocess.Popen(
            [
                "wrk",
                "--threads",
                "1",
                "--connections",
                str(share[name]),
                "--duration",
                f"{seconds:.0f}s",
                "--timeout",
                "30s",
                "--script",
                str(scripts[name]),
                light_url if light_url and name in LIGHT_ENDPOINTS else url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ENDPOINTS
        if share[name]
    }
    report, errors, wall = {}, {}, seconds
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=seconds + 120)
        line = next((row for row in output.splitlines() if row.startswith("WRK ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed for {name}: {output}")
        row = json.loads(line[4:])
        failed = row["bad_status"] + row["socket_errors"]
        report[name] = {
            "requests": row["requests"] - row["bad_status"],
            "per_second": row["requests"] / row["seconds"],
            "p50": row["p50"],
            "p95": row["p95"],
            "p99": row["p99"],
            "errors": failed,
        }
        if failed:
            errors[name] = [row["first_error"] or "socket errors"] * failed
        wall = row["seconds"]
    return {"wall": wall, "endpoints": report, "errors": errors}


def process_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of process `root` and its children (gunicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def print_result(
    *,
    result: dict,
    clients: int,
    tool: str,
    workers: str,
    threads: str,
    admission: str,
    load_before: float,
    server_cpu: float,
) -> None:
    total = sum(row["requests"] for row in result["endpoints"].values())
    print(
        f"\n{clients} clients ({tool}) for {result['wall']:.0f} s, gunicorn {workers} workers x "
        f"{threads} threads, {admission}; load average before {load_before:.1f}, after "
        f"{os.getloadavg()[0]:.1f}; gunicorn CPU {server_cpu * 1000 / max(total, 1):.1f} ms "
        "per request"
    )
    print(
        f"{'endpoint':24s} {'requests':>8s} {'req/s':>7s} {'p50 ms':>7s} {'p95 ms':>7s} "
        f"{'p99 ms':>7s} {'errors':>6s}"
    )
    for name in ENDPOINTS:
        row = result["endpoints"].get(name)
        if row is None:
            continue
        print(
            f"{name:24s} {row['requests']:8d} {row['per_second']:7.1f} {row['p50']:7.1f} "
            f"{row['p95']:7.1f} {row['p99']:7.1f} {row['errors']:6d}"
        )
    print(f"{'all':24s} {total:8d} {total / result['wall']:7.1f}")
    for name, messages in result["errors"].items():
        print(f"errors of {name}: {len(messages)}, first: {messages[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--reuse", action="store_true", help="keep the database of a last run")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk (C, Debian package `wrk`) when installed, else Python threads "
        "at nice 10",
    )
    parser.add_argument(
        "--profile-repeat",
        type=int,
        default=40,
        help="requests per endpoint for the in-process CPU ms (0: skip)",
    )
    args = parser.parse_args()
    tool = args.client
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"

    url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billingsite.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ.setdefault("CELERY_BROKER_URL", DEFAULT_BROKER)
    os.environ.setdefault("CACHE_URL", DEFAULT_BROKER)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    # Connections kept as in the web process, so the in-process profile measures the same.
    os.environ.setdefault("DB_CONN_MAX_AGE", "60")
    # No worker recycling during a measurement (its CPU would leave the count).
    os.environ.setdefault("WEB_MAX_REQUESTS", "0")
    today = dt.datetime.now(SHANGHAI).date()
    if not args.reuse:
        recreate_database(url)
    import django

    django.setup()
    from django.db import connection

    from invoices.models import Invoice

    if not args.reuse:
        built = build(customers=args.customers, today=today)
        print(f"built: {built}", flush=True)
    from django.contrib.auth.models import User

    User.objects.filter(username__startswith="bench-").delete()
    logins = make_logins(customers=args.customers)
    # What autovacuum does in production: the build leaves every invoice's first version dead
    # (it is written, then updated) and each run deletes and writes again the bench's users and
    # sessions. CI's PostgreSQL runs with autovacuum off, and index scans over the dead
    # versions made the pages' p95 drift up by ~40 % from run to run.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    logins["apps"] = range(args.customers)
    sampled = [n for n, _ in logins["sessions"]]
    logins["numbers"] = {
        (customer_id, period): number
        for customer_id, period, number in Invoice.objects.filter(
            customer_id__in=sampled
        ).values_list("customer_id", "period", "number")
    }
    counts = portal_query_counts()
    print("SQL queries per portal page (customer with 12 invoices / with 1):")
    for page, by in counts.items():
        print(f"  {page:22s} {by['long']:3d} / {by['short']:3d}")
    if args.profile_repeat > 0:
        profile = profile_requests(logins=logins, today=today, repeat=args.profile_repeat)
        print(
            f"In-process, one request at a time (load average {os.getloadavg()[0]:.1f}): "
            "CPU ms per request (median) and SQL queries"
        )
        for name, row in profile.items():
            print(f"  {name:22s} {row['cpu_ms']:6.1f} ms {row['queries']:3d} queries")
    connection.close()

    port, light_port = free_port(), free_port()
    # In this process's environment too: the gunicorn settings imported below (to print the
    # pools and find the light port) read it as the server does.
    os.environ["LIGHT_BIND"] = f"127.0.0.1:{light_port}"
    env = dict(os.environ, BIND=f"127.0.0.1:{port}")
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:billingsite.ops.gunicorn",
            "billingsite.wsgi",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        import requests

        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        from billingsite.ops.gunicorn import (
            heavy_nice,
            heavy_slots,
            heavy_workers,
            light_slots,
            light_workers,
            switch_interval_ms,
            threads,
        )

        light_base = f"http://127.0.0.1:{light_port}" if light_workers else None

        if tool == "python":
            # The generator shares the two cores with the server: it yields to it.
            os.nice(10)
        with tempfile.TemporaryDirectory() as folder:
            scripts = wrk_scripts(logins=logins, today=today, folder=Path(folder))

            def run(clients: int, seconds: float) -> dict:
                if tool == "wrk":
                    return load_wrk(
                        url=base,
                        light_url=light_base,
                        scripts=scripts,
                        clients=clients,
                        seconds=seconds,
                    )
                return load(
                    url=base,
                    light_url=light_base,
                    logins=logins,
                    clients=clients,
                    seconds=seconds,
                    today=today,
                )

            # Warm every worker (imports, connections, the price book) before measuring.
            run(8, 5)
            for clients in args.clients:
                load_before = os.getloadavg()[0]
                cpu_before = process_cpu_seconds(web.pid)
                result = run(clients, args.seconds)
                print_result(
                    result=result,
                    clients=clients,
                    tool=tool if tool == "wrk" else "python threads, nice 10",
                    workers=f"{heavy_workers} + {light_workers} light (nice {heavy_nice} / 0)"
                    if light_workers
                    else str(heavy_workers),
                    threads=str(threads),
                    admission=f"{heavy_slots} heavy slots, {light_slots or 'no'} light slots, switch interval {switch_interval_ms:g} ms"
                    if heavy_slots
                    else f"no admission control, switch interval {switch_interval_ms:g} ms",
                    load_before=load_before,
                    server_cpu=process_cpu_seconds(web.pid) - cpu_before,
                )
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)


if __name__ == "__main__":
    main()
