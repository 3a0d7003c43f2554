"""The quote API's plain request and response path gives exactly what its DRF serializers give.

`quote_request_data` skips building QuoteRequestSerializer for a body every field accepts as
it is, and `quote_response_body` builds the answer without QuoteResponseSerializer (both cost
a third of a quote's CPU). The serializers stay the definition: whatever the plain path
accepts must be accepted by the serializer with the same validated data, whatever it does not
accept goes to the serializer (same 400 body), and the answer must be the serializer's.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from billingsite.clock import Period
from plans.api import serializers as quote_serializers
from plans.api.serializers import (
    QuoteRequestSerializer,
    QuoteResponseSerializer,
    quote_request_data,
    quote_response_body,
)
from plans.api.views import WORKED_EXAMPLES
from plans.quotes import QuoteError, quote_build
from tests.hypothesis_budget import examples


def serializer_outcome(body):
    """('valid', validated data) or ('invalid', errors) as QuoteRequestSerializer decides."""
    serializer = QuoteRequestSerializer(data=body)
    if serializer.is_valid():
        return "valid", dict(serializer.validated_data)
    return "invalid", serializer.errors


def plain_outcome(body):
    try:
        return "valid", dict(quote_request_data(body))
    except ValidationError as exc:
        return "invalid", exc.detail


@pytest.mark.parametrize(
    "body",
    [
        {"plan": "premium", "peak_dau": 8000},
        {"plan": "premium", "peak_dau": 0, "addons": {}},
        {"plan": "ultimate", "peak_dau": 25000, "addons": {"chatroom_keepalive": 1}},
        {
            "plan": "premium",
            "peak_dau": 5000,
            "addons": {"sensitive_words": 2, "api_private_publish": 3},
            "currency": "CNY",
            "period": "2026-11",
            "active_from": "2026-11-16",
            "active_to": "2026-11-30",
            "peak_daily_messages": 2_500_000,
        },
        {"plan": "premium", "peak_dau": 1, "currency": None, "period": None},
        {"plan": "premium", "peak_dau": 1, "active_from": None, "peak_daily_messages": None},
        {"plan": "gold", "peak_dau": 1_000_000_000, "currency": "USD"},
    ],
)
def test_a_plain_body_takes_the_plain_path_with_the_serializers_data(body):
    plain = quote_serializers._plainly_valid(body)
    assert plain is not None
    assert serializer_outcome(body) == ("valid", plain)


@pytest.mark.parametrize(
    "body",
    [
        # Each is accepted or refused by the serializer's own rules (trimming, coercion,
        # wording): the plain path leaves them to it.
        {"plan": " premium ", "peak_dau": 1},
        {"plan": "premium", "peak_dau": True},
        {"plan": "premium", "peak_dau": 1.0},
        {"plan": "premium", "peak_dau": "1"},
        {"plan": "premium", "peak_dau": -1},
        {"plan": "premium", "peak_dau": 10**10},
        {"plan": "premium", "peak_dau": 1, "addons": None},
        {"plan": "premium", "peak_dau": 1, "addons": {"x": 0}},
        {"plan": "premium", "peak_dau": 1, "addons": {"x": 10**7}},
        {"plan": "premium", "peak_dau": 1, "addons": {"a b": 1}},
        {"plan": "premium", "peak_dau": 1, "currency": ""},
        {"plan": "premium", "peak_dau": 1, "currency": "C\x00Y"},
        {"plan": "premium", "peak_dau": 1, "period": "2026-13"},
        {"plan": "premium", "peak_dau": 1, "period": "1999-12"},
        {"plan": "premium", "peak_dau": 1, "active_from": "2026-10-32"},
        {"plan": "premium", "peak_dau": 1, "active_from": "2026-1-5"},
        {"plan": "premium", "peak_dau": 1, "addon": {}},
        {"plan": "premium"},
        {},
        [],
        None,
    ],
)
def test_anything_else_is_left_to_the_serializer(body):
    assert quote_serializers._plainly_valid(body) is None
    assert plain_outcome(body) == serializer_outcome(body)


TEXT = st.text(max_size=10) | st.sampled_from(
    ["premium", "free", "CNY", "RMB", "2026-10", "2026-02", "2026-10-16", "2026-02-30", "x-y_z"]
)
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**13), max_value=10**13)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.dates().map(str)
    | st.dictionaries(TEXT, st.integers(-2, 2_000_000) | st.booleans() | st.none(), max_size=3)
)
FIELDS = sorted(quote_serializers._FIELD_NAMES) + ["addon", "peak_DAU"]


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8)
    | st.fixed_dictionaries(
        {
            "plan": st.sampled_from(["free", "premium", "gold", " premium", ""]),
            "peak_dau": st.integers(-2, 2 * 10**9),
        },
        optional={
            "addons": st.dictionaries(TEXT, st.integers(-2, 2_000_000)),
            "currency": st.sampled_from(["CNY", "cny", "USD", None, "", "CNY "]),
            "period": st.sampled_from(["2026-10", "2026-00", "2026-1", None]),
            "active_from": st.dates().map(str) | st.none(),
            "active_to": st.sampled_from(["2026-10-31", "2026-10-31T00:00", None]),
            "peak_daily_messages": st.integers(-2, 2 * 10**12) | st.none(),
        },
    )
)
def test_property_the_plain_path_decides_as_the_serializer(body):
    assert plain_outcome(body) == serializer_outcome(body)


# --- The response -------------------------------------------------------------------------


def as_json(data) -> object:
    return json.loads(json.dumps(data))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "request_body", [e[1] for e in WORKED_EXAMPLES], ids=[e[0] for e in WORKED_EXAMPLES]
)
def test_the_response_body_is_the_serializers(price_book, request_body):
    data = QuoteRequestSerializer(data=request_body)
    data.is_valid(raise_exception=True)
    quote = quote_build(now=timezone.now(), **_arguments(data.validated_data))
    body = quote_response_body(quote)
    assert body == as_json(QuoteResponseSerializer(quote).data)
    assert as_json(body) == body


@pytest.mark.django_db
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.sampled_from(["free", "premium", "ultimate"]),
    peak_dau=st.integers(0, 10**9),
    addons=st.dictionaries(
        st.sampled_from(["chatroom_keepalive", "sensitive_words", "api_private_publish"]),
        st.integers(1, 3),
    ),
    first=st.integers(1, 28),
    days=st.integers(0, 3),
    peak_daily_messages=st.none() | st.integers(0, 10**10),
)
def test_property_the_response_body_is_the_serializers(
    price_book, plan, peak_dau, addons, first, days, peak_daily_messages
):
    period = Period.parse("2026-02")
    try:
        quote = quote_build(
            plan_code=plan,
            peak_dau=peak_dau,
            addons=addons,
            period=period,
            active_from=dt.date(2026, 2, first),
            active_to=dt.date(2026, 2, min(first + days, 28)),
            peak_daily_messages=peak_daily_messages,
            now=timezone.now(),
        )
    except QuoteError:
        return
    assert quote_response_body(quote) == as_json(QuoteResponseSerializer(quote).data)


def _arguments(validated: dict) -> dict:
    return {
        "plan_code": validated["plan"],
        "peak_dau": validated["peak_dau"],
        "addons": validated.get("addons") or {},
        "currency": validated.get("currency"),
        "period": validated.get("period"),
        "active_from": validated.get("active_from"),
        "active_to": validated.get("active_to"),
        "peak_daily_messages": validated.get("peak_daily_messages"),
    }
