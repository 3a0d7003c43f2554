"""The OpenAPI document at /api/schema/ is valid OpenAPI 3 and the docs at /api/docs/ render."""

from __future__ import annotations

import json

import pytest
import yaml
from drf_spectacular.validation import validate_schema

from accounts.services import IDENTIFIER_PATTERN
from plans.api.views import WORKED_EXAMPLES
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_a_valid_openapi_document(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises jsonschema.ValidationError when invalid
    assert schema["info"]["title"] == "IM billing back-office API"


def test_schema_default_format_is_yaml_of_the_same_document(client, schema):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(response.content) == schema


def test_quote_operation_is_documented_with_the_worked_examples(schema):
    operation = schema["paths"]["/api/v1/quotes/"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "403"}
    body = operation["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/QuoteRequest"}
    request_examples = [example["value"] for example in body["examples"].values()]
    assert request_examples == [request for _name, request, _response in WORKED_EXAMPLES]
    ok = operation["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/QuoteResponse"}
    response_examples = [example["value"] for example in ok["examples"].values()]
    assert response_examples == [response for _name, _request, response in WORKED_EXAMPLES]
    assert {"tokenAuth": []} in operation["security"]

    request = schema["components"]["schemas"]["QuoteRequest"]
    assert sorted(request["required"]) == ["peak_dau", "plan"]
    assert request["properties"]["peak_dau"]["type"] == "integer"
    assert request["properties"]["period"]["pattern"] == r"^\d{4}-\d{2}$"
    line = schema["components"]["schemas"]["QuoteLine"]["properties"]
    assert line["amount"] == {
        "type": "string",
        "format": "decimal",
        "pattern": line["amount"]["pattern"],
    }


def test_swagger_docs_render(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    assert "/api/schema/" in html


DOCS_URLS = ["/api/schema/", "/api/docs/"]


@pytest.mark.parametrize("url", DOCS_URLS)
def test_closed_docs_send_anonymous_readers_to_the_admin_login(client, settings, url):
    settings.API_DOCS_PUBLIC = False
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize("url", DOCS_URLS)
def test_closed_docs_refuse_a_login_that_is_not_staff(client, settings, url):
    settings.API_DOCS_PUBLIC = False
    client.force_login(UserFactory(is_staff=False))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", DOCS_URLS)
def test_closed_docs_serve_staff(client, settings, url):
    settings.API_DOCS_PUBLIC = False
    client.force_login(StaffFactory())
    response = client.get(url)
    assert response.status_code == 200
    assert b"openapi" in response.content or b"swagger-ui" in response.content


@pytest.mark.parametrize("url", DOCS_URLS)
def test_the_setting_opens_the_docs_to_anyone(client, settings, url):
    settings.API_DOCS_PUBLIC = True
    assert client.get(url).status_code == 200


def test_schema_declares_what_the_provisioning_api_accepts(schema):

    components = schema["components"]["schemas"]
    customer = components["CustomerCreateRequest"]["properties"]
    assert customer["external_id"]["pattern"] == IDENTIFIER_PATTERN.pattern
    assert customer["external_id"]["maxLength"] == 64
    assert customer["address"]["maxLength"] == 500
    assert customer["billing_email"]["maxLength"] == 254
    application = components["ApplicationCreateRequest"]["properties"]
    assert application["app_key"]["pattern"] == IDENTIFIER_PATTERN.pattern
    assert application["customer"]["pattern"] == IDENTIFIER_PATTERN.pattern
    assert application["data_center"] == {"$ref": "#/components/schemas/DataCenterEnum"}
    assert components["DataCenterEnum"]["enum"] == ["singapore", "north_america"]
    assert components["PlanChangeRequestRequest"]["properties"]["plan"]["maxLength"] == 32
    usage = components["UsageRowRequest"]["properties"]
    assert usage["app_key"]["pattern"] == IDENTIFIER_PATTERN.pattern
    assert usage["dau"]["maximum"] == 2_147_483_647
    assert components["Estimate"]["properties"]["period"]["pattern"].startswith("^\\d{4}-")
    path = schema["paths"]["/api/v1/applications/{app_key}/addons/{addon}/"]["patch"]
    parameters = {parameter["name"]: parameter for parameter in path["parameters"]}
    assert parameters["app_key"]["schema"]["pattern"] == IDENTIFIER_PATTERN.pattern
    assert parameters["addon"]["schema"]["pattern"] == "^[-a-zA-Z0-9_]+$"
    read = schema["paths"]["/api/v1/customers/{external_id}/"]["get"]["responses"]
    for refused in ("401", "403"):
        body = read[refused]["content"]["application/json"]["schema"]
        # The API's one error shape, like every other refusal.
        assert body == {"$ref": "#/components/schemas/Error"}


def test_an_api_url_that_matches_no_endpoint_is_a_json_404(client):
    response = client.get("/api/v1/customers/a/b/c/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert client.get("/no-such-page/").status_code == 404


def test_the_customer_shows_its_transfer_reference_read_only(schema):
    customer = schema["components"]["schemas"]["Customer"]
    assert customer["properties"]["transfer_reference"]["type"] == "string"
    assert customer["properties"]["transfer_reference"]["readOnly"] is True
