"""The customer's e-mail page: language, statement and billing contacts; and the pages'
default language following the customer's preference."""

import pytest
from django.urls import reverse

from accounts.models import BillingContact

pytestmark = pytest.mark.django_db
URL = "/contacts/"


def form_data(customer, rows: list[dict], **settings) -> dict:
    contacts = list(customer.billing_contacts.order_by("id"))
    data = {
        "settings-preferred_language": settings.get("language", customer.preferred_language),
        "contacts-TOTAL_FORMS": str(len(rows)),
        "contacts-INITIAL_FORMS": str(len(contacts)),
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "20",
    }
    if settings.get("statement"):
        data["settings-monthly_statement"] = "on"
    for index, row in enumerate(rows):
        for key, value in row.items():
            if value is True:
                data[f"contacts-{index}-{key}"] = "on"
            elif value not in (False, None):
                data[f"contacts-{index}-{key}"] = str(value)
    return data


def primary_row(customer, **flags) -> dict:
    contact = customer.billing_contacts.get(email=customer.billing_email)
    return {
        "id": contact.pk,
        "email": contact.email,
        "receives_invoices": flags.get("invoices", True),
        "receives_warnings": flags.get("warnings", True),
        "receives_receipts": flags.get("receipts", True),
    }


def test_the_customer_adds_a_contact_and_chooses_chinese(client_for, acme_user, acme):
    client = client_for(acme_user)
    assert client.get(URL).status_code == 200
    data = form_data(
        acme,
        [
            primary_row(acme, invoices=False),
            {"email": "cfo@acme.example.com", "name": "CFO", "receives_invoices": True},
        ],
        language="zh-hans",
        statement=True,
    )
    response = client.post(URL, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    acme.refresh_from_db()
    assert acme.preferred_language == "zh-hans" and acme.monthly_statement
    cfo = BillingContact.objects.get(customer=acme, email="cfo@acme.example.com")
    assert (cfo.receives_invoices, cfo.receives_warnings, cfo.receives_receipts) == (
        True,
        False,
        False,
    )
    assert not acme.billing_contacts.get(email=acme.billing_email).receives_invoices
    # Without a language cookie the pages now speak Chinese.
    page = client.get(reverse("portal:balance"))
    assert '<html lang="zh-hans">' in page.content.decode()


def test_the_billing_email_cannot_be_removed(client_for, acme_user, acme):
    client = client_for(acme_user)
    data = form_data(acme, [{**primary_row(acme), "DELETE": True}])
    response = client.post(URL, data)
    assert response.status_code == 200
    assert "is your account&#x27;s billing e-mail" in response.content.decode()
    assert acme.billing_contacts.filter(email=acme.billing_email).exists()


def test_another_customers_contact_cannot_be_edited(client_for, acme_user, acme, rival):
    theirs = rival.billing_contacts.get()
    client = client_for(acme_user)
    data = form_data(
        acme,
        [primary_row(acme), {"id": theirs.pk, "email": "hijack@example.com"}],
    )
    data["contacts-INITIAL_FORMS"] = "2"
    client.post(URL, data)
    theirs.refresh_from_db()
    assert theirs.email == rival.billing_email and theirs.customer_id == rival.pk
    assert list(rival.billing_contacts.values_list("email", flat=True)) == [rival.billing_email]


def test_a_duplicate_address_is_refused(client_for, acme_user, acme):
    client = client_for(acme_user)
    data = form_data(
        acme, [primary_row(acme), {"email": acme.billing_email.upper(), "receives_invoices": True}]
    )
    response = client.post(URL, data)
    assert response.status_code == 200 and "listed twice" in response.content.decode()
    assert acme.billing_contacts.count() == 1


def test_the_language_cookie_wins_over_the_preference(client_for, acme_user, acme, settings):
    acme.preferred_language = "zh-hans"
    acme.save()
    client = client_for(acme_user)
    assert '<html lang="zh-hans">' in client.get(reverse("portal:balance")).content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert '<html lang="en">' in client.get(reverse("portal:balance")).content.decode()


def test_anonymous_visitors_go_to_the_login(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]
