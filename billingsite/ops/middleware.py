"""One log line and two metric samples per request, with a request id that follows the logs."""

from __future__ import annotations

import logging
import re
import time
import uuid

from django.urls import Resolver404, resolve

from billingsite.api import request_group_names
from billingsite.ops import admission, errors, metrics
from billingsite.ops.context import bind_log_context, clear_log_context

logger = logging.getLogger("billingsite.request")

# A request id from the proxy in front is kept when it looks like one (no log injection).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Probes and scrapes would drown the log; they are counted in the metrics all the same.
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return "/" + (match.route or match.view_name or "")


def _user_fields(request) -> dict[str, object]:
    """Who made the request, without a query where the view already loaded it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    fields: dict[str, object] = {"user": user.get_username()}
    # The portal's views put the login's customer on the request.
    customer = getattr(request, "portal_customer", None)
    if customer is not None:
        fields["role"] = "customer"
        fields["customer"] = customer.external_id
    elif user.is_superuser:
        fields["role"] = "superuser"
    else:
        fields["role"] = ",".join(sorted(request_group_names(request))) or "staff"
    return fields


class RequestObservabilityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        # META, not request.headers: that builds a dict of every header, for this one.
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        clear_log_context()
        bind_log_context(request_id=request_id)
        try:
            response = self.get_response(request)
        except Exception:
            # Django turns view errors into a 500 response before they get here; this is the
            # last resort for errors in middleware, still counted.
            self._observe(request, 500, started)
            clear_log_context()
            raise
        response["X-Request-ID"] = request_id
        self._observe(request, response.status_code, started)
        clear_log_context()
        return response

    def _observe(self, request, status: int, started: float) -> None:
        duration = time.perf_counter() - started
        route = _route(request)
        metrics.observe_request(method=request.method, route=route, status=status, seconds=duration)
        if request.path in _QUIET_PATHS:
            # No line follows, so no fields: a probe with a session cookie would otherwise read
            # the session, the user and its groups only for them.
            return
        match = getattr(request, "resolver_match", None)
        external_id = match.kwargs.get("external_id") if match else None
        try:
            bind_log_context(**{"customer": external_id, **_user_fields(request)})
        except Exception:  # noqa: BLE001 - a log field is never worth failing a response for
            logger.warning("request log fields unavailable", exc_info=True)
        level = logging.ERROR if status >= 500 else logging.INFO
        logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "duration_ms": round(duration * 1000, 1),
            },
        )


class AdmissionMiddleware:
    """Heavy requests take one of the web process's shared slots (`billingsite.ops.admission`)
    before anything else runs for them; a light one (`LIGHT_ROUTES`) goes straight through. A
    request that waits longer than `WEB_HEAVY_WAIT` gets a 503 with Retry-After (the API's JSON
    shape, the branded page for people) instead of hanging. Off (no slots) outside gunicorn.
    In a worker of the sync light pool (`billingsite.ops.gunicorn`, LIGHT_BIND) anything but a
    light request gets a 421."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if admission.light_routes_only() and not _is_light(request):
            return errors.misdirected(request)
        slots = admission.installed_slots()
        if slots is None:
            return self.get_response(request)
        if _is_light(request):
            slots = admission.installed_light_slots()
            if slots is None:
                return self.get_response(request)
        try:
            release = slots.acquire()
        except admission.SlotsBusy:
            return errors.service_busy(request, retry_after=max(1, round(slots.wait_seconds)))
        try:
            response = self.get_response(request)
        except BaseException:
            release()
            raise
        if response.streaming:
            # Its body is generated while the server sends it: the slot is given back when the
            # server closes the response (also when the client went away).
            response._resource_closers.append(release)
        else:
            release()
        return response


def _is_light(request) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return True
    # The request log names the route of a refused request too (Django sets it again later).
    request.resolver_match = match
    return match.view_name in admission.LIGHT_ROUTES
