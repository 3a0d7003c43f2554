"""Who may see what: every portal URL, for the owner, another customer and nobody."""

from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from invoices.models import Invoice
from tests.factories import CustomerUserFactory, StaffFactory
from tests.portal.conftest import OCTOBER
from tests.portal.factories import credit_note, issued_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _today():
    with freeze_time("2026-11-20 10:00:00+08:00"):
        yield


@pytest.fixture
def documents(acme_invoice, rival):
    first_line = acme_invoice.lines.order_by("position").first()
    note = credit_note(invoice=acme_invoice, amounts={first_line.pk: Decimal("300.00")})
    rival_invoice = issued_invoice(customer=rival, period=OCTOBER)
    return {"invoice": acme_invoice, "note": note, "rival_invoice": rival_invoice}


def document_urls(invoice, note) -> list[str]:
    return [
        reverse("portal:invoice-detail", args=[invoice.number]),
        reverse("portal:invoice-pdf", args=[invoice.number]),
        reverse("portal:credit-note-detail", args=[note.number]),
        reverse("portal:credit-note-pdf", args=[note.number]),
    ]


PAGE_URLS = ["portal:home", "portal:invoice-list", "portal:balance", "portal:estimate"]


def test_owner_sees_every_page_and_pdf(client_for, acme_user, documents):
    client = client_for(acme_user)
    for name in PAGE_URLS[1:]:
        assert client.get(reverse(name)).status_code == 200, name
    for url in document_urls(documents["invoice"], documents["note"]):
        response = client.get(url)
        assert response.status_code == 200, url
        if url.endswith("/pdf/"):
            assert response["Content-Type"] == "application/pdf"
            assert response["Content-Disposition"].startswith("attachment; filename=")
            assert response.content.startswith(b"%PDF-")
            assert "no-store" in response["Cache-Control"]


def test_anonymous_is_sent_to_login_for_every_url(client, documents):
    urls = [reverse(name) for name in PAGE_URLS]
    urls += document_urls(documents["invoice"], documents["note"])
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{reverse('portal:login')}?next={url}", url


def test_another_customers_user_gets_404_for_every_document(client_for, rival_user, documents):
    client = client_for(rival_user)
    for url in document_urls(documents["invoice"], documents["note"]):
        response = client.get(url)
        assert response.status_code == 404, url
        assert documents["invoice"].number.encode() not in response.content
        assert b"Acme" not in response.content


def test_another_customers_pages_never_show_the_owners_data(client_for, rival_user, documents):
    client = client_for(rival_user)
    for name in PAGE_URLS[1:]:
        body = client.get(reverse(name)).content.decode()
        assert documents["invoice"].number not in body, name
        assert documents["note"].number not in body, name
        assert "Acme" not in body and "acme-chat" not in body, name
    listing = client.get(reverse("portal:invoice-list")).content.decode()
    assert documents["rival_invoice"].number in listing


def test_owner_cannot_read_the_other_customers_invoice(client_for, acme_user, documents):
    client = client_for(acme_user)
    number = documents["rival_invoice"].number
    assert client.get(reverse("portal:invoice-detail", args=[number])).status_code == 404
    assert client.get(reverse("portal:invoice-pdf", args=[number])).status_code == 404


@pytest.mark.parametrize("status", [Invoice.Status.DRAFT, Invoice.Status.HELD])
def test_unissued_invoices_are_invisible(client_for, acme_user, acme, status):
    draft = issued_invoice(customer=acme, period=OCTOBER, status=status)
    assert draft.number is None
    client = client_for(acme_user)
    listing = client.get(reverse("portal:invoice-list")).content.decode()
    assert "20,129.03" not in listing
    assert "No invoices yet" in listing
    # Even a guessed pk-like number never resolves to it.
    for guess in (str(draft.pk), "None", f"draft-{draft.pk}"):
        assert client.get(reverse("portal:invoice-detail", args=[guess])).status_code == 404
        assert client.get(reverse("portal:invoice-pdf", args=[guess])).status_code == 404


def test_login_without_customer_gets_a_plain_403(client_for, documents):
    staff = StaffFactory(username="finance")
    client = client_for(staff)
    for url in [reverse("portal:invoice-list"), reverse("portal:balance")]:
        response = client.get(url)
        assert response.status_code == 403
        assert b"not linked to a customer account" in response.content
    response = client.get(reverse("portal:invoice-detail", args=[documents["invoice"].number]))
    assert response.status_code == 403
    assert b"Acme" not in response.content
    assert b"20,129.03" not in response.content


def test_two_users_of_one_customer_share_its_documents(client_for, acme, documents):
    colleague = CustomerUserFactory(customer=acme, user__username="carol").user
    url = reverse("portal:invoice-detail", args=[documents["invoice"].number])
    assert client_for(colleague).get(url).status_code == 200


def test_pages_are_not_cached(client_for, acme_user, documents):
    response = client_for(acme_user).get(reverse("portal:invoice-list"))
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_documents_only_answer_get(client_for, acme_user, documents):
    client = client_for(acme_user)
    url = reverse("portal:invoice-detail", args=[documents["invoice"].number])
    assert client.post(url).status_code == 405
