import datetime as dt

import pytest
from freezegun import freeze_time
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from accounts import roles
from accounts.models import CustomerEvent, WebhookDelivery
from billingsite.clock import BILLING_TZ
from invoices.models import BillingRun
from tests.factories import ApplicationFactory, CustomerFactory, UserFactory
from tests.ops.conftest import metric

NOW = dt.datetime(2026, 11, 2, 0, 30, tzinfo=BILLING_TZ)


@pytest.fixture
def billing_state(db):
    run = BillingRun.objects.create(
        period=dt.date(2026, 10, 1),
        status=BillingRun.Status.FINISHED,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW + dt.timedelta(seconds=42),
        accounts_total=10,
        accounts_done=10,
        invoices_issued=7,
        invoices_held=1,
        accounts_skipped=1,
        accounts_failed=1,
    )
    BillingRun.objects.create(
        period=dt.date(2026, 9, 1), status=BillingRun.Status.FAILED, created_at=NOW
    )
    CustomerFactory(arrears_since=dt.date(2026, 11, 2))
    suspended = CustomerFactory(arrears_since=dt.date(2026, 10, 1), suspended_at=NOW)
    CustomerFactory()
    old = CustomerEvent.objects.create(
        customer=suspended, kind="suspended", dedupe_key="a", created_at=NOW - dt.timedelta(hours=1)
    )
    CustomerEvent.objects.create(
        customer=suspended, kind="reactivated", dedupe_key="b", created_at=NOW
    )
    delivered = CustomerEvent.objects.create(
        customer=suspended, kind="invoice_issued", dedupe_key="c", created_at=NOW, email_sent_at=NOW
    )
    WebhookDelivery.objects.create(
        event=old, url="https://im.example.com/hook", attempt=1, status_code=500, attempted_at=NOW
    )
    WebhookDelivery.objects.create(
        event=delivered,
        url="https://im.example.com/hook",
        attempt=1,
        status_code=200,
        attempted_at=NOW,
        succeeded=True,
    )
    return run


def test_metrics_show_the_billing_figures(client, billing_state, settings):
    settings.BILLING_WEBHOOK_URL = "https://im.example.com/hook"
    settings.BILLING_WEBHOOK_SECRET = "s3cret"
    with freeze_time(NOW + dt.timedelta(minutes=5)):
        response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    run = str(billing_state.pk)
    assert metric(text, "billing_runs", status="finished") == 1
    assert metric(text, "billing_runs", status="failed") == 1
    assert metric(text, "billing_runs", status="running") == 0
    assert metric(text, "billing_runs_stalled") == 0
    for outcome, value in {"total": 10, "issued": 7, "held": 1, "skipped": 1, "failed": 1}.items():
        assert (
            metric(text, "billing_run_accounts", run=run, period="2026-10", outcome=outcome)
            == value
        )
    assert metric(text, "billing_run_duration_seconds", run=run, status="finished") == 42
    assert metric(text, "billing_customers", state="in_arrears") == 2
    assert metric(text, "billing_customers", state="suspended") == 1
    assert metric(text, "billing_emails", state="pending") == 2
    assert metric(text, "billing_emails", state="failed") == 1  # unsent for over 15 minutes
    assert metric(text, "billing_webhooks", state="pending") == 2
    assert metric(text, "billing_webhooks", state="failed") == 1
    assert metric(text, "billing_outbox_backlog") == 2


def test_metrics_need_the_token_when_one_is_set(client, db, settings):
    settings.METRICS_TOKEN = "t0ken"
    refused = client.get("/metrics")
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 200


def test_metrics_without_a_token_answer_only_allowed_addresses(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    # Through the proxy on the same host: the address says nothing about the client.
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert proxied.status_code == 403


def test_http_requests_are_counted_by_route_and_status(client, db):
    def count(status):
        return (
            REGISTRY.get_sample_value(
                "billing_http_responses_total",
                {"method": "GET", "route": "/healthz", "status": status},
            )
            or 0
        )

    before = count("200")
    client.get("/healthz")
    client.get("/healthz")
    assert count("200") == before + 2


@freeze_time("2026-11-10T12:00:00+08:00")
def test_usage_rows_are_counted_accepted_and_refused(price_book):
    app = ApplicationFactory()
    api = APIClient()
    api.force_authenticate(UserFactory(groups=[roles.INGEST]))

    def rows(outcome):
        return REGISTRY.get_sample_value("billing_usage_rows_total", {"outcome": outcome}) or 0

    before = {o: rows(o) for o in ("created", "unchanged", "refused")}
    good = [{"app_key": app.app_key, "date": "2026-11-09", "dau": 10, "delivered_messages": 5}]
    assert api.post("/api/v1/usage/", good, format="json").status_code == 200
    assert api.post("/api/v1/usage/", good, format="json").status_code == 200
    bad = [{"app_key": "nope", "date": "2026-11-09", "dau": 1, "delivered_messages": 1}] * 2
    assert api.post("/api/v1/usage/", bad, format="json").status_code == 400
    assert rows("created") == before["created"] + 1
    assert rows("unchanged") == before["unchanged"] + 1
    assert rows("refused") == before["refused"] + 2


def test_metrics_count_a_run_without_progress_as_stalled(client, db, settings):
    settings.BILLING_RUN_STALL_AFTER = 600
    for period, minutes_ago in ((dt.date(2026, 9, 1), 11), (dt.date(2026, 10, 1), 9)):
        BillingRun.objects.create(
            period=period,
            status=BillingRun.Status.RUNNING,
            created_at=NOW,
            started_at=NOW - dt.timedelta(minutes=minutes_ago),
            progress_at=NOW - dt.timedelta(minutes=minutes_ago),
        )
    with freeze_time(NOW):
        text = client.get("/metrics").content.decode()
    # 11 minutes without progress is past the 600 s threshold; 9 minutes is not.
    assert metric(text, "billing_runs", status="running") == 2
    assert metric(text, "billing_runs_stalled") == 1
