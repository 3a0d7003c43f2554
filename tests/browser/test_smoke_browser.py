import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_login_page_renders_in_chromium(page, screenshot):
    page.goto("/admin/login/")
    assert page.locator("input[name=username]").is_visible()
    assert "Log in" in page.title()
    screenshot("admin-login")
