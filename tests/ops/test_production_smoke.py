"""Production mode for real: the Procfile's web (gunicorn, DEBUG=0), worker and beat under
honcho, on PostgreSQL and Redis (what CI sets), in a database of their own.

/readyz, a hashed static file, the API docs in chromium with every non-local request blocked,
a quote, a usage push and a month-end run started from the admin and billed by the worker,
/metrics with the run's figures, and every log line of the three processes is JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
import redis
import requests
from django.db import connection
from playwright.sync_api import sync_playwright

from tests import db_template
from tests.conftest import postgres_only

BASE_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
METRICS_TOKEN = "smoke-metrics-token"
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<process>\S+?)(?:\.\d+)?\s+\| (?P<text>.*)$")

pytestmark = [
    postgres_only,
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"),
        reason="needs Redis: runs in .ci/run with CELERY_BROKER_URL set",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_database(url: str, *, template: str | None = None) -> None:
    """An empty database or, when this run built one, a copy of the migrated `template`."""

    name = urlparse(url).path.lstrip("/")
    admin = urlparse(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template is not None:
            with db_template.locked(template):
                if conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", [template]
                ).fetchone():
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                    return
        conn.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture
def stack_env(tmp_path, django_db_setup):
    """The production environment, with a database named after CI's (`<name>_smoke`).

    Under xdist the database starts as a copy of the run's migrated template
    (tests/db_template.py): the template was built by the same 98 migrations a third time
    would apply here, and `manage.py migrate` below still runs in production mode (and finds
    nothing to apply). A run without xdist migrates an empty database, as a deploy does."""
    base = urlparse(os.environ["DATABASE_URL"])
    database_url = base._replace(path=f"{base.path.rstrip('/')}_smoke").geturl()
    copied = os.environ.get("PYTEST_XDIST_WORKER") and connection.vendor == "postgresql"
    recreate_database(
        database_url,
        template=db_template.template_name(connection.settings_dict["NAME"]) if copied else None,
    )
    prefix = f"smoke-{uuid.uuid4().hex[:8]}"
    broker = os.environ["CELERY_BROKER_URL"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_", "CELERY_", "PROMETHEUS_"))
    }
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            "DEBUG": "0",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Plain HTTP on the loopback; TLS is the proxy's job (docs/deploying.md).
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker,
            "CELERY_TASK_DEFAULT_QUEUE": prefix,
            "CACHE_URL": f"{broker}?key_prefix={prefix}",
            "BILLING_VAR_DIR": str(tmp_path / "var"),
            "STATIC_ROOT": str(tmp_path / "static"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "METRICS_TOKEN": METRICS_TOKEN,
            "WEB_CONCURRENCY": "2",
            "WORKER_CONCURRENCY": "1",
            "BILLING_RUN_CHUNK_SIZE": "3",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "BILLING_WEBHOOK_URL": "",
            "DEMO_PASSWORD": "smoke-password",
        }
    )
    (tmp_path / "prometheus").mkdir()
    yield env
    try:
        client = redis.Redis.from_url(broker)
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def wait_until(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


class Stack:
    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The light pool's port (WEB_LIGHT_WORKERS): where the proxy sends quotes and pushes.
        self.light_url = f"http://127.0.0.1:{free_port()}"
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "--port", str(self.port)],
            cwd=BASE_DIR,
            env={**env, "LIGHT_BIND": self.light_url.removeprefix("http://")},
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            # honcho stops the three processes it runs (each its own way: celery's main process
            # stops its pool); a SIGTERM to the whole group would reach the pool processes
            # directly, and billiard reports their deaths in plain text, not JSON.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log_lines(self) -> list[tuple[str, str]]:
        lines = []
        for raw in self.log_path.read_text().splitlines():
            match = HONCHO_LINE.match(raw)
            assert match, f"not a honcho line: {raw!r}"
            lines.append((match["process"], match["text"]))
        return lines


def admin_session(stack: Stack, username: str, password: str) -> requests.Session:
    """A logged-in admin session. Production cookies are Secure and the CSRF check wants an
    HTTPS origin: the requests say they came through the TLS proxy (X-Forwarded-Proto)."""
    session = requests.Session()
    session.headers.update(
        {"X-Forwarded-Proto": "https", "Origin": f"https://127.0.0.1:{stack.port}"}
    )

    def keep_cookies(response, *args, **kwargs):
        for cookie in response.cookies:
            session.cookies.set(cookie.name, cookie.value)

    session.hooks["response"].append(keep_cookies)
    login = session.get(f"{stack.url}/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)[1]
    response = session.post(
        f"{stack.url}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={"Referer": f"https://127.0.0.1:{stack.port}/admin/login/"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:2000]
    return session


def post_form(session: requests.Session, stack: Stack, path: str, data: dict) -> requests.Response:
    page = session.get(f"{stack.url}{path}")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    return session.post(
        f"{stack.url}{path}",
        data={"csrfmiddlewaretoken": token, **data},
        headers={"Referer": f"https://127.0.0.1:{stack.port}{path}"},
        allow_redirects=False,
    )


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_procfile_stack_serves_bills_and_logs_json(stack_env, tmp_path):
    started = time.monotonic()
    manage(stack_env, "migrate", "--noinput")
    manage(stack_env, "collectstatic", "--noinput")
    manage(stack_env, "load_price_book")
    manage(stack_env, "demo_setup")
    manage(stack_env, "load_demo_data")
    tokens = json.loads(
        manage(
            stack_env,
            "shell",
            "-c",
            "import json; from django.contrib.auth.models import User, Group; "
            "from rest_framework.authtoken.models import Token; "
            "ingest, _ = User.objects.get_or_create(username='ingest'); "
            "ingest.groups.add(Group.objects.get(name='Ingest')); "
            "from accounts.models import Application; "
            "print(json.dumps({'manager': Token.objects.get_or_create(user=User.objects.get("
            "username='manager'))[0].key, 'ingest': Token.objects.get_or_create(user=ingest)[0]"
            ".key, 'app_key': Application.objects.order_by('id').first().app_key}))",
        )
        .strip()
        .splitlines()[-1]
    )
    prepared = time.monotonic() - started

    stack = Stack(stack_env, tmp_path / "honcho.log")
    try:
        ready = wait_until(
            lambda: (r := requests.get(f"{stack.url}/readyz", timeout=5)).status_code == 200 and r,
            timeout=40,
            what="/readyz 200",
        )
        assert ready.json()["status"] == "ready"
        assert set(ready.json()["checks"]) == {"database", "migrations", "broker", "beat"}
        assert requests.get(f"{stack.url}/healthz").json() == {"status": "ok"}

        # A hashed static file, compressed, cached for a year.
        manifest = json.loads((Path(stack_env["STATIC_ROOT"]) / "staticfiles.json").read_text())
        hashed = manifest["paths"]["admin/css/base.css"]
        assert re.match(r"admin/css/base\.[0-9a-f]{12}\.css$", hashed)
        static = requests.get(f"{stack.url}/static/{hashed}", headers={"Accept-Encoding": "gzip"})
        assert static.status_code == 200
        assert static.headers["Content-Encoding"] == "gzip"
        assert "max-age=315360000" in static.headers["Cache-Control"]
        assert "immutable" in static.headers["Cache-Control"]

        check_api_docs_offline(stack)

        # A quote over HTTP through the light pool's port, as the proxy sends it (the main port
        # serves it too, the light port nothing but the short calls), and a usage push.
        assert requests.get(f"{stack.light_url}/healthz").json() == {"status": "ok"}
        misdirected = requests.get(f"{stack.light_url}/invoices/", allow_redirects=False)
        assert misdirected.status_code == 421
        assert misdirected.json()["code"] == "misdirected_request"
        quote = requests.post(
            f"{stack.light_url}/api/v1/quotes/",
            headers={"Authorization": f"Token {tokens['manager']}"},
            json={
                "plan": "premium",
                "peak_dau": 25000,
                "period": "2026-10",
                "addons": {"chatroom_keepalive": 1, "message_callback": 1},
            },
        )
        assert quote.status_code == 200, quote.text
        assert quote.json()["total"] == "16000.00"
        pushed = requests.post(
            f"{stack.url}/api/v1/usage/",
            headers={"Authorization": f"Token {tokens['ingest']}"},
            json=[
                {
                    "app_key": tokens["app_key"],
                    "date": today_shanghai(),
                    "dau": 1234,
                    "delivered_messages": 56789,
                }
            ],
        )
        assert pushed.status_code == 200, pushed.text
        assert pushed.json() == {"created": 1, "updated": 0, "unchanged": 0}
        refused = requests.post(
            f"{stack.url}/api/v1/usage/",
            headers={"Authorization": f"Token {tokens['ingest']}"},
            json=[
                {
                    "app_key": "no-such-app",
                    "date": today_shanghai(),
                    "dau": 1,
                    "delivered_messages": 1,
                }
            ],
        )
        assert refused.status_code == 400
        missing = requests.get(f"{stack.url}/api/v1/no-such-thing/")
        assert missing.status_code == 404
        assert missing.json() == {
            "code": "not_found",
            "message": "no such API endpoint or resource",
            "field": None,
        }

        # Last month's run, started in the admin, billed by the worker.
        session = admin_session(stack, "manager", "smoke-password")
        add = "/admin/invoices/billingrun/add/"
        period = last_month_shanghai()
        confirm = post_form(session, stack, add, {"period": period})
        assert confirm.status_code == 200 and "Yes, bill" in confirm.text, confirm.text[:2000]
        started_run = post_form(session, stack, add, {"period": period, "confirmed": "on"})
        assert started_run.status_code == 302, started_run.text[:2000]

        def run_finished():
            text = requests.get(
                f"{stack.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            ).text
            return metric(text, "billing_runs", status="finished") == 1.0 and text

        metrics_text = wait_until(run_finished, timeout=40, what="the run to finish")
        issued = metric(metrics_text, "billing_run_accounts", period=period, outcome="issued")
        assert issued and issued >= 1
        assert metric(metrics_text, "billing_run_accounts", period=period, outcome="failed") == 0
        assert metric(metrics_text, "billing_run_duration_seconds", period=period) >= 0
        assert metric(metrics_text, "billing_usage_rows_total", outcome="created") == 1.0
        assert metric(metrics_text, "billing_usage_rows_total", outcome="refused") == 1.0
        assert (
            metric(
                metrics_text, "billing_http_responses_total", route="/api/v1/quotes/", status="200"
            )
            == 1.0
        )
        assert metric(metrics_text, "billing_customers", state="in_arrears") is not None
        assert requests.get(f"{stack.url}/metrics").status_code == 403  # no token
    finally:
        stack.stop()

    lines = stack.log_lines()
    processes = {process for process, _ in lines}
    assert {"web", "worker", "beat"} <= processes
    records = []
    for process, text in lines:
        if process == "system":  # honcho's own start/stop lines
            continue
        try:
            records.append((process, json.loads(text)))
        except ValueError:
            pytest.fail(f"{process} wrote a line that is not JSON: {text!r}")
    quote_lines = [r for p, r in records if p == "web" and r.get("path") == "/api/v1/quotes/"]
    assert len(quote_lines) == 1
    assert quote_lines[0]["status"] == 200
    assert quote_lines[0]["user"] == "manager" and quote_lines[0]["request_id"]
    refused_lines = [r for p, r in records if r.get("path") == "/api/v1/no-such-thing/"]
    assert len(refused_lines) == 1 and "exc_info" not in refused_lines[0]
    chunk_lines = [
        r
        for p, r in records
        if p == "worker" and r.get("task") == "invoices.tasks.billing_run_chunk"
    ]
    assert chunk_lines and all(r["run_id"] and r["chunk_id"] for r in chunk_lines)
    print(f"prepared in {prepared:.1f} s, whole test {time.monotonic() - started:.1f} s")


def today_shanghai() -> str:
    # Today, not yesterday: the demo data fills last month, and on the 1st (Shanghai)
    # yesterday is last month's last day, already stored ("updated", not "created").
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    return now.date().isoformat()


def last_month_shanghai() -> str:

    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    last = today.replace(day=1) - dt.timedelta(days=1)
    return f"{last:%Y-%m}"


def check_api_docs_offline(stack: Stack) -> None:
    """In a thread of its own: the browser tests' session-wide Playwright keeps an event loop
    running in this worker's main thread, and the sync API refuses to start inside one."""
    failures: list[BaseException] = []

    def check() -> None:
        try:
            _check_api_docs_offline(stack)
        except BaseException as failure:  # re-raised in the test's thread
            failures.append(failure)

    thread = threading.Thread(target=check)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def _check_api_docs_offline(stack: Stack) -> None:

    own = f"127.0.0.1:{stack.port}"
    blocked: list[str] = []

    def only_local(route):
        host = urlparse(route.request.url).netloc
        if host == own or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            # With DEBUG=0 the docs are for staff (API_DOCS_PUBLIC is off): the admin login
            # comes first and leads back to them.
            page.goto(f"{stack.url}/api/docs/")
            assert "/admin/login/" in page.url
            page.fill("#id_username", "manager")
            page.fill("#id_password", "smoke-password")
            page.click("input[type=submit]")
            page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
            assert "IM billing back-office API" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            assert page.locator(".opblock-summary-path", has_text="/api/v1/quotes/").count() >= 1
            page.goto(f"{stack.url}/api/redoc/")
            page.wait_for_selector("redoc h1, [role=navigation]", timeout=20_000)
        finally:
            browser.close()
    assert blocked == []
