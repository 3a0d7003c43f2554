"""Issue 12, item 2: add-on quantities have a maximum (price-book data) that the services, the
provisioning API and the quote all enforce; chat room storage extension needs chat room
storage; RMB is CNY in a quote."""

import datetime as dt
from decimal import Decimal

import pytest
from freezegun import freeze_time
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import roles
from billingsite.clock import Period
from invoices.documents.services import bill_customer
from invoices.models import Invoice
from invoices.selectors import rate_customer_period
from plans.models import AddOn, AddOnChange
from plans.price_book import load_price_book
from plans.services import SubscriptionError, addon_end, addon_set, plan_change_request
from tests.factories import ApplicationFactory, StaffFactory, UserFactory

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=SHANGHAI)
OCT_16, OCT_20 = dt.date(2026, 10, 16), dt.date(2026, 10, 20)

pytestmark = [pytest.mark.usefixtures("price_book"), pytest.mark.django_db]

# (add-on, its default maximum): the maxima the price book ships with.
DEFAULT_MAXIMA = [
    ("sensitive_words", 1_000),
    ("chatroom_storage_extension", 120),
    ("ultragroup_storage_extension", 120),
    ("private_storage_extension", 20),
    ("api_push", 1_000),
    ("api_user_whitelist_query", 1_000),
    ("desktop_pc", 1),
    ("chatroom_keepalive", 1),
]
TOO_MANY = [("sensitive_words", 1_001), ("sensitive_words", 2**31), ("sensitive_words", 10**12)]


def premium_app(plan: str = "premium"):
    return ApplicationFactory(plan=plan, created_on=dt.date(2026, 9, 1))


def test_price_book_defaults_and_a_second_load_changes_nothing():
    maxima = dict(AddOn.objects.values_list("code", "max_quantity"))
    for code, maximum in DEFAULT_MAXIMA:
        assert maxima[code] == maximum, code
    assert AddOn.objects.get(code="chatroom_storage_extension").requires.code == "chatroom_storage"
    report = load_price_book()
    assert not report.changed_anything and not report.differences


# --- the subscription service (API, admin and demo data call it) -------------------------


@pytest.mark.parametrize(("code", "quantity"), TOO_MANY)
def test_service_refuses_a_quantity_above_the_maximum_and_writes_nothing(code, quantity):
    app = premium_app()
    with pytest.raises(SubscriptionError) as info:
        addon_set(
            application=app, addon_code=code, quantity=quantity, effective_date=OCT_16, now=NOW
        )
    assert (info.value.code, info.value.field) == ("quantity_above_maximum", "quantity")
    assert "at most 1,000 per application" in info.value.message
    assert f"{quantity:,} is above the maximum" in info.value.message
    assert not AddOnChange.objects.exists()


def test_the_maximum_itself_is_accepted_and_priced():
    app = premium_app()
    change = addon_set(
        application=app,
        addon_code="sensitive_words",
        quantity=1_000,
        effective_date=dt.date(2026, 10, 1),
        # Asked on the 1st: nothing takes effect before the day it is asked (change_policy).
        now=dt.datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI),
    )
    assert change.quantity == 1_000

    rated = rate_customer_period(customer=app.customer, period=Period(2026, 10))
    assert [(line.code, line.amount) for line in rated.lines] == [
        ("premium", Decimal("6000.00")),
        ("sensitive_words", Decimal("1200000.00")),
    ]


def test_finance_raising_the_maximum_takes_effect_at_once():
    AddOn.objects.filter(code="sensitive_words").update(max_quantity=5_000)
    app = premium_app()
    change = addon_set(
        application=app,
        addon_code="sensitive_words",
        quantity=5_000,
        effective_date=OCT_16,
        now=NOW,
    )
    assert change.quantity == 5_000


# --- chat room storage extension needs chat room storage --------------------------------


def test_storage_extension_without_chat_room_storage_is_refused():
    app = premium_app()
    with pytest.raises(SubscriptionError) as info:
        addon_set(
            application=app,
            addon_code="chatroom_storage_extension",
            quantity=2,
            effective_date=OCT_16,
            now=NOW,
        )
    assert (info.value.code, info.value.field) == ("addon_requires_base", "addon")
    assert "extends Chat room message cloud storage, 2 months (chatroom_storage)" in (
        info.value.message
    )
    assert not AddOnChange.objects.exists()


def test_ending_chat_room_storage_ends_its_extension_and_next_month_bills_neither():
    app = premium_app()
    for code, quantity in (("chatroom_storage", 1), ("chatroom_storage_extension", 2)):
        addon_set(
            application=app, addon_code=code, quantity=quantity, effective_date=OCT_16, now=NOW
        )
    addon_end(application=app, addon_code="chatroom_storage", effective_date=OCT_20, now=NOW)

    ended = AddOnChange.objects.get(
        addon__code="chatroom_storage_extension", quantity=0, cancelled_at__isnull=True
    )
    assert (ended.effective_date, ended.note) == (OCT_20, "ended with chatroom_storage")
    # Repeating the end (a retry) changes nothing.
    rows = AddOnChange.objects.count()
    addon_end(application=app, addon_code="chatroom_storage", effective_date=OCT_20, now=NOW)
    assert AddOnChange.objects.count() == rows

    october = bill_customer(
        customer=app.customer,
        period=Period(2026, 10),
        now=dt.datetime(2026, 11, 2, tzinfo=SHANGHAI),
    )
    november = bill_customer(
        customer=app.customer,
        period=Period(2026, 11),
        now=dt.datetime(2026, 12, 2, tzinfo=SHANGHAI),
    )
    assert (october, november) == ("issued", "issued")
    lines = {
        invoice.period.month: [
            (line.code, line.days, line.amount.amount) for line in invoice.lines.all()
        ]
        for invoice in Invoice.objects.filter(customer=app.customer)
    }
    # 16..19 October: 4 of 31 days of 1,000.00 and of 2 x 1,000.00.
    assert lines[10] == [
        ("premium", 31, Decimal("6000.00")),
        ("chatroom_storage", 4, Decimal("129.03")),
        ("chatroom_storage_extension", 4, Decimal("258.06")),
    ]
    assert lines[11] == [("premium", 30, Decimal("6000.00"))]


# --- provisioning API --------------------------------------------------------------------


@pytest.fixture
def console():

    client = APIClient()
    user = UserFactory(groups=[roles.CONSOLE])
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    with freeze_time(NOW):
        yield client


@pytest.mark.parametrize(
    ("addon", "quantity", "code", "field"),
    [
        ("sensitive_words", 1_001, "quantity_above_maximum", "quantity"),
        ("sensitive_words", 2**31, "quantity_above_maximum", "quantity"),
        ("sensitive_words", 10**12, "quantity_above_maximum", "quantity"),
        ("chatroom_storage_extension", 121, "quantity_above_maximum", "quantity"),
        ("desktop_pc", 2, "invalid_quantity", "quantity"),
        ("chatroom_storage_extension", 1, "addon_requires_base", "addon"),
    ],
)
def test_api_refuses_with_code_message_and_field(console, addon, quantity, code, field):
    app = premium_app()
    url = f"/api/v1/applications/{app.app_key}/addons/"
    body = {"addon": addon, "quantity": quantity, "effective_date": "2026-10-16"}
    response = console.post(url, body, format="json")
    assert response.status_code == 400, response.content
    answer = response.json()
    assert (answer["code"], answer["field"]) == (code, field)
    assert answer["message"]
    assert not AddOnChange.objects.exists()


def test_api_patch_above_the_maximum_is_a_400_and_keeps_the_quantity(console):
    app = premium_app()
    url = f"/api/v1/applications/{app.app_key}/addons/"
    body = {"addon": "sensitive_words", "quantity": 1_000, "effective_date": "2026-10-16"}
    assert console.post(url, body, format="json").status_code == 201
    response = console.patch(
        f"{url}sensitive_words/", {"quantity": 2**31, "effective_date": "2026-10-17"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "quantity_above_maximum"
    assert list(AddOnChange.objects.values_list("quantity", flat=True)) == [1_000]


# --- quote -------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client):

    client.force_login(StaffFactory())
    return client


def quote(client, body: dict):
    return client.post(
        "/api/v1/quotes/",
        {"plan": "premium", "peak_dau": 8000, "period": "2026-10", **body},
        content_type="application/json",
    )


@pytest.mark.parametrize(
    ("addons", "message"),
    [
        ({"sensitive_words": 1_001}, "at most 1,000 per application"),
        ({"sensitive_words": 2**31}, "2,147,483,648 is above the maximum"),
        ({"sensitive_words": 10**12}, "1,000,000,000,000 is above the maximum"),
        ({"chatroom_storage_extension": 121, "chatroom_storage": 1}, "at most 120"),
        ({"chatroom_storage_extension": 1}, "order chatroom_storage for the same days first"),
    ],
)
def test_quote_refuses_with_a_400_per_addon(staff_client, addons, message):
    response = quote(staff_client, {"addons": addons})
    assert response.status_code == 400, response.content
    (code,) = [code for code in addons if code != "chatroom_storage"]
    body = response.json()
    assert (body["code"], body["field"]) == ("invalid", "addons")
    assert any(message in text for text in body["errors"]["addons"][code])


def test_quote_at_the_maxima(staff_client):
    response = quote(
        staff_client,
        {
            "addons": {
                "sensitive_words": 1_000,
                "chatroom_storage": 1,
                "chatroom_storage_extension": 120,
            }
        },
    )
    assert response.status_code == 200, response.content
    # 6,000 + 1,000 x 1,200 + 1,000 + 120 x 1,000
    assert response.json()["total"] == "1327000.00"


@pytest.mark.parametrize("currency", ["RMB", "CNY"])
def test_quote_in_rmb_is_answered_in_cny(staff_client, currency):
    response = quote(staff_client, {"currency": currency})
    assert response.status_code == 200, response.content
    assert (response.json()["currency"], response.json()["total"]) == ("CNY", "6000.00")


def _live(app) -> list[tuple[str, int, dt.date]]:
    return sorted(
        (row.addon.code, row.quantity, row.effective_date)
        for row in AddOnChange.objects.filter(application=app, cancelled_at__isnull=True)
    )


def _storage_with_extension(app) -> None:
    for code, quantity in (("chatroom_storage", 1), ("chatroom_storage_extension", 3)):
        addon_set(
            application=app, addon_code=code, quantity=quantity, effective_date=OCT_16, now=NOW
        )


def test_the_customers_own_end_survives_the_plan_change_that_had_ended_it_too():
    """A downgrade ends storage (and its extension) on the 1st; the customer then ends storage
    on that same day; keeping Premium after all cancels the downgrade's ends, not his."""

    app = premium_app()
    _storage_with_extension(app)
    nov_1 = dt.date(2026, 11, 1)
    plan_change_request(application=app, plan_code="free", effective_date=nov_1, now=NOW)
    addon_end(application=app, addon_code="chatroom_storage", effective_date=nov_1, now=NOW)
    plan_change_request(
        application=app, plan_code="premium", effective_date=dt.date(2026, 10, 17), now=NOW
    )

    assert _live(app) == [
        ("chatroom_storage", 0, nov_1),
        ("chatroom_storage", 1, OCT_16),
        ("chatroom_storage_extension", 0, nov_1),
        ("chatroom_storage_extension", 3, OCT_16),
    ]


def test_ordering_the_base_again_keeps_the_extension_its_end_had_ended():
    app = premium_app()
    _storage_with_extension(app)
    addon_end(application=app, addon_code="chatroom_storage", effective_date=OCT_20, now=NOW)
    assert ("chatroom_storage_extension", 0, OCT_20) in _live(app)

    # The customer changes his mind before the 20th: storage goes on, and so does the extension.
    addon_set(
        application=app,
        addon_code="chatroom_storage",
        quantity=1,
        effective_date=dt.date(2026, 10, 17),
        now=NOW,
    )
    assert _live(app) == [
        ("chatroom_storage", 1, OCT_16),
        ("chatroom_storage_extension", 3, OCT_16),
    ]
