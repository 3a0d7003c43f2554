"""The mail provider's bounce and complaint webhook: CSRF-exempt (the provider posts it),
trusted only after its Standard Webhooks signature is verified (`accounts.mail.bounces`).

Answers: 204 recorded (or recorded before, or an event type that is not a bounce or a
complaint: the provider stops retrying); 400 a forged, stale or malformed request (nothing
changes); 404 while MAIL_WEBHOOK_SECRET is not set; 413 a body above MAX_BODY; 503 the
database failed (the provider retries)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.mail.bounces import NoticeRefused, notice_record, webhook_notice, webhook_verify

logger = logging.getLogger(__name__)

# A bounce notice is a few kilobytes; anything far larger is not one.
MAX_BODY = 256 * 1024


def _refused(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"code": "notice_refused", "message": message}, status=status)


@csrf_exempt
@require_POST
def mail_events(request):
    secret = settings.MAIL_WEBHOOK_SECRET
    if not secret:
        raise Http404("mail webhook not configured")
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY:
        return _refused("the body is too large", status=413)
    body = request.body
    try:
        notice_id, payload = webhook_verify(body=body, headers=dict(request.headers), secret=secret)
        notice = webhook_notice(notice_id=notice_id, payload=payload)
    except NoticeRefused as error:
        logger.warning("mail webhook refused: %s", error)
        return _refused(str(error))
    if notice is None:
        return HttpResponse(status=204)
    try:
        notice_record(notice=notice, now=timezone.now())
    except DatabaseError:
        logger.exception("mail webhook %s not recorded", notice_id)
        return _refused("temporary failure", status=503)
    return HttpResponse(status=204)
