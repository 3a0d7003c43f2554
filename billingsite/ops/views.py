"""Thin views of the operational endpoints; none needs a login (/metrics has its own guard)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from billingsite.ops.health import readiness
from billingsite.ops.metrics import render_metrics


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = readiness()
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)


def _metrics_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    # Behind the TLS proxy every request comes from 127.0.0.1: a forwarded request is never
    # trusted by address, only a direct scrape of the web process is.
    if "HTTP_X_FORWARDED_FOR" in request.META:
        return False
    return request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_IPS


@never_cache
@require_GET
def metrics(request):
    if not _metrics_allowed(request):
        return JsonResponse(
            {"code": "forbidden", "message": "metrics need the METRICS_TOKEN bearer token"},
            status=403,
        )
    return HttpResponse(
        render_metrics(now=timezone.now()), content_type="text/plain; version=0.0.4; charset=utf-8"
    )
