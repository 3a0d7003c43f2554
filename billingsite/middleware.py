"""Refuses NUL characters in the URL before any view sees them.

A NUL (`%00`) is never part of an identifier, invoice number or parameter of ours, and
PostgreSQL cannot even compare text with one (the lookup would fail with a 500). So a path
with a NUL names nothing (404): API callers get the API's JSON refusal shape, pages the site's
404 page. A page's query parameter with a NUL is a 400; API query parameters are validated by
their endpoints (DRF and form fields refuse NUL), which answer in their documented shapes.
"""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.http import Http404

from billingsite.api_errors import refusal_response

API_PREFIX = "/api/"


class RefuseNulCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        is_api = request.path_info.startswith(API_PREFIX)
        if "\x00" in request.path_info:
            if is_api:
                return refusal_response(404, "not_found", "no such resource (the path has a NUL)")
            raise Http404("the path contains a NUL character")
        if not is_api:
            for name, values in request.GET.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    raise BadRequest(f"query parameter {name!r} contains a NUL character")
        return self.get_response(request)
