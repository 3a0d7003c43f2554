"""The invoice e-mail's HTML on a phone: 375 px wide, no sideways scrolling, everything in one
column; screenshots in test-artifacts/email-invoice-*.png."""

import pytest
from django.core import mail

from accounts.models import CustomerEvent
from invoices.documents.services import bill_customer
from tests.browser.conftest import ARTIFACTS
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_invoice_email_reads_on_a_phone(
    browser, price_book, settings, django_capture_on_commit_callbacks, language
):
    settings.BILLING_ISSUER_NAME = "Lanting Cloud"
    settings.BILLING_PAYMENT_INSTRUCTIONS = "ICBC Shanghai, account 1001 2002 3003"
    customer, _app = premium_customer(dau=8000, preferred_language=language)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        bill_customer(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    [message] = [m for m in mail.outbox if "INV-2026-000001" in m.subject]
    assert CustomerEvent.objects.get(kind="invoice_issued").email_sent_at is not None
    [(html, _type)] = message.alternatives

    context = browser.new_context(viewport={"width": 375, "height": 700}, device_scale_factor=2)
    page = context.new_page()
    try:
        page.set_content(html)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        # The figures, the button and "how to pay" are all on the page, stacked.
        text = page.inner_text("body")
        assert "¥6,000.00" in text and "¥14,000.00" in text
        button = page.locator("a.button")
        assert button.get_attribute("href").endswith("/invoices/INV-2026-000001/")
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"email-invoice-{language}.png"), full_page=True)
    finally:
        context.close()
