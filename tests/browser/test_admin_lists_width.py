"""The finance lists at a desktop width (1366 px), as a finance manager sees them: every column
inside the list's box.

The admin's own stylesheet keeps list headers on one line; with long headers ("Accounts already
billed") the billing runs list scrolled sideways inside its box and hid when a run started and
finished and who started it, the add-ons list hid its last column. Headers wrap instead."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts import roles
from invoices.models import BillingRun
from tests.browser.test_portal_customer import PASSWORD
from tests.factories import StaffFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LISTS = ["/admin/invoices/billingrun/", "/admin/plans/addon/"]


def test_finance_lists_fit_a_desktop_screen(browser, live_server, price_book, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    roles.sync_roles()  # transactional tests empty the data migration's role groups
    boss = StaffFactory(username="boss", groups=[roles.FINANCE_MANAGER])
    now = timezone.now()
    BillingRun.objects.create(
        period=dt.date(2026, 11, 1), status=BillingRun.Status.FINISHED, created_at=now,
        started_at=now, finished_at=now, created_by=boss, accounts_total=6, accounts_done=6,
        invoices_issued=5, invoices_held=1,
    )  # fmt: skip
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/login/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    for path in LISTS:
        page.goto(path)
        hidden = page.evaluate(
            """() => { const box = document.querySelector('#changelist .results');
                 const right = box.getBoundingClientRect().right;
                 return [...box.querySelectorAll('thead th')]
                   .filter(th => th.getBoundingClientRect().right > right + 1)
                   .map(th => th.textContent.trim()); }"""
        )
        assert hidden == [], f"{path}: columns scrolled out of view at 1366 px: {hidden}"
    context.close()
