"""`{% document_url "invoice-detail" invoice.number %}`: the portal URL of one document, what
`{% url 'portal:invoice-detail' invoice.number %}` gives, at a fraction of its cost; and
`{% fixed_url "portal:balance" %}` for the URLs without arguments of every page's header.

A list page names two URLs per row; Django's `reverse` walks the resolver for each (about
0.1 ms a call, a fifth of the invoice list's CPU). Here each URL name is reversed once per
script prefix and URL configuration, with a placeholder, and a document's URL is that
template with its number quoted the way `reverse` quotes a path argument.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.http import RFC3986_SUBDELIMS

register = template.Library()

DOCUMENT_URLS = {
    "invoice-detail",
    "invoice-pdf",
    "fapiao-request",
    "credit-note-detail",
    "credit-note-pdf",
}
_PLACEHOLDER = "0DOCUMENT0"


@lru_cache(maxsize=64)
def _url_template(name: str, script_prefix: str, urlconf: str | None) -> str:
    return reverse(f"portal:{name}", args=[_PLACEHOLDER], urlconf=urlconf)


@register.simple_tag
def document_url(name: str, number: str) -> str:
    return document_urls(name)(number)


def document_urls(name: str) -> Callable[[str], str]:
    """`document_url(name, number)` for the numbers of a list: the script prefix and URL
    configuration (thread-local reads) looked up once."""
    if name not in DOCUMENT_URLS:
        raise template.TemplateSyntaxError(f"document_url: unknown portal URL {name!r}")
    url = _url_template(name, get_script_prefix(), get_urlconf())

    def url_of(number: str) -> str:
        number = str(number)
        if "/" in number:  # what the <str:number> converter never matches
            return reverse(f"portal:{name}", args=[number])
        return url.replace(_PLACEHOLDER, quote(number, safe=RFC3986_SUBDELIMS + "/~:@"))

    return url_of


@lru_cache(maxsize=64)
def _fixed_url(name: str, script_prefix: str, urlconf: str | None) -> str:
    return reverse(name, urlconf=urlconf)


@register.simple_tag
def fixed_url(name: str) -> str:
    """`{% url name %}` for a URL without arguments, reversed once per script prefix."""
    return _fixed_url(name, get_script_prefix(), get_urlconf())
