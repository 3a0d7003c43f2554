"""Prometheus metrics: HTTP latency and statuses, usage rows, and the billing figures an
operator pages on.

Request and usage counters are kept by the process that served the request. Under gunicorn
(several worker processes) they go to PROMETHEUS_MULTIPROC_DIR, which billingsite/ops/gunicorn.py
sets up, and /metrics adds them up across workers. The billing figures (runs, deliveries,
arrears) are read from the database at scrape time, so every web process answers the same and
nothing is lost when a worker restarts.
"""

from __future__ import annotations

import datetime as dt
import os

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

HTTP_DURATION = Histogram(
    "billing_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_RESPONSES = Counter(
    "billing_http_responses_total",
    "HTTP responses by method, URL route and status code.",
    ["method", "route", "status"],
)
USAGE_ROWS = Counter(
    "billing_usage_rows_total",
    "Daily usage rows pushed to POST /api/v1/usage/: created, updated, unchanged or refused "
    "(every row of a refused request).",
    ["outcome"],
)

# Runs shown one by one (accounts, duration); older runs only count in billing_runs.
RECENT_RUNS = 12


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    HTTP_DURATION.labels(method, route).observe(seconds)
    HTTP_RESPONSES.labels(method, route, str(status)).inc()


def count_usage_rows(*, created: int = 0, updated: int = 0, unchanged: int = 0, refused: int = 0):
    for outcome, rows in (
        ("created", created),
        ("updated", updated),
        ("unchanged", unchanged),
        ("refused", refused),
    ):
        if rows:
            USAGE_ROWS.labels(outcome).inc(rows)


class BillingCollector:
    """Reads the billing tables at scrape time (a handful of COUNT queries)."""

    def __init__(self, *, now: dt.datetime):
        self.now = now

    def collect(self):
        BillingRun = apps.get_model("invoices", "BillingRun")
        Customer = apps.get_model("accounts", "Customer")
        CustomerEvent = apps.get_model("accounts", "CustomerEvent")
        WebhookDelivery = apps.get_model("accounts", "WebhookDelivery")

        runs = GaugeMetricFamily("billing_runs", "Billing runs by status.", labels=["status"])
        by_status = dict(
            BillingRun.objects.order_by().values_list("status").annotate(n=Count("id"))
        )
        for status in BillingRun.Status.values:
            runs.add_metric([status], by_status.get(status, 0))
        yield runs

        accounts = GaugeMetricFamily(
            "billing_run_accounts",
            f"Accounts of the {RECENT_RUNS} latest runs by outcome (total: accounts in the run; "
            "issued and held: invoices written; failed: accounts whose billing raised).",
            labels=["run", "period", "outcome"],
        )
        duration = GaugeMetricFamily(
            "billing_run_duration_seconds",
            "Start to last chunk of the latest runs (still running: start to now).",
            labels=["run", "period", "status"],
        )
        for run in BillingRun.objects.order_by("-created_at", "-id")[:RECENT_RUNS]:
            labels = [str(run.pk), f"{run.period:%Y-%m}"]
            for outcome, value in (
                ("total", run.accounts_total),
                ("done", run.accounts_done),
                ("issued", run.invoices_issued),
                ("held", run.invoices_held),
                ("skipped", run.accounts_skipped),
                ("already_billed", run.accounts_already_billed),
                ("failed", run.accounts_failed),
            ):
                accounts.add_metric([*labels, outcome], value)
            if run.started_at:
                end = run.finished_at or self.now
                duration.add_metric([*labels, run.status], (end - run.started_at).total_seconds())
        yield accounts
        yield duration

        # The stall rule lives with the runs (invoices.run.runs); imported here, at scrape time,
        # because the kernel imports no app at module level.
        from invoices.run.runs import billing_runs_stalled  # noqa: PLC0415

        yield GaugeMetricFamily(
            "billing_runs_stalled",
            "Running runs without progress for BILLING_RUN_STALL_AFTER seconds: resume or close "
            "them from the admin (or `manage.py bill --period P` resumes).",
            value=billing_runs_stalled(now=self.now).count(),
        )

        customers = GaugeMetricFamily(
            "billing_customers", "Customers in arrears and suspended.", labels=["state"]
        )
        counts = Customer.objects.aggregate(
            in_arrears=Count("id", filter=Q(arrears_since__isnull=False)),
            suspended=Count("id", filter=Q(suspended_at__isnull=False)),
        )
        for state, value in counts.items():
            customers.add_metric([state], value)
        yield customers

        unsent = CustomerEvent.objects.filter(email_sent_at__isnull=True)
        stale_before = self.now - dt.timedelta(minutes=15)
        emails = GaugeMetricFamily(
            "billing_emails", "Customer-event e-mails not sent yet.", labels=["state"]
        )
        emails.add_metric(["pending"], unsent.count())
        # The beat safety net re-sends after 15 minutes; older than that means sending fails.
        emails.add_metric(["failed"], unsent.filter(created_at__lt=stale_before).count())
        yield emails

        webhook_on = bool(settings.BILLING_WEBHOOK_URL and settings.BILLING_WEBHOOK_SECRET)
        undelivered = CustomerEvent.objects.filter(
            ~Exists(WebhookDelivery.objects.filter(event=OuterRef("pk"), succeeded=True))
        )
        webhooks = GaugeMetricFamily(
            "billing_webhooks",
            "Customer events whose webhook has not been delivered (pending; failed: at least "
            "one attempt failed), 0 when no webhook is configured.",
            labels=["state"],
        )
        if webhook_on:
            webhooks.add_metric(["pending"], undelivered.count())
            failed = undelivered.filter(
                Exists(WebhookDelivery.objects.filter(event=OuterRef("pk"), succeeded=False))
            )
            webhooks.add_metric(["failed"], failed.count())
        else:
            webhooks.add_metric(["pending"], 0)
            webhooks.add_metric(["failed"], 0)
        yield webhooks

        backlog_query = Q(email_sent_at__isnull=True)
        if webhook_on:
            backlog_query |= Q(
                ~Exists(WebhookDelivery.objects.filter(event=OuterRef("pk"), succeeded=True))
            )
        yield GaugeMetricFamily(
            "billing_outbox_backlog",
            "Customer events not fully delivered yet (e-mail, or webhook when configured).",
            value=CustomerEvent.objects.filter(backlog_query).count(),
        )


def render_metrics(*, now: dt.datetime) -> bytes:
    """The exposition text: this process's (or all gunicorn workers') counters + the billing
    figures."""
    billing = CollectorRegistry(auto_describe=False)
    billing.register(BillingCollector(now=now))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_metrics = CollectorRegistry()
        MultiProcessCollector(process_metrics)
    else:
        process_metrics = REGISTRY
    return generate_latest(process_metrics) + generate_latest(billing)
