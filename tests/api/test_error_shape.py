"""The one error shape of the API ({code, message, field}) for the refusals DRF makes itself
and for the paths outside DRF, and the status of a domain refusal by its code."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from accounts import roles
from billingsite.api_errors import STATUS_BY_CODE, exception_handler, status_for
from billingsite.refusals import Refusal
from plans.services import InsufficientDeposit
from tests.export.factories import token_client
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def shape(response) -> dict:
    body = response.json()
    assert set(body) >= {"code", "message", "field"}, body
    return body


@pytest.fixture
def staff() -> APIClient:
    client = APIClient()
    client.force_authenticate(StaffFactory(password=None))
    return client


def test_method_and_media_type_refusals(staff):
    got = staff.get("/api/v1/quotes/")
    assert (got.status_code, shape(got)["code"], shape(got)["field"]) == (
        405,
        "method_not_allowed",
        None,
    )
    form = staff.post("/api/v1/quotes/", {"plan": "premium", "peak_dau": "1"})
    assert (form.status_code, shape(form)["code"]) == (415, "unsupported_media_type")


def test_unknown_token_is_401_authentication_failed_with_the_challenge():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get("/api/v1/customers/anyone/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert shape(response) == {
        "code": "authentication_failed",
        "message": "Invalid token.",
        "field": None,
    }


def test_throttled_is_429_with_retry_after():
    client = token_client(groups=(roles.ACCOUNTING,))
    url = "/api/v1/accounting/customers/"
    rates = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"accounting": "1/minute"}}
    with override_settings(REST_FRAMEWORK=rates):
        assert client.get(url).status_code == 200
        refused = client.get(url, {"format": "csv"})
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert int(refused["Retry-After"]) > 0
    body = shape(refused)
    assert (body["code"], body["field"]) == ("throttled", None)
    assert body["message"].startswith("Request was throttled.")


def test_an_api_url_no_view_matches_is_the_same_shape(staff):
    response = staff.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "no such API endpoint or resource",
        "field": None,
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [("duplicate", 409), ("month_invoiced", 409), ("addon_not_active", 404), ("anything", 400)],
)
def test_a_refusal_answers_the_status_of_its_rule(code, status):
    response = exception_handler(Refusal("no", code=code, field="plan"), {})
    assert response.status_code == status == status_for(code)
    assert response.data == {"code": code, "message": "no", "field": "plan"}


def test_a_refusal_with_details_keeps_them_beside_the_shape():
    refusal = InsufficientDeposit("too poor", required=Decimal("8000"), balance=Decimal("5"))
    response = exception_handler(refusal, {})
    assert response.status_code == STATUS_BY_CODE["insufficient_deposit"] == 402
    assert response.data == {
        "code": "insufficient_deposit",
        "message": "too poor",
        "field": "plan",
        "required": "8000.00",
        "balance": "5.00",
    }
