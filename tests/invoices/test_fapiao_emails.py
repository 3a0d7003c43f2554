"""Finance's fapiao decisions reach the customer: an e-mail to the invoice contacts in their
language when the fapiao is issued (a link to the invoice page, never the file) or the request
rejected (the reason), once per request and recipient, never to another customer."""

from __future__ import annotations

import pytest
from django.core import mail

import accounts.mail.sending as sending
from accounts.events.tasks import deliver_customer_event
from accounts.mail.content import email_render
from accounts.models import BillingContact, CustomerEvent, EmailDelivery
from invoices.documents.fapiao import (
    FapiaoError,
    fapiao_issue_record,
    fapiao_reject,
    fapiao_request_create,
)
from tests.invoices.test_credit_notes import LATER, issued_invoice
from tests.invoices.test_fapiao import D, ordinary, pdf_upload

pytestmark = pytest.mark.django_db
Kind = CustomerEvent.Kind
PORTAL = "https://billing.example.com"


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.BILLING_PORTAL_URL = PORTAL
    settings.BILLING_WEBHOOK_URL = ""
    settings.BILLING_EMAIL_ATTACH_PDF = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def pending(invoice):
    return fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
    )


def issue(request):
    return fapiao_issue_record(
        request=request,
        number="12345678",
        code="031001900111",
        date=LATER.date(),
        amount=D("8400.00"),
        upload=pdf_upload(),
        now=LATER,
    )


def test_an_issued_fapiao_is_e_mailed_once_per_contact_with_a_link(
    price_book, django_capture_on_commit_callbacks
):
    invoice = issued_invoice()
    other_invoice = issued_invoice()
    customer = invoice.customer
    BillingContact.objects.create(customer=customer, email="cfo@example.com")
    BillingContact.objects.create(customer=other_invoice.customer, email="rival-cfo@example.com")
    request = pending(invoice)
    pending(other_invoice)  # another customer's request, still pending
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        issue(request)

    assert sorted(message.to[0] for message in mail.outbox) == [
        f"billing@{customer.external_id}.example.com",
        "cfo@example.com",
    ]
    message = mail.outbox[0]
    assert message.subject == f"Fapiao 12345678 issued for invoice {invoice.number}"
    assert (
        f"The fapiao you requested for invoice {invoice.number} is issued: number 12345678 of "
        f"{LATER.date().isoformat()} for ¥8,400.00."
    ) in message.body
    assert f"{PORTAL}/invoices/{invoice.number}/" in message.body
    assert message.attachments == []  # the file is on the invoice page, behind the login

    # A retried decision is refused; a redelivered task and the sweep send nothing again.
    event = CustomerEvent.objects.get(kind=Kind.FAPIAO_ISSUED)
    assert event.customer_id == customer.pk
    with pytest.raises(FapiaoError), django_capture_on_commit_callbacks(execute=True):
        issue(request)
    deliver_customer_event.delay(event.pk)
    assert sending.event_email_send(event=event, now=LATER) is False
    assert len(mail.outbox) == 2
    assert EmailDelivery.objects.filter(event=event, status="sent").count() == 2
    assert not CustomerEvent.objects.filter(
        customer=other_invoice.customer, kind__startswith="fapiao"
    ).exists()


def test_a_rejection_says_why_in_the_customers_language(
    price_book, django_capture_on_commit_callbacks
):
    invoice = issued_invoice()
    customer = invoice.customer
    customer.preferred_language = "zh-hans"
    customer.save(update_fields=["preferred_language"])
    request = pending(invoice)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        fapiao_reject(request=request, reason="税号与抬头不符", now=LATER)

    [message] = mail.outbox
    assert message.to == [f"billing@{customer.external_id}.example.com"]
    assert message.subject == f"您为账单 {invoice.number} 提交的开票申请未通过"
    assert f"我们无法为账单 {invoice.number} 开具您申请的发票。" in message.body
    assert "税号与抬头不符" in message.body
    assert f"{PORTAL}/invoices/{invoice.number}/fapiao/" in message.body
    # A new request after the rejection is a new row: its decision is told again.
    again = pending(invoice)
    with django_capture_on_commit_callbacks(execute=True):
        issue(again)
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == f"账单 {invoice.number} 的发票 12345678 已开具"


@pytest.mark.parametrize(
    ("kind", "payload", "english", "chinese"),
    [
        (
            Kind.FAPIAO_ISSUED,
            {
                "invoice_number": "INV-2026-000001",
                "fapiao_number": "12345678",
                "fapiao_date": "2026-11-05",
                "fapiao_amount": "8400.00",
            },
            "Download the fapiao's file from the invoice page.",
            "您为账单 INV-2026-000001 申请的发票已开具：发票号码 12345678，开票日期 2026-11-05，"
            "金额 ¥8,400.00。",
        ),
        (
            Kind.FAPIAO_REJECTED,
            {"invoice_number": "INV-2026-000001", "reason": "Wrong tax id"},
            "We could not issue the fapiao you requested for invoice INV-2026-000001.",
            "请按原因修改信息后重新申请开票。",
        ),
    ],
)
def test_fapiao_messages_in_both_languages(price_book, kind, payload, english, chinese):
    invoice = issued_invoice()
    event = CustomerEvent.objects.create(
        customer=invoice.customer,
        kind=kind,
        dedupe_key=f"t-{kind}",
        payload=payload,
        created_at=LATER,
    )
    en = email_render(event=event, language="en")
    zh = email_render(event=event, language="zh-hans")
    assert english in en.text and english in en.html.replace("&#x27;", "'")
    assert chinese in zh.text and chinese in zh.html
    assert en.subject != zh.subject
    assert not en.attachments and not zh.attachments
