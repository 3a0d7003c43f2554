"""The published schema is what the code returns: real answers of every operation (successes
and the documented refusals, in the one error shape) validated against /api/schema/.

Each case is a real request on real rows; its status must be one the operation documents and
its JSON body must match the documented schema. Every operation of the schema needs at least
one successful case here, so a new endpoint cannot ship with an unchecked schema.
Runs on SQLite and PostgreSQL (the schemathesis test fuzzes on PostgreSQL only).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

import jsonschema
import pytest
from freezegun import freeze_time
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import roles
from tests.export.factories import Line, credit_note, issued_invoice, ledger_entry
from tests.factories import ApplicationFactory, CustomerFactory, UserFactory, deposit, usage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("price_book")]

NOW = dt.datetime(2026, 11, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
TODAY = "2026-11-16"
TOMORROW = "2026-11-17"
STAFF = "staff"
ANONYMOUS = "no token"

ROW = {"app_key": "rich-chat", "date": "2026-11-10", "dau": 9000, "delivered_messages": 12000}


@dataclass
class Case:
    role: str
    method: str
    path: str
    status: int
    body: object = None
    headers: dict = field(default_factory=dict)
    code: str | None = None  # the refusal's rule, for the error cases


CASES = [
    # --- provisioning (console) ---
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/customers/",
        201,
        {"external_id": "new-1", "name": "New Ltd", "billing_email": "ap@new.example.com"},
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/customers/",
        409,
        {"external_id": "rich", "name": "Again", "billing_email": "a@b.cn"},
        code="duplicate",
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/customers/",
        400,
        {"external_id": "bad/id", "name": "A"},
        code="invalid",
    ),
    Case(roles.CONSOLE, "get", "/api/v1/customers/rich/", 200),
    Case(roles.CONSOLE, "get", "/api/v1/customers/nobody/", 404, code="unknown_customer"),
    Case(roles.CONSOLE, "get", "/api/v1/customers/rich/estimate/", 200),
    Case(roles.CONSOLE, "get", "/api/v1/customers/rich/invoices/", 200),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/",
        201,
        {"app_key": "new-app", "name": "New", "customer": "rich", "data_center": "singapore"},
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/",
        404,
        {"app_key": "new-app-2", "name": "New", "customer": "nobody", "data_center": "singapore"},
        code="unknown_customer",
    ),
    Case(roles.CONSOLE, "get", "/api/v1/applications/rich-chat/", 200),
    Case(roles.CONSOLE, "get", "/api/v1/applications/nothing/", 404, code="unknown_application"),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/rich-chat/plan-changes/",
        201,
        {"plan": "ultimate", "effective_date": TODAY},
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/poor-chat/plan-changes/",
        402,
        {"plan": "ultimate", "effective_date": TODAY},
        code="insufficient_deposit",
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/rich-chat/plan-changes/",
        409,
        {"plan": "ultimate", "effective_date": "2026-10-20"},
        code="month_invoiced",
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/rich-chat/addons/",
        201,
        {"addon": "sensitive_words", "quantity": 2, "effective_date": TODAY},
    ),
    Case(
        roles.CONSOLE,
        "post",
        "/api/v1/applications/poor-chat/addons/",
        400,
        {"addon": "chatroom_keepalive", "quantity": 1, "effective_date": TODAY},
        code="addon_not_available",
    ),
    Case(
        roles.CONSOLE,
        "patch",
        "/api/v1/applications/rich-chat/addons/sensitive_words/",
        200,
        {"quantity": 3, "effective_date": TOMORROW},
    ),
    Case(
        roles.CONSOLE,
        "patch",
        "/api/v1/applications/rich-chat/addons/desktop_pc/",
        404,
        {"quantity": 1, "effective_date": TOMORROW},
        code="addon_not_active",
    ),
    Case(
        roles.CONSOLE,
        "delete",
        f"/api/v1/applications/rich-chat/addons/sensitive_words/?effective_date={TOMORROW}",
        200,
    ),
    # --- deposits (finance) ---
    Case(
        roles.FINANCE_CLERK,
        "post",
        "/api/v1/customers/rich/deposits/",
        201,
        {"amount": "100.00", "reference": "BANK-9"},
        {"HTTP_IDEMPOTENCY_KEY": "k-1"},
    ),
    Case(
        roles.FINANCE_CLERK,
        "post",
        "/api/v1/customers/rich/deposits/",
        422,
        {"amount": "200.00", "reference": "BANK-9"},
        {"HTTP_IDEMPOTENCY_KEY": "k-1"},
        code="idempotency_conflict",
    ),
    Case(
        roles.FINANCE_CLERK,
        "post",
        "/api/v1/customers/rich/deposits/",
        400,
        {"amount": "100.00"},
        code="idempotency_key_required",
    ),
    # --- usage (ingest) ---
    Case(roles.INGEST, "post", "/api/v1/usage/", 200, [ROW]),
    Case(
        roles.INGEST,
        "post",
        "/api/v1/usage/",
        400,
        [{**ROW, "app_key": "nope"}, {**ROW, "dau": -1}],
        code="invalid_rows",
    ),
    Case(
        roles.INGEST,
        "post",
        "/api/v1/usage/",
        409,
        [{**ROW, "date": "2026-10-05"}],
        code="month_invoiced",
    ),
    # --- quotes (staff) ---
    Case(STAFF, "post", "/api/v1/quotes/", 200, {"plan": "premium", "peak_dau": 12000}),
    Case(STAFF, "post", "/api/v1/quotes/", 400, {"plan": "gold", "peak_dau": -1}, code="invalid"),
    # --- accounting export ---
    *(
        Case(roles.ACCOUNTING, "get", f"/api/v1/accounting/{name}/", 200)
        for name in ("invoices", "credit-notes", "ledger-entries", "customers")
    ),
    Case(roles.ACCOUNTING, "get", "/api/v1/accounting/revenue-summary/?period=2026-10", 200),
    Case(roles.ACCOUNTING, "get", "/api/v1/accounting/journal/?period=2026-11", 200),
    Case(roles.ACCOUNTING, "get", "/api/v1/accounting/invoices/?format=csv", 200),
    Case(roles.ACCOUNTING, "get", "/api/v1/accounting/journal/?period=13", 400, code="invalid"),
    Case(
        roles.ACCOUNTING, "get", "/api/v1/accounting/journal/?period=2026-10&basis=issue_date", 200
    ),
    Case(roles.ACCOUNTING, "get", "/api/v1/accounting/prepayment-rollforward/?period=2026-11", 200),
    Case(
        roles.ACCOUNTING,
        "get",
        "/api/v1/accounting/prepayment-rollforward/?period=2026-13",
        400,
        code="invalid",
    ),
    Case(
        roles.ACCOUNTING,
        "get",
        "/api/v1/accounting/invoices/?format=xlsx",
        406,
        code="not_acceptable",
    ),
    # --- who may call what ---
    Case(ANONYMOUS, "get", "/api/v1/customers/rich/", 401, code="not_authenticated"),
    Case(ANONYMOUS, "post", "/api/v1/quotes/", 401, {}, code="not_authenticated"),
    Case(ANONYMOUS, "get", "/api/v1/accounting/customers/", 401, code="not_authenticated"),
    Case(roles.INGEST, "get", "/api/v1/customers/rich/", 403, code="permission_denied"),
    Case(roles.CONSOLE, "post", "/api/v1/usage/", 403, [ROW], code="permission_denied"),
    Case(roles.CONSOLE, "get", "/api/v1/accounting/invoices/", 403, code="permission_denied"),
]


def _nullable_as_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema (null is one more allowed value)."""
    if isinstance(node, list):
        return [_nullable_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_as_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _operation(schema: dict, method: str, path: str) -> tuple[str, dict]:
    for template, operations in schema["paths"].items():
        # Paths are letters, digits, "/", "-" and "_": no regex meaning besides the parameters.
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path) and method in operations:
            return f"{method.upper()} {template}", operations[method]
    raise AssertionError(f"{method.upper()} {path} is not in the schema")


@pytest.fixture
def schema(client, settings) -> dict:
    settings.API_DOCS_PUBLIC = True
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.fixture
def clients(db) -> dict[str, APIClient]:
    made = {ANONYMOUS: APIClient()}
    for role in (roles.CONSOLE, roles.FINANCE_CLERK, roles.INGEST, roles.ACCOUNTING, STAFF):
        user = UserFactory(is_staff=True) if role == STAFF else UserFactory(groups=[role])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        made[role] = client
    return made


@pytest.fixture
def rows(price_book):
    """A customer with money, an issued October invoice with a credit note and usage, and a
    customer too poor for an upgrade."""
    rich = CustomerFactory(external_id="rich", name="Rich Ltd")
    app = ApplicationFactory(customer=rich, app_key="rich-chat", plan="premium")
    deposit(rich, "50000.00")
    usage(app, dt.date(2026, 11, 3), 8000)
    invoice = issued_invoice(
        customer=rich,
        lines=[Line("dau_fee", "6000.00", app_key="rich-chat", peak_dau=8000)],
    )
    credit_note(invoice=invoice, amounts={1: "100.00"})
    ledger_entry(
        customer=rich,
        kind="deposit",
        amount="1000.00",
        created_at=NOW - dt.timedelta(days=1),
        reference="BANK-1",
    )
    poor = CustomerFactory(external_id="poor", name="Poor Ltd")
    ApplicationFactory(customer=poor, app_key="poor-chat", plan="free")
    deposit(poor, "100.00")


def test_every_answer_matches_the_published_schema(schema, clients, rows):
    components = _nullable_as_json_schema(schema["components"])
    answered: set[str] = set()
    failures = []
    with freeze_time(NOW):
        for case in CASES:
            label = f"{case.role} {case.method.upper()} {case.path}"
            send = getattr(clients[case.role], case.method)
            data = {} if case.body is None else {"data": case.body, "format": "json"}
            response = send(case.path, **data, **case.headers)
            if response.status_code != case.status:
                failures.append(f"{label}: {response.status_code} {response.content[:300]!r}")
                continue
            name, operation = _operation(schema, case.method, case.path.split("?")[0])
            documented = operation["responses"].get(str(case.status))
            if documented is None:
                failures.append(f"{label}: status {case.status} is not documented")
                continue
            media_type = response["Content-Type"].split(";")[0]
            content = documented.get("content", {})
            if media_type not in content:
                failures.append(f"{label}: {media_type} is not documented for {case.status}")
                continue
            if 200 <= case.status < 300:
                answered.add(name)
            if media_type != "application/json":
                continue
            body = json.loads(
                b"".join(response.streaming_content) if response.streaming else response.content
            )
            if case.code is not None and body.get("code") != case.code:
                failures.append(f"{label}: code {body.get('code')!r}, expected {case.code!r}")
            if case.status >= 400:
                # The one error shape, whatever the endpoint.
                assert {"code", "message", "field"} <= set(body), (label, body)
            document = {
                **_nullable_as_json_schema(content[media_type]["schema"]),
                "components": components,
            }
            errors = sorted(jsonschema.Draft202012Validator(document).iter_errors(body), key=str)
            failures += [
                f"{label}: {error.message} at {list(error.absolute_path)}" for error in errors[:3]
            ]
    every_operation = {
        f"{method.upper()} {template}"
        for template, operations in schema["paths"].items()
        for method in operations
        if template.startswith("/api/v1/")
    }
    assert not failures, "\n".join(failures)
    assert every_operation - answered == set(), "operations without a checked success"
