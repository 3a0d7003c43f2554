"""The API's one error shape, and the one place that produces it.

Every refusal of every endpoint under /api/ answers

    {"code": <rule>, "message": <why, in words>, "field": <offending input or null>}

plus, for some rules, details: `errors` (for `invalid`: field -> messages; for a usage batch: a
list of {"index", "field", "message"}, one per bad row), `conflicts` (usage rows of an invoiced
month), `required` and `balance` (`insufficient_deposit`).

- Inside DRF views, `exception_handler` (REST_FRAMEWORK["EXCEPTION_HANDLER"]) turns DRF's own
  exceptions (bad input, no token, wrong role, unknown format, throttled...) and every domain
  `Refusal` (billingsite.refusals) into that body. The HTTP status of a domain refusal comes from
  its code (`STATUS_BY_CODE`; any other rule is a 400).
- Outside DRF (an /api/ URL no view matches, Django's 400/403/500 handlers, the NUL-path
  middleware) `refusal_response` builds the same body as a plain Django response.

Views raise; they never build error dicts themselves.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from billingsite.refusals import Refusal

# Rules that are not "bad input" and so not a 400. Codes are the published contract.
STATUS_BY_CODE: dict[str, int] = {
    # provisioning
    "unknown_customer": status.HTTP_404_NOT_FOUND,
    "unknown_application": status.HTTP_404_NOT_FOUND,
    "duplicate": status.HTTP_409_CONFLICT,
    # deposits
    "idempotency_conflict": status.HTTP_422_UNPROCESSABLE_ENTITY,
    # plans and add-ons
    "insufficient_deposit": status.HTTP_402_PAYMENT_REQUIRED,
    "addon_not_active": status.HTTP_404_NOT_FOUND,
    "month_invoiced": status.HTTP_409_CONFLICT,
    # usage ingest
    "too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
}

INVALID_MESSAGE = "the request has invalid fields"
# DRF's default codes, renamed where the API documents another word for the same refusal.
DRF_CODES = {exceptions.ParseError: "malformed_json"}


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, status.HTTP_400_BAD_REQUEST)


def refusal_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict:
    return {"code": code, "message": message, "field": field, **extra}


def refusal_response(http_status: int, code: str, message: str, field: str | None = None):
    """The error body outside DRF views (plain Django: URL resolver, middleware, handlers)."""
    return JsonResponse(refusal_body(code, message, field), status=http_status)


def _invalid_body(detail: Any) -> dict:
    errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
    return refusal_body("invalid", INVALID_MESSAGE, next(iter(errors), None), errors=errors)


def _drf_body(exc: exceptions.APIException, data: Any) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        return _invalid_body(data)
    code = DRF_CODES.get(type(exc)) or exc.default_code
    return refusal_body(code, str(exc.detail))


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: every refusal of a DRF view, in the one shape.
    Anything else (a bug) returns None: Django's 500 handler answers, in the same shape."""
    if isinstance(exc, Refusal):
        # A refusal changes nothing, also under ATOMIC_REQUESTS.
        set_rollback()
        return Response(exc.body(), status=status_for(exc.code))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    # DRF's handler sets the headers (WWW-Authenticate, Retry-After) and rolls back the
    # atomic request; only the body is ours.
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = _drf_body(exc, response.data)
    return response


# --- The shape, for the schema ------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every refusal: the rule, why, and the offending input."""

    code = serializers.CharField(help_text="The rule that refused the request.")
    message = serializers.CharField()
    field = serializers.CharField(
        allow_null=True, help_text="The offending input, or null for the request as a whole."
    )
    errors = serializers.DictField(
        required=False,
        child=serializers.JSONField(),
        help_text="For `invalid`: each invalid field with its messages.",
    )


class InsufficientDepositSerializer(ErrorSerializer):
    """`insufficient_deposit` (402): the two figures the console shows."""

    required = serializers.CharField(help_text="The plan's minimum deposit, e.g. 8000.00.")
    balance = serializers.CharField(help_text="The customer's balance, e.g. 5000.00.")


class RowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(
        allow_null=True, help_text="Row position, from 0; null for the request as a whole."
    )
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class BatchErrorSerializer(serializers.Serializer):
    """A refused batch (usage rows): nothing was stored; each bad row is listed."""

    code = serializers.CharField(help_text="The rule that refused the request.")
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    errors = RowErrorSerializer(many=True, required=False, help_text="One per bad row.")
    conflicts = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="For `month_invoiced`: each row of an invoiced month, with the invoice.",
    )


def error_response(description: str, serializer=ErrorSerializer, **kwargs) -> OpenApiResponse:
    """A documented refusal of an operation (its schema is the one error shape)."""
    return OpenApiResponse(serializer, description=description, **kwargs)


NOT_AUTHENTICATED = error_response(
    "No token (`not_authenticated`), or an unknown one (`authentication_failed`)."
)
PERMISSION_DENIED = error_response(
    "The token's role may not call this endpoint (`permission_denied`)."
)
