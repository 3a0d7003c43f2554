"""Customer e-mails: in the customer's language, to its billing contacts by kind, HTML with a
plain-text part and the document's PDF attached, each sent once per recipient across retries,
re-runs and crashes; SMTP refusals recorded on the contact; finance's resend."""

from __future__ import annotations

import datetime as dt
import smtplib
import subprocess
from decimal import Decimal

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend

import accounts.mail.sending as sending
from accounts.events.tasks import deliver_customer_event
from accounts.mail.content import email_render
from accounts.mail.notify import balance_low_notify
from accounts.mail.sending import email_resend
from accounts.models import BillingContact, CustomerEvent, EmailDelivery, WebhookDelivery
from accounts.services import customer_create, record_deposit
from billingsite.celery import app
from billingsite.clock import BILLING_TZ
from invoices.documents.services import bill_customer, credit_note_create
from invoices.mail.account_statement import monthly_statements_record
from invoices.models import BillingRun
from tests.factories import CustomerFactory
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db
Kind = CustomerEvent.Kind


@pytest.fixture(autouse=True)
def _email_settings(settings):
    settings.BILLING_EMAIL_ATTACH_PDF = True
    settings.BILLING_ISSUER_NAME = "Lanting Cloud"
    settings.BILLING_ISSUER_ADDRESS = "88 Century Avenue, Shanghai"
    settings.BILLING_ISSUER_EMAIL = "billing@lanting.example.com"
    settings.BILLING_ISSUER_PHONE = "+86 21 5555 0100"
    settings.BILLING_PAYMENT_INSTRUCTIONS = "ICBC Shanghai, account 1001 2002 3003"
    settings.BILLING_PORTAL_URL = "https://billing.example.com"
    settings.BILLING_WEBHOOK_URL = ""
    settings.EMAIL_BACKEND = "tests.accounts.test_customer_emails.ScriptedBackend"
    ScriptedBackend.failures = {}


class ScriptedBackend(LocmemBackend):
    """The locmem outbox, failing for the addresses scripted in `failures` (one exception per
    attempt, in order)."""

    failures: dict[str, list[Exception]] = {}

    def send_messages(self, messages):
        for message in messages:
            for recipient in message.to:
                queue = self.failures.get(recipient)
                if queue:
                    raise queue.pop(0)
        return super().send_messages(messages)


def pdf_text(data: bytes) -> str:
    """The attachment's text as poppler's pdftotext reads it (installed by .ci/run)."""
    assert data.startswith(b"%PDF-")
    result = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
    )
    return result.stdout.decode()


def bill_october(customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)


def outbox_for(kind_subject: str) -> list:
    return [m for m in mail.outbox if kind_subject in m.subject]


def html_part(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


# --- content, both languages --------------------------------------------------------------


def test_invoice_email_in_english_has_figures_link_and_the_pdf(
    price_book, django_capture_on_commit_callbacks
):
    customer, _app = premium_customer(dau=8000, balance="20000.00")
    mail.outbox.clear()
    assert bill_october(customer, django_capture_on_commit_callbacks) == "issued"

    [message] = outbox_for("Invoice INV-2026-000001")
    assert message.to == [customer.billing_email]
    assert message.subject == "Invoice INV-2026-000001 for 2026-10: ¥6,000.00"
    assert message.reply_to == ["billing@lanting.example.com"]
    text = message.body
    assert "Invoice INV-2026-000001 for 2026-10 was issued on 2026-11-02." in text
    assert "¥6,000.00 was deducted from your prepaid balance." in text
    assert "Amount deducted: ¥6,000.00" in text
    assert "Balance after this invoice: ¥14,000.00" in text
    # 14,000 at 6,000 a month of 30 November days: 200 a day, 70 days.
    assert "Days the balance lasts: 70" in text
    assert "https://billing.example.com/invoices/INV-2026-000001/" in text
    assert "ICBC Shanghai, account 1001 2002 3003" in text
    assert f"Your transfer reference: {customer.transfer_reference}." in text
    html = html_part(message)
    assert 'href="https://billing.example.com/invoices/INV-2026-000001/"' in html
    assert "<style" not in html and 'style="' in html  # inlined for mail clients
    assert "¥14,000.00" in html and "Lanting Cloud" in html
    [(filename, content, mimetype)] = message.attachments
    assert (filename, mimetype) == ("INV-2026-000001.pdf", "application/pdf")
    pdf = pdf_text(content)
    assert "INV-2026-000001" in pdf and "6,000.00" in pdf
    assert pdf.index("Invoice") < pdf.index("账单")


def test_invoice_email_in_chinese_with_a_chinese_first_pdf(
    price_book, django_capture_on_commit_callbacks
):
    customer, _app = premium_customer(dau=8000, balance="20000.00", preferred_language="zh-hans")
    mail.outbox.clear()
    bill_october(customer, django_capture_on_commit_callbacks)

    [message] = [m for m in mail.outbox if "INV-2026-000001" in m.subject]
    assert message.subject == "2026-10 账单 INV-2026-000001：¥6,000.00"
    assert "2026-10 的账单 INV-2026-000001 已于 2026-11-02 开具。" in message.body
    assert "已从您的预付余额中扣除 ¥6,000.00。" in message.body
    assert "扣除本账单后余额: ¥14,000.00" in message.body
    assert "余额可用天数: 70" in message.body
    assert "如何付款" in message.body and "Invoice number" not in message.body
    assert 'lang="zh-hans"' in html_part(message)
    [(_name, content, _type)] = message.attachments
    pdf = pdf_text(content)
    assert "INV-2026-000001" in pdf
    assert pdf.index("账单") < pdf.index("Invoice")


def test_credit_note_email_attaches_the_credit_note(price_book, django_capture_on_commit_callbacks):
    customer, _app = premium_customer(dau=8000, preferred_language="zh-hans")
    bill_october(customer, django_capture_on_commit_callbacks)
    invoice = customer.invoices.get()
    line = invoice.lines.order_by("position").first()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_create(
            invoice=invoice,
            line_amounts={line.pk: Decimal("500.00")},
            reason="Outage on 10-12",
            now=BILLING_MOMENT + dt.timedelta(days=3),
            idempotency_key="t-credit-1",
        )
    [message] = mail.outbox
    assert message.subject == f"账单 INV-2026-000001 的贷项通知单 {note.number}：¥500.00"
    assert f"贷项通知单 {note.number} 将账单 INV-2026-000001 中的 ¥500.00 退回您的预付余额。" in (
        message.body
    )
    assert html_part(message)
    [(filename, content, _type)] = message.attachments
    assert filename == f"{note.number}.pdf"
    pdf = pdf_text(content)
    assert note.number in pdf and "500.00" in pdf and "Outage on 10-12" in pdf


def test_arrears_messages_say_what_to_do_in_both_languages(price_book):
    customer = CustomerFactory(preferred_language="zh-hans")
    event = CustomerEvent.objects.create(
        customer=customer,
        kind=Kind.SUSPENSION_WARNING,
        dedupe_key="t-warning",
        payload={
            "balance": "-1234.50",
            "arrears_since": "2026-11-02",
            "suspension_date": "2026-11-09",
        },
        created_at=BILLING_MOMENT,
    )
    chinese = email_render(event=event)
    assert chinese.subject == "您的服务将于 2026-11-09 暂停"
    assert "最后付款日: 2026-11-08" in chinese.text
    assert "请至少充值 ¥1,234.50" in chinese.text
    english = email_render(event=event, language="en")
    assert english.subject == "Your service will be suspended on 2026-11-09"
    assert "Last day to pay: 2026-11-08" in english.text
    assert "Top up at least ¥1,234.50" in english.text
    assert "What to do next" in english.text and "How to pay" in english.text


@pytest.mark.parametrize(
    ("kind", "payload", "english", "chinese"),
    [
        (
            Kind.ARREARS_STARTED,
            {"balance": "-80.00", "arrears_since": "2026-11-02", "suspension_date": "2026-11-09"},
            "your applications will be suspended on 2026-11-09",
            "您的应用将于 2026-11-09 暂停服务",
        ),
        (
            Kind.SUSPENDED,
            {"balance": "-80.00", "arrears_since": "2026-11-02", "suspended_on": "2026-11-09"},
            "suspended on 2026-11-09",
            "已于 2026-11-09 暂停服务",
        ),
        (
            Kind.REACTIVATED,
            {"balance": "120.00"},
            "your balance is ¥120.00 and your applications are active",
            "您的余额为 ¥120.00，您的应用已恢复服务",
        ),
        (
            Kind.BALANCE_LOW,
            {"balance": "300.00", "days_left": 4, "recommended_balance": "18000.00"},
            "recommended balance of ¥18,000.00",
            "按您上一张账单的费用，余额约可使用 4 天",
        ),
    ],
)
def test_account_messages_in_both_languages(kind, payload, english, chinese):
    event = CustomerEvent.objects.create(
        customer=CustomerFactory(),
        kind=kind,
        dedupe_key=f"t-{kind}",
        payload=payload,
        created_at=BILLING_MOMENT,
    )
    en = email_render(event=event, language="en")
    zh = email_render(event=event, language="zh-hans")
    assert english in en.text and english in en.html.replace("&#x27;", "'")
    assert chinese in zh.text and chinese in zh.html
    assert en.subject != zh.subject


# --- who receives what ----------------------------------------------------------------------


def test_contacts_receive_the_kinds_they_ticked(price_book, django_capture_on_commit_callbacks):
    customer, _app = premium_customer(dau=8000, balance="")
    customer.billing_contacts.update(
        receives_invoices=False, receives_warnings=False, receives_receipts=False
    )
    BillingContact.objects.create(
        customer=customer,
        email="cfo@example.com",
        receives_invoices=True,
        receives_warnings=False,
        receives_receipts=False,
    )
    BillingContact.objects.create(
        customer=customer,
        email="ops@example.com",
        receives_invoices=False,
        receives_warnings=True,
        receives_receipts=False,
    )
    mail.outbox.clear()
    bill_october(customer, django_capture_on_commit_callbacks)  # balance 0 -> -6,000: arrears

    invoice_mail = outbox_for("INV-2026-000001")
    arrears_mail = outbox_for("Your balance is negative")
    assert [m.to for m in invoice_mail] == [["cfo@example.com"]]
    assert [m.to for m in arrears_mail] == [["ops@example.com"]]
    # Nobody ticks receipts: the billing e-mail gets them.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        record_deposit(
            customer=customer,
            amount=Decimal("7000.00"),
            reference="BANK-77",
            idempotency_key="t-dep-77",
            now=BILLING_MOMENT + dt.timedelta(days=1),
        )
    receipt = outbox_for("Payment received")
    assert [m.to for m in receipt] == [[customer.billing_email]]
    assert "Amount received: ¥7,000.00" in receipt[0].body
    assert "Reference: BANK-77" in receipt[0].body
    assert "Balance after this payment: ¥1,000.00" in receipt[0].body
    # The reactivation is a warning-kind message; receipts and low balance go by e-mail only.
    assert WebhookDelivery.objects.count() == 0


def test_a_retried_deposit_sends_one_receipt(django_capture_on_commit_callbacks):
    customer = CustomerFactory()
    for _attempt in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            record_deposit(
                customer=customer,
                amount=Decimal("100.00"),
                reference="R1",
                idempotency_key="same-key",
                now=BILLING_MOMENT,
            )
    assert CustomerEvent.objects.filter(kind=Kind.PAYMENT_RECEIVED).count() == 1
    assert len(outbox_for("Payment received")) == 1


def test_balance_low_notify_sends_once_per_dedupe_key(django_capture_on_commit_callbacks):
    customer = CustomerFactory()
    for _attempt in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            balance_low_notify(
                customer=customer,
                balance=Decimal("300.00"),
                days_left=4,
                recommended_balance=Decimal("18000.00"),
                dedupe_key=f"{customer.pk}:2026-W45",
                now=BILLING_MOMENT,
            )
    [message] = mail.outbox
    assert message.subject == "Your prepaid balance is low: ¥300.00"


def test_new_customers_get_their_billing_email_as_first_contact():
    customer = customer_create(
        external_id="c-1",
        name="Hai Tang",
        billing_email="AP@haitang.example.com",
        preferred_language="zh-hans",
        now=BILLING_MOMENT,
    )
    [contact] = customer.billing_contacts.all()
    assert contact.email == "AP@haitang.example.com"
    assert contact.receives_invoices and contact.receives_warnings and contact.receives_receipts
    assert customer.preferred_language == "zh-hans"


# --- once per event and recipient ---------------------------------------------------------


def test_rerunning_the_month_sends_no_email_twice(price_book, django_capture_on_commit_callbacks):
    customer, _app = premium_customer(dau=8000)
    BillingContact.objects.create(customer=customer, email="cfo@example.com")
    mail.outbox.clear()
    assert bill_october(customer, django_capture_on_commit_callbacks) == "issued"
    assert bill_october(customer, django_capture_on_commit_callbacks) != "issued"
    event = CustomerEvent.objects.get(kind=Kind.INVOICE_ISSUED)
    deliver_customer_event.delay(event.pk)  # a redelivered broker message
    # The sweep's query and a second worker find nothing left to send.
    assert sending.event_email_send(event=event, now=BILLING_MOMENT) is False
    event.email_sent_at = None
    assert sending.event_email_send(event=event, now=BILLING_MOMENT) is False

    sent = sorted(m.to[0] for m in outbox_for("INV-2026-000001"))
    assert sent == ["billing@" + customer.external_id + ".example.com", "cfo@example.com"]
    assert EmailDelivery.objects.filter(event=event, status="sent").count() == 2


@pytest.fixture
def eager_retries():
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


def test_a_temporary_failure_retries_only_the_recipient_that_failed(
    price_book, django_capture_on_commit_callbacks, eager_retries
):
    customer, _app = premium_customer(dau=8000)
    BillingContact.objects.create(customer=customer, email="cfo@example.com")
    ScriptedBackend.failures = {"cfo@example.com": [smtplib.SMTPServerDisconnected("lost")]}
    mail.outbox.clear()
    bill_october(customer, django_capture_on_commit_callbacks)  # the eager task retries

    sent = sorted(m.to[0] for m in outbox_for("INV-2026-000001"))
    assert sent == [customer.billing_email, "cfo@example.com"]
    cfo = EmailDelivery.objects.get(recipient="cfo@example.com")
    assert (cfo.status, cfo.attempts) == ("sent", 2)
    assert CustomerEvent.objects.get(kind=Kind.INVOICE_ISSUED).email_sent_at is not None


def test_a_crash_between_sending_and_recording_never_sends_twice(
    price_book, django_capture_on_commit_callbacks, monkeypatch
):
    customer, _app = premium_customer(dau=8000)
    mail.outbox.clear()
    mark_sent = sending._mark_sent

    def crash(row, *, now):
        raise SystemExit("worker killed after the SMTP server accepted the message")

    monkeypatch.setattr(sending, "_mark_sent", crash)
    with pytest.raises(SystemExit), django_capture_on_commit_callbacks(execute=True):
        bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    assert len(outbox_for("INV-2026-000001")) == 1
    row = EmailDelivery.objects.get()
    assert row.status == "sending"  # outcome unknown: finance sees it

    monkeypatch.setattr(sending, "_mark_sent", mark_sent)
    event = CustomerEvent.objects.get(kind=Kind.INVOICE_ISSUED)
    deliver_customer_event.delay(event.pk)  # the broker gives the task to another worker
    assert len(outbox_for("INV-2026-000001")) == 1


def test_a_refused_address_is_recorded_on_the_contact_and_not_retried(
    price_book, django_capture_on_commit_callbacks
):
    customer, _app = premium_customer(dau=8000)
    BillingContact.objects.create(customer=customer, email="gone@example.com")
    ScriptedBackend.failures = {
        "gone@example.com": [
            smtplib.SMTPRecipientsRefused({"gone@example.com": (550, b"5.1.1 no such user")})
        ]
    }
    mail.outbox.clear()
    bill_october(customer, django_capture_on_commit_callbacks)

    assert [m.to for m in outbox_for("INV-2026-000001")] == [[customer.billing_email]]
    refused = EmailDelivery.objects.get(recipient="gone@example.com")
    assert (refused.status, refused.error) == ("refused", "550 5.1.1 no such user")
    contact = BillingContact.objects.get(email="gone@example.com")
    assert contact.bounced_at is not None and "no such user" in contact.bounce_reason
    assert CustomerEvent.objects.get(kind=Kind.INVOICE_ISSUED).email_sent_at is not None


def test_finance_resend_is_a_new_delivery(price_book, django_capture_on_commit_callbacks):
    customer, _app = premium_customer(dau=8000)
    bill_october(customer, django_capture_on_commit_callbacks)
    event = CustomerEvent.objects.get(kind=Kind.INVOICE_ISSUED)
    mail.outbox.clear()
    for _time in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            email_resend(event=event, requested_by=None, now=BILLING_MOMENT)
    assert len(outbox_for("INV-2026-000001")) == 2
    assert list(
        EmailDelivery.objects.filter(event=event).order_by("resend").values_list("resend", "status")
    ) == [(0, "sent"), (1, "sent"), (2, "sent")]


# --- monthly statement ------------------------------------------------------------------------


def test_monthly_statement_once_after_the_run(price_book, django_capture_on_commit_callbacks):
    customer, _app = premium_customer(dau=8000, balance="", monthly_statement=True)
    record_deposit(
        customer=customer,
        amount=Decimal("20000.00"),
        reference="OCT-TOPUP",
        idempotency_key="oct-topup",
        now=dt.datetime(2026, 10, 10, 9, 0, tzinfo=BILLING_TZ),
    )
    CustomerFactory(monthly_statement=False)
    bill_october(customer, django_capture_on_commit_callbacks)
    moment = BILLING_MOMENT + dt.timedelta(hours=2)
    # No finished run for October yet: nothing is recorded.
    assert monthly_statements_record(period=OCTOBER, now=moment) is None
    BillingRun.objects.create(
        period=OCTOBER.start, status=BillingRun.Status.FINISHED, created_at=BILLING_MOMENT
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert monthly_statements_record(period=OCTOBER, now=moment) == 1
        assert monthly_statements_record(period=OCTOBER, now=moment) == 0

    [message] = mail.outbox
    assert message.subject == "Your statement for 2026-10"
    assert "Opening balance: ¥0.00" in message.body
    assert "Deposits: ¥20,000.00" in message.body
    assert "Closing balance: ¥20,000.00" in message.body
    assert "Invoice for this month: INV-2026-000001 ¥6,000.00" in message.body
    assert "Balance after this invoice: ¥14,000.00" in message.body
    [(filename, content, _type)] = message.attachments
    assert filename == f"statement-{customer.external_id}-2026-10.pdf"
    pdf = pdf_text(content)
    assert "OCT-TOPUP" in pdf and "20,000.00" in pdf and "INV-2026-000001" in pdf
    assert "14,000.00" in pdf
