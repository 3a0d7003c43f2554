"""Finance sees who was sent what, and bounced addresses; it resends a document on purpose."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.mail.sending import event_email_send
from accounts.models import CustomerEvent, EmailDelivery
from tests.admin.conftest import as_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_invoice(month, django_capture_on_commit_callbacks):
    """The invoice e-mail of alpha's October invoice, sent once; a bounced second contact."""
    customer = month.alpha
    customer.billing_contacts.create(email="gone@alpha.example.com")
    event = CustomerEvent.objects.get(customer=customer, kind=CustomerEvent.Kind.INVOICE_ISSUED)
    event_email_send(event=event, now=event.created_at)
    # As a refusal on a later message records it (tests/accounts/test_customer_emails.py).
    customer.billing_contacts.filter(email="gone@alpha.example.com").update(
        bounced_at="2026-11-02T10:00:00+08:00", bounce_reason="550 5.1.1 no such user"
    )
    return event


def test_the_customer_page_lists_contacts_and_bounces(client, clerk, sent_invoice):
    page = as_user(client, clerk).get(
        reverse("admin:accounts_customer_change", args=[sent_invoice.customer_id])
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "Billing contacts" in html and "gone@alpha.example.com" in html
    assert "550 5.1.1 no such user" in html
    assert "preferred_language" in html and "monthly_statement" in html


def test_deliveries_list_shows_what_went_to_whom(client, auditor, sent_invoice):
    page = as_user(client, auditor).get(reverse("admin:accounts_emaildelivery_changelist"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "gone@alpha.example.com" in html and sent_invoice.customer.billing_email in html
    event_page = as_user(client, auditor).get(
        reverse("admin:accounts_customerevent_change", args=[sent_invoice.pk])
    )
    assert sent_invoice.customer.billing_email in event_page.content.decode()


def test_a_clerk_resends_the_invoice_email(
    client, clerk, sent_invoice, django_capture_on_commit_callbacks
):
    first = EmailDelivery.objects.get(
        event=sent_invoice, recipient=sent_invoice.customer.billing_email
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(client, clerk).post(
            reverse("admin:accounts_emaildelivery_changelist"),
            {"action": "resend_to_same_address", "_selected_action": [first.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert [m.to for m in mail.outbox] == [[sent_invoice.customer.billing_email]]
    again = EmailDelivery.objects.get(event=sent_invoice, recipient=first.recipient, resend=1)
    assert (again.status, again.requested_by) == ("sent", clerk)


def test_an_auditor_cannot_resend(client, auditor, sent_invoice):
    first = EmailDelivery.objects.filter(event=sent_invoice).first()
    before = EmailDelivery.objects.count()
    as_user(client, auditor).post(
        reverse("admin:accounts_emaildelivery_changelist"),
        {"action": "resend_to_same_address", "_selected_action": [first.pk]},
    )
    assert EmailDelivery.objects.count() == before
