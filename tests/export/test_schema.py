"""Schemathesis over the OpenAPI schema served at /api/schema/, restricted to the accounting
endpoints: generated requests (valid and invalid parameters) never get a 5xx, and every
response matches the documented status codes, content types and JSON schemas."""

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import roles
from tests.export.factories import Line, credit_note, issued_invoice, ledger_entry

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


# Loaded at collection through the real WSGI app (the schema view needs no database).
# Unknown query parameters are ignored on purpose (HTTP convention), so schemathesis is told
# not to send them as "invalid" data; every documented parameter is fuzzed, valid and invalid.
CONFIG = schemathesis.Config.from_dict(
    {"generation": {"allow-extra-parameters": False, "deterministic": True}}
)
try:
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/", get_wsgi_application(), config=CONFIG
    ).include(path_regex=r"^/api/v1/accounting/")
    SCHEMA_ERROR = None
except Exception as exc:  # noqa: BLE001 - a broken schema must fail a test, not collection
    schema, SCHEMA_ERROR = None, exc


@pytest.fixture
def keep_test_connection():
    """The raw WSGI app closes "old" database connections around each request, which on
    PostgreSQL would end the test's transaction; Django's own test client does the same
    disconnecting."""

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def export_data(db):
    """Some documents, so list responses have rows to validate."""
    invoice = issued_invoice(
        lines=[Line("dau_fee", "6000.00", peak_dau=9000), Line("storage", "1000.00")]
    )
    credit_note(invoice=invoice, amounts={2: "400.00"})
    ledger_entry(
        customer=invoice.customer,
        kind="deposit",
        amount="7000.00",
        created_at=invoice.issued_at,
        reference="BANK-1",
    )


@pytest.fixture
def accounting_token(db) -> str:
    user = get_user_model().objects.create(username="schemathesis")
    user.groups.add(Group.objects.get(name=roles.ACCOUNTING))
    return Token.objects.create(user=user).key


def test_schema_loads():
    assert SCHEMA_ERROR is None, f"/api/schema/ could not be loaded: {SCHEMA_ERROR!r}"
    assert {operation.path for operation in _operations()} == {
        f"/api/v1/accounting/{name}/"
        for name in (
            "invoices",
            "credit-notes",
            "ledger-entries",
            "customers",
            "revenue-summary",
            "journal",
            "prepayment-rollforward",
        )
    }


def _operations():
    return [result.ok() for result in schema.get_all_operations()]


def _parametrize():
    if schema is None:
        return pytest.mark.skip(reason="the schema did not load: see test_schema_loads")
    return schema.parametrize()


@_parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_accounting_api_conforms_to_its_schema(
    case, keep_test_connection, export_data, accounting_token
):
    headers = {"Authorization": f"Token {accounting_token}"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
