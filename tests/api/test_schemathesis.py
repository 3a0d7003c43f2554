"""Schemathesis against every operation of /api/schema/, with a token of each role: no answer
is a server error and every answer (including the 4xx refusals) matches the published schema.

PostgreSQL only (where a NUL or an out-of-range number reaching a query fails loudly). Lean for
CI: few derandomized examples per operation and role, no shrinking, no example database.
"""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import roles
from tests.conftest import postgres_only
from tests.factories import ApplicationFactory, CustomerFactory, UserFactory, deposit, usage

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, postgres_only]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
STAFF = "staff"
ANONYMOUS = "no token"
ROLES = [
    roles.CONSOLE,
    roles.FINANCE_CLERK,
    roles.FINANCE_MANAGER,
    roles.INGEST,
    roles.AUDITOR,
    roles.ACCOUNTING,
    STAFF,
    ANONYMOUS,
]
# Examples per operation: the role allowed to call it explores; the others are refused
# before any input is read, so a few requests show the refusal matches the schema.
EXAMPLES_ALLOWED = 25
EXAMPLES_REFUSED = 2


@pytest.fixture
def wsgi_app():
    # As Django's test client does: a request must not close the test's transaction.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@pytest.fixture
def documented_data(price_book):
    """The customer and application of the schema's examples, with usage and a deposit, so the
    explicit examples reach real objects."""
    customer = CustomerFactory(external_id="console-10042", name="Lanting Games Ltd")
    app = ApplicationFactory(
        customer=customer, app_key="k5f8w2qz9m", plan="premium", created_on=dt.date(2026, 1, 1)
    )
    deposit(customer, "50000.00")
    usage(app, dt.date.today() - dt.timedelta(days=1), 8000)
    return customer


def token_for(role: str) -> str | None:
    if role == ANONYMOUS:
        return None
    if role == STAFF:
        user = UserFactory(is_staff=True)
    else:
        user = UserFactory(groups=[role])
    return Token.objects.create(user=user).key


def allowed(role: str, path: str) -> bool:
    if path.startswith("/api/v1/quotes/"):
        return role == STAFF
    if path.startswith("/api/v1/accounting/"):
        return role == roles.ACCOUNTING
    if path.startswith("/api/v1/usage/"):
        return role == roles.INGEST
    if path.endswith("/deposits/"):
        return role in roles.FINANCE_ROLES
    return role == roles.CONSOLE


def run_operation(operation, mode, examples: int, wsgi_app, headers: dict) -> str | None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(app=wsgi_app, headers=headers)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - every operation's failures are reported
        return str(exc)
    return None


def test_every_operation_with_every_role(wsgi_app, documented_data):
    # Not through Django's test client: it reconnects the signal the fixture disconnected.
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    tokens = {role: token_for(role) for role in ROLES}
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:
        for role in ROLES:
            headers = {"Authorization": f"Token {tokens[role]}"} if tokens[role] else {}
            if allowed(role, operation.path):
                # Valid input explores the rules; invalid input (wrong types, patterns,
                # lengths) must be refused with a documented 4xx.
                plan = [(GenerationMode.POSITIVE, EXAMPLES_ALLOWED), (GenerationMode.NEGATIVE, 10)]
            else:
                plan = [(GenerationMode.POSITIVE, EXAMPLES_REFUSED)]
            for mode, examples in plan:
                failure = run_operation(operation, mode, examples, wsgi_app, headers)
                if failure:
                    failures.append(f"{role} {operation.label} ({mode.value}): {failure}")
    assert not failures, "\n\n".join(failures)
