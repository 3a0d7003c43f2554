"""Schemathesis against every operation of /api/schema/, with a token of each role: no answer
is a server error and every answer (including the 4xx refusals) matches the published schema.
A customer's own login (its API token or its portal session) reaches no operation: always a
401 or 403, never data.

PostgreSQL only (where a NUL or an out-of-range number reaching a query fails loudly). Lean for
CI: few derandomized examples per operation and role, no shrinking, no example database; the
long exploration is `pytest --run-slow tests/api/test_schemathesis.py` (marked slow).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
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
from accounts.models import Customer
from tests.conftest import postgres_only
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    CustomerUserFactory,
    UserFactory,
    deposit,
    usage,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, postgres_only]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
STAFF = "staff"
ANONYMOUS = "no token"
# Another customer's logins: a user linked to a customer, with a DRF token or a portal session.
CUSTOMER_TOKEN = "customer login's token"
CUSTOMER_SESSION = "customer login's session"
ROLES = [
    roles.CONSOLE,
    roles.FINANCE_CLERK,
    roles.FINANCE_MANAGER,
    roles.INGEST,
    roles.AUDITOR,
    roles.ACCOUNTING,
    STAFF,
    ANONYMOUS,
    CUSTOMER_TOKEN,
    CUSTOMER_SESSION,
]
REFUSED_STATUSES = {401, 403}


@dataclass(frozen=True)
class Budget:
    """Examples per operation: the role allowed to call it explores with valid (`allowed`) and
    invalid (`invalid`) input; the others are refused before any input is read, so a few
    requests (`refused`) show the refusal matches the schema."""

    allowed: int
    invalid: int
    refused: int


CI = Budget(allowed=25, invalid=10, refused=2)
LONG = Budget(allowed=300, invalid=150, refused=10)


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


def headers_for(role: str, *, rival: Customer) -> dict[str, str]:
    if role == ANONYMOUS:
        return {}
    if role in (CUSTOMER_TOKEN, CUSTOMER_SESSION):
        user = CustomerUserFactory(customer=rival).user
        if role == CUSTOMER_SESSION:
            client = Client()
            client.force_login(user)
            session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
            return {"Cookie": f"{django_settings.SESSION_COOKIE_NAME}={session}"}
    elif role == STAFF:
        user = UserFactory(is_staff=True)
    else:
        user = UserFactory(groups=[role])
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


def allowed(role: str, path: str) -> bool:
    if role in (ANONYMOUS, CUSTOMER_TOKEN, CUSTOMER_SESSION):
        return False
    if path.startswith("/api/v1/quotes/"):
        return role == STAFF
    if path.startswith("/api/v1/accounting/"):
        return role == roles.ACCOUNTING
    if path.startswith("/api/v1/usage/"):
        return role == roles.INGEST
    if path.endswith("/deposits/"):
        return role in roles.FINANCE_ROLES
    return role == roles.CONSOLE


def run_operation(
    operation, mode, examples: int, wsgi_app, headers: dict, *, refused: bool
) -> str | None:
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
        if refused:
            assert response.status_code in REFUSED_STATUSES, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )

    try:
        run()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - every operation's failures are reported
        return str(exc)
    return None


@pytest.mark.parametrize(
    "budget", [pytest.param(CI, id="ci"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]
)
def test_every_operation_with_every_role(wsgi_app, documented_data, budget):
    # Not through Django's test client: it reconnects the signal the fixture disconnected.
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    rival = CustomerFactory(external_id="rival-customer", name="Rival Messaging Co")
    headers = {role: headers_for(role, rival=rival) for role in ROLES}
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:
        for role in ROLES:
            refused = not allowed(role, operation.path)
            if refused:
                plan = [(GenerationMode.POSITIVE, budget.refused)]
            else:
                # Valid input explores the rules; invalid input (wrong types, patterns,
                # lengths) must be refused with a documented 4xx.
                plan = [
                    (GenerationMode.POSITIVE, budget.allowed),
                    (GenerationMode.NEGATIVE, budget.invalid),
                ]
            for mode, examples in plan:
                failure = run_operation(
                    operation, mode, examples, wsgi_app, headers[role], refused=refused
                )
                if failure:
                    failures.append(f"{role} {operation.label} ({mode.value}): {failure}")
    assert not failures, "\n\n".join(failures)
