"""Issue 12 item 1: nobody rewrites a month that is running or frozen. The rules of
plans.change_policy through the console API, the services and the usage ingest (the admin
forms: tests/admin/test_application_admin.py)."""

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import roles
from accounts.models import Application, DailyUsage
from billingsite.clock import BILLING_TZ, Period
from invoices.models import Invoice
from invoices.run.runs import billing_run_start
from plans.models import AddOnChange, DedicatedContract, PlanChange
from plans.rating.engine import PricedLine
from plans.services import SubscriptionError, contract_add
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    UserFactory,
    addon_change,
    deposit,
    usage,
)
from tests.portal.factories import credit_note, issued_invoice

pytestmark = [pytest.mark.usefixtures("price_book"), pytest.mark.django_db]

SEP_1 = dt.date(2026, 9, 1)
OCTOBER = dt.date(2026, 10, 1)
NOVEMBER = Period(2026, 11)
PLAN_URL = "/api/v1/applications/app-one/plan-changes/"
ADDONS_URL = "/api/v1/applications/app-one/addons/"
ESTIMATE_URL = "/api/v1/customers/cust-one/estimate/"


def at(day: str, hour: int = 15) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=BILLING_TZ)


def client_in(role: str) -> APIClient:
    user = UserFactory(groups=[role])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def console() -> APIClient:
    return client_in(roles.CONSOLE)


@pytest.fixture
def app() -> Application:
    """Premium since September with two sensitive-words packs, and money for Ultimate."""
    customer = CustomerFactory(external_id="cust-one")
    application = ApplicationFactory(
        customer=customer, app_key="app-one", plan="premium", created_on=SEP_1
    )
    addon_change(application, "sensitive_words", 2, SEP_1)
    deposit(customer, "20000.00")
    return application


def snapshot() -> tuple:
    return (
        PlanChange.objects.filter(cancelled_at__isnull=True).count(),
        PlanChange.objects.count(),
        AddOnChange.objects.filter(cancelled_at__isnull=True).count(),
        AddOnChange.objects.count(),
        DedicatedContract.objects.count(),
    )


def refused(send, status: int, code: str, field: str | None = "effective_date") -> dict:
    before = snapshot()
    response = send()
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["code"], body["field"]) == (code, field), body
    assert snapshot() == before, "a refusal must change nothing"
    return body


def invoice(customer, period: dt.date, status: str) -> Invoice:
    """An invoice of the customer for the month in `status`; a credited one gets there the
    only way the database allows: an issued invoice and a credit note over its line."""
    credited = status in (Invoice.Status.PARTIALLY_CREDITED, Invoice.Status.CREDITED)
    issued = status in Invoice.ISSUED_STATES
    month = Period(period.year, period.month)
    line = PricedLine(
        app_key="x", app_name="X", code="premium", category="dau_fee", plan_code="premium",
        plan_name="Premium", description="Premium plan, monthly fee by peak DAU", quantity=1,
        unit_price=Decimal("100.00"), amount=Decimal("100.00"), first_day=month.start,
        last_day=month.end, days=month.days, days_in_month=month.days, explanation="",
    )  # fmt: skip
    bill = issued_invoice(
        customer=customer,
        period=month,
        lines=[line],
        number="INV-2026-000077" if issued else None,
        issued_at=at("2026-11-02", 0),
        status=Invoice.Status.ISSUED if credited else status,
        debit=False,
    )
    if credited:
        full = status == Invoice.Status.CREDITED
        credit_note(
            invoice=bill, amounts={bill.lines.get().pk: Decimal("100.00" if full else "40.00")}
        )
    bill.refresh_from_db()
    assert bill.status == status
    return bill


# --- the attack of the issue -----------------------------------------------------------------


def test_a_downgrade_backdated_to_the_1st_on_the_30th_leaves_the_month_its_fee(
    console, app, django_capture_on_commit_callbacks
):
    usage(app, dt.date(2026, 11, 10), dau=8000)
    with freeze_time(at("2026-11-30")):
        response = console.post(
            PLAN_URL, {"plan": "free", "effective_date": "2026-11-01"}, format="json"
        )
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["kind"], body["requested_date"], body["effective_date"]) == (
            "downgrade",
            "2026-11-01",
            "2026-12-01",
        )
        estimate = console.get(ESTIMATE_URL).json()
    # Premium 6,000.00 + 2 sensitive-words packs x 1,200.00, all of November.
    assert estimate["total"] == "8400.00"

    with freeze_time(at("2026-12-02", 0)), django_capture_on_commit_callbacks(execute=True):
        billing_run_start(period=NOVEMBER, now=at("2026-12-02", 0))
    billed = Invoice.objects.get(customer=app.customer, period=NOVEMBER.start)
    assert billed.status == Invoice.Status.ISSUED
    assert billed.total.amount == Decimal("8400.00")
    assert {line.code: line.amount.amount for line in billed.lines.all()} == {
        "premium": Decimal("6000.00"),
        "sensitive_words": Decimal("2400.00"),
    }


def test_an_addon_ended_backdated_to_the_1st_is_billed_through_today(console, app):
    with freeze_time(at("2026-11-30")):
        response = console.delete(ADDONS_URL + "sensitive_words/?effective_date=2026-11-01")
        assert response.status_code == 200, response.content
        assert response.json()["effective_date"] == "2026-12-01"
        estimate = console.get(ESTIMATE_URL).json()
    assert estimate["total"] == "8400.00"
    lines = {line["code"]: line["amount"] for line in estimate["lines"]}
    assert lines == {"premium": "6000.00", "sensitive_words": "2400.00"}


# --- when a change takes effect ----------------------------------------------------------------


def plan(to: str):
    def request(day):
        return ("post", PLAN_URL, {"plan": to, "effective_date": day})

    request.__name__ = f"plan_{to}"
    return request


def addon_quantity(quantity: int):
    def request(day):
        return (
            "patch",
            ADDONS_URL + "sensitive_words/",
            {"quantity": quantity, "effective_date": day},
        )

    request.__name__ = f"addon_quantity_{quantity}"
    return request


def addon_start(day):
    return ("post", ADDONS_URL, {"addon": "desktop_pc", "quantity": 1, "effective_date": day})


def addon_end(day):
    return ("delete", ADDONS_URL + f"sensitive_words/?effective_date={day}", None)


@pytest.mark.parametrize(
    ("today", "request_for", "asked", "effective"),
    [
        # Nothing before today: an upgrade or a start asked for a past day starts today.
        ("2026-11-16", plan("ultimate"), "2026-11-01", "2026-11-16"),
        ("2026-11-16", plan("ultimate"), "2026-11-20", "2026-11-20"),
        ("2026-11-16", addon_start, "2026-11-01", "2026-11-16"),
        ("2026-11-16", addon_start, "2026-11-16", "2026-11-16"),
        ("2026-11-16", addon_quantity(3), "2026-11-16", "2026-11-16"),
        # A downgrade: the 1st after the request, whatever was asked; a later 1st stays.
        ("2026-11-16", plan("free"), "2026-11-01", "2026-12-01"),
        ("2026-11-16", plan("free"), "2026-11-16", "2026-12-01"),
        ("2026-11-16", plan("free"), "2026-12-01", "2026-12-01"),
        ("2026-11-16", plan("free"), "2027-01-15", "2027-02-01"),
        ("2026-12-01", plan("free"), "2026-12-01", "2027-01-01"),
        # Ending or reducing an add-on: today is used, so tomorrow at the earliest.
        ("2026-11-16", addon_quantity(1), "2026-11-16", "2026-11-17"),
        ("2026-11-16", addon_quantity(1), "2026-11-02", "2026-11-17"),
        ("2026-11-16", addon_quantity(1), "2026-11-20", "2026-11-20"),
        ("2026-11-16", addon_end, "2026-11-16", "2026-11-17"),
        ("2026-11-16", addon_end, "2026-11-05", "2026-11-17"),
        # 366 days ahead is the last day that can be scheduled.
        ("2026-11-16", plan("ultimate"), "2027-11-17", "2027-11-17"),
    ],
)
def test_a_change_takes_effect_no_earlier_than_its_rule_allows(
    console, app, today, request_for, asked, effective
):
    method, url, data = request_for(asked)
    with freeze_time(at(today)):
        response = getattr(console, method)(url, data, format="json")
    assert response.status_code in (200, 201), response.content
    assert response.json()["effective_date"] == effective


REQUESTS = [plan("free"), plan("ultimate"), addon_start, addon_quantity(1), addon_end]


@pytest.mark.parametrize(
    ("status", "request_for"),
    [
        *(("held", request_for) for request_for in REQUESTS),
        *(
            (status, plan("free"))
            for status in ("draft", "issued", "partially_credited", "credited")
        ),
    ],
)
def test_a_change_dated_in_a_month_with_an_invoice_in_any_state_is_409(
    console, app, status, request_for
):
    invoice(app.customer, OCTOBER, status)
    method, url, data = request_for("2026-10-01")
    with freeze_time(at("2026-11-16")):
        body = refused(
            lambda: getattr(console, method)(url, data, format="json"), 409, "month_invoiced"
        )
    assert "2026-10" in body["message"]


@pytest.mark.parametrize(
    ("request_for", "asked"),
    [
        *((request_for, "9999-12-15") for request_for in REQUESTS),
        (plan("free"), "9999-12-31"),
        (plan("ultimate"), "2027-11-18"),
        (addon_end, "2027-11-18"),
    ],
)
def test_a_date_more_than_366_days_ahead_is_400(console, app, asked, request_for):
    method, url, data = request_for(asked)
    with freeze_time(at("2026-11-16")):
        body = refused(
            lambda: getattr(console, method)(url, data, format="json"), 400, "date_too_far"
        )
    assert "2027-11-17" in body["message"]


# --- contracts and usage: finance's review of a held month -----------------------------------


@pytest.mark.parametrize(
    ("status", "allowed"),
    [("draft", True), ("held", True), ("issued", False), ("credited", False)],
)
def test_a_contract_may_start_in_a_draft_or_held_month_not_in_an_issued_one(app, status, allowed):
    invoice(app.customer, OCTOBER, status)
    add = dict(application=app, monthly_fee=Decimal("20000"), first_day=OCTOBER)
    if allowed:
        contract = contract_add(**add, now=at("2026-11-16"))
        assert (contract.first_day, contract.monthly_fee.amount) == (OCTOBER, Decimal("20000.00"))
    else:
        with pytest.raises(SubscriptionError) as info:
            contract_add(**add, now=at("2026-11-16"))
        assert (info.value.code, info.value.field) == ("month_invoiced", "first_day")
        assert not DedicatedContract.objects.exists()


def test_a_contract_more_than_366_days_ahead_is_refused(app):
    with pytest.raises(SubscriptionError) as info:
        contract_add(
            application=app,
            monthly_fee=Decimal("20000"),
            first_day=dt.date(9999, 12, 15),
            now=at("2026-11-16"),
        )
    assert (info.value.code, info.value.field) == ("date_too_far", "first_day")
    assert not DedicatedContract.objects.exists()


@pytest.mark.parametrize(
    ("status", "http_status"),
    [("draft", 200), ("held", 200), ("issued", 409), ("partially_credited", 409)],
)
def test_usage_for_a_held_month_is_accepted_for_an_issued_one_409(app, status, http_status):
    invoice(app.customer, OCTOBER, status)
    row = {"app_key": "app-one", "date": "2026-10-20", "dau": 900, "delivered_messages": 10}
    with freeze_time(at("2026-11-16")):
        response = client_in(roles.INGEST).post("/api/v1/usage/", [row], format="json")
    assert response.status_code == http_status, response.content
    if http_status == 200:
        assert response.json() == {"created": 1, "updated": 0, "unchanged": 0}
        assert DailyUsage.objects.get(application=app).dau == 900
        # A past month's usage moved: issuing the draft or held invoice re-rates it first.
        app.refresh_from_db()
        assert app.usage_version == 1
    else:
        assert response.json()["code"] == "month_invoiced"
        assert not DailyUsage.objects.exists()
