"""`{% document_url %}` and `{% fixed_url %}` give exactly what `{% url %}` gives."""

import pytest
from django.urls import reverse, set_script_prefix

from invoices.templatetags.portal_urls import DOCUMENT_URLS, document_url, fixed_url


@pytest.mark.parametrize("name", sorted(DOCUMENT_URLS))
@pytest.mark.parametrize("number", ["INV-2026-000001", "CN-2026-000012", "é 100%", "a?b#c"])
@pytest.mark.parametrize("prefix", ["/", "/billing/"])
def test_same_url_as_reverse(name, number, prefix):
    set_script_prefix(prefix)
    try:
        assert document_url(name, number) == reverse(f"portal:{name}", args=[number])
        assert document_url(name, number).startswith(prefix)
    finally:
        set_script_prefix("/")


@pytest.mark.parametrize(
    "name",
    [
        "portal:home",
        "portal:balance",
        "portal:estimate",
        "portal:invoice-list",
        "set_language",
        "portal:logout",
    ],
)
@pytest.mark.parametrize("prefix", ["/", "/billing/"])
def test_fixed_url_same_as_reverse(name, prefix):
    set_script_prefix(prefix)
    try:
        assert fixed_url(name) == reverse(name)
        assert fixed_url(name).startswith(prefix)
    finally:
        set_script_prefix("/")
