"""`{% document_url %}` gives exactly what `{% url %}` gives, for every document URL."""

import pytest
from django.urls import reverse, set_script_prefix

from invoices.templatetags.portal_urls import DOCUMENT_URLS, document_url


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
