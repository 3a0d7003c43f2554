"""Sending a customer event's e-mail once per recipient.

Each (event, recipient, resend) is one `EmailDelivery` row (a unique constraint). A row is
claimed (pending -> sending, one conditional UPDATE that commits) before the message goes to
the mail server and marked sent after, so a retried task, a re-run month, a redelivered broker
message or two workers at once never send one message twice. A temporary failure (connection,
4xx) puts the row back to pending and the task retries it with backoff; a permanent refusal of
the address (5xx) marks the row refused and the contact bounced, and is not retried. A row
whose process died between the claim and the mark stays `sending`: it may have gone out, so it
is never sent again by itself; finance sees it and may resend.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib

from django.core.mail import get_connection
from django.db import IntegrityError, transaction
from django.db.models import F, Max

from accounts.mail.contacts import (
    billing_recipients,
    contact_record_accepted,
    contact_record_bounce,
    normalized_email,
)
from accounts.mail.content import RenderedEmail, email_language, email_render
from accounts.models import CustomerEvent, EmailDelivery

logger = logging.getLogger(__name__)

Status = EmailDelivery.Status


class EmailNotFinished(Exception):
    """Some recipients are left for a retry (a temporary failure)."""


def permanent_refusal(error: Exception) -> str | None:
    """The reason when the mail server refused the recipient for good (5xx), else None."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [(code, msg) for code, msg in error.recipients.values()]
        if codes and all(code >= 500 for code, _msg in codes):
            code, msg = codes[0]
            text = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
            return f"{code} {text}"
    return None


def _delivery_rows(*, event: CustomerEvent, now: dt.datetime) -> list[EmailDelivery]:
    """The event's own rows (resend 0), one per current recipient, created once."""
    language = email_language(event.customer)
    rows = []
    for recipient, contact in billing_recipients(customer=event.customer, kind=event.kind):
        try:
            with transaction.atomic():
                row, _created = EmailDelivery.objects.get_or_create(
                    event=event,
                    recipient=recipient,
                    resend=0,
                    defaults={"contact": contact, "language": language, "created_at": now},
                )
        except IntegrityError:
            row = EmailDelivery.objects.get(event=event, recipient=recipient, resend=0)
        rows.append(row)
    return rows


def _claim(row: EmailDelivery, *, rendered: RenderedEmail) -> bool:
    claimed = EmailDelivery.objects.filter(pk=row.pk, status=Status.PENDING).update(
        status=Status.SENDING,
        attempts=F("attempts") + 1,
        subject=rendered.subject,
        language=rendered.language,
        attachments=", ".join(a.filename for a in rendered.attachments)[:500],
    )
    return bool(claimed)


def _send_one(row: EmailDelivery, *, rendered: RenderedEmail, connection, now) -> str:
    """Send one claimed row; returns its final status (pending: retry later)."""
    customer_id = row.event.customer_id
    try:
        connection.send_messages([rendered.message_to(row.recipient)])
    except Exception as error:
        refusal = permanent_refusal(error)
        if refusal is not None:
            EmailDelivery.objects.filter(pk=row.pk).update(status=Status.REFUSED, error=refusal)
            contact_record_bounce(
                customer_id=customer_id, email=row.recipient, reason=refusal, now=now
            )
            return Status.REFUSED
        logger.warning("e-mail %s to %s failed: %s", row.pk, row.recipient, error)
        EmailDelivery.objects.filter(pk=row.pk).update(
            status=Status.PENDING, error=f"{type(error).__name__}: {error}"[:2000]
        )
        return Status.PENDING
    _mark_sent(row, now=now)
    contact_record_accepted(customer_id=customer_id, email=row.recipient)
    return Status.SENT


def _mark_sent(row: EmailDelivery, *, now: dt.datetime) -> None:
    EmailDelivery.objects.filter(pk=row.pk).update(status=Status.SENT, sent_at=now, error="")


def deliveries_send(*, rows: list[EmailDelivery], event: CustomerEvent, now: dt.datetime) -> int:
    """Send the pending rows of one event (rendered once for all of them). Returns how many
    went out; raises EmailNotFinished when some are left pending for a retry."""
    pending = [row for row in rows if row.status == Status.PENDING]
    if not pending:
        return 0
    by_language: dict[str, RenderedEmail] = {}
    sent = 0
    left = 0
    connection = get_connection(fail_silently=False)
    try:
        for row in pending:
            language = row.language or email_language(event.customer)
            if language not in by_language:
                by_language[language] = email_render(event=event, language=language)
            rendered = by_language[language]
            if not _claim(row, rendered=rendered):
                continue
            row.event = event
            status = _send_one(row, rendered=rendered, connection=connection, now=now)
            sent += status == Status.SENT
            left += status == Status.PENDING
    finally:
        try:
            connection.close()
        except Exception:
            logger.warning("closing the mail connection failed", exc_info=True)
    if left:
        raise EmailNotFinished(f"{left} recipient(s) of event {event.pk} left for a retry")
    return sent


def event_email_send(*, event: CustomerEvent, now: dt.datetime) -> bool:
    """Send the event's e-mail to each of its recipients once. Returns whether anything went
    out now. The event's `email_sent_at` is set once no recipient is left pending."""
    if event.email_sent_at is not None:
        return False
    rows = _delivery_rows(event=event, now=now)
    sent = deliveries_send(rows=rows, event=event, now=now)
    CustomerEvent.objects.filter(pk=event.pk, email_sent_at__isnull=True).update(email_sent_at=now)
    event.email_sent_at = now
    return sent > 0


def email_resend(
    *, event: CustomerEvent, requested_by, now: dt.datetime, recipients: list[str] | None = None
) -> list[EmailDelivery]:
    """Finance sends the event's message again, on purpose: a new row per recipient (the
    event's current recipients, or the given addresses), sent after this transaction
    commits (`accounts.events.tasks.send_email_deliveries`)."""
    addresses = (
        [normalized_email(r) for r in recipients]
        if recipients
        else [r for r, _c in billing_recipients(customer=event.customer, kind=event.kind)]
    )
    contacts = {normalized_email(c.email): c for c in event.customer.billing_contacts.all()}
    language = email_language(event.customer)
    rows = []
    with transaction.atomic():
        # Serialises two resends of one event (each takes the next number).
        CustomerEvent.objects.select_for_update().get(pk=event.pk)
        for address in dict.fromkeys(addresses):
            last = EmailDelivery.objects.filter(event=event, recipient=address).aggregate(
                n=Max("resend")
            )["n"]
            rows.append(
                EmailDelivery.objects.create(
                    event=event,
                    recipient=address,
                    contact=contacts.get(address),
                    resend=(last or 0) + 1,
                    language=language,
                    created_at=now,
                    requested_by=requested_by,
                )
            )
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _send_later(ids))
    return rows


def _send_later(delivery_ids: list[int]) -> None:
    # Inline: the events package imports this module (circular at import time).
    from accounts.events.records import BROKER_ERRORS  # noqa: PLC0415
    from accounts.events.tasks import send_email_deliveries  # noqa: PLC0415

    try:
        send_email_deliveries.delay(delivery_ids)
    except BROKER_ERRORS:
        logger.exception("broker unavailable: resend %s not queued", delivery_ids)
