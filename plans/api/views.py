"""The quote API: staff ask "what would this cost?" and get the rating engine's lines."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from billingsite.api import IsStaff
from billingsite.api_errors import NOT_AUTHENTICATED, PERMISSION_DENIED, error_response
from billingsite.parsers import BoundedJSONParser
from plans.api.serializers import (
    QuoteRequestSerializer,
    QuoteResponseSerializer,
    quote_request_data,
    quote_response_body,
)
from plans.quotes import quote_build


def _line(code, category, description, quantity, unit_price, amount, explanation, **days):
    line = {
        "code": code,
        "category": category,
        "description": description,
        "quantity": quantity,
        "unit_price": unit_price,
        "amount": amount,
        "first_day": days.get("first_day", "2026-10-01"),
        "last_day": days.get("last_day", "2026-10-31"),
        "days": days.get("days", 31),
        "explanation": explanation,
    }
    return line


def _response(plan, plan_name, peak_dau, lines, total, **extra):
    body = {
        "currency": "CNY",
        "period": extra.get("period", "2026-10"),
        "plan": plan,
        "plan_name": plan_name,
        "active_from": extra.get("active_from", "2026-10-01"),
        "active_to": extra.get("active_to", "2026-10-31"),
        "days": extra.get("days", 31),
        "days_in_month": extra.get("days_in_month", 31),
        "peak_dau": peak_dau,
        "peak_daily_messages": extra.get("peak_daily_messages"),
        "lines": lines,
        "total": total,
        "high_volume": extra.get("high_volume", False),
        "message": extra.get("message"),
    }
    return body


PREMIUM_DAU = ("premium", "dau_fee", "Premium plan, monthly fee by peak DAU")
ULTIMATE_DAU = ("ultimate", "dau_fee", "Ultimate plan, monthly fee by peak DAU")
KEEPALIVE = ("chatroom_keepalive", "value_added", "Chat room keep-alive")
CALLBACK = ("message_callback", "value_added", "Message callback")

# The worked examples of PRICING.md. tests/plans/test_quote_api.py posts every request and
# checks the answer equals the documented response, so the docs cannot drift from the engine.
WORKED_EXAMPLES = [
    (
        "1. Premium, peak DAU 8,000",
        {"plan": "premium", "peak_dau": 8000, "period": "2026-10"},
        _response(
            "premium",
            "Premium",
            8000,
            [
                _line(
                    *PREMIUM_DAU,
                    1,
                    "6000.00",
                    "6000.00",
                    "peak DAU 8,000: 6,000.00 (up to 10,000 DAU)",
                )
            ],
            "6000.00",
        ),
    ),
    (
        "2. Premium, peak DAU 10,001",
        {"plan": "premium", "peak_dau": 10001, "period": "2026-10"},
        _response(
            "premium",
            "Premium",
            10001,
            [
                _line(
                    *PREMIUM_DAU,
                    1,
                    "9000.00",
                    "9000.00",
                    "peak DAU 10,001: 6,000.00 + 1 x 3,000.00 = 9,000.00",
                )
            ],
            "9000.00",
        ),
    ),
    (
        "3. Ultimate, peak DAU 25,000, two included services",
        {
            "plan": "ultimate",
            "peak_dau": 25000,
            "addons": {"chatroom_keepalive": 1, "message_callback": 1},
            "period": "2026-10",
        },
        _response(
            "ultimate",
            "Ultimate",
            25000,
            [
                _line(
                    *ULTIMATE_DAU,
                    1,
                    "17000.00",
                    "17000.00",
                    "peak DAU 25,000: 8,000.00 + 2 x 4,500.00 = 17,000.00",
                ),
                _line(*KEEPALIVE, 1, "0.00", "0.00", "included in the Ultimate plan"),
                _line(*CALLBACK, 1, "0.00", "0.00", "included in the Ultimate plan"),
            ],
            "17000.00",
        ),
    ),
    (
        "4. Premium, peak DAU 25,000, two services",
        {
            "plan": "premium",
            "peak_dau": 25000,
            "addons": {"chatroom_keepalive": 1, "message_callback": 1},
            "period": "2026-10",
        },
        _response(
            "premium",
            "Premium",
            25000,
            [
                _line(
                    *PREMIUM_DAU,
                    1,
                    "12000.00",
                    "12000.00",
                    "peak DAU 25,000: 6,000.00 + 2 x 3,000.00 = 12,000.00",
                ),
                _line(*KEEPALIVE, 1, "2000.00", "2000.00", "1 x 2,000.00 (enabled)"),
                _line(*CALLBACK, 1, "2000.00", "2000.00", "1 x 2,000.00 (enabled)"),
            ],
            "16000.00",
        ),
    ),
    (
        "5. Premium, sensitive words x 2, private publish rate x 3",
        {
            "plan": "premium",
            "peak_dau": 5000,
            "addons": {"sensitive_words": 2, "api_private_publish": 3},
            "currency": "CNY",
            "period": "2026-10",
        },
        _response(
            "premium",
            "Premium",
            5000,
            [
                _line(
                    *PREMIUM_DAU,
                    1,
                    "6000.00",
                    "6000.00",
                    "peak DAU 5,000: 6,000.00 (up to 10,000 DAU)",
                ),
                _line(
                    "api_private_publish",
                    "api_rate_limit",
                    "API rate limit /message/private/publish.json",
                    3,
                    "400.00",
                    "1200.00",
                    "3 x 400.00 (+6,000/min on /message/private/publish.json) = 1,200.00",
                ),
                _line(
                    "sensitive_words",
                    "sensitive_words",
                    "Extra sensitive words (50 included)",
                    2,
                    "1200.00",
                    "2400.00",
                    "2 x 1,200.00 (pack of 1,000 words) = 2,400.00",
                ),
            ],
            "9600.00",
        ),
    ),
    (
        "6. Premium from the 16th of a 30-day month",
        {"plan": "premium", "peak_dau": 5000, "period": "2026-11", "active_from": "2026-11-16"},
        _response(
            "premium",
            "Premium",
            5000,
            [
                _line(
                    *PREMIUM_DAU,
                    1,
                    "6000.00",
                    "3000.00",
                    "peak DAU 5,000: 6,000.00 (up to 10,000 DAU); pro rata 15 of 30 days: "
                    "6,000.00 x 15/30 = 3,000.00",
                    first_day="2026-11-16",
                    last_day="2026-11-30",
                    days=15,
                )
            ],
            "3000.00",
            period="2026-11",
            active_from="2026-11-16",
            active_to="2026-11-30",
            days=15,
            days_in_month=30,
        ),
    ),
    (
        "High volume: needs a dedicated-service contract",
        {
            "plan": "premium",
            "peak_dau": 8000,
            "period": "2026-10",
            "peak_daily_messages": 2500000,
        },
        _response(
            "premium",
            "Premium",
            8000,
            [
                _line(
                    *PREMIUM_DAU,
                    1,
                    "6000.00",
                    "6000.00",
                    "peak DAU 8,000: 6,000.00 (up to 10,000 DAU)",
                )
            ],
            "6000.00",
            peak_daily_messages=2500000,
            high_volume=True,
            message="peak daily messages 2,500,000 exceed the Premium plan's limit of 2,000,000 "
            "delivered messages a day: the application is high-volume and needs a "
            "dedicated-service contract with a negotiated monthly fee; the DAU-table price of "
            "this quote does not apply to it",
        ),
    ),
]

ERROR_EXAMPLE = {
    "code": "invalid",
    "message": "the request has invalid fields",
    "field": "currency",
    "errors": {
        "currency": ["non-RMB settlement: contract pricing (quotes are in CNY)"],
        "plan": ["unknown plan code 'gold' (known: free, premium, ultimate)"],
    },
}
ERROR_EXAMPLE_REQUEST = {"plan": "gold", "peak_dau": 8000, "currency": "USD"}


class QuoteView(APIView):
    """POST /api/v1/quotes/: price a hypothetical application with the one rating engine."""

    permission_classes = [IsStaff]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="quote_create",
        summary="Quote what an application would cost",
        description=(
            "Prices one application for one month (default: the current Asia/Shanghai month) "
            "with the prices valid in that month, by the same rating engine as the month-end "
            "run: DAU fee by peak DAU (base + started 10,000-DAU blocks), add-ons, pro rata by "
            "days when `active_from`/`active_to` cover part of the month, each line rounded "
            "half-up to 0.01, total = sum of lines. Amounts are CNY strings with two decimals. "
            "Staff only: session or `Authorization: Token <key>` "
            "(`manage.py drf_create_token <username>`)."
        ),
        request=QuoteRequestSerializer,
        responses={
            200: QuoteResponseSerializer,
            400: error_response(
                "Bad input (`invalid`: `errors` has a message per field; `malformed_json`); "
                "nothing is priced.",
                examples=[OpenApiExample("Bad input", value=ERROR_EXAMPLE)],
            ),
            401: NOT_AUTHENTICATED,
            403: PERMISSION_DENIED,
        },
        examples=[
            example
            for name, request, response in WORKED_EXAMPLES
            for example in (
                OpenApiExample(name, value=request, request_only=True),
                OpenApiExample(name, value=response, response_only=True, status_codes=["200"]),
            )
        ],
        tags=["quotes"],
    )
    def post(self, request):
        data = quote_request_data(request.data)
        quote = quote_build(
            plan_code=data["plan"],
            peak_dau=data["peak_dau"],
            addons=data.get("addons") or {},
            currency=data.get("currency"),
            period=data.get("period"),
            active_from=data.get("active_from"),
            active_to=data.get("active_to"),
            peak_daily_messages=data.get("peak_daily_messages"),
            now=timezone.now(),
        )
        return Response(quote_response_body(quote))
