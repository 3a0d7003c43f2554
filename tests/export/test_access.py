"""Only Accounting tokens read the export; every other role is refused; each token has its own
throttle budget."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from accounts import roles
from tests.export.conftest import json_body
from tests.export.factories import issued_invoice, token_client
from tests.factories import StaffFactory

# (path, query) of every export endpoint.
ENDPOINTS = [
    ("/api/v1/accounting/invoices/", {}),
    ("/api/v1/accounting/credit-notes/", {}),
    ("/api/v1/accounting/ledger-entries/", {}),
    ("/api/v1/accounting/customers/", {}),
    ("/api/v1/accounting/revenue-summary/", {"period": "2026-10"}),
    ("/api/v1/accounting/journal/", {"period": "2026-11"}),
    ("/api/v1/accounting/prepayment-rollforward/", {"period": "2026-11"}),
]

OTHER_ROLES = {
    "console": {"groups": (roles.CONSOLE,)},
    "ingest": {"groups": (roles.INGEST,)},
    "finance clerk": {"groups": (roles.FINANCE_CLERK,), "is_staff": True},
    "finance manager": {"groups": (roles.FINANCE_MANAGER,), "is_staff": True},
    "auditor": {"groups": (roles.AUDITOR,), "is_staff": True},
    "plain staff": {"is_staff": True},
    "superuser": {"is_staff": True, "is_superuser": True},
    "no role": {},
}


@pytest.mark.django_db
@pytest.mark.parametrize("url,query", ENDPOINTS)
def test_accounting_token_reads_every_endpoint(accounting, url, query):
    issued_invoice()
    json_response = accounting.get(url, query)
    assert json_response.status_code == 200
    assert json_response["Content-Type"] == "application/json"
    csv_response = accounting.get(url, {**query, "format": "csv"})
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(OTHER_ROLES))
def test_every_other_role_is_refused(role):
    issued_invoice()
    client = token_client(**OTHER_ROLES[role])
    for url, query in ENDPOINTS:
        for params in (query, {**query, "format": "csv"}):
            response = client.get(url, params)
            assert response.status_code == 403, (role, url, params)
            # Errors are JSON even when CSV was asked for, and give nothing away.
            assert response["Content-Type"] == "application/json"
            assert json_body(response) == {
                "code": "permission_denied",
                "message": "Your token's role may not call this endpoint.",
                "field": None,
            }


@pytest.mark.django_db
@pytest.mark.parametrize("url,query", ENDPOINTS)
def test_anonymous_and_unknown_tokens_get_401(url, query):
    issued_invoice()
    anonymous = APIClient().get(url, query)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert forged.get(url, query).status_code == 401


@pytest.mark.django_db
def test_a_logged_in_admin_session_is_not_a_token():
    """The export authenticates by token only: an admin's browser session does not count."""
    staff = StaffFactory(is_superuser=True, groups=(roles.ACCOUNTING,))
    client = APIClient()
    client.force_login(staff)
    assert client.get("/api/v1/accounting/invoices/").status_code == 401


@pytest.mark.django_db
def test_accounting_role_is_not_staff_and_has_no_model_permissions(accounting):
    """The Accounting group grants nothing in the admin: its users only hold API tokens."""

    assert Group.objects.get(name=roles.ACCOUNTING).permissions.count() == 0


@pytest.mark.django_db
def test_throttle_is_per_token():
    first = token_client(groups=(roles.ACCOUNTING,))
    second = token_client(groups=(roles.ACCOUNTING,))
    url = "/api/v1/accounting/invoices/"
    with override_settings(
        REST_FRAMEWORK={
            "DEFAULT_THROTTLE_RATES": {"accounting": "3/minute"},
        }
    ):
        assert [first.get(url).status_code for _ in range(3)] == [200, 200, 200]
        refused = first.get(url)
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) > 0
        # CSV requests count against the same budget.
        assert first.get(url, {"format": "csv"}).status_code == 429
        # Another token still has its own budget.
        assert second.get(url).status_code == 200


@pytest.mark.django_db
def test_accounting_token_can_do_nothing_else(accounting):
    """The Accounting role reads the export and nothing else: every other operation the API
    publishes (quotes, usage ingest, provisioning, deposits...) refuses its token before
    looking at the request, and it cannot use the admin."""

    schema = SchemaGenerator().get_schema(request=None, public=True)
    others = [
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in schema["paths"].items()
        if not path.startswith("/api/v1/accounting/")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert any(path == "/api/v1/quotes/" for _, path in others)
    assert any(path == "/api/v1/usage/" for _, path in others)
    for method, path in others:
        response = getattr(accounting, method)(path, {}, format="json")
        assert response.status_code == 403, (method, path, response.status_code)

    staff_user = get_user_model().objects.get(groups__name=roles.ACCOUNTING)
    admin = APIClient()
    admin.force_login(staff_user)
    response = admin.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
