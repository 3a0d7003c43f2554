"""POST /api/v1/quotes/ over HTTP: the worked examples of PRICING.md, every refusal, auth."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from plans.api.views import ERROR_EXAMPLE, ERROR_EXAMPLE_REQUEST, WORKED_EXAMPLES
from plans.price_book import load_price_book
from tests.factories import StaffFactory, UserFactory
from tests.hypothesis_budget import examples

URL = "/api/v1/quotes/"
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def staff_token(django_db_setup, django_db_blocker):
    """The default price book and a staff token, made once for this module (loading the book
    per test costs more than the test) inside a transaction that is rolled back afterwards;
    each test still runs in its own savepoint."""
    with django_db_blocker.unblock(), transaction.atomic():
        load_price_book()
        staff = StaffFactory(username="finance", password=None)
        yield Token.objects.create(user=staff).key
        transaction.set_rollback(True)


@pytest.fixture
def price_book(staff_token):
    """Overrides the conftest fixture: the module's book is already loaded."""


@pytest.fixture
def client(staff_token):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {staff_token}")
    return api


def post(client, body, **extra):
    """Post `body` as JSON; a str is sent as it is (for malformed JSON)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    return client.post(URL, raw, content_type="application/json", **extra)


# --- Worked examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "total"),
    [
        ({"plan": "premium", "peak_dau": 8000}, "6000.00"),
        ({"plan": "premium", "peak_dau": 10000}, "6000.00"),
        ({"plan": "premium", "peak_dau": 10001}, "9000.00"),
        ({"plan": "premium", "peak_dau": 20000}, "9000.00"),
        (
            {
                "plan": "ultimate",
                "peak_dau": 25000,
                "addons": {"chatroom_keepalive": 1, "message_callback": 1},
            },
            "17000.00",
        ),
        (
            {
                "plan": "premium",
                "peak_dau": 25000,
                "addons": {"chatroom_keepalive": 1, "message_callback": 1},
            },
            "16000.00",
        ),
        (
            {
                "plan": "premium",
                "peak_dau": 5000,
                "addons": {"sensitive_words": 2, "api_private_publish": 3},
            },
            "9600.00",
        ),
        (
            {
                "plan": "premium",
                "peak_dau": 5000,
                "period": "2026-11",
                "active_from": "2026-11-16",
                "active_to": "2026-11-30",
            },
            "3000.00",
        ),
    ],
)
def test_worked_examples_of_pricing_md(client, body, total):
    response = post(client, {"period": "2026-10", **body})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["total"] == total
    assert data["currency"] == "CNY"
    assert data["high_volume"] is False
    # The total is the sum of the lines the customer sees.
    assert sum(float(line["amount"]) for line in data["lines"]) == pytest.approx(float(total))


@pytest.mark.parametrize(
    ("name", "request_body", "documented"), WORKED_EXAMPLES, ids=[e[0] for e in WORKED_EXAMPLES]
)
def test_documented_examples_are_what_the_api_answers(client, name, request_body, documented):
    response = post(client, request_body)
    assert response.status_code == 200
    assert response.json() == documented


def test_documented_error_example_is_what_the_api_answers(client):
    response = post(client, ERROR_EXAMPLE_REQUEST)
    assert response.status_code == 400
    assert response.json() == ERROR_EXAMPLE


def test_response_shape_of_example_4(client):
    body = {
        "plan": "premium",
        "peak_dau": 25000,
        "addons": {"chatroom_keepalive": 1, "message_callback": 1},
        "currency": "CNY",
        "period": "2026-10",
        "active_from": "2026-10-16",
        "active_to": "2026-10-31",
        "peak_daily_messages": 1500000,
    }
    response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {
        "currency": "CNY",
        "period": "2026-10",
        "plan": "premium",
        "plan_name": "Premium",
        "active_from": "2026-10-16",
        "active_to": "2026-10-31",
        "days": 16,
        "days_in_month": 31,
        "peak_dau": 25000,
        "peak_daily_messages": 1500000,
        "lines": [
            {
                "code": "premium",
                "category": "dau_fee",
                "description": "Premium plan, monthly fee by peak DAU",
                "quantity": 1,
                "unit_price": "12000.00",
                "amount": "6193.55",
                "first_day": "2026-10-16",
                "last_day": "2026-10-31",
                "days": 16,
                "explanation": "peak DAU 25,000: 6,000.00 + 2 x 3,000.00 = 12,000.00; "
                "pro rata 16 of 31 days: 12,000.00 x 16/31 = 6,193.55",
            },
            {
                "code": "chatroom_keepalive",
                "category": "value_added",
                "description": "Chat room keep-alive",
                "quantity": 1,
                "unit_price": "2000.00",
                "amount": "1032.26",
                "first_day": "2026-10-16",
                "last_day": "2026-10-31",
                "days": 16,
                "explanation": "1 x 2,000.00 (enabled); "
                "pro rata 16 of 31 days: 2,000.00 x 16/31 = 1,032.26",
            },
            {
                "code": "message_callback",
                "category": "value_added",
                "description": "Message callback",
                "quantity": 1,
                "unit_price": "2000.00",
                "amount": "1032.26",
                "first_day": "2026-10-16",
                "last_day": "2026-10-31",
                "days": 16,
                "explanation": "1 x 2,000.00 (enabled); "
                "pro rata 16 of 31 days: 2,000.00 x 16/31 = 1,032.26",
            },
        ],
        "total": "8258.07",
        "high_volume": False,
        "message": None,
    }


@pytest.mark.parametrize(
    ("body", "days", "total"),
    [
        ({"active_to": "2026-10-15"}, 15, "2903.23"),  # 6,000 x 15/31
        ({"active_from": "2026-10-31", "active_to": "2026-10-31"}, 1, "193.55"),
        ({"active_from": "2026-10-01", "active_to": "2026-10-31"}, 31, "6000.00"),
        ({"period": "2028-02", "active_from": "2028-02-29"}, 1, "206.90"),  # leap day
        ({"period": "2026-02", "active_from": "2026-02-15"}, 14, "3000.00"),
    ],
)
def test_pro_rata_days(client, body, days, total):
    response = post(client, {"plan": "premium", "peak_dau": 0, "period": "2026-10", **body})
    assert response.status_code == 200, response.content
    assert (response.json()["days"], response.json()["total"]) == (days, total)


@pytest.mark.parametrize(
    ("moment", "period", "days_in_month"),
    [
        # 2026-10-31 23:59 in Shanghai is still October...
        ("2026-10-31T15:59:00Z", "2026-10", 31),
        # ...and 00:30 on 1 November is November although UTC still says October.
        ("2026-10-31T16:30:00Z", "2026-11", 30),
        ("2028-02-10T04:00:00Z", "2028-02", 29),
    ],
)
def test_period_defaults_to_the_current_shanghai_month(client, moment, period, days_in_month):
    with freeze_time(moment):
        response = post(client, {"plan": "premium", "peak_dau": 10001})
    assert response.status_code == 200
    data = response.json()
    assert (data["period"], data["days_in_month"], data["days"]) == (
        period,
        days_in_month,
        days_in_month,
    )
    assert data["total"] == "9000.00"


@pytest.mark.parametrize(
    ("peak_daily_messages", "high_volume"),
    [(None, False), (2_000_000, False), (2_000_001, True), (10_000_000, True)],
)
def test_high_volume_needs_a_dedicated_service_contract(client, peak_daily_messages, high_volume):
    body = {"plan": "ultimate", "peak_dau": 8000, "period": "2026-10"}
    if peak_daily_messages is not None:
        body["peak_daily_messages"] = peak_daily_messages
    data = post(client, body).json()
    assert data["high_volume"] is high_volume
    if high_volume:
        assert "dedicated-service contract" in data["message"]
        assert f"{peak_daily_messages:,}" in data["message"]
        assert "limit of 2,000,000" in data["message"]
    else:
        assert data["message"] is None


def test_free_plan_quote_is_zero(client):
    data = post(client, {"plan": "free", "peak_dau": 50000, "period": "2026-10"}).json()
    assert data["total"] == "0.00"
    assert data["lines"][0]["explanation"] == "peak DAU 50,000: Free plan has no monthly fee"


def test_currency_cny_or_null_is_accepted(client):
    for currency in ("CNY", None, ""):
        response = post(client, {"plan": "premium", "peak_dau": 1, "currency": currency})
        assert response.status_code == 200, (currency, response.content)


def test_a_quote_writes_nothing(client):
    with CaptureQueriesContext(connection) as queries:
        assert post(client, {"plan": "premium", "peak_dau": 1}).status_code == 200
        assert post(client, {"plan": "gold", "peak_dau": 1}).status_code == 400
    statements = [q["sql"].lstrip().split()[0].upper() for q in queries.captured_queries]
    assert statements and set(statements) == {"SELECT"}


# --- Refusals -----------------------------------------------------------------------------------

NOT_AN_INTEGER = "A whole number is required"
BASE = {"plan": "premium", "peak_dau": 8000, "period": "2026-10"}


def field_errors(response) -> dict:
    """The API's one error shape for invalid input: `errors` holds the messages per field."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and body["message"] == "the request has invalid fields"
    assert body["field"] == next(iter(body["errors"]))
    return body["errors"]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        # Unknown codes.
        ({"plan": "gold"}, ["plan"], "unknown plan code 'gold' (known: free, premium, ultimate)"),
        ({"plan": ""}, ["plan"], "may not be blank"),
        ({"plan": None}, ["plan"], "may not be null"),
        ({"addons": {"gold_support": 1}}, ["addons", "gold_support"], "unknown add-on code"),
        # Add-ons not available on the plan.
        (
            {"plan": "free", "addons": {"chatroom_keepalive": 1}},
            ["addons", "chatroom_keepalive"],
            "Chat room keep-alive (chatroom_keepalive) is not available on the Free plan",
        ),
        (
            {"plan": "free", "addons": {"sensitive_words": 2}},
            ["addons", "sensitive_words"],
            "not available on the Free plan",
        ),
        (
            {"addons": {"ultragroup_storage_extension": 1}},
            ["addons", "ultragroup_storage_extension"],
            "not available on the Premium plan",
        ),
        # Quantities.
        ({"addons": {"desktop_pc": 2}}, ["addons", "desktop_pc"], "on/off service"),
        ({"addons": {"sensitive_words": 0}}, ["addons", "sensitive_words"], "at least 1"),
        ({"addons": {"sensitive_words": -1}}, ["addons", "sensitive_words"], "at least 1"),
        ({"addons": {"sensitive_words": 1.5}}, ["addons", "sensitive_words"], NOT_AN_INTEGER),
        ({"addons": {"sensitive_words": 2.0}}, ["addons", "sensitive_words"], NOT_AN_INTEGER),
        ({"addons": {"sensitive_words": "2"}}, ["addons", "sensitive_words"], NOT_AN_INTEGER),
        ({"addons": {"sensitive_words": True}}, ["addons", "sensitive_words"], NOT_AN_INTEGER),
        ({"addons": {"sensitive_words": None}}, ["addons", "sensitive_words"], "may not be null"),
        (
            {"addons": {"sensitive_words": 10**6}},
            ["addons", "sensitive_words"],
            "at most 1,000 per application",
        ),
        ({"addons": ["chatroom_keepalive"]}, ["addons"], "Expected a dictionary"),
        ({"addons": None}, ["addons"], "may not be null"),
        # DAU.
        ({"peak_dau": -1}, ["peak_dau"], "greater than or equal to 0"),
        ({"peak_dau": 2.5}, ["peak_dau"], NOT_AN_INTEGER),
        ({"peak_dau": 25000.0}, ["peak_dau"], NOT_AN_INTEGER),
        ({"peak_dau": "25000"}, ["peak_dau"], NOT_AN_INTEGER),
        ({"peak_dau": True}, ["peak_dau"], NOT_AN_INTEGER),
        ({"peak_dau": False}, ["peak_dau"], NOT_AN_INTEGER),
        ({"peak_dau": None}, ["peak_dau"], "may not be null"),
        ({"peak_dau": [1]}, ["peak_dau"], NOT_AN_INTEGER),
        ({"peak_dau": 10**10}, ["peak_dau"], "less than or equal to 1000000000"),
        ({"peak_dau": 10**30}, ["peak_dau"], "less than or equal to 1000000000"),
        ({"peak_daily_messages": -5}, ["peak_daily_messages"], "greater than or equal to 0"),
        ({"peak_daily_messages": "lots"}, ["peak_daily_messages"], NOT_AN_INTEGER),
        ({"peak_daily_messages": 10**15}, ["peak_daily_messages"], "less than"),
        # Currency.
        ({"currency": "USD"}, ["currency"], "non-RMB settlement: contract pricing"),
        ({"currency": "cny"}, ["currency"], "non-RMB settlement: contract pricing"),
        ({"currency": 156}, ["currency"], "non-RMB settlement: contract pricing"),
        # Period.
        ({"period": "2026-13"}, ["period"], "period must look like 2026-10"),
        ({"period": "2026-1"}, ["period"], "period must look like 2026-10"),
        ({"period": "October 2026"}, ["period"], "period must look like 2026-10"),
        ({"period": " 2026-10"}, ["period"], "period must look like 2026-10"),
        ({"period": "1999-12"}, ["period"], "period must look like 2026-10"),
        ({"period": 202610}, ["period"], "period must look like 2026-10"),
        ({"period": "2024-10"}, ["plan"], "the Premium plan has no price valid in 2024-10"),
        # Dates.
        (
            {"active_from": "2026-09-30"},
            ["active_from"],
            "2026-09-30 is not inside the period 2026-10 (2026-10-01..2026-10-31)",
        ),
        ({"active_to": "2026-11-01"}, ["active_to"], "is not inside the period 2026-10"),
        (
            {"active_from": "2026-10-20", "active_to": "2026-10-10"},
            ["active_to"],
            "2026-10-10 is before active_from 2026-10-20",
        ),
        ({"active_from": "2026-10-32"}, ["active_from"], "Date has wrong format"),
        ({"active_from": "16/10/2026"}, ["active_from"], "Date has wrong format"),
        ({"active_from": "2026-10-16T08:00:00"}, ["active_from"], "Date has wrong format"),
        ({"active_from": 20261016}, ["active_from"], "Date has wrong format"),
        # A misspelt field is refused, not silently ignored.
        ({"addon": {"desktop_pc": 1}}, ["addon"], "unknown field"),
    ],
)
def test_bad_input_is_refused_with_a_message_for_the_field(client, change, path, message):
    response = post(client, {**BASE, **change})
    errors = field_errors(response)
    for key in path:
        errors = errors[key]
    assert any(message in text for text in errors), errors


def test_missing_required_fields(client):
    response = post(client, {})
    assert field_errors(response) == {
        "plan": ["This field is required."],
        "peak_dau": ["This field is required."],
    }


def test_every_problem_is_reported_at_once(client):
    response = post(
        client,
        {
            "plan": "premium",
            "peak_dau": 8000,
            "period": "2026-10",
            "currency": "EUR",
            "active_from": "2026-11-02",
            "addons": {"ultragroup_storage_extension": 1, "nope": 1, "desktop_pc": 3},
        },
    )
    assert field_errors(response) == {
        "currency": ["non-RMB settlement: contract pricing (quotes are in CNY)"],
        "active_from": ["2026-11-02 is not inside the period 2026-10 (2026-10-01..2026-10-31)"],
        "addons": {
            "ultragroup_storage_extension": [
                "Extend ultragroup message cloud storage (ultragroup_storage_extension) is not "
                "available on the Premium plan"
            ],
            "nope": ["unknown add-on code 'nope'"],
            "desktop_pc": [
                "Desktop (PC) client (desktop_pc) is an on/off service: its quantity is 1"
            ],
        },
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"plan": "premium", "peak_dau": ', "JSON parse error"),
        ("{'plan': 'premium'}", "JSON parse error"),
        ('{"plan": "premium", "peak_dau": NaN}', "JSON parse error"),
        ('{"plan": "premium", "peak_dau": 1' + "0" * 5000 + "}", "JSON parse error"),
        ("not json", "JSON parse error"),
    ],
)
def test_malformed_json_is_refused(client, raw, message):
    response = post(client, raw)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "malformed_json" and body["field"] is None
    assert message in body["message"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[1, 2]", "The request body must be a JSON object, got list."),
        ('"premium"', "The request body must be a JSON object, got str."),
        ("42", "The request body must be a JSON object, got int."),
        ("true", "The request body must be a JSON object, got bool."),
    ],
)
def test_non_object_body_is_refused(client, raw, message):
    response = post(client, raw)
    assert field_errors(response) == {"non_field_errors": [message]}


def test_null_body_is_refused(client):
    response = post(client, "null")
    assert field_errors(response)["non_field_errors"]


def test_huge_float_dau_is_refused(client):
    response = post(client, '{"plan": "premium", "peak_dau": 1e400}')
    assert NOT_AN_INTEGER in field_errors(response)["peak_dau"][0]


def test_form_encoded_body_is_unsupported(client):
    response = client.post(URL, {"plan": "premium", "peak_dau": "1"})
    assert response.status_code == 415


# Any JSON at all: the answer is 200 or 400, never a 500.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["premium", "ultimate", "free", "2026-10", "2026-10-16", "CNY"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "plan",
    "peak_dau",
    "addons",
    "currency",
    "period",
    "active_from",
    "active_to",
    "peak_daily_messages",
]
ADDON_CODES = st.sampled_from(["desktop_pc", "sensitive_words", "ultragroup_storage_extension"])


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=8)
    | st.fixed_dictionaries(
        {
            "plan": st.sampled_from(["free", "premium", "ultimate", "gold"]),
            "peak_dau": st.integers(-10, 10**10),
        },
        optional={
            "addons": st.dictionaries(ADDON_CODES | st.text(max_size=5), JSON_VALUES),
            "period": st.sampled_from(["2026-02", "2028-02", "2026-10", "2024-01", "2026-00"]),
            "active_from": st.dates().map(str),
            "active_to": st.dates().map(str),
            "peak_daily_messages": st.integers(-10, 10**13),
            "currency": st.sampled_from(["CNY", "USD", None, ""]),
        },
    )
    | JSON_VALUES
)
def test_property_any_json_gets_200_or_400_never_500(client, body):
    response = post(client, body)
    assert response.status_code in (200, 400), (body, response.content)
    data = response.json()
    if response.status_code == 200:
        total = sum(int(line["amount"].replace(".", "")) for line in data["lines"])
        assert re.fullmatch(r"\d+\.\d\d", data["total"])
        assert int(data["total"].replace(".", "")) == total
    else:
        assert data


# --- Authentication and permissions -------------------------------------------------------------

EXAMPLE = {"plan": "premium", "peak_dau": 8000, "period": "2026-10"}


def test_unauthenticated_request_gets_401(price_book):
    response = post(APIClient(), EXAMPLE)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_unknown_token_gets_401(price_book):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert post(api, EXAMPLE).status_code == 401


def test_inactive_staff_token_gets_401(price_book):
    user = StaffFactory(is_active=False, password=None)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert post(api, EXAMPLE).status_code == 401


def test_non_staff_token_gets_403(price_book):
    user = UserFactory(password=None)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = post(api, EXAMPLE)
    assert response.status_code == 403
    assert "total" not in response.json()


def test_non_staff_session_gets_403(price_book):
    api = APIClient()
    api.force_login(UserFactory(password=None))
    assert post(api, EXAMPLE).status_code == 403


def test_staff_session_may_quote(price_book):
    api = APIClient()
    api.force_login(StaffFactory(password=None))
    response = post(api, EXAMPLE)
    assert response.status_code == 200
    assert response.json()["total"] == "6000.00"


def test_staff_session_needs_the_csrf_token(price_book):
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(StaffFactory(password=None))
    response = post(api, EXAMPLE)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied" and "CSRF" in body["message"]


def test_token_made_by_drf_create_token_works(price_book):
    StaffFactory(username="sales", password=None)
    out = io.StringIO()
    call_command("drf_create_token", "sales", stdout=out)
    key = re.search(r"Generated token (\w+) for user sales", out.getvalue()).group(1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = post(api, {**EXAMPLE, "peak_dau": 10001})
    assert response.status_code == 200
    assert response.json()["total"] == "9000.00"


def test_only_post_is_allowed(client):
    assert client.get(URL).status_code == 405
    assert client.put(URL, EXAMPLE, format="json").status_code == 405
