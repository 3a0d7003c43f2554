"""Error pages: branded HTML for people (the customer portal), JSON for API clients.

The JSON bodies have the API's refusal shape, {"code", "message", "field"}; the 500 page is static HTML
(no database, no template context: it must render whatever broke).
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader

_API_PREFIXES = ("/api/",)


def _is_api(request) -> bool:
    return request.path.startswith(_API_PREFIXES)


def permission_denied(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            {
                "code": "permission_denied",
                "message": "You do not have permission for this.",
                "field": None,
            },
            status=403,
        )
    return render(request, "403.html", {"language_next": "/"}, status=403)


def page_not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            {"code": "not_found", "message": "no such API endpoint or resource", "field": None},
            status=404,
        )
    return render(request, "404.html", {"language_next": "/"}, status=404)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            {
                "code": "server_error",
                "message": "Something went wrong on our side; it is logged.",
                "field": None,
            },
            status=500,
        )
    return HttpResponseServerError(loader.get_template("500.html").render())


def bad_request(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            {"code": "bad_request", "message": "Bad request.", "field": None}, status=400
        )
    # Often a bad Host header: rendered without the request, like the 500 page.
    return HttpResponseBadRequest(loader.get_template("400.html").render())
