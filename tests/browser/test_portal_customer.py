"""A customer in Debian's chromium: logs in, opens an invoice, switches to Chinese, downloads
the PDF; and an account in arrears sees the banner with its suspension date."""

import datetime as dt
import io

import pytest
from django.utils import timezone
from pypdf import PdfReader

from accounts.models import DailyUsage
from billingsite.clock import Period, billing_date
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    CustomerUserFactory,
    addon_change,
    deposit,
)
from tests.portal.factories import issued_invoice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


def billed_customer(*, name: str, external_id: str, username: str, deposit_amount: str):
    """A Premium and an Ultimate application with last month's usage, invoiced yesterday."""
    now = timezone.now()
    period = Period.containing(billing_date(now)).previous()
    customer = CustomerFactory(
        name=name, external_id=external_id, address="88 Century Avenue\nPudong, Shanghai"
    )
    chat = ApplicationFactory(
        customer=customer, app_key=f"{external_id}-chat", name="Chat", created_on=period.start,
        plan="premium",
    )  # fmt: skip
    live = ApplicationFactory(
        customer=customer, app_key=f"{external_id}-live", name="Live rooms",
        created_on=period.start, plan="ultimate",
    )  # fmt: skip
    addon_change(chat, "chatroom_keepalive", 1, period.start)
    addon_change(live, "chatroom_keepalive", 1, period.start)
    addon_change(chat, "sensitive_words", 2, period.start)
    DailyUsage.objects.bulk_create(
        DailyUsage(
            application=app, day=period.start + dt.timedelta(days=offset), dau=dau + offset * 10,
            delivered_messages=50_000, updated_at=now,
        )
        for offset in range(period.days)
        for app, dau in ((chat, 14_000), (live, 3_000))
    )  # fmt: skip
    deposit(customer, deposit_amount, key=f"{external_id}-deposit")
    invoice = issued_invoice(customer=customer, period=period, issued_at=now - dt.timedelta(days=1))
    CustomerUserFactory(customer=customer, user__username=username)
    return customer, invoice


def log_in(page, username: str) -> None:
    page.goto("/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]:has-text('Log in')")
    page.wait_for_url("**/invoices/")


def test_customer_reads_invoice_in_chinese_and_downloads_the_pdf(page, screenshot, price_book):
    customer, invoice = billed_customer(
        name="Harbour Chat Ltd", external_id="harbour", username="mei", deposit_amount="90000.00"
    )
    total = f"¥{invoice.total.amount:,.2f}"

    page.goto("/invoices/")
    page.wait_for_url("**/login/?next=/invoices/")
    screenshot("portal-login")
    log_in(page, "mei")
    assert page.locator(f"text={invoice.number}").is_visible()
    screenshot("portal-invoice-list")

    page.click(f"a:has-text('{invoice.number}')")
    page.wait_for_url(f"**/invoices/{invoice.number}/")
    assert page.locator("#invoice-total").inner_text() == total
    assert page.locator(".app-group").count() == 2
    assert page.locator("text=Premium plan, monthly fee by peak DAU").is_visible()
    assert page.locator("#arrears-banner").count() == 0
    screenshot("portal-invoice-en")

    page.click("button[name=language][value=zh-hans]")
    page.wait_for_load_state()
    assert page.url.endswith(f"/invoices/{invoice.number}/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("text=尊享版套餐，按峰值日活计算的月费").is_visible()
    assert page.locator("#download-pdf").inner_text() == "下载 PDF"
    assert page.locator("#invoice-total").inner_text() == total
    screenshot("portal-invoice-zh")

    with page.expect_download() as download_info:
        page.click("#download-pdf")
    download = download_info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    data = open(download.path(), "rb").read()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert invoice.number in text
    assert f"Total 合计 {total}" in text
    assert "尊享版套餐" in text

    page.click("nav.tabs a[href='/balance/']")
    page.wait_for_url("**/balance/")
    assert page.locator("#ledger").is_visible()
    screenshot("portal-balance-zh")
    page.click("nav.tabs a[href='/this-month/']")
    page.wait_for_url("**/this-month/")
    assert page.locator("#estimate-notice").is_visible()
    screenshot("portal-estimate-zh")


def test_account_in_arrears_sees_the_banner_with_its_suspension_date(page, screenshot, price_book):
    customer, invoice = billed_customer(
        name="Lantern Apps Co", external_id="lantern", username="ken", deposit_amount="1000.00"
    )
    customer.refresh_from_db()
    assert customer.arrears_since is not None
    suspension = customer.arrears_since + dt.timedelta(days=7)

    log_in(page, "ken")
    banner = page.locator("#arrears-banner")
    assert banner.is_visible()
    owed = f"¥{invoice.total.amount - 1000:,.2f}"
    assert f"Your balance is negative: -{owed}" in banner.inner_text()
    assert f"suspended on {suspension:%Y-%m-%d}" in banner.inner_text()
    assert f"top up at least {owed}" in banner.inner_text()
    screenshot("portal-arrears-banner")

    page.click("button[name=language][value=zh-hans]")
    page.wait_for_load_state()
    assert f"将于 {suspension:%Y-%m-%d} 暂停" in page.locator("#arrears-banner").inner_text()
    screenshot("portal-arrears-banner-zh")
