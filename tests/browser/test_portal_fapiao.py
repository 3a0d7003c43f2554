"""A customer in Debian's chromium requests a special VAT fapiao for an invoice, sees it pending,
and downloads the fapiao once finance recorded it."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from invoices.documents.fapiao import fapiao_issue_record
from invoices.models import FapiaoRequest
from tests.browser.test_portal_customer import log_in
from tests.factories import CustomerUserFactory
from tests.invoices.test_credit_notes import LATER, issued_invoice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

USCC = "91310000MA1FL0000N"
PDF = b"%PDF-1.7\n% fapiao\n"


def test_customer_requests_a_special_fapiao_and_downloads_it(
    page, screenshot, price_book, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    invoice = issued_invoice()
    customer = invoice.customer
    customer.name = "Harbour Chat Ltd"
    customer.tax_id = USCC
    customer.address = "88 Century Avenue, Pudong, Shanghai"
    customer.fapiao_bank = "ICBC Pudong Branch"
    customer.save()
    CustomerUserFactory(customer=customer, user__username="mei")

    log_in(page, "mei")
    page.goto(f"/invoices/{invoice.number}/")
    assert page.locator("#invoice-vat").inner_text() == "¥475.47"
    page.click("#fapiao-link")
    page.wait_for_url(f"**/invoices/{invoice.number}/fapiao/")
    # The form starts from the customer's record.
    assert page.input_value("input[name=buyer_tax_id]") == USCC
    assert page.input_value("input[name=buyer_bank]") == "ICBC Pudong Branch"
    page.check("input[name=kind][value=special]")
    page.fill("input[name=buyer_phone]", "021-5555 0100")
    page.click("#fapiao-submit")
    # No bank account yet: refused, nothing written.
    assert page.locator("#fapiao-form .errorlist").count() == 1
    assert not FapiaoRequest.objects.exists()
    page.fill("input[name=buyer_account]", "1001 2345 6789 0000")
    page.click("#fapiao-submit")
    page.wait_for_selector("#fapiao-status [data-status=pending]")
    assert page.locator("#fapiao-form").count() == 0
    screenshot("portal-fapiao-pending")
    request = FapiaoRequest.objects.get()
    assert (request.kind, request.buyer_account) == ("special", "1001 2345 6789 0000")

    fapiao_issue_record(
        request=request,
        number="26312000000012345678",
        code="",
        date=dt.date(2026, 11, 6),
        amount=Decimal("8400.00"),
        upload=SimpleUploadedFile("fapiao.pdf", PDF),
        now=LATER,
    )
    page.reload()
    page.wait_for_selector("#fapiao-status [data-status=issued]")
    screenshot("portal-fapiao-issued")
    with page.expect_download() as download_info:
        page.click("#fapiao-download")
    download = download_info.value
    assert download.suggested_filename == f"fapiao-{invoice.number}-26312000000012345678.pdf"
    assert Path(download.path()).read_bytes() == PDF
