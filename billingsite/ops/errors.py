"""Error pages: branded HTML for people (the customer portal), JSON for API clients.

The JSON bodies are the API's one error shape (`billingsite.api_errors.refusal_response`); the
500 page is static HTML (no database, no template context: it must render whatever broke).
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from billingsite.api_errors import refusal_response

_API_PREFIXES = ("/api/",)


def _is_api(request) -> bool:
    return request.path.startswith(_API_PREFIXES)


def permission_denied(request, exception=None):
    if _is_api(request):
        return refusal_response(403, "permission_denied", "You do not have permission for this.")
    return render(request, "403.html", {"language_next": "/"}, status=403)


def page_not_found(request, exception=None):
    if _is_api(request):
        return refusal_response(404, "not_found", "no such API endpoint or resource")
    return render(request, "404.html", {"language_next": "/"}, status=404)


def server_error(request):
    if _is_api(request):
        return refusal_response(
            500, "server_error", "Something went wrong on our side; it is logged."
        )
    return HttpResponseServerError(loader.get_template("500.html").render())


def bad_request(request, exception=None):
    if _is_api(request):
        return refusal_response(400, "bad_request", "Bad request.")
    # Often a bad Host header: rendered without the request, like the 500 page.
    return HttpResponseBadRequest(loader.get_template("400.html").render())


def service_busy(request, *, retry_after: int):
    """Every slot for heavy requests stayed taken (`billingsite.ops.middleware
    .AdmissionMiddleware`): try again shortly. Static like the 500 page: nothing of the request
    has run, and the page must cost nothing on a busy host."""
    if _is_api(request):
        response = refusal_response(
            503, "server_busy", "The server is busy; try again in a few seconds."
        )
    else:
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
    response["Retry-After"] = str(retry_after)
    return response


def misdirected(request):
    """A request other than a light one on the light pool's port (`billingsite.ops.gunicorn`,
    WEB_LIGHT_WORKERS): 421, the status for a request sent to a server that does not produce
    its response. Only the proxy reaches that port, so the answer is for an operator."""
    return refusal_response(
        421,
        "misdirected_request",
        "This port serves only the short machine-facing calls (quote, health checks, metrics, "
        "payment and mail notifications); send other requests to the main port.",
    )
