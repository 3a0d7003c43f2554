import pytest

# Slow: CI logs into the admin in chromium in test_every_page and test_admin_finance already;
# this first check that chromium starts and renders stays for `--run-slow`.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_admin_login_page_renders_in_chromium(page, screenshot):
    page.goto("/admin/login/")
    assert page.locator("input[name=username]").is_visible()
    assert "Log in" in page.title()
    screenshot("admin-login")
