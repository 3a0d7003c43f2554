"""Fapiao requests: the customer's form, validation, one per invoice, finance's queue, the file
served only to its customer and finance, the red-letter flag, the tax software's CSV."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from accounts import roles
from accounts.models import Customer
from invoices.documents.fapiao import (
    BuyerDetails,
    FapiaoError,
    buyer_details_clean,
    fapiao_defaults,
    fapiao_export_rows,
    fapiao_issue_record,
    fapiao_reject,
    fapiao_request_create,
)
from invoices.documents.services import credit_note_create
from invoices.models import FapiaoRequest
from tests.factories import CustomerUserFactory, StaffFactory
from tests.invoices.test_credit_notes import LATER, issued_invoice

pytestmark = pytest.mark.django_db
D = Decimal
USCC = "91310000MA1FL0000N"
PDF = b"%PDF-1.7\n% a fapiao\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def ordinary(**changes) -> BuyerDetails:
    fields = {"kind": "ordinary", "buyer_title": "Acme Chat Ltd", "buyer_tax_id": USCC}
    return BuyerDetails(**{**fields, **changes})


SPECIAL = {
    "kind": "special",
    "buyer_title": "Acme Chat Ltd",
    "buyer_tax_id": USCC,
    "buyer_address": "1 Century Avenue, Shanghai",
    "buyer_phone": "021-12345678",
    "buyer_bank": "ICBC Pudong",
    "buyer_account": "1001 2345 6789",
}


def pdf_upload(content: bytes = PDF, name: str = "fapiao.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pdf")


@pytest.mark.parametrize(
    ("details", "field"),
    [
        (ordinary(buyer_tax_id="91310000MA1FL0000M"), "buyer_tax_id"),  # wrong check character
        (ordinary(buyer_tax_id="1234"), "buyer_tax_id"),
        (ordinary(buyer_tax_id=""), "buyer_tax_id"),
        (ordinary(buyer_title="  "), "buyer_title"),
        (ordinary(buyer_title="x" * 201), "buyer_title"),
        (ordinary(kind="golden"), "kind"),
        (BuyerDetails(**{**SPECIAL, "buyer_bank": ""}), "buyer_bank"),
        (BuyerDetails(**{**SPECIAL, "buyer_address": ""}), "buyer_address"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(price_book, details, field):
    invoice = issued_invoice()
    with pytest.raises(FapiaoError) as refused:
        fapiao_request_create(
            invoice=invoice, customer=invoice.customer, details=details, now=LATER
        )
    assert refused.value.field == field
    assert not FapiaoRequest.objects.exists()


def test_one_request_per_invoice_unless_rejected(price_book):
    invoice = issued_invoice()
    first = fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=BuyerDetails(**SPECIAL), now=LATER
    )
    assert (first.status, first.buyer_tax_id, first.buyer_bank) == ("pending", USCC, "ICBC Pudong")
    with pytest.raises(FapiaoError, match="already requested"):
        fapiao_request_create(
            invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
        )
    fapiao_reject(request=first, reason="Wrong bank account", now=LATER)
    again = fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
    )
    assert again.status == "pending"
    assert FapiaoRequest.objects.filter(invoice=invoice).count() == 2


def test_another_customers_invoice_is_refused(price_book):
    invoice = issued_invoice()
    other = issued_invoice()
    with pytest.raises(FapiaoError, match="not yours"):
        fapiao_request_create(
            invoice=invoice, customer=other.customer, details=ordinary(), now=LATER
        )


def test_finance_records_the_fapiao_and_a_credit_note_flags_a_red_letter_one(price_book):
    invoice = issued_invoice()
    request = fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
    )
    with pytest.raises(FapiaoError, match="PDF or OFD"):
        fapiao_issue_record(
            request=request,
            number="12345678901234567890",
            code="",
            date=dt.date(2026, 11, 6),
            amount=D("8400.00"),
            upload=pdf_upload(name="fapiao.exe"),
            now=LATER,
        )
    with pytest.raises(FapiaoError, match="content"):
        fapiao_issue_record(
            request=request,
            number="12345678901234567890",
            code="",
            date=dt.date(2026, 11, 6),
            amount=D("8400.00"),
            upload=pdf_upload(b"MZ not a pdf"),
            now=LATER,
        )
    with pytest.raises(FapiaoError, match="above the invoice total"):
        fapiao_issue_record(
            request=request,
            number="12345678901234567890",
            code="",
            date=dt.date(2026, 11, 6),
            amount=D("8400.01"),
            upload=pdf_upload(),
            now=LATER,
        )
    with pytest.raises(FapiaoError, match="8 or 20 digits"):
        fapiao_issue_record(
            request=request,
            number="12AB",
            code="",
            date=dt.date(2026, 11, 6),
            amount=D("8400.00"),
            upload=pdf_upload(),
            now=LATER,
        )
    request.refresh_from_db()
    assert request.status == "pending" and not request.file

    issued = fapiao_issue_record(
        request=request,
        number="12345678901234567890",
        code="",
        date=dt.date(2026, 11, 6),
        amount=D("8400.00"),
        upload=pdf_upload(),
        now=LATER,
    )
    assert (issued.status, issued.fapiao_amount) == ("issued", D("8400.00"))
    assert issued.file.read() == PDF
    assert issued.red_letter_needed_at is None

    credit_note_create(
        invoice=invoice, line_amounts=None, reason="refund", now=LATER, idempotency_key="fp-cn"
    )
    issued.refresh_from_db()
    assert issued.red_letter_needed_at == LATER


def test_the_file_size_is_limited(price_book, monkeypatch):
    monkeypatch.setattr("invoices.documents.fapiao.MAX_FILE_BYTES", 10)
    invoice = issued_invoice()
    request = fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
    )
    with pytest.raises(FapiaoError, match="larger than"):
        fapiao_issue_record(
            request=request,
            number="12345678901234567890",
            code="",
            date=dt.date(2026, 11, 6),
            amount=D("8400.00"),
            upload=pdf_upload(PDF * 2),
            now=LATER,
        )


def test_the_export_has_buyer_fields_item_amount_rate_and_tax(price_book):
    invoice = issued_invoice()
    fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=BuyerDetails(**SPECIAL), now=LATER
    )
    handled = issued_invoice()
    done = fapiao_request_create(
        invoice=handled, customer=handled.customer, details=ordinary(), now=LATER
    )
    fapiao_reject(request=done, reason="duplicate", now=LATER)
    rows = fapiao_export_rows(FapiaoRequest.objects.all())
    assert len(rows) == 1
    assert rows[0][1:] == [
        invoice.number,
        "增值税专用发票",
        "Acme Chat Ltd",
        USCC,
        "1 Century Avenue, Shanghai 021-12345678",
        "ICBC Pudong 1001 2345 6789",
        "*信息技术服务*即时通讯云服务费 2026-10",
        "7924.53",
        "0.06",
        "475.47",
        "8400.00",
    ]


# --- the pages ----------------------------------------------------------------------------------


def _portal_user(customer, name):
    return CustomerUserFactory(customer=customer, user__username=name).user


def test_the_customer_requests_with_defaults_and_sees_the_status(client, price_book):
    invoice = issued_invoice()
    customer = invoice.customer
    customer.tax_id = USCC
    customer.fapiao_bank = "ICBC Pudong"
    customer.save()
    client.force_login(_portal_user(customer, "alice"))
    url = reverse("portal:fapiao-request", args=[invoice.number])

    page = client.get(url)
    assert page.status_code == 200
    assert page.context["form"].initial["buyer_tax_id"] == USCC
    assert page.context["form"].initial["buyer_bank"] == "ICBC Pudong"
    assert (page.context["amounts"].net, page.context["amounts"].vat) == (D("7924.53"), D("475.47"))

    bad = client.post(url, {"kind": "special", "buyer_title": "Acme", "buyer_tax_id": USCC})
    assert bad.status_code == 400
    assert not FapiaoRequest.objects.exists()

    sent = client.post(url, {"kind": "ordinary", "buyer_title": "Acme", "buyer_tax_id": USCC})
    assert sent.status_code == 302
    request = FapiaoRequest.objects.get()
    assert (request.customer, request.invoice, request.kind) == (customer, invoice, "ordinary")
    again = client.post(url, {"kind": "ordinary", "buyer_title": "Acme", "buyer_tax_id": USCC})
    assert again.status_code == 200  # the form is gone while a request is pending
    assert FapiaoRequest.objects.count() == 1
    detail = client.get(reverse("portal:invoice-detail", args=[invoice.number]))
    assert "fapiao-link" in detail.content.decode()


def test_no_customer_reaches_another_customers_fapiao(client, price_book):
    invoice = issued_invoice()
    request = fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
    )
    fapiao_issue_record(
        request=request,
        number="12345678901234567890",
        code="",
        date=dt.date(2026, 11, 6),
        amount=D("8400.00"),
        upload=pdf_upload(),
        now=LATER,
    )
    file_url = reverse("portal:fapiao-file", args=[invoice.number, request.pk])
    form_url = reverse("portal:fapiao-request", args=[invoice.number])

    rival = issued_invoice()
    client.force_login(_portal_user(rival.customer, "bob"))
    assert client.get(file_url).status_code == 404
    assert client.get(form_url).status_code == 404
    assert (
        client.post(
            form_url, {"kind": "ordinary", "buyer_title": "x", "buyer_tax_id": USCC}
        ).status_code
        == 404
    )
    # Bob's own invoice number with Alice's request id: still nothing.
    crossed = reverse("portal:fapiao-file", args=[rival.number, request.pk])
    assert client.get(crossed).status_code == 404

    client.force_login(_portal_user(invoice.customer, "alice"))
    download = client.get(file_url)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert {"private", "no-store"} <= set(download["Cache-Control"].replace(" ", "").split(","))

    client.logout()
    assert client.get(file_url).status_code == 302  # to the login page


def test_finance_queue_records_rejects_and_exports(client, price_book):
    clerk = StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])
    auditor = StaffFactory(username="auditor", groups=[roles.AUDITOR])
    invoice = issued_invoice()
    request = fapiao_request_create(
        invoice=invoice, customer=invoice.customer, details=ordinary(), now=LATER
    )
    other = issued_invoice()
    to_reject = fapiao_request_create(
        invoice=other, customer=other.customer, details=ordinary(), now=LATER
    )
    client.force_login(clerk)
    changelist = reverse("admin:invoices_fapiaorequest_changelist")
    assert client.get(changelist).status_code == 200

    export = client.post(
        changelist,
        {"action": "export_pending_csv", "_selected_action": [request.pk, to_reject.pk]},
    )
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["request_id", "invoice_number", "fapiao_type"]
    assert rows[1][8] == "金额"
    assert {row[1] for row in rows[2:]} == {invoice.number, other.number}

    change = reverse("admin:invoices_fapiaorequest_change", args=[request.pk])
    refused = client.post(
        change,
        {
            "decision": "issue",
            "fapiao_number": "12345678901234567890",
            "fapiao_date": "2026-11-06",
            "fapiao_amount": "8400.00",
            "file": pdf_upload(b"GIF89a", "fapiao.pdf"),
        },
    )
    assert refused.status_code == 200
    assert "not a PDF file" in refused.content.decode()
    request.refresh_from_db()
    assert request.status == "pending"

    done = client.post(
        change,
        {
            "decision": "issue",
            "fapiao_number": "12345678901234567890",
            "fapiao_date": "2026-11-06",
            "fapiao_amount": "8400.00",
            "file": pdf_upload(),
        },
    )
    assert done.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.fapiao_number, request.handled_by) == (
        "issued",
        "12345678901234567890",
        clerk,
    )
    reject_url = reverse("admin:invoices_fapiaorequest_change", args=[to_reject.pk])
    assert (
        client.post(reject_url, {"decision": "reject", "rejection_reason": ""}).status_code == 200
    )
    assert (
        client.post(
            reject_url, {"decision": "reject", "rejection_reason": "Wrong title"}
        ).status_code
        == 302
    )
    to_reject.refresh_from_db()
    assert (to_reject.status, to_reject.rejection_reason) == ("rejected", "Wrong title")

    file_url = reverse("admin:invoices_fapiaorequest_file", args=[request.pk])
    client.force_login(auditor)
    pending = issued_invoice()
    waiting = fapiao_request_create(
        invoice=pending, customer=pending.customer, details=ordinary(), now=LATER
    )
    assert client.get(changelist).status_code == 200
    view = client.get(reverse("admin:invoices_fapiaorequest_change", args=[waiting.pk]))
    assert view.status_code == 200 and 'name="decision"' not in view.content.decode()
    assert b"".join(client.get(file_url).streaming_content) == PDF
    assert (
        client.post(reject_url, {"decision": "reject", "rejection_reason": "x"}).status_code == 403
    )
    client.force_login(_portal_user(invoice.customer, "alice"))
    assert client.get(file_url).status_code == 302  # the admin's login page, never the file


@pytest.mark.django_db
def test_demo_customers_fapiao_form_starts_with_details_it_accepts(price_book):
    """The demo's first fapiao request: the form starts from the customer's record, and a demo
    tax ID without a valid check character (or 17 characters long) was refused as it stood."""
    call_command("load_demo_data", stdout=io.StringIO())
    with_tax_id = Customer.objects.exclude(tax_id="").order_by("external_id")
    assert [customer.external_id for customer in with_tax_id] == ["demo-aurora", "demo-delta"]
    for customer in with_tax_id:
        details = buyer_details_clean(BuyerDetails(**fapiao_defaults(customer=customer)))
        assert details.buyer_tax_id == customer.tax_id
