"""The provisioning API of issue 8: every endpoint's success and refusals, and the roles."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from freezegun import freeze_time
from kombu.exceptions import OperationalError
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from accounts import roles
from accounts.events.tasks import deliver_pending_events
from accounts.models import Application, Customer, CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import record_adjustment
from billingsite.celery import app as celery_app
from plans.models import AddOnChange, Plan, PlanChange
from plans.price_book import load_price_book
from tests.conftest import postgres_only
from tests.factories import ApplicationFactory, CustomerFactory, UserFactory, deposit, usage

NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

pytestmark = [pytest.mark.usefixtures("price_book"), pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _frozen():
    with freeze_time(NOW):
        yield


@pytest.fixture
def console(client_for) -> APIClient:
    return client_for(roles.CONSOLE)


@pytest.fixture
def finance(client_for) -> APIClient:
    return client_for(roles.FINANCE_CLERK)


def snapshot() -> tuple:
    return (
        Customer.objects.count(),
        Application.objects.count(),
        PlanChange.objects.count(),
        PlanChange.objects.filter(cancelled_at__isnull=False).count(),
        AddOnChange.objects.count(),
        AddOnChange.objects.filter(cancelled_at__isnull=False).count(),
        LedgerEntry.objects.count(),
    )


def refused(send, status: int, code: str | None = None) -> dict:
    """Send a request that must be refused with `status` (and `code`) and change nothing."""
    before = snapshot()
    response = send()
    assert response.status_code == status, response.content
    body = response.json()
    if code is not None:
        assert body["code"] == code, body
    assert snapshot() == before, "a refused request must change nothing"
    return body


@pytest.fixture
def customer(db) -> Customer:
    return CustomerFactory(external_id="console-1", name="Lanting Games Ltd")


@pytest.fixture
def app(customer) -> Application:
    return ApplicationFactory(
        customer=customer, app_key="lanting-chat", plan="free", created_on=dt.date(2026, 9, 1)
    )


# --- customers -----------------------------------------------------------------------------


def test_create_customer(console):
    response = console.post(
        "/api/v1/customers/",
        {
            "external_id": "console-77",
            "name": "Hai Tang Ltd",
            "billing_email": "ap@haitang.example.com",
            "address": "9 Nanjing Road",
            "tax_id": "9131000077",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["external_id"] == "console-77" and body["tax_id"] == "9131000077"
    assert (body["balance"], body["in_arrears_since"], body["suspension_date"]) == (
        "0.00",
        None,
        None,
    )
    assert body["recommended_balance"] == "0.00"
    created = Customer.objects.get(external_id="console-77")
    assert created.billing_email == "ap@haitang.example.com"
    # The bank transfer remark the system gave it: shown, never taken from the request.
    assert body["transfer_reference"] == created.transfer_reference != ""
    assert console.get("/api/v1/customers/console-77/").json()["transfer_reference"] == (
        created.transfer_reference
    )


def test_the_transfer_reference_is_read_only(console, customer):
    before = customer.transfer_reference
    response = console.post(
        "/api/v1/customers/",
        {
            "external_id": "console-78",
            "name": "Mu Dan Ltd",
            "billing_email": "ap@mudan.example.com",
            "transfer_reference": before,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["transfer_reference"] != before
    assert Customer.objects.get(external_id="console-78").transfer_reference != before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"external_id": "x-1", "name": "A"}, "billing_email"),
        ({"external_id": "x-1", "name": "A", "billing_email": "not-an-email"}, "billing_email"),
        ({"external_id": "bad/id", "name": "A", "billing_email": "a@b.cn"}, "external_id"),
        ({"external_id": "x-1", "name": "  ", "billing_email": "a@b.cn"}, "name"),
        ({"name": "A", "billing_email": "a@b.cn"}, "external_id"),
    ],
)
def test_create_customer_refuses_bad_fields(console, payload, field):
    body = refused(lambda: console.post("/api/v1/customers/", payload, format="json"), 400)
    assert body["field"] == field


def test_create_customer_refuses_a_duplicate_external_id(console, customer):
    body = refused(
        lambda: console.post(
            "/api/v1/customers/",
            {"external_id": "console-1", "name": "Other", "billing_email": "o@x.cn"},
            format="json",
        ),
        409,
        "duplicate",
    )
    assert body["field"] == "external_id"


def test_malformed_json_is_refused(console):
    refused(
        lambda: console.post(
            "/api/v1/customers/", b'{"external_id": ', content_type="application/json"
        ),
        400,
        "malformed_json",
    )


def test_read_customer_with_balance_and_arrears(console, customer, app):
    deposit(customer, "10000.00")
    response = console.get("/api/v1/customers/console-1/")
    assert response.status_code == 200
    body = response.json()
    assert body["balance"] == "10000.00" and body["status"] == "active"
    assert body["in_arrears_since"] is None and body["recommended_balance"] == "0.00"

    # On Premium instead: decisions are never edited, the Free one is cancelled.
    free = PlanChange.objects.get(application=app)
    PlanChange.objects.filter(pk=free.pk).update(cancelled_at=NOW)
    PlanChange.objects.create(
        application=app, plan=_plan("premium"), effective_date=free.effective_date, created_at=NOW
    )
    LedgerEntry.objects.create(
        customer=customer,
        kind="invoice_debit",
        amount=Decimal("-16000.00"),
        idempotency_key="inv",
        created_at=NOW,
    )
    Customer.objects.filter(pk=customer.pk).update(arrears_since=dt.date(2026, 10, 14))
    body = console.get("/api/v1/customers/console-1/").json()
    assert body["balance"] == "-6000.00"
    assert body["in_arrears_since"] == "2026-10-14"
    assert body["suspension_date"] == "2026-10-21"
    # Three months of this month's Premium fee.
    assert body["recommended_balance"] == "18000.00"


def _plan(code):

    return Plan.objects.get(code=code)


def test_unknown_customer_is_404(console):
    body = refused(lambda: console.get("/api/v1/customers/nobody/"), 404, "unknown_customer")
    assert "nobody" in body["message"]


# --- applications --------------------------------------------------------------------------


def test_create_application_on_free_from_today(console, customer):
    response = console.post(
        "/api/v1/applications/",
        {
            "app_key": "k5f8w2qz9m",
            "name": "Lanting Chat",
            "customer": "console-1",
            "data_center": "north_america",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["customer"] == "console-1" and body["data_center"] == "north_america"
    assert (body["status"], body["created_on"]) == ("active", "2026-10-16")
    assert body["current_plan"] == {
        "plan": "free",
        "name": "Free",
        "first_day": "2026-10-16",
        "last_day": None,
    }
    assert body["addons"] == [] and len(body["plan_history"]) == 1


def test_application_of_a_suspended_customer_starts_suspended(console, customer):
    Customer.objects.filter(pk=customer.pk).update(suspended_at=NOW)
    response = console.post(
        "/api/v1/applications/",
        {"app_key": "k2", "name": "Two", "customer": "console-1", "data_center": "singapore"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "suspended"
    assert Application.objects.get(app_key="k2").status == "suspended"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"customer": "nobody"}, 404, "unknown_customer"),
        ({"app_key": "lanting-chat"}, 409, "duplicate"),
        ({"data_center": "beijing"}, 400, "invalid"),
        ({"app_key": "has space"}, 400, "invalid"),
        ({"name": ""}, 400, "invalid"),
    ],
)
def test_create_application_refusals(console, app, payload, status, code):
    data = {
        "app_key": "new-app",
        "name": "New",
        "customer": "console-1",
        "data_center": "singapore",
    }
    refused(
        lambda: console.post("/api/v1/applications/", {**data, **payload}, format="json"),
        status,
        code,
    )


def test_read_application_with_history_and_addons(console, app):
    deposit(app.customer, "8000.00")
    console.post(
        "/api/v1/applications/lanting-chat/plan-changes/",
        {"plan": "ultimate", "effective_date": "2026-10-16"},
        format="json",
    )
    console.post(
        "/api/v1/applications/lanting-chat/addons/",
        {"addon": "desktop_pc", "quantity": 1, "effective_date": "2026-10-16"},
        format="json",
    )
    body = console.get("/api/v1/applications/lanting-chat/").json()
    assert body["current_plan"]["plan"] == "ultimate"
    assert [(r["plan"], r["first_day"], r["last_day"]) for r in body["plan_history"]] == [
        ("free", "2026-09-01", "2026-10-15"),
        ("ultimate", "2026-10-16", None),
    ]
    assert body["addons"] == [
        {
            "addon": "desktop_pc",
            "name": "Desktop (PC) client",
            "quantity": 1,
            "first_day": "2026-10-16",
            "last_day": None,
        }
    ]


def test_unknown_application_is_404(console):
    refused(lambda: console.get("/api/v1/applications/nope/"), 404, "unknown_application")
    refused(
        lambda: console.post(
            "/api/v1/applications/nope/plan-changes/",
            {"plan": "premium", "effective_date": "2026-10-16"},
            format="json",
        ),
        404,
        "unknown_application",
    )


# --- plan changes --------------------------------------------------------------------------

PLAN_URL = "/api/v1/applications/lanting-chat/plan-changes/"


def test_upgrade_takes_effect_on_the_date(console, app):
    deposit(app.customer, "6000.00")
    response = console.post(
        PLAN_URL, {"plan": "premium", "effective_date": "2026-10-16"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["plan"], body["kind"], body["effective_date"]) == (
        "premium",
        "upgrade",
        "2026-10-16",
    )
    assert body["ended_addons"] == []
    # Sent again: already in force, recorded once.
    again = console.post(
        PLAN_URL, {"plan": "premium", "effective_date": "2026-10-16"}, format="json"
    )
    assert again.status_code == 200
    assert PlanChange.objects.filter(application=app, plan__code="premium").count() == 1


def test_insufficient_deposit_is_402_with_the_exact_body(console, app):
    deposit(app.customer, "5000.00")
    body = refused(
        lambda: console.post(
            PLAN_URL, {"plan": "ultimate", "effective_date": "2026-10-16"}, format="json"
        ),
        402,
    )
    # The one error shape ({code, message, field}) plus the two figures the console shows.
    assert body == {
        "code": "insufficient_deposit",
        "message": "activating Ultimate on 2026-10-16 needs a balance of at least 8000.00 "
        "(minimum deposit); the balance is 5000.00",
        "field": "plan",
        "required": "8000.00",
        "balance": "5000.00",
    }


def test_downgrade_moves_to_the_first_and_reports_ended_addons(console, customer):
    ApplicationFactory(
        customer=customer, app_key="lanting-chat", plan="ultimate", created_on=dt.date(2026, 9, 1)
    )
    console.post(
        "/api/v1/applications/lanting-chat/addons/",
        {"addon": "ultragroup_storage_extension", "quantity": 2, "effective_date": "2026-10-01"},
        format="json",
    )
    response = console.post(
        PLAN_URL, {"plan": "premium", "effective_date": "2026-10-16"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["requested_date"], body["effective_date"]) == (
        "downgrade",
        "2026-10-16",
        "2026-11-01",
    )
    assert body["ended_addons"] == ["ultragroup_storage_extension"]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"plan": "platinum", "effective_date": "2026-10-16"}, "unknown_plan", "plan"),
        (
            {"plan": "premium", "effective_date": "2026-08-31"},
            "before_application_created",
            "effective_date",
        ),
        ({"plan": "premium", "effective_date": "16/10/2026"}, "invalid", "effective_date"),
        ({"plan": "premium"}, "invalid", "effective_date"),
    ],
)
def test_plan_change_refusals(console, app, payload, code, field):
    deposit(app.customer, "9000.00")
    body = refused(lambda: console.post(PLAN_URL, payload, format="json"), 400, code)
    assert body["field"] == field


# --- add-ons -------------------------------------------------------------------------------

ADDONS_URL = "/api/v1/applications/lanting-chat/addons/"


@pytest.fixture
def premium_app(customer) -> Application:
    return ApplicationFactory(
        customer=customer, app_key="lanting-chat", plan="premium", created_on=dt.date(2026, 9, 1)
    )


def test_add_change_and_end_an_addon(console, premium_app):
    response = console.post(
        ADDONS_URL,
        {"addon": "sensitive_words", "quantity": 2, "effective_date": "2026-10-16"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json() == {
        "application": "lanting-chat",
        "addon": "sensitive_words",
        "quantity": 2,
        "effective_date": "2026-10-16",
    }
    response = console.patch(
        ADDONS_URL + "sensitive_words/",
        {"quantity": 3, "effective_date": "2026-11-01"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["quantity"] == 3
    response = console.delete(ADDONS_URL + "sensitive_words/?effective_date=2026-12-01")
    assert response.status_code == 200
    assert response.json()["quantity"] == 0
    rows = console.get("/api/v1/applications/lanting-chat/").json()["addon_history"]
    assert [(r["quantity"], r["first_day"], r["last_day"]) for r in rows] == [
        (2, "2026-10-16", "2026-10-31"),
        (3, "2026-11-01", "2026-11-30"),
    ]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"addon": "teleport"}, "unknown_addon", "addon"),
        ({"addon": "ultragroup_storage_extension"}, "addon_not_available", "addon"),
        ({"quantity": 0}, "invalid_quantity", "quantity"),
        ({"quantity": -1}, "invalid_quantity", "quantity"),
        ({"quantity": 1.5}, "invalid", "quantity"),
        ({"quantity": "2"}, "invalid", "quantity"),
        ({"effective_date": "2026-08-01"}, "before_application_created", "effective_date"),
    ],
)
def test_addon_refusals(console, premium_app, payload, code, field):
    data = {"addon": "sensitive_words", "quantity": 2, "effective_date": "2026-10-16"}
    body = refused(lambda: console.post(ADDONS_URL, {**data, **payload}, format="json"), 400, code)
    assert body["field"] == field


def test_addon_not_available_on_free_names_plan_and_date(console, app):
    body = refused(
        lambda: console.post(
            ADDONS_URL,
            {"addon": "chatroom_keepalive", "quantity": 1, "effective_date": "2026-10-16"},
            format="json",
        ),
        400,
        "addon_not_available",
    )
    assert "Free" in body["message"] and "2026-10-16" in body["message"]


def test_patch_or_delete_of_an_addon_the_app_lacks_is_404(console, premium_app):
    refused(
        lambda: console.patch(
            ADDONS_URL + "sensitive_words/",
            {"quantity": 3, "effective_date": "2026-11-01"},
            format="json",
        ),
        404,
        "addon_not_active",
    )
    refused(
        lambda: console.delete(ADDONS_URL + "sensitive_words/?effective_date=2026-11-01"),
        404,
        "addon_not_active",
    )


def test_delete_needs_an_effective_date(console, premium_app):
    refused(lambda: console.delete(ADDONS_URL + "sensitive_words/"), 400, "invalid")


# --- deposits ------------------------------------------------------------------------------

DEPOSIT_URL = "/api/v1/customers/console-1/deposits/"


def send_deposit(client, body, key="dep-0001"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(DEPOSIT_URL, body, format="json", **headers)


def test_deposit_is_recorded_once_per_key(finance, customer):
    first = send_deposit(finance, {"amount": "10000.00", "reference": "ICBC 1"})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["amount"], body["currency"], body["balance_after"]) == (
        "10000.00",
        "CNY",
        "10000.00",
    )
    assert body["customer"] == "console-1" and body["idempotency_key"] == "dep-0001"
    deposit(customer, "5.00")  # another entry in between does not change the replayed answer
    second = send_deposit(finance, {"amount": "10000.00", "reference": "ICBC 1"})
    assert second.status_code == 201
    assert second.json() == body
    assert second["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(kind="deposit", reference="ICBC 1").count() == 1
    assert ledger_balance(customer=customer) == Decimal("10005.00")
    entry = LedgerEntry.objects.get(reference="ICBC 1")
    assert entry.created_by == finance.user


@pytest.mark.parametrize(
    "changed",
    [{"amount": "10000.01", "reference": "ICBC 1"}, {"amount": "10000.00", "reference": "ICBC 2"}],
)
def test_same_key_with_a_different_body_is_422(finance, customer, changed):
    send_deposit(finance, {"amount": "10000.00", "reference": "ICBC 1"})
    refused(lambda: send_deposit(finance, changed), 422, "idempotency_conflict")


def test_same_key_for_another_customer_is_422(finance, customer):
    CustomerFactory(external_id="console-2")
    send_deposit(finance, {"amount": "100.00", "reference": "R"})
    refused(
        lambda: finance.post(
            "/api/v1/customers/console-2/deposits/",
            {"amount": "100.00", "reference": "R"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="dep-0001",
        ),
        422,
        "idempotency_conflict",
    )


@pytest.mark.parametrize(
    ("body", "key", "code"),
    [
        ({"amount": "100.00"}, None, "idempotency_key_required"),
        ({"amount": "100.00", "currency": "USD"}, "k", "non_cny"),
        ({"amount": "0.00"}, "k", "non_positive_amount"),
        ({"amount": "-50.00"}, "k", "non_positive_amount"),
        ({"amount": "10.005"}, "k", "invalid"),
        ({"amount": "ten"}, "k", "invalid"),
        ({}, "k", "invalid"),
    ],
)
def test_deposit_refusals(finance, customer, body, key, code):
    response_body = refused(lambda: send_deposit(finance, body, key=key), 400, code)
    if code == "non_cny":
        assert "non-RMB settlement: contract pricing" in response_body["message"]


def test_a_deposit_committed_while_the_broker_is_down_answers_201_and_the_sweep_tells(
    finance, app, django_capture_on_commit_callbacks, monkeypatch
):

    customer = app.customer
    record_adjustment(
        customer=customer,
        amount=Decimal("-500.00"),
        reason="test: balance below zero",
        idempotency_key="test-negative",
        now=NOW,
    )
    Customer.objects.filter(pk=customer.pk).update(suspended_at=NOW)
    Application.objects.filter(pk=app.pk).update(status=Application.Status.SUSPENDED)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    # A real publish (not eager) that fails where kombu talks to the broker.
    monkeypatch.setattr(celery_app.amqp, "send_task_message", broker_down)
    celery_app.conf.task_always_eager = False
    try:
        with django_capture_on_commit_callbacks(execute=True) as handed_off:
            response = send_deposit(finance, {"amount": "1000.00", "reference": "ICBC 7"})
    finally:
        celery_app.conf.task_always_eager = True

    assert response.status_code == 201, response.content
    assert response.json()["balance_after"] == "500.00"
    # The hand-offs of the reactivation and of the receipt ran, and failed.
    assert len(handed_off) == 2
    assert LedgerEntry.objects.filter(customer=customer, kind="deposit").count() == 1
    assert Application.objects.get(pk=app.pk).status == Application.Status.ACTIVE
    reactivated = CustomerEvent.objects.get(customer=customer, kind="reactivated")
    assert reactivated.email_sent_at is None  # pending: left for the sweep
    assert mail.outbox == []

    # The broker is back; the beat sweep picks the event up once it is overdue.
    monkeypatch.undo()
    with freeze_time(NOW + dt.timedelta(minutes=16)):
        deliver_pending_events.delay()
    reactivated.refresh_from_db()
    assert reactivated.email_sent_at is not None
    # The sweep also sends the arrears e-mail of the adjustment above (its callbacks never ran).
    assert sorted(message.subject for message in mail.outbox) == [
        "Payment received: ¥1,000.00",
        "Your balance is negative: please top up",
        "Your service is active again",
    ]


def test_deposit_for_an_unknown_customer_is_404(finance):
    refused(
        lambda: finance.post(
            "/api/v1/customers/nobody/deposits/",
            {"amount": "1.00"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k",
        ),
        404,
        "unknown_customer",
    )


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_key_twice_at_once_records_one_deposit(client_for):

    load_price_book()
    # An earlier transactional test's flush empties auth_group; the roles come back idempotently.
    roles.sync_roles()
    customer = CustomerFactory(external_id="console-1")
    clients = [client_for(roles.FINANCE_MANAGER) for _ in range(2)]
    barrier = threading.Barrier(2)
    responses = []

    def send(client) -> None:
        try:
            barrier.wait(timeout=10)
            responses.append(send_deposit(client, {"amount": "3000.00", "reference": "race"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert LedgerEntry.objects.filter(customer=customer).count() == 1
    assert ledger_balance(customer=customer) == Decimal("3000.00")


# --- estimate ------------------------------------------------------------------------------


def test_estimate_prices_this_month_so_far(console, premium_app):
    usage(premium_app, dt.date(2026, 10, 3), dau=12_000)
    usage(premium_app, dt.date(2026, 10, 9), dau=8_000)
    response = console.get("/api/v1/customers/console-1/estimate/")
    assert response.status_code == 200
    body = response.json()
    assert (body["period"], body["as_of"], body["total"]) == ("2026-10", "2026-10-16", "9000.00")
    (line,) = body["lines"]
    assert (line["code"], line["amount"], line["peak_dau"], line["peak_day"]) == (
        "premium",
        "9000.00",
        12_000,
        "2026-10-03",
    )
    assert (body["usage_received"], body["usage_through"]) == (True, "2026-10-09")


def test_estimate_says_when_no_usage_has_arrived(console, premium_app):
    # Usage of the month before does not count for this month.
    usage(premium_app, dt.date(2026, 9, 30), dau=12_000)
    body = console.get("/api/v1/customers/console-1/estimate/").json()
    assert (body["usage_received"], body["usage_through"]) == (False, None)
    # The field is added; the total is still what the engine prices (no DAU: the base fee).
    assert body["total"] == "6000.00"


def test_estimate_is_what_a_fresh_serializer_says(console, premium_app):
    """The view represents every estimate with one serializer bound once per process: each
    answer is what a serializer made for it says, byte for byte, and none keeps another's."""
    from accounts.api.serializers import EstimateSerializer  # noqa: PLC0415
    from invoices.selectors import month_estimate  # noqa: PLC0415

    def fresh() -> bytes:
        today = dt.date(2026, 10, 16)
        month = month_estimate(customer=premium_app.customer, today=today)
        estimate = {
            "customer": premium_app.customer,
            "period": str(month.period),
            "as_of": today,
            "usage_received": month.usage_through is not None,
            "usage_through": month.usage_through,
            "rated": month.rated,
        }
        return JSONRenderer().render(EstimateSerializer(estimate).data)

    url = "/api/v1/customers/console-1/estimate/"
    before = console.get(url).content
    assert before == fresh()
    usage(premium_app, dt.date(2026, 10, 3), dau=31_000)
    after = console.get(url).content
    assert after == fresh() and after != before
    assert b'"peak_dau":31000' in after


# --- roles ---------------------------------------------------------------------------------

CONSOLE_CALLS = [
    ("get", "/api/v1/customers/console-1/", None),
    ("get", "/api/v1/customers/console-1/estimate/", None),
    ("get", "/api/v1/customers/console-1/invoices/", None),
    ("get", "/api/v1/applications/lanting-chat/", None),
    ("post", "/api/v1/customers/", {"external_id": "n", "name": "N", "billing_email": "n@n.cn"}),
    (
        "post",
        "/api/v1/applications/",
        {"app_key": "n", "name": "N", "customer": "console-1", "data_center": "singapore"},
    ),
    ("post", PLAN_URL, {"plan": "free", "effective_date": "2026-10-16"}),
    ("post", ADDONS_URL, {"addon": "desktop_pc", "quantity": 1, "effective_date": "2026-10-16"}),
    ("patch", ADDONS_URL + "desktop_pc/", {"quantity": 1, "effective_date": "2026-10-16"}),
    ("delete", ADDONS_URL + "desktop_pc/?effective_date=2026-10-16", None),
]
OTHER_ROLES = [
    (roles.FINANCE_CLERK,),
    (roles.FINANCE_MANAGER,),
    (roles.AUDITOR,),
    (roles.INGEST,),
    (roles.ACCOUNTING,),
    (),
]


@pytest.mark.parametrize("groups", OTHER_ROLES)
def test_console_endpoints_refuse_every_other_role(client_for, app, groups):
    client = client_for(*groups)
    for method, url, body in CONSOLE_CALLS:
        refused(lambda: getattr(client, method)(url, body, format="json"), 403)  # noqa: B023


@pytest.mark.parametrize(("method", "url", "body"), CONSOLE_CALLS[:4])
def test_console_role_may_read(console, app, method, url, body):
    assert getattr(console, method)(url).status_code == 200


@pytest.mark.parametrize("groups", [(roles.CONSOLE,), (roles.AUDITOR,), (roles.INGEST,), ()])
def test_deposits_need_a_finance_role(client_for, customer, groups):
    client = client_for(*groups)
    refused(lambda: send_deposit(client, {"amount": "100.00"}), 403)


@pytest.mark.parametrize("role", roles.FINANCE_ROLES)
def test_both_finance_roles_may_deposit(client_for, customer, role):
    assert send_deposit(client_for(role), {"amount": "100.00"}, key=role).status_code == 201


def test_a_superuser_without_a_role_is_refused(customer):

    admin = UserFactory(is_superuser=True, is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    refused(lambda: client.get("/api/v1/customers/console-1/"), 403)


def test_anonymous_requests_are_refused(customer):
    response = APIClient().get("/api/v1/customers/console-1/")
    assert response.status_code == 401


# --- documentation -------------------------------------------------------------------------


def test_openapi_schema_documents_the_endpoints_with_examples():

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    for path in (
        "/api/v1/customers/",
        "/api/v1/customers/{external_id}/",
        "/api/v1/customers/{external_id}/deposits/",
        "/api/v1/customers/{external_id}/estimate/",
        "/api/v1/customers/{external_id}/invoices/",
        "/api/v1/applications/",
        "/api/v1/applications/{app_key}/",
        "/api/v1/applications/{app_key}/plan-changes/",
        "/api/v1/applications/{app_key}/addons/",
        "/api/v1/applications/{app_key}/addons/{addon}/",
        "/api/v1/usage/",
    ):
        assert path in paths, path
    plan_change = paths["/api/v1/applications/{app_key}/plan-changes/"]["post"]
    example = plan_change["responses"]["402"]["content"]["application/json"]["examples"]
    assert list(example.values())[0]["value"] == {
        "code": "insufficient_deposit",
        "message": "activating Ultimate on 2026-10-16 needs a balance of at least 8000.00 "
        "(minimum deposit); the balance is 5000.00",
        "field": "plan",
        "required": "8000.00",
        "balance": "5000.00",
    }
    deposit_op = paths["/api/v1/customers/{external_id}/deposits/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in deposit_op["parameters"])


def test_create_customer_with_a_preferred_language(console):
    response = console.post(
        "/api/v1/customers/",
        {
            "external_id": "console-88",
            "name": "Mu Dan Ltd",
            "billing_email": "ap@mudan.example.com",
            "preferred_language": "zh-hans",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["preferred_language"] == "zh-hans"
    assert response.json()["billing_email"] == "ap@mudan.example.com"
    customer = Customer.objects.get(external_id="console-88")
    assert list(customer.billing_contacts.values_list("email", flat=True)) == [
        "ap@mudan.example.com"
    ]
    # Without it: English, as before.
    response = console.post(
        "/api/v1/customers/",
        {"external_id": "console-89", "name": "Lan Ltd", "billing_email": "ap@lan.example.com"},
        format="json",
    )
    assert response.json()["preferred_language"] == "en"


def test_create_customer_refuses_an_unknown_language(console):
    body = refused(
        lambda: console.post(
            "/api/v1/customers/",
            {
                "external_id": "console-90",
                "name": "X",
                "billing_email": "x@x.example.com",
                "preferred_language": "fr",
            },
            format="json",
        ),
        400,
    )
    assert body["field"] == "preferred_language"
    assert not Customer.objects.filter(external_id="console-90").exists()
