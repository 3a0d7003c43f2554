"""Bounces and complaints after the SMTP exchange: the provider's signed webhook (Standard
Webhooks / Svix headers) and returned messages (RFC 3464 DSNs). A notice marks the delivery
refused and the contact bounced once; forged, stale or malformed requests change nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts import roles
from accounts.mail.bounces import Notice, dsn_notice, notice_record
from accounts.models import BillingContact, CustomerEvent, EmailDelivery, MailBounce
from tests.admin.conftest import as_user
from tests.factories import CustomerFactory, StaffFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"a test secret of the mail provider").decode()
URL = reverse("mail:events")
Status = EmailDelivery.Status


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.MAIL_WEBHOOK_SECRET = SECRET


def sent_to(address: str, *, customer=None, days_ago: int = 0, status=Status.SENT) -> EmailDelivery:
    customer = customer or CustomerFactory(billing_email=address)
    now = timezone.now() - dt.timedelta(days=days_ago)
    event = CustomerEvent.objects.create(
        customer=customer,
        kind=CustomerEvent.Kind.INVOICE_ISSUED,
        dedupe_key=f"invoice_issued:{customer.pk}:{days_ago}:{address}",
        created_at=now,
    )
    return EmailDelivery.objects.create(
        event=event, recipient=address, status=status, created_at=now, sent_at=now
    )


def bounced(address: str = "gone@example.com", kind: str = "email.bounced") -> dict:
    return {
        "type": kind,
        "created_at": "2026-11-30T10:00:00.000Z",
        "data": {
            "email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
            "to": [address],
            "subject": "Invoice INV-2026-000001",
            "bounce": {
                "type": "Permanent",
                "subType": "General",
                "message": "550 5.1.1 The email account does not exist.",
            },
        },
    }


def post(client, payload, *, notice_id="msg_2Lh9KRb0pwk1", secret=SECRET, svix=True, at=None):
    body = json.dumps(payload)
    timestamp = at or timezone.now()
    signature = Webhook(secret).sign(notice_id, timestamp, body)
    prefix = "svix" if svix else "webhook"
    headers = {
        f"HTTP_{prefix.upper()}_ID": notice_id,
        f"HTTP_{prefix.upper()}_TIMESTAMP": str(int(timestamp.timestamp())),
        f"HTTP_{prefix.upper()}_SIGNATURE": signature,
    }
    return client.post(URL, body, content_type="application/json", **headers)


def test_a_bounce_marks_the_latest_delivery_refused_and_the_contact_bounced(client):
    older = sent_to("gone@example.com", days_ago=3)
    latest = sent_to("gone@example.com", customer=older.event.customer)
    response = post(client, bounced())
    assert response.status_code == 204
    latest.refresh_from_db()
    older.refresh_from_db()
    assert (latest.status, older.status) == (Status.REFUSED, Status.SENT)
    assert (
        latest.error == "bounce: Permanent / General / 550 5.1.1 The email account does not exist."
    )
    contact = BillingContact.objects.get(email="gone@example.com")
    assert contact.bounced_at is not None
    assert "does not exist" in contact.bounce_reason
    [row] = MailBounce.objects.all()
    assert (row.kind, row.source, row.recipient, row.delivery) == (
        "bounce",
        "webhook",
        "gone@example.com",
        latest,
    )


def test_the_same_notice_twice_is_one_change(client):
    delivery = sent_to("gone@example.com")
    assert post(client, bounced()).status_code == 204
    first = BillingContact.objects.get(email="gone@example.com").bounced_at
    # A later message was accepted (the bounce cleared), then the provider retries the notice.
    BillingContact.objects.update(bounced_at=None, bounce_reason="")
    assert post(client, bounced()).status_code == 204
    assert MailBounce.objects.count() == 1
    assert BillingContact.objects.get(email="gone@example.com").bounced_at is None
    assert first is not None
    delivery.refresh_from_db()
    assert delivery.status == Status.REFUSED


def test_a_complaint_is_recorded_for_finance_and_changes_no_delivery(client):
    delivery = sent_to("annoyed@example.com")
    response = post(
        client, bounced("annoyed@example.com", "email.complained"), svix=False, notice_id="m2"
    )
    assert response.status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT
    assert BillingContact.objects.get(email="annoyed@example.com").bounced_at is None
    complaint = MailBounce.objects.get()
    assert (complaint.kind, complaint.delivery) == ("complaint", delivery)


def test_other_event_types_are_acknowledged_and_ignored(client):
    sent_to("fine@example.com")
    assert post(client, bounced("fine@example.com", "email.delivered")).status_code == 204
    assert not MailBounce.objects.exists()
    assert EmailDelivery.objects.get().status == Status.SENT


@pytest.mark.parametrize(
    "forge",
    [
        "wrong secret",
        "tampered body",
        "stale timestamp",
        "no signature",
        "not json",
        "no recipients",
        "bad content length",
    ],
)
def test_forged_stale_or_malformed_requests_change_nothing(client, forge):
    delivery = sent_to("gone@example.com")
    if forge == "wrong secret":
        other = "whsec_" + base64.b64encode(b"somebody else").decode()
        response = post(client, bounced(), secret=other)
    elif forge == "tampered body":
        body = json.dumps(bounced())
        signature = Webhook(SECRET).sign("m1", timezone.now(), body)
        response = client.post(
            URL,
            body.replace("gone@", "other@"),
            content_type="application/json",
            HTTP_SVIX_ID="m1",
            HTTP_SVIX_TIMESTAMP=str(int(timezone.now().timestamp())),
            HTTP_SVIX_SIGNATURE=signature,
        )
    elif forge == "stale timestamp":
        # A captured request replayed an hour later.
        response = post(client, bounced(), at=timezone.now() - dt.timedelta(hours=1))
    elif forge == "no signature":
        response = client.post(URL, json.dumps(bounced()), content_type="application/json")
    elif forge == "not json":
        body = "not json"
        now = timezone.now()
        response = client.post(
            URL,
            body,
            content_type="application/json",
            HTTP_WEBHOOK_ID="m1",
            HTTP_WEBHOOK_TIMESTAMP=str(int(now.timestamp())),
            HTTP_WEBHOOK_SIGNATURE=Webhook(SECRET).sign("m1", now, body),
        )
    elif forge == "no recipients":
        payload = bounced()
        payload["data"]["to"] = []
        response = post(client, payload)
    else:
        response = client.post(
            URL, "{}", content_type="application/json", HTTP_CONTENT_LENGTH="abc"
        )
    assert response.status_code in (400, 413)
    assert not MailBounce.objects.exists()
    delivery.refresh_from_db()
    assert delivery.status == Status.SENT
    assert BillingContact.objects.get(email="gone@example.com").bounced_at is None


def test_without_a_secret_the_endpoint_is_absent(client, settings):
    settings.MAIL_WEBHOOK_SECRET = ""
    assert post(client, bounced()).status_code == 404
    assert client.get(URL).status_code == 405


def test_an_address_of_several_customers_is_bounced_for_all(client):
    first = sent_to("shared@example.com")
    other = CustomerFactory(billing_email="shared@example.com")
    assert post(client, bounced("shared@example.com")).status_code == 204
    assert BillingContact.objects.filter(bounced_at__isnull=False).count() == 2
    first.refresh_from_db()
    assert first.status == Status.REFUSED
    assert other.billing_contacts.get().bounced_at is not None


def test_a_bounce_about_an_old_message_marks_only_the_contact():
    old = sent_to("gone@example.com", days_ago=30)
    notice = Notice("n-old", "webhook", "bounce", ("gone@example.com",), "550")
    [row] = notice_record(notice=notice, now=timezone.now())
    assert row.delivery is None
    old.refresh_from_db()
    assert old.status == Status.SENT
    assert BillingContact.objects.get().bounced_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_workers_with_the_same_notice_record_it_once():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers")
    sent_to("gone@example.com")
    notice = Notice("n-race", "webhook", "bounce", ("gone@example.com",), "550")
    results: list[int] = []
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait()
        try:
            results.append(len(notice_record(notice=notice, now=timezone.now())))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert MailBounce.objects.count() == 1


# --- returned messages (RFC 3464) --------------------------------------------------------------


def dsn(recipient: str, *, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A delivery status notification as Postfix returns it (RFC 3464 multipart/report)."""
    boundary = "==BOUNDARY=="
    return (
        "From: MAILER-DAEMON@mail.example.com (Mail Delivery System)\n"
        "To: billing-bounces@lanting.example.com\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "Message-ID: <20261130100000.ABC@mail.example.com>\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        f"--{boundary}\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mail.example.com\n\n"
        f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822; {recipient}\n"
        f"Action: {action}\nStatus: {status}\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n\n"
        f"--{boundary}--\n"
    ).encode()


def test_a_returned_message_is_recorded_once(tmp_path, capsys):
    delivery = sent_to("gone@example.com")
    path = tmp_path / "bounce.eml"
    path.write_bytes(dsn("gone@example.com"))
    call_command("mail_bounce_read", str(path))
    call_command("mail_bounce_read", str(path))
    out = capsys.readouterr().out
    assert "bounce recorded for gone@example.com" in out and "already recorded" in out
    [row] = MailBounce.objects.all()
    assert (row.source, row.notice_id, row.delivery) == (
        "dsn",
        "<20261130100000.ABC@mail.example.com>",
        delivery,
    )
    delivery.refresh_from_db()
    assert delivery.status == Status.REFUSED
    assert BillingContact.objects.get().bounced_at is not None


def test_a_delay_warning_records_nothing():
    assert dsn_notice(dsn("slow@example.com", status="4.4.1", action="delayed")) is None


def test_finance_reads_the_bounces(client):
    sent_to("gone@example.com")
    notice_record(
        notice=Notice("n1", "webhook", "bounce", ("gone@example.com",), "550"),
        now=timezone.now(),
    )
    clerk = StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])
    page = as_user(client, clerk).get(reverse("admin:accounts_mailbounce_changelist"))
    assert page.status_code == 200
    assert b"gone@example.com" in page.content
