"""Customer events go out by e-mail and by a signed webhook, retried with backoff, every attempt
recorded. A real HTTP server on 127.0.0.1 receives the webhooks."""

import datetime as dt
import http.server
import json
import threading
import time
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from freezegun import freeze_time

import accounts.events.records
import accounts.events.webhooks
from accounts.events.records import deliveries_batched, record_customer_event
from accounts.events.tasks import deliver_customer_event, deliver_pending_events
from accounts.events.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_body,
    webhook_retry_countdown,
    webhook_signature,
    webhook_verify,
)
from accounts.models import CustomerEvent, WebhookDelivery
from billingsite.celery import app
from invoices.documents.services import bill_customer
from tests.factories import ApplicationFactory
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db
SECRET = "webhook-test-secret"


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering with the given status codes in turn."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.url + "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):  # noqa: N802
                # Where a followed redirect would land: a page that answers any GET with 200.
                receiver.requests.append({"method": "GET", "path": self.path})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/billing-events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def eager_retries():
    """Eager tasks that retry run the retry in-process (countdown recorded, never slept);
    that needs exceptions kept inside the eager call."""

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


@pytest.fixture
def webhook_settings(settings):
    def configure(url: str, secret: str = SECRET):
        settings.BILLING_WEBHOOK_URL = url
        settings.BILLING_WEBHOOK_SECRET = secret

    return configure


def issued_event(django_capture_on_commit_callbacks, *, execute: bool) -> CustomerEvent:
    customer, _ = premium_customer(dau=8000)
    with django_capture_on_commit_callbacks(execute=execute):
        assert bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT) == "issued"
    return CustomerEvent.objects.get(customer=customer, kind=CustomerEvent.Kind.INVOICE_ISSUED)


def test_invoice_issued_sends_an_email_and_no_webhook_when_none_is_configured(
    price_book, django_capture_on_commit_callbacks, webhook_settings
):
    webhook_settings("", "")
    event = issued_event(django_capture_on_commit_callbacks, execute=True)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [event.customer.billing_email]
    assert message.subject == "Invoice INV-2026-000001 for 2026-10: ¥6,000.00"
    assert "¥6,000.00 was deducted from your prepaid balance" in message.body
    assert "Balance now: ¥14,000.00" in message.body
    event.refresh_from_db()
    assert event.email_sent_at is not None
    assert WebhookDelivery.objects.count() == 0

    # A second delivery of the same event (a redelivered task) sends nothing again.
    deliver_customer_event.delay(event.pk)
    assert len(mail.outbox) == 1


def test_signed_webhook_is_delivered_and_verifiable(
    price_book, django_capture_on_commit_callbacks, webhook_settings
):
    with Receiver([204]) as receiver:
        webhook_settings(receiver.url)
        event = issued_event(django_capture_on_commit_callbacks, execute=True)

    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Billing-Event"] == "invoice_issued"
    assert headers[EVENT_ID_HEADER] == str(event.pk)
    assert webhook_verify(
        body=body,
        timestamp=headers[TIMESTAMP_HEADER],
        signature=headers[SIGNATURE_HEADER],
        secret=SECRET,
        now=timezone.now(),
    )
    document = json.loads(body)
    assert document["kind"] == "invoice_issued"
    assert document["customer"]["external_id"] == event.customer.external_id
    assert document["data"]["invoice_number"] == "INV-2026-000001"
    assert document["data"]["total"] == "6000.00"
    [delivery] = WebhookDelivery.objects.filter(event=event)
    assert (delivery.attempt, delivery.status_code, delivery.succeeded) == (1, 204, True)
    assert delivery.url == receiver.url


def test_failed_webhooks_are_retried_with_backoff_and_every_attempt_recorded(
    price_book, django_capture_on_commit_callbacks, webhook_settings, monkeypatch, eager_retries
):

    countdowns = []
    real_countdown = accounts.events.webhooks.webhook_retry_countdown

    def recording_countdown(retries):
        countdowns.append(real_countdown(retries))
        return countdowns[-1]

    monkeypatch.setattr(accounts.events.webhooks, "webhook_retry_countdown", recording_countdown)
    event = issued_event(django_capture_on_commit_callbacks, execute=False)

    with Receiver([500, 503, 200]) as receiver:
        webhook_settings(receiver.url)
        deliver_customer_event.delay(event.pk)

    deliveries = list(WebhookDelivery.objects.filter(event=event).order_by("attempt"))
    assert [(d.attempt, d.status_code, d.succeeded) for d in deliveries] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert deliveries[0].error.startswith("HTTP 500")
    assert countdowns == [30, 60]
    assert len(receiver.requests) == 3
    # The same event id and body every time; each attempt signed with its own timestamp.
    assert len({r["body"] for r in receiver.requests}) == 1
    assert {r["headers"][EVENT_ID_HEADER] for r in receiver.requests} == {str(event.pk)}
    for request in receiver.requests:
        assert webhook_verify(
            body=request["body"],
            timestamp=request["headers"][TIMESTAMP_HEADER],
            signature=request["headers"][SIGNATURE_HEADER],
            secret=SECRET,
            now=timezone.now(),
        )
    assert len(mail.outbox) == 1  # the e-mail went out once, not once per attempt

    # Delivered: another run of the task does not post again.
    with Receiver([200]) as again:
        webhook_settings(again.url)
        deliver_customer_event.delay(event.pk)
    assert again.requests == []


def test_a_redirect_is_a_failed_delivery_retried_not_followed(
    price_book, django_capture_on_commit_callbacks, webhook_settings, monkeypatch, eager_retries
):
    countdowns = []
    real_countdown = accounts.events.webhooks.webhook_retry_countdown

    def recording_countdown(retries):
        countdowns.append(real_countdown(retries))
        return countdowns[-1]

    monkeypatch.setattr(accounts.events.webhooks, "webhook_retry_countdown", recording_countdown)
    event = issued_event(django_capture_on_commit_callbacks, execute=False)

    with Receiver([302, 204]) as receiver:
        webhook_settings(receiver.url)
        deliver_customer_event.delay(event.pk)

    deliveries = list(WebhookDelivery.objects.filter(event=event).order_by("attempt"))
    assert [(d.attempt, d.status_code, d.succeeded) for d in deliveries] == [
        (1, 302, False),
        (2, 204, True),
    ]
    assert deliveries[0].error.startswith("HTTP 302")
    assert countdowns == [30]
    # Two signed POSTs with the body; the redirect target was never fetched.
    assert [request.get("method", "POST") for request in receiver.requests] == ["POST", "POST"]


def test_delivery_gives_up_after_the_last_retry(
    price_book, django_capture_on_commit_callbacks, webhook_settings, monkeypatch, eager_retries
):
    monkeypatch.setattr("accounts.events.tasks.WEBHOOK_MAX_RETRIES", 2)
    event = issued_event(django_capture_on_commit_callbacks, execute=False)
    with Receiver([502]) as receiver:
        webhook_settings(receiver.url)
        result = deliver_customer_event.delay(event.pk)
    assert result.get()["gave_up"] is True
    assert len(receiver.requests) == 3
    assert list(
        WebhookDelivery.objects.filter(event=event)
        .order_by("attempt")
        .values_list("attempt", "succeeded")
    ) == [(1, False), (2, False), (3, False)]


def test_unreachable_endpoint_is_recorded_as_an_error(
    price_book, django_capture_on_commit_callbacks, webhook_settings, monkeypatch
):
    monkeypatch.setattr("accounts.events.tasks.WEBHOOK_MAX_RETRIES", 0)
    event = issued_event(django_capture_on_commit_callbacks, execute=False)
    with Receiver([200]) as receiver:
        closed_url = receiver.url
    webhook_settings(closed_url)

    deliver_customer_event.delay(event.pk)

    [delivery] = WebhookDelivery.objects.filter(event=event)
    assert delivery.status_code is None and not delivery.succeeded
    assert "Connection refused" in delivery.error or "URLError" in delivery.error


def test_url_without_secret_sends_nothing_unsigned(
    price_book, django_capture_on_commit_callbacks, webhook_settings
):
    with Receiver([200]) as receiver:
        webhook_settings(receiver.url, secret="")
        issued_event(django_capture_on_commit_callbacks, execute=True)
    assert receiver.requests == []
    assert WebhookDelivery.objects.count() == 0


def test_signature_binds_body_timestamp_and_secret():
    body = b'{"id":1,"kind":"suspended"}'
    now = dt.datetime(2026, 11, 9, 0, 10, tzinfo=dt.UTC)
    stamp = int(now.timestamp())
    signature = webhook_signature(body=body, timestamp=stamp, secret=SECRET)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64

    def verify(**overrides):
        arguments = {
            "body": body,
            "timestamp": str(stamp),
            "signature": signature,
            "secret": SECRET,
            "now": now,
        }
        return webhook_verify(**{**arguments, **overrides})

    assert verify()
    assert not verify(body=body + b" ")
    assert not verify(secret="other")
    assert not verify(timestamp=str(stamp + 1))
    assert not verify(now=now + dt.timedelta(minutes=6))  # replayed too late
    assert not verify(timestamp="soon")


def test_backoff_doubles_and_is_capped():
    assert [webhook_retry_countdown(n) for n in range(9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]


def test_suspension_webhook_names_the_applications_to_shut_down(price_book):
    customer, app = premium_customer(balance="")
    other = ApplicationFactory(customer=customer, plan="free", created_on=dt.date(2026, 9, 1))
    event = CustomerEvent.objects.create(
        customer=customer,
        kind=CustomerEvent.Kind.SUSPENDED,
        dedupe_key="suspended:test",
        payload={"balance": "-10.00"},
        created_at=BILLING_MOMENT,
    )
    document = json.loads(webhook_body(event=event))
    assert document["app_keys"] == sorted([app.app_key, other.app_key])
    assert document["data"] == {"balance": "-10.00"}
    assert Decimal(document["data"]["balance"]) == Decimal("-10.00")


@pytest.mark.django_db(transaction=True)
def test_events_committed_in_a_batch_go_to_the_broker_together(price_book, monkeypatch):

    singles, batches = [], []
    monkeypatch.setattr(accounts.events.records, "_deliver", singles.append)
    monkeypatch.setattr(accounts.events.records, "_deliver_many", batches.append)
    monkeypatch.setattr(accounts.events.records, "BATCH_SIZE", 2)
    customer, _ = premium_customer(balance="")

    def raise_event(key: str) -> None:
        with transaction.atomic():
            record_customer_event(
                customer=customer, kind="suspended", dedupe_key=key, payload={}, now=BILLING_MOMENT
            )

    with deliveries_batched():
        for key in ("a", "b", "c"):
            raise_event(key)
        with pytest.raises(RuntimeError), transaction.atomic():
            record_customer_event(
                customer=customer,
                kind="suspended",
                dedupe_key="rolled-back",
                payload={},
                now=BILLING_MOMENT,
            )
            raise RuntimeError("rolled back: its event must never be delivered")
    raise_event("d")
    raise_event("a")  # already recorded: nothing new to deliver

    ids = dict(CustomerEvent.objects.values_list("dedupe_key", "id"))
    assert batches == [[ids["a"], ids["b"]], [ids["c"]]]
    assert singles == [ids["d"]]
    assert "rolled-back" not in ids


def test_sweep_delivers_events_whose_email_never_went_out(price_book):

    customer, _ = premium_customer(balance="")
    old = CustomerEvent.objects.create(
        customer=customer, kind="suspended", dedupe_key="old", payload={}, created_at=BILLING_MOMENT
    )
    CustomerEvent.objects.create(
        customer=customer,
        kind="reactivated",
        dedupe_key="fresh",
        payload={"balance": "0.00"},
        created_at=BILLING_MOMENT + dt.timedelta(minutes=50),
    )
    with freeze_time(BILLING_MOMENT + dt.timedelta(hours=1)):
        assert deliver_pending_events.delay().get() == 1

    old.refresh_from_db()
    assert old.email_sent_at is not None
    assert [m.subject for m in mail.outbox] == ["Your service is suspended"]
    assert CustomerEvent.objects.get(dedupe_key="fresh").email_sent_at is None


class RetryScheduled(Exception):
    pass


def test_a_backoff_longer_than_half_the_visibility_timeout_waits_in_hops(
    price_book, django_capture_on_commit_callbacks, webhook_settings, monkeypatch, settings
):
    """Redis gives a message not acknowledged within its visibility timeout to another worker:
    a retry waiting longer inside a worker would run twice. The wait is cut in hops of at most
    half the timeout, each a new message, and the attempt count does not move."""

    settings.CELERY_BROKER_VISIBILITY_TIMEOUT = 180
    event = issued_event(django_capture_on_commit_callbacks, execute=False)
    retries, hops = [], []

    def record_retry(*args, **kwargs):
        retries.append(kwargs)
        raise RetryScheduled

    monkeypatch.setattr(deliver_customer_event, "retry", record_retry)
    monkeypatch.setattr(
        deliver_customer_event, "apply_async", lambda *args, **kwargs: hops.append((args, kwargs))
    )
    # The 6th attempt fails: the next one is due in 30 s * 2**5 = 960 s.
    deliver_customer_event.push_request(retries=5, is_eager=False)
    try:
        with Receiver([502]) as receiver:
            webhook_settings(receiver.url)
            with pytest.raises(RetryScheduled):
                deliver_customer_event.run(event.pk)
            [retry] = retries
            assert retry["countdown"] == 90 and retry["args"] == (event.pk,)
            assert 950 < retry["kwargs"]["not_before"] - time.time() <= 960

            # Woken up after the first hop: 870 s early, so only another hop.
            result = deliver_customer_event.run(event.pk, not_before=time.time() + 870)
            assert len(receiver.requests) == 1
    finally:
        deliver_customer_event.pop_request()
    assert result == {"event": event.pk, "waiting": 870}
    [(args, kwargs)] = hops
    assert args[0] == (event.pk,) and kwargs["countdown"] == 90 and kwargs["retries"] == 5
    assert WebhookDelivery.objects.filter(event=event).count() == 1
