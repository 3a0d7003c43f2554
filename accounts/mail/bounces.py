"""Bounces and complaints that reach us after the SMTP exchange: the mail provider's webhook
(`accounts.api.mail_webhooks`) and returned delivery status notifications (RFC 3464, read by
`manage.py mail_bounce_read` from an MTA pipe). Both become `Notice`s recorded by
`notice_record`, the one rule:

- each (notice, recipient) is one `MailBounce` row (a unique constraint), so a notice the
  provider delivers twice, or two workers at once, change things once;
- a bounce marks the latest message sent to the address in the last BOUNCE_WINDOW refused
  (what a synchronous 5xx refusal does, `accounts.mail.sending`) and every billing contact
  with that address bounced, which finance sees;
- a complaint (the recipient marked it as spam) changes no delivery and no contact: the
  message arrived and the address works (the customer's page would otherwise say it could
  not be delivered); finance reads it in the admin's mail bounces, linked to the delivery.
"""

from __future__ import annotations

import datetime as dt
import email
import hashlib
from dataclasses import dataclass
from email.message import Message

from django.db import IntegrityError, transaction
from flufl.bounce import all_failures
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.mail.contacts import normalized_email
from accounts.models import BillingContact, EmailDelivery, MailBounce
from billingsite.parsers import json_loads_bounded

# A notice about a message older than this is not matched to a delivery (the address is
# still marked bounced): providers report bounces within minutes to a few days.
BOUNCE_WINDOW = dt.timedelta(days=14)


@dataclass(frozen=True)
class Notice:
    notice_id: str
    source: str  # MailBounce.Source
    kind: str  # MailBounce.Kind
    recipients: tuple[str, ...]
    reason: str = ""


def _latest_delivery(address: str, now: dt.datetime) -> EmailDelivery | None:
    return (
        EmailDelivery.objects.filter(
            recipient__iexact=address,
            status__in=[EmailDelivery.Status.SENT, EmailDelivery.Status.SENDING],
            created_at__gte=now - BOUNCE_WINDOW,
        )
        .order_by("-created_at", "-id")
        .first()
    )


def notice_record(*, notice: Notice, now: dt.datetime) -> list[MailBounce]:
    """Record the notice's new (notice, recipient) pairs and apply them; returns the rows it
    created (none when the notice was recorded before)."""
    recorded = []
    for address in dict.fromkeys(normalized_email(r) for r in notice.recipients):
        if not address:
            continue
        try:
            with transaction.atomic():
                bounce = MailBounce.objects.create(
                    notice_id=notice.notice_id[:255],
                    source=notice.source,
                    kind=notice.kind,
                    recipient=address,
                    reason=notice.reason[:500],
                    received_at=now,
                )
                bounce.delivery = _apply(bounce, now=now)
                bounce.save(update_fields=["delivery"])
        except IntegrityError:
            # Recorded before (a redelivered notice, or another worker right now).
            continue
        recorded.append(bounce)
    return recorded


def _apply(bounce: MailBounce, *, now: dt.datetime) -> EmailDelivery | None:
    delivery = _latest_delivery(bounce.recipient, now)
    if bounce.kind != MailBounce.Kind.BOUNCE:
        # A complaint: the address works and the message arrived; the row is the record.
        return delivery
    reason = f"bounce: {bounce.reason}" if bounce.reason else "bounce"
    if delivery is not None:
        EmailDelivery.objects.filter(pk=delivery.pk).update(
            status=EmailDelivery.Status.REFUSED, error=reason[:2000]
        )
    BillingContact.objects.filter(email__iexact=bounce.recipient).update(
        bounced_at=now, bounce_reason=reason[:500]
    )
    return delivery


# --- the provider's webhook ---------------------------------------------------------------------

# The provider's event types (Resend's names; other providers posting Standard Webhooks use
# the same payload through a relay): their kind. Other types are acknowledged and ignored.
WEBHOOK_KINDS = {
    "email.bounced": MailBounce.Kind.BOUNCE,
    "email.complained": MailBounce.Kind.COMPLAINT,
}
# Svix (Resend's sender) names the Standard Webhooks headers svix-*; the scheme is the same.
_HEADER_ALIASES = {
    "svix-id": "webhook-id",
    "svix-timestamp": "webhook-timestamp",
    "svix-signature": "webhook-signature",
}


class NoticeRefused(ValueError):
    """A webhook request that is not a genuine, well-formed notice: nothing is recorded."""


def webhook_verify(*, body: bytes, headers: dict[str, str], secret: str) -> tuple[str, object]:
    """(notice id, payload) of a request signed with `secret` by the Standard Webhooks scheme
    (HMAC-SHA256 of id, timestamp and body; the timestamp within 5 minutes, so a captured
    request cannot be replayed later), or NoticeRefused. The check is the `standardwebhooks`
    library's, the specification's own implementation."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for alias, name in _HEADER_ALIASES.items():
        if alias in lowered and name not in lowered:
            lowered[name] = lowered[alias]
    try:
        Webhook(secret).verify(body, lowered, json_parse=False)
    except (WebhookVerificationError, ValueError, UnicodeDecodeError) as error:
        raise NoticeRefused(f"signature not verified: {error}") from None
    try:
        # Signed is not harmless: the body is parsed with the project's bounds (depth, NUL).
        payload = json_loads_bounded(body)
    except ValueError as error:
        raise NoticeRefused(f"the body is not valid JSON: {error}") from None
    return lowered["webhook-id"], payload


def webhook_notice(*, notice_id: str, payload: object) -> Notice | None:
    """The notice in a verified payload (`{"type", "data": {"to": [...], "bounce":
    {"message", ...}}}`); None for an event type that is not a bounce or a complaint."""
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise NoticeRefused("the payload has no event type")
    kind = WEBHOOK_KINDS.get(payload["type"])
    if kind is None:
        return None
    data = payload.get("data")
    recipients = data.get("to") if isinstance(data, dict) else None
    if isinstance(recipients, str):
        recipients = [recipients]
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, str) and "@" in r and len(r) <= 254 for r in recipients)
    ):
        raise NoticeRefused("data.to must list the recipients' addresses")
    bounce = data.get("bounce") if isinstance(data, dict) else None
    reason = ""
    if isinstance(bounce, dict):
        parts = [bounce.get("type"), bounce.get("subType"), bounce.get("message")]
        reason = " / ".join(str(part) for part in parts if part)
    return Notice(
        notice_id=notice_id,
        source=MailBounce.Source.WEBHOOK,
        kind=kind,
        recipients=tuple(recipients),
        reason=reason,
    )


# --- returned messages (RFC 3464 delivery status notifications) ------------------------------


def dsn_notice(raw: bytes) -> Notice | None:
    """The permanent failures of a returned message as a bounce notice (None: it reports no
    permanent failure, e.g. a delay warning). Parsed by flufl.bounce, which knows RFC 3464
    and the common non-standard formats; its id is the DSN's Message-ID (or a digest of it)."""
    message: Message = email.message_from_bytes(raw)
    _temporary, permanent = all_failures(message)
    if not permanent:
        return None
    notice_id = (message.get("Message-ID") or "").strip()
    if not notice_id:
        notice_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    recipients = tuple(sorted(address.decode(errors="replace") for address in permanent))
    subject = str(message.get("Subject") or "returned message").strip()
    return Notice(
        notice_id=notice_id,
        source=MailBounce.Source.DSN,
        kind=MailBounce.Kind.BOUNCE,
        recipients=recipients,
        reason=f"returned message: {subject}"[:500],
    )
