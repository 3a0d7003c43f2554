"""The providers' notification endpoints: CSRF-exempt (the provider posts them), trusted only
after the provider's signature is verified. Each answers what its provider documents, so a
settled notification stops the retries and any failure makes the provider send it again."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.payments import alipay, wechat
from accounts.payments.providers import PaymentRejected, provider_for
from accounts.payments.services import UnknownOrder, top_up_settle
from billingsite.audit import system_actor

logger = logging.getLogger(__name__)


def _handle(request, method: str) -> str | None:
    """None when the notification is settled (or was already); otherwise why it was not."""
    try:
        provider = provider_for(method)
    except LookupError:
        return "payment method not configured"
    try:
        payment = provider.parse_notification(request)
        with system_actor("top-up notification"):
            top_up_settle(payment=payment, now=timezone.now())
    except PaymentRejected as error:
        logger.warning("%s notification rejected: %s", method, error)
        return str(error)
    except UnknownOrder as error:
        logger.warning("%s notification for unknown order %s", method, error)
        return "unknown order"
    except ValueError as error:
        logger.warning("%s notification refused: %s", method, error)
        return str(error)
    except DatabaseError:
        logger.exception("%s notification not settled", method)
        return "temporary failure"
    return None


@csrf_exempt
@require_POST
def alipay_notify(request):
    # Alipay stops retrying on the plain text "success"; anything else is retried.
    failure = _handle(request, alipay.METHOD)
    return HttpResponse("fail" if failure else "success", content_type="text/plain")


@csrf_exempt
@require_POST
def wechat_notify(request):
    # WeChat Pay v3: 204 without a body is success; a 4xx/5xx with {"code": "FAIL"} retries.
    failure = _handle(request, wechat.METHOD)
    if failure is None:
        return HttpResponse(status=204)
    status = 500 if failure == "temporary failure" else 400
    return JsonResponse({"code": "FAIL", "message": failure}, status=status)
