"""Hostile input gets a 4xx and changes nothing, never a 500 (issue 12, item 6): over-deep
JSON, NUL characters in paths, query strings and JSON strings, a Content-Length that is not a
number. (A NUL reaching a PostgreSQL query was the 500; on SQLite the same requests must
answer the same 4xx.)"""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from freezegun import freeze_time

from accounts import roles
from accounts.models import Application, Customer, DailyUsage
from accounts.services import AccountError, LedgerError, customer_create, ledger_record
from accounts.usage import UsageValidationError, usage_ingest
from billingsite.parsers import MAX_JSON_DEPTH, json_loads_bounded
from billingsite.text import invisible_character_message
from plans.services import application_create
from tests.factories import ApplicationFactory, CustomerFactory
from tests.portal.test_hostile_input import INVISIBLE_TEXT, diagonal

NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

pytestmark = [pytest.mark.usefixtures("price_book"), pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _frozen():
    with freeze_time(NOW):
        yield


@pytest.fixture
def app(db) -> Application:
    customer = CustomerFactory(external_id="console-1", name="Lanting Games Ltd")
    return ApplicationFactory(
        customer=customer, app_key="lanting-chat", plan="free", created_on=dt.date(2026, 9, 1)
    )


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# --- JSON bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "url"),
    [
        (roles.CONSOLE, "/api/v1/customers/"),
        (roles.CONSOLE, "/api/v1/applications/"),
        (roles.CONSOLE, "/api/v1/applications/lanting-chat/plan-changes/"),
        (roles.CONSOLE, "/api/v1/applications/lanting-chat/addons/"),
        (roles.FINANCE_CLERK, "/api/v1/customers/console-1/deposits/"),
        (roles.INGEST, "/api/v1/usage/"),
    ],
)
@pytest.mark.parametrize("body", [deep(100_000), '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_100000_deep_is_a_400(app, client_for, role, url, body):
    response = client_for(role).post(
        url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "malformed_json"
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in response.json()["message"]
    assert Customer.objects.count() == 1 and Application.objects.count() == 1
    assert DailyUsage.objects.count() == 0


def test_quote_json_nested_100000_deep_is_a_400(client_for):
    staff = client_for()
    staff.user.is_staff = True
    staff.user.save()
    response = staff.post("/api/v1/quotes/", deep(100_000), content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert "nested deeper than 32 levels" in response.json()["message"]


def test_json_parser_limits():
    assert json_loads_bounded(deep(MAX_JSON_DEPTH)) == json.loads(deep(MAX_JSON_DEPTH))
    with pytest.raises(ValueError, match="nested deeper"):
        json_loads_bounded(deep(MAX_JSON_DEPTH + 1))
    with pytest.raises(ValueError, match="NUL"):
        json_loads_bounded(b'[{"name": "a\\u0000b"}]')
    with pytest.raises(ValueError, match="NUL"):
        json_loads_bounded(b'{"a\\u0000": 1}')
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        json_loads_bounded(b"[NaN]")
    # A literal backslash before "u0000" is not a NUL.
    assert json_loads_bounded(b'["\\\\u0000"]') == ["\\u0000"]


def test_a_nul_in_a_json_string_is_a_400(app, client_for):
    console = client_for(roles.CONSOLE)
    body = {
        "external_id": "console-2",
        "name": "Nul\u0000 Ltd",
        "billing_email": "a@example.com",
    }
    response = console.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert "NUL" in response.json()["message"]
    assert Customer.objects.count() == 1


def test_a_nul_in_a_usage_app_key_is_a_400_row_error(app, client_for):
    rows = [
        {"app_key": "lanting\u0000", "date": "2026-10-01", "dau": 1, "delivered_messages": 1},
    ]
    response = client_for(roles.INGEST).post("/api/v1/usage/", rows, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert DailyUsage.objects.count() == 0


def test_an_app_key_that_cannot_exist_is_an_unknown_app_key_row_error():

    rows = [{"app_key": "a b", "date": "2026-10-01", "dau": 1, "delivered_messages": 1}]
    with pytest.raises(UsageValidationError) as refused:
        usage_ingest(rows=rows, now=NOW, changed_by=None)
    assert refused.value.errors == [
        {"index": 0, "field": "app_key", "message": "unknown app_key 'a b'"}
    ]


# --- paths and query strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers/console-1%00/",
        "/api/v1/customers/%00/estimate/",
        "/api/v1/customers/%00/invoices/",
        "/api/v1/applications/lanting-chat%00/",
        "/api/v1/applications/%00/addons/x/",
    ],
)
def test_a_nul_in_an_api_path_is_a_json_404(app, client_for, path):
    response = client_for(roles.CONSOLE).get(path)
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "no such resource (the path has a NUL)",
        "field": None,
    }


def test_a_nul_in_a_posted_api_path_changes_nothing(app, client_for):
    response = client_for(roles.CONSOLE).post(
        "/api/v1/applications/lanting-chat%00/plan-changes/",
        {"plan": "premium", "effective_date": "2026-10-16"},
        format="json",
    )
    assert response.status_code == 404
    assert app.plan_changes.count() == 1


def test_a_nul_in_an_api_query_parameter_is_a_400_in_the_endpoints_shape(app, client_for):
    response = client_for(roles.CONSOLE).delete(
        "/api/v1/applications/lanting-chat/addons/sensitive_words/?effective_date=2026%00"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "effective_date"
    accounting = client_for(roles.ACCOUNTING).get("/api/v1/accounting/customers/?customer=a%00")
    assert accounting.status_code == 400
    assert accounting.json()["field"] == "customer"
    assert "customer" in accounting.json()["errors"]


@pytest.mark.parametrize("path", ["/invoices/INV%00/", "/invoices/INV%00/pdf/", "/%00"])
def test_a_nul_in_a_portal_path_is_a_404_page(client, path):
    assert client.get(path).status_code == 404


def test_a_nul_in_a_portal_query_is_a_400_page(client):
    assert client.get("/login/?next=%00").status_code == 400


# --- Content-Length ------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "٣"])
def test_usage_with_a_content_length_that_is_not_a_number_is_a_400(app, client_for, length):
    response = client_for(roles.INGEST).generic(
        "POST", "/api/v1/usage/", b"[]", content_type="application/json", CONTENT_LENGTH=length
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_content_length"
    assert DailyUsage.objects.count() == 0


# --- free-text lengths ---------------------------------------------------------------------


def test_a_one_megabyte_address_is_refused_by_the_api(app, client_for):
    body = {
        "external_id": "console-2",
        "name": "Big Address Ltd",
        "billing_email": "a@example.com",
        "address": "x" * 1_000_000,
    }
    response = client_for(roles.CONSOLE).post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "address"
    assert not Customer.objects.filter(external_id="console-2").exists()
    body["address"] = "x" * 500
    assert client_for(roles.CONSOLE).post("/api/v1/customers/", body, format="json").status_code
    assert Customer.objects.get(external_id="console-2").address == "x" * 500


@pytest.mark.parametrize(
    ("field", "length"),
    [("name", 201), ("billing_email", 255), ("tax_id", 65), ("contact_name", 201)],
)
def test_long_customer_fields_are_refused_by_the_api(app, client_for, field, length):
    body = {"external_id": "console-2", "name": "Ltd", "billing_email": "a@example.com"}
    body[field] = "a" * (length - len("@example.com")) + "@example.com"
    response = client_for(roles.CONSOLE).post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert Customer.objects.count() == 1


def test_the_customer_service_refuses_a_long_address():

    with pytest.raises(AccountError, match="address is longer than 500 characters"):
        customer_create(
            external_id="c-2", name="Ltd", billing_email="a@example.com", address="x" * 501, now=NOW
        )
    assert not Customer.objects.filter(external_id="c-2").exists()


def test_a_long_application_name_or_deposit_reference_is_refused_by_the_api(app, client_for):
    response = client_for(roles.CONSOLE).post(
        "/api/v1/applications/",
        {"app_key": "k2", "name": "n" * 201, "customer": "console-1", "data_center": "singapore"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "name"
    response = client_for(roles.FINANCE_CLERK).post(
        "/api/v1/customers/console-1/deposits/",
        {"amount": "10.00", "reference": "r" * 201},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 400 and response.json()["field"] == "reference"
    assert app.customer.ledger_entries.count() == 0


def test_the_ledger_refuses_a_long_reason_or_reference(app):

    for reason, reference in (("r" * 1001, ""), ("ok", "x" * 201)):
        with pytest.raises(LedgerError):
            ledger_record(
                customer=app.customer,
                kind="adjustment",
                amount=Decimal("1.00"),
                idempotency_key=f"k-{len(reason)}",
                now=NOW,
                reason=reason,
                reference=reference,
            )
    assert app.customer.ledger_entries.count() == 0


def test_the_admin_customer_form_caps_the_address(app, client):

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    customer = app.customer
    response = client.post(
        f"/admin/accounts/customer/{customer.pk}/change/",
        {
            "name": customer.name,
            "billing_email": customer.billing_email,
            "address": "x" * 501,
            "tax_id": "",
            "contact_name": "",
            "contact_phone": "",
        },
    )
    assert response.status_code == 200
    assert "address" in response.context["adminform"].form.errors
    customer.refresh_from_db()
    assert customer.address != "x" * 501


# --- invisible characters --------------------------------------------------------------------


def test_invisible_characters_in_a_new_customer_are_a_400_naming_the_field(app, client_for):
    """The table's diagonal over the API's text fields (the address, a text box in the admin,
    keeps tab and line feed)."""
    fields = ["name", "tax_id", "contact_name", "contact_phone", "address"]
    values = [*INVISIBLE_TEXT[:-2], "1 Century Ave\ufeff"]
    for field, value in diagonal(fields, values):
        body = {"external_id": "console-2", "name": "Ltd", "billing_email": "a@example.com"}
        response = client_for(roles.CONSOLE).post(
            "/api/v1/customers/", {**body, field: value}, format="json"
        )
        assert response.status_code == 400, (field, value)
        assert (response.json()["field"], response.json()["message"]) == (
            field,
            invisible_character_message(value, label=field),
        )
    assert Customer.objects.count() == 1


def test_invisible_characters_in_a_new_application_name_are_a_400_naming_the_field(app, client_for):
    body = {"app_key": "lanting-2", "customer": "console-1", "data_center": "singapore"}
    for value in INVISIBLE_TEXT:
        response = client_for(roles.CONSOLE).post(
            "/api/v1/applications/", {**body, "name": value}, format="json"
        )
        assert response.status_code == 400, value
        assert response.json() == {
            "code": "invalid",
            "message": invisible_character_message(value, label="name"),
            "field": "name",
        }, value
    assert list(Application.objects.values_list("app_key", flat=True)) == ["lanting-chat"]
    # Any script's visible text is a name.
    response = client_for(roles.CONSOLE).post(
        "/api/v1/applications/", {**body, "name": "兰亭 Chat"}, format="json"
    )
    assert response.status_code == 201
    assert Application.objects.get(app_key="lanting-2").name == "兰亭 Chat"


def test_the_application_service_refuses_an_invisible_name():
    customer = CustomerFactory(external_id="c-5")
    with pytest.raises(AccountError, match=r"^The name contains an invisible") as refused:
        application_create(
            customer=customer,
            app_key="c-5-app",
            name="gnp\u202e.exe",
            data_center="singapore",
            now=NOW,
        )
    assert refused.value.field == "name"
    assert not Application.objects.filter(app_key="c-5-app").exists()


def test_a_lone_surrogate_from_a_json_escape_is_refused(app, client_for):
    body = '{"external_id": "console-2", "name": "Ltd\\ud800", "billing_email": "a@example.com"}'
    response = client_for(roles.CONSOLE).post(
        "/api/v1/customers/", body, content_type="application/json"
    )
    # DRF's CharField refuses it before the service sees it (ours would too: category Cs).
    assert response.status_code == 400
    assert response.json()["errors"]["name"] == ["Surrogate characters are not allowed: U+D800."]
    assert Customer.objects.count() == 1


def test_the_customer_service_keeps_an_address_of_several_lines():
    customer = customer_create(
        external_id="c-3",
        name="上海万坦科技有限公司",
        billing_email="a@example.com",
        address="1 Century Ave\nPudong",
        now=NOW,
    )
    assert customer.address == "1 Century Ave\nPudong"
    with pytest.raises(AccountError, match=r"^The contact_name contains an invisible"):
        customer_create(
            external_id="c-4",
            name="Ltd",
            billing_email="a@example.com",
            contact_name="Zhang\u200bSan",
            now=NOW,
        )
