"""Telling the customer about a CustomerEvent: e-mails to its billing contacts
(`accounts.mail`) and a signed webhook to the IM platform.

Webhook contract (for the receiver):
- POST, `Content-Type: application/json`, body = the JSON document of `webhook_body`.
- `X-Billing-Timestamp`: Unix seconds when the attempt was signed.
- `X-Billing-Signature`: `sha256=` + hex HMAC-SHA256, keyed with BILLING_WEBHOOK_SECRET, over
  `<timestamp>.` followed by the raw body bytes. Binding the timestamp into the MAC lets the
  receiver refuse replays older than a few minutes (`webhook_verify`).
- `X-Billing-Event` (the type: the event's kind, `balance.low` for a low balance) and `X-Billing-Event-Id`: the same id on every retry of one event,
  so the receiver can deduplicate.
- Any 2xx is success; anything else (or no answer) is retried with exponential backoff. A
  redirect (3xx) is a failure too: it is never followed, since following it would re-send
  the event as a body-less GET and record the redirect target's answer as a delivery.
Nothing is sent unless both BILLING_WEBHOOK_URL and BILLING_WEBHOOK_SECRET are set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings

from accounts.mail.sending import event_email_send
from accounts.models import Application, CustomerEvent, WebhookDelivery

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Billing-Timestamp"
SIGNATURE_HEADER = "X-Billing-Signature"
EVENT_HEADER = "X-Billing-Event"
EVENT_ID_HEADER = "X-Billing-Event-Id"
SIGNATURE_TOLERANCE_SECONDS = 300

# Kinds after which the IM platform must change what the customer's applications may do.
SERVICE_KINDS = (CustomerEvent.Kind.SUSPENDED, CustomerEvent.Kind.REACTIVATED)
# Kinds the IM platform is told about. Receipts and statements are e-mail only: nothing
# changes on the platform's side. The low-balance alert is sent too, so the developer console
# can warn the customer's developers where they work.
WEBHOOK_KINDS = frozenset(
    {
        CustomerEvent.Kind.INVOICE_ISSUED,
        CustomerEvent.Kind.ARREARS_STARTED,
        CustomerEvent.Kind.SUSPENSION_WARNING,
        CustomerEvent.Kind.SUSPENDED,
        CustomerEvent.Kind.REACTIVATED,
        CustomerEvent.Kind.CREDIT_NOTE_ISSUED,
        CustomerEvent.Kind.BALANCE_LOW,
    }
)
# The webhook's event type where it is not the event's kind: the low-balance alert is
# published as `balance.low` (the name the platform subscribes to); the stored kind stays
# `balance_low`, as the e-mails and the admin know it.
WEBHOOK_TYPES = {CustomerEvent.Kind.BALANCE_LOW: "balance.low"}


def webhook_type(kind: str) -> str:
    """The `kind` of the webhook body and the X-Billing-Event header of an event kind."""
    return WEBHOOK_TYPES.get(kind, str(kind))


def webhook_url() -> str:
    return getattr(settings, "BILLING_WEBHOOK_URL", "") or ""


def webhook_secret() -> str:
    return getattr(settings, "BILLING_WEBHOOK_SECRET", "") or ""


def webhook_configured() -> bool:
    return bool(webhook_url() and webhook_secret())


def webhook_body(*, event: CustomerEvent) -> bytes:
    """The JSON body; the same bytes for every attempt of one event."""
    customer = event.customer
    document = {
        "id": event.pk,
        "kind": webhook_type(event.kind),
        "created_at": event.created_at.isoformat(),
        "customer": {"external_id": customer.external_id, "name": customer.name},
        "data": event.payload,
    }
    if event.kind in SERVICE_KINDS:
        document["app_keys"] = sorted(
            Application.objects.filter(customer=customer).values_list("app_key", flat=True)
        )
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(*, body: bytes, timestamp: int, secret: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def webhook_verify(
    *,
    body: bytes,
    timestamp: str,
    signature: str,
    secret: str,
    now: dt.datetime,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: a valid MAC and a fresh timestamp."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now.timestamp() - stamp) > tolerance:
        return False
    expected = webhook_signature(body=body, timestamp=stamp, secret=secret)
    return hmac.compare_digest(expected, signature or "")


def webhook_retry_countdown(retries: int) -> int:
    """Seconds before attempt `retries + 2`: 30 s, 1 min, 2 min, ... capped at 1 hour."""
    return min(30 * 2**retries, 3600)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows 301/302/303 by re-sending a POST as a GET without its body; returning
    None makes the 3xx surface as an HTTPError with its own status instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_webhook_opener = urllib.request.build_opener(_NoRedirects)


def webhook_deliver(
    *, event: CustomerEvent, now: dt.datetime, timeout: float = 10.0
) -> WebhookDelivery | None:
    """One signed POST of the event; every attempt is recorded. None: not configured."""
    url, secret = webhook_url(), webhook_secret()
    if not (url and secret):
        if url:
            logger.error("BILLING_WEBHOOK_URL is set without BILLING_WEBHOOK_SECRET: not sent")
        return None
    body = webhook_body(event=event)
    timestamp = int(now.timestamp())
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "im-billing-webhook/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_signature(body=body, timestamp=timestamp, secret=secret),
            EVENT_HEADER: webhook_type(event.kind),
            EVENT_ID_HEADER: str(event.pk),
        },
    )
    status_code, error = None, ""
    try:
        with _webhook_opener.open(request, timeout=timeout) as response:
            status_code = response.status
    except urllib.error.HTTPError as exc:
        status_code, error = exc.code, f"HTTP {exc.code}: {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    attempt = WebhookDelivery.objects.filter(event=event).count() + 1
    return WebhookDelivery.objects.create(
        event=event,
        url=url,
        attempt=attempt,
        status_code=status_code,
        error=error[:2000],
        attempted_at=now,
        succeeded=status_code is not None and 200 <= status_code < 300,
    )


@dataclass(frozen=True)
class DeliveryResult:
    email_sent: bool
    webhook: WebhookDelivery | None
    # Something is left to do: the task retries with backoff.
    retry: bool


def event_deliver(*, event: CustomerEvent, now: dt.datetime) -> DeliveryResult:
    """Send what has not been sent yet: the e-mail, then the webhook (until one succeeds)."""
    retry = False
    email_sent = False
    try:
        email_sent = event_email_send(event=event, now=now)
    except Exception:
        logger.exception("e-mail for customer event %s failed", event.pk)
        retry = True
    delivery = None
    already_delivered = WebhookDelivery.objects.filter(event=event, succeeded=True).exists()
    if event.kind in WEBHOOK_KINDS and webhook_configured() and not already_delivered:
        delivery = webhook_deliver(event=event, now=now)
        if delivery is not None and not delivery.succeeded:
            retry = True
    return DeliveryResult(email_sent=email_sent, webhook=delivery, retry=retry)
