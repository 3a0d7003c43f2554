"""The finance back-office in a real browser (Debian's chromium through Playwright).

A clerk records a deposit; a manager clears a held invoice (adds a dedicated-service
contract, re-rates, issues) and credits one line; the balances shown follow. Screenshots of
the key pages go to test-artifacts/.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts import roles
from accounts.models import LedgerEntry
from accounts.selectors import ledger_balance
from billingsite.clock import Period, billing_date
from invoices.documents.services import bill_customer
from invoices.models import CreditNote, Invoice
from plans.price_book import load_price_book
from tests.factories import ApplicationFactory, CustomerFactory, StaffFactory, deposit, usage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _roles_and_fast_passwords(settings, transactional_db):
    # Transactional tests empty the tables afterwards, the role groups of the data migration
    # included: make them again (idempotent).
    roles.sync_roles()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def last_period() -> Period:
    return Period.containing(billing_date(timezone.now())).previous()


def month_of_usage(application, period: Period, *, peak_dau: int, peak_messages: int = 1000):
    for offset in range(period.days):
        day = period.start + dt.timedelta(days=offset)
        usage(
            application,
            day,
            dau=peak_dau if day.day == 15 else 900 + day.day,
            delivered_messages=peak_messages if day.day == 15 else 1000,
        )


def log_in(page, username: str) -> None:
    page.goto("/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("IM billing back-office")


def test_clerk_records_a_deposit(page, screenshot, last_period):
    load_price_book()
    StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])
    alpha = CustomerFactory(name="Alpha Ltd", external_id="cust-alpha")
    app = ApplicationFactory(customer=alpha, app_key="alpha-app", plan="premium")
    month_of_usage(app, last_period, peak_dau=8000)
    deposit(alpha, "2000.00")

    log_in(page, "clerk")
    expect(page.get_by_test_id("dashboard")).to_be_visible()
    screenshot("admin-dashboard-clerk")

    page.get_by_role("link", name="Customers", exact=True).first.click()
    page.get_by_role("link", name="Alpha Ltd").click()
    expect(page.get_by_test_id("balance")).to_have_text("¥2,000.00")
    screenshot("admin-customer")

    page.get_by_role("link", name="Record deposit").click()
    page.fill("input[name=amount]", "6000.00")
    page.fill("input[name=bank_reference]", "ICBC 20261102-0042")
    screenshot("admin-deposit-form")
    page.get_by_role("button", name="Record deposit").click()
    # Nothing is written before the confirmation page is confirmed.
    expect(page.locator("[data-consequence]")).to_contain_text("stays out of arrears")
    screenshot("admin-deposit-confirm")
    assert ledger_balance(customer=alpha) == Decimal("2000.00")
    page.get_by_role("button", name="Confirm: record deposit").click()

    expect(page.locator(".messagelist")).to_contain_text("Deposit of ¥6,000.00 recorded.")
    expect(page.get_by_test_id("balance")).to_have_text("¥8,000.00")
    screenshot("admin-customer-after-deposit")
    entry = LedgerEntry.objects.get(customer=alpha, reference="ICBC 20261102-0042")
    assert (entry.amount.amount, entry.created_by.username) == (Decimal("6000.00"), "clerk")
    assert ledger_balance(customer=alpha) == Decimal("8000.00")

    # A mistyped amount is a form error and records nothing.
    page.get_by_role("link", name="Record deposit").click()
    page.fill("input[name=amount]", "60,00")
    page.fill("input[name=bank_reference]", "ICBC 2")
    page.get_by_role("button", name="Record deposit").click()
    expect(page.locator(".errornote")).to_contain_text("Nothing was changed.")
    screenshot("admin-deposit-form-error")
    assert ledger_balance(customer=alpha) == Decimal("8000.00")


def test_manager_clears_a_held_invoice_and_credits_a_line(page, screenshot, last_period):

    load_price_book()
    StaffFactory(username="manager", groups=[roles.FINANCE_MANAGER])
    beta = CustomerFactory(name="Beta Live Ltd", external_id="cust-beta")
    app = ApplicationFactory(customer=beta, app_key="beta-app", name="Beta Live", plan="premium")
    month_of_usage(app, last_period, peak_dau=12000, peak_messages=3_000_000)
    deposit(beta, "30000.00")
    assert bill_customer(customer=beta, period=last_period, now=timezone.now()) == "held"
    invoice = Invoice.objects.get(customer=beta)

    log_in(page, "manager")
    expect(page.get_by_test_id("held-count")).to_have_text("1")
    screenshot("admin-dashboard-manager")
    page.get_by_role("link", name="Open the review queue").click()
    expect(page.get_by_test_id("review-queue")).to_contain_text("high-volume application")
    screenshot("admin-review-queue")

    page.get_by_role("link", name="Review", exact=True).click()
    expect(page.get_by_test_id("hold-reason")).to_contain_text("3,000,000 delivered messages")
    expect(page.get_by_test_id("customer-balance")).to_have_text("¥30,000.00")
    screenshot("admin-invoice-held")

    page.get_by_role("link", name="Add dedicated-service contract for beta-app").click()
    page.fill("input[name=monthly_fee]", "20000.00")
    page.fill("input[name=first_day]", last_period.start.isoformat())
    page.fill("input[name=reference]", "DS-2026-007")
    screenshot("admin-contract-form")
    page.get_by_role("button", name="Add contract").click()
    expect(page.locator(".messagelist")).to_contain_text("Dedicated-service contract of ¥20,000.00")

    page.get_by_role("button", name="Re-rate", exact=True).click()
    expect(page.get_by_test_id("invoice-status")).to_have_text("Draft")
    expect(page.get_by_test_id("invoice-total")).to_have_text("¥20,000.00")
    expect(page.get_by_test_id("invoice-lines")).to_contain_text("dedicated-service contract")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Issue", exact=True).click()
    expect(page.get_by_test_id("invoice-status")).to_have_text("Issued")
    expect(page.get_by_test_id("customer-balance")).to_have_text("¥10,000.00")
    screenshot("admin-invoice-issued")

    page.get_by_role("link", name="Create credit note").click()
    line = Invoice.objects.get(pk=invoice.pk).lines.get()
    page.get_by_label("Chosen lines, with the amounts below").check()
    page.fill(f"input[name=line_{line.pk}]", "5000.00")
    page.fill("textarea[name=reason]", "Contract fee agreed from the 16th")
    screenshot("admin-credit-note-form")
    page.get_by_role("button", name="Issue credit note").click()
    expect(page.locator("[data-consequence]")).to_contain_text("stays out of arrears")
    screenshot("admin-credit-note-confirm")
    assert not CreditNote.objects.exists()
    page.get_by_role("button", name="Confirm: issue credit note").click()

    expect(page.locator(".messagelist")).to_contain_text(re.compile(r"Credit note CN-\d{4}-\d{6}"))
    expect(page.get_by_test_id("invoice-status")).to_have_text("Partly credited")
    expect(page.get_by_test_id("customer-balance")).to_have_text("¥15,000.00")
    screenshot("admin-invoice-credited")

    page.get_by_role("link", name="Beta Live Ltd").first.click()
    expect(page.get_by_test_id("balance")).to_have_text("¥15,000.00")
    screenshot("admin-customer-after-credit")

    invoice.refresh_from_db()
    note = CreditNote.objects.get(invoice=invoice)
    assert (invoice.status, invoice.total.amount) == ("partially_credited", Decimal("20000.00"))
    assert (note.total.amount, note.created_by.username) == (Decimal("5000.00"), "manager")
    assert ledger_balance(customer=beta) == Decimal("15000.00")
