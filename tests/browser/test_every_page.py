"""Every portal page and the main admin pages at 1366 px and 375 px, light and dark: nothing
cut off at 375 px, the charts drawn, and no serious or critical axe-core violation.

axe-core comes from the `axe-playwright-python` package (its bundled axe.min.js, injected into
the page: no CDN). Axe runs in two of the four passes, light at 1366 px and dark at 375 px:
both colour schemes and both widths are checked, for half the time. CI runs those two passes;
the other two (dark at 1366 px, light at 375 px: the same layout checks in the other scheme)
are marked slow and run with `--run-slow`. Screenshots of every pass go to test-artifacts/.
"""

from decimal import Decimal

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_portal_customer import PASSWORD, billed_customer
from tests.factories import StaffFactory
from tests.portal.factories import credit_note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSES = [
    # (name, width, colour scheme, run axe, admin pages too); the admin is a desktop tool:
    # at 375 px it is checked once, in the dark pass.
    ("1366-light", 1366, "light", True, True),
    ("1366-dark", 1366, "dark", False, True),
    ("375-light", 375, "light", False, False),
    ("375-dark", 375, "dark", True, True),
]
AXE_PASSES = [one_pass for one_pass in PASSES if one_pass[3]]
OTHER_PASSES = [one_pass for one_pass in PASSES if not one_pass[3]]
BLOCKING = ("serious", "critical")


def violations(page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{page.url}: {v['id']} ({v['impact']}) at {[n['target'] for n in v['nodes'][:3]]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def nothing_cut_off(page, width: int) -> None:
    """No horizontal page scroll, and every cell of the lists inside the viewport."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url
    cut = page.evaluate(
        """(width) => [...document.querySelectorAll('main td, main th')]
             .filter(cell => cell.offsetParent !== null && !cell.closest('details:not([open])'))
             .filter(cell => cell.getBoundingClientRect().right > width + 1)
             .map(cell => cell.textContent.trim()).slice(0, 5)""",
        width,
    )
    assert cut == [], f"{page.url}: cut off at {width} px: {cut}"


def visit(page, path: str, *, shot: str, run_axe: bool, problems: list[str]) -> None:
    page.goto(path)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"every-page-{shot}.png"), full_page=True)
    if run_axe:
        problems.extend(violations(page))


@pytest.mark.parametrize(
    "passes",
    [
        pytest.param(AXE_PASSES, id="axe"),
        pytest.param(OTHER_PASSES, id="other-passes", marks=pytest.mark.slow),
    ],
)
def test_every_page_in_both_widths_and_schemes(browser, live_server, price_book, settings, passes):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    customer, invoice = billed_customer(
        name="Lantern Apps Co", external_id="lantern", username="ken", deposit_amount="1000.00"
    )
    line = next(line for line in invoice.lines.all() if line.amount.amount > 0)
    note = credit_note(invoice=invoice, amounts={line.pk: Decimal("500.00")})
    StaffFactory(username="boss", is_superuser=True)
    application = customer.applications.order_by("pk").first()
    portal_pages = [
        "/invoices/",
        f"/invoices/{invoice.number}/",
        f"/credit-notes/{note.number}/",
        "/balance/",
        "/this-month/",
        "/contacts/",
    ]
    admin_pages = [
        "/admin/",
        "/admin/accounts/customer/",
        "/admin/invoices/invoice/",
        "/admin/accounts/ledgerentry/",
        f"/admin/accounts/customer/{customer.pk}/change/",
        f"/admin/accounts/application/{application.pk}/usage/?period={invoice.period:%Y-%m}",
    ]
    problems: list[str] = []
    for name, width, scheme, run_axe, with_admin in passes:
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 900},
            color_scheme=scheme,
        )  # fmt: skip
        page = context.new_page()
        page.set_default_timeout(15_000)

        visit(page, "/login/", shot=f"portal-login-{name}", run_axe=run_axe, problems=problems)
        page.fill("input[name=username]", "ken")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]:has-text('Log in')")
        page.wait_for_url("**/invoices/")
        for path in portal_pages:
            shot = "portal" + path.rstrip("/").replace("/", "-") + f"-{name}"
            visit(page, path, shot=shot, run_axe=run_axe, problems=problems)
            nothing_cut_off(page, width)
            if path == "/invoices/":
                # The negative balance stays on one line (no break after the minus sign).
                amount = page.locator("#current-balance .amount")
                expect(amount).to_have_text(
                    f"-¥{invoice.total.amount - 1500:,.2f}"
                )  # less the credit
                assert amount.evaluate("el => el.getClientRects().length") == 1
                expect(page.locator("#invoice-totals")).to_contain_text(
                    f"¥{invoice.total.amount:,.2f}"
                )
                expect(page.locator(f"a[aria-label='Download invoice {invoice.number} (PDF)']"))
            if path.startswith("/invoices/INV"):
                expect(page.locator("#usage-charts figure")).to_have_count(2)
                expect(page.locator("#usage-charts svg .chart-mark")).to_have_count(2)
            if path == "/balance/":
                expect(page.locator("#balance-chart svg")).to_be_visible()
                expect(page.locator("#ledger-totals")).to_be_visible()
        context.close()
        if not with_admin:
            continue

        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 900},
            color_scheme=scheme,
        )  # fmt: skip
        page = context.new_page()
        page.goto("/admin/login/")
        page.fill("input[name=username]", "boss")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_contain_text("IM billing back-office")
        for path in admin_pages:
            shot = path.split("?")[0].strip("/").replace("/", "-") + f"-{name}"
            visit(page, path, shot=shot, run_axe=run_axe, problems=problems)
            assert "CN¥" not in page.content(), path
            if path == "/admin/":
                expect(page.locator("[data-testid=dashboard-charts] figure")).to_have_count(3)
            if path.startswith("/admin/accounts/customer/") and path.endswith("/change/"):
                # The ledger inline scrolls inside its own box; the page never sideways.
                assert page.evaluate("document.documentElement.scrollWidth") <= width, path
                ledger = page.locator("#ledger_entries-group fieldset.module")
                expect(ledger).to_be_visible()
                box = ledger.bounding_box()
                assert box is not None and box["x"] + box["width"] <= width + 1, path
            if path == "/admin/invoices/invoice/":
                expect(page.locator("[data-testid=list-totals]")).to_contain_text(
                    f"¥{invoice.total.amount:,.2f}"
                )
        context.close()
    assert problems == []
