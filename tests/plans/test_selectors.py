"""plans.selectors: the prices valid for a period, and rating inputs derived from the
append-only PlanChange / AddOnChange rows, contracts and daily usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from moneyed import Money

from billingsite.clock import Period
from plans.models import AddOn, AddOnChange, AddOnPrice, Plan, PlanChange, PlanPrice
from plans.rating.engine import (
    AddOnSegment,
    ApplicationInput,
    ContractSegment,
    PlanSegment,
    rate_application,
)
from plans.selectors import application_inputs, price_book_for_period
from plans.timeline import HistoryRow, addon_history, plan_code_on, plan_history
from tests.factories import (
    NOW,
    ApplicationFactory,
    addon_change,
    contract,
    discount,
    plan_change,
    usage,
)
from tests.plans.test_rating import book_from_json

OCT = Period(2026, 10)
pytestmark = pytest.mark.django_db


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def cny(text: str) -> Money:
    return Money(Decimal(text), "CNY")


# --- Prices by valid_from -----------------------------------------------------------------------


def test_loaded_book_is_the_book_file(price_book):
    assert price_book_for_period(period=OCT) == book_from_json()


def premium_25000_with_desktop(period: Period) -> ApplicationInput:
    return ApplicationInput(
        app_key="q",
        app_name="q",
        period_start=period.start,
        days_in_month=period.days,
        plan_segments=(PlanSegment("premium", period.start, period.end, 25000),),
        addon_segments=(AddOnSegment("desktop_pc", 1, period.start, period.end),),
    )


def test_price_from_next_month_does_not_change_this_month(price_book):
    premium = Plan.objects.get(code="premium")
    PlanPrice.objects.create(
        plan=premium,
        valid_from=d("2026-11-01"),
        minimum_deposit=cny("7000.00"),
        dau_base_fee=cny("7000.00"),
        included_dau=10000,
        dau_block_size=10000,
        dau_block_price=cny("3500.00"),
    )
    AddOnPrice.objects.create(
        addon=AddOn.objects.get(code="desktop_pc"),
        plan=premium,
        valid_from=d("2026-11-01"),
        availability="priced",
        unit_price=cny("5500.00"),
    )

    october = price_book_for_period(period=OCT)
    november = price_book_for_period(period=Period(2026, 11))
    december = price_book_for_period(period=Period(2026, 12))
    assert october.plans["premium"].dau_base_fee == Decimal("6000.00")
    assert october.addon_price("desktop_pc", "premium").unit_price == Decimal("5000.00")
    for later in (november, december):
        assert later.plans["premium"].dau_base_fee == Decimal("7000.00")
        assert later.plans["premium"].dau_block_price == Decimal("3500.00")
        assert later.addon_price("desktop_pc", "premium").unit_price == Decimal("5500.00")
    # Untouched rows keep the book's prices in every month.
    assert november.plans["ultimate"].dau_block_price == Decimal("4500.00")
    assert november.addon_price("desktop_pc", "ultimate").unit_price == Decimal("5000.00")

    # October 6,000 + 2 x 3,000 + 5,000; November 7,000 + 2 x 3,500 + 5,500.
    october_app = premium_25000_with_desktop(OCT)
    november_app = premium_25000_with_desktop(Period(2026, 11))
    assert rate_application(book=october, app=october_app).total == Decimal("17000.00")
    assert rate_application(book=november, app=november_app).total == Decimal("19500.00")


def test_periods_before_the_book_have_no_prices(price_book):
    book = price_book_for_period(period=Period(2024, 12))
    assert book.plans == {} and book.addon_prices == {}
    assert set(price_book_for_period(period=Period(2025, 1)).plans) == {
        "free",
        "premium",
        "ultimate",
    }


# --- Plan and add-on history --------------------------------------------------------------------


@pytest.fixture
def app(price_book):
    return ApplicationFactory(plan="free", created_on=d("2026-01-01"))


def cancelled_plan_change(application, plan_code, effective_date):
    return PlanChange.objects.create(
        application=application,
        plan=Plan.objects.get(code=plan_code),
        effective_date=effective_date,
        created_at=NOW,
        cancelled_at=NOW,
    )


def cancelled_addon_change(application, addon_code, quantity, effective_date):
    return AddOnChange.objects.create(
        application=application,
        addon=AddOn.objects.get(code=addon_code),
        quantity=quantity,
        effective_date=effective_date,
        created_at=NOW,
        cancelled_at=NOW,
    )


def test_plan_history_from_live_changes_only(app):
    plan_change(app, "premium", d("2026-10-16"))
    # Ultimate was requested for the 20th, then called off: the row stays, cancelled.
    cancelled_plan_change(app, "ultimate", d("2026-10-20"))
    # A cancelled row may share its day with the live row that replaced it.
    cancelled_plan_change(app, "ultimate", d("2026-12-01"))
    plan_change(app, "free", d("2026-12-01"))

    assert plan_history(application_ids=[app.id]) == {
        app.id: [
            HistoryRow("free", "Free", d("2026-01-01"), d("2026-10-15")),
            HistoryRow("premium", "Premium", d("2026-10-16"), d("2026-11-30")),
            HistoryRow("free", "Free", d("2026-12-01"), None),
        ]
    }
    assert plan_code_on(application_id=app.id, day=d("2026-10-15")) == "free"
    assert plan_code_on(application_id=app.id, day=d("2026-10-20")) == "premium"
    assert plan_code_on(application_id=app.id, day=d("2027-06-01")) == "free"
    assert plan_code_on(application_id=app.id, day=d("2025-12-31")) is None


def test_addon_history_ends_at_quantity_zero_and_ignores_cancelled_rows(app):
    plan_change(app, "premium", d("2026-10-16"))
    addon_change(app, "chatroom_keepalive", 1, d("2026-10-16"))
    addon_change(app, "chatroom_keepalive", 0, d("2026-10-28"))
    addon_change(app, "sensitive_words", 2, d("2026-10-16"))
    addon_change(app, "sensitive_words", 3, d("2026-10-25"))
    cancelled_addon_change(app, "desktop_pc", 1, d("2026-10-16"))
    cancelled_addon_change(app, "sensitive_words", 9, d("2026-10-20"))

    rows = addon_history(application_ids=[app.id])[app.id]
    assert sorted(rows, key=lambda r: (r.code, r.first_day)) == [
        HistoryRow(
            "chatroom_keepalive", "Chat room keep-alive", d("2026-10-16"), d("2026-10-27"), 1
        ),
        HistoryRow(
            "sensitive_words",
            "Extra sensitive words (50 included)",
            d("2026-10-16"),
            d("2026-10-24"),
            2,
        ),
        HistoryRow(
            "sensitive_words", "Extra sensitive words (50 included)", d("2026-10-25"), None, 3
        ),
    ]


def test_application_inputs_derive_segments_peaks_and_addons(app):
    plan_change(app, "premium", d("2026-10-16"))
    cancelled_plan_change(app, "ultimate", d("2026-10-20"))
    addon_change(app, "chatroom_keepalive", 1, d("2026-10-16"))
    addon_change(app, "chatroom_keepalive", 0, d("2026-10-28"))
    addon_change(app, "sensitive_words", 2, d("2026-10-16"))
    addon_change(app, "sensitive_words", 3, d("2026-10-25"))
    cancelled_addon_change(app, "desktop_pc", 1, d("2026-10-16"))
    # Usage outside October never counts, however high.
    usage(app, d("2026-09-30"), 99999, 9_000_000)
    usage(app, d("2026-11-01"), 99999, 9_000_000)
    usage(app, d("2026-10-03"), 900)
    usage(app, d("2026-10-09"), 1200)
    usage(app, d("2026-10-15"), 1200)  # ties the 9th: the earlier day is the peak day
    usage(app, d("2026-10-16"), 18000, 1_500_000)
    usage(app, d("2026-10-20"), 34812, 2_100_000)
    usage(app, d("2026-10-31"), 500)

    inputs = application_inputs(applications=[app], period=OCT)
    app_input = inputs[app.id]
    assert (app_input.app_key, app_input.period_start, app_input.days_in_month) == (
        app.app_key,
        d("2026-10-01"),
        31,
    )
    assert app_input.plan_segments == (
        PlanSegment("free", d("2026-10-01"), d("2026-10-15"), 1200, d("2026-10-09")),
        PlanSegment("premium", d("2026-10-16"), d("2026-10-31"), 34812, d("2026-10-20")),
    )
    assert sorted(app_input.addon_segments, key=lambda a: (a.addon_code, a.first_day)) == [
        AddOnSegment("chatroom_keepalive", 1, d("2026-10-16"), d("2026-10-27")),
        AddOnSegment("sensitive_words", 2, d("2026-10-16"), d("2026-10-24")),
        AddOnSegment("sensitive_words", 3, d("2026-10-25"), d("2026-10-31")),
    ]
    assert (app_input.peak_daily_messages, app_input.peak_messages_day) == (
        2_100_000,
        d("2026-10-20"),
    )
    assert app_input.contracts == ()

    rated = rate_application(book=price_book_for_period(period=OCT), app=app_input)
    assert [(line.code, line.plan_code, line.amount) for line in rated.lines] == [
        ("free", "free", Decimal("0.00")),
        # 6,000 + 3 x 3,000 = 15,000 x 16/31 = 7,741.935...
        ("premium", "premium", Decimal("7741.94")),
        # 2,000 x 12/31 = 774.193...
        ("chatroom_keepalive", "premium", Decimal("774.19")),
        # 2,400 x 9/31 = 696.774... ; 3,600 x 7/31 = 812.903...
        ("sensitive_words", "premium", Decimal("696.77")),
        ("sensitive_words", "premium", Decimal("812.90")),
    ]
    assert rated.total == Decimal("10025.80")
    assert rated.high_volume and rated.hold_reason  # 2,100,000 > 2,000,000, no contract


def test_application_inputs_clip_history_to_the_period(app):
    plan_change(app, "premium", d("2026-06-01"))
    addon_change(app, "sensitive_words", 2, d("2026-09-10"))
    contract(app, "50000.00", d("2026-10-10"))
    contract(app, "40000.00", d("2026-05-01"), d("2026-09-30"))  # over before October

    app_input = application_inputs(applications=[app], period=OCT)[app.id]
    assert app_input.plan_segments == (
        PlanSegment("premium", d("2026-10-01"), d("2026-10-31"), None, None),
    )
    assert app_input.addon_segments == (
        AddOnSegment("sensitive_words", 2, d("2026-10-01"), d("2026-10-31")),
    )
    assert app_input.contracts == (
        ContractSegment(Decimal("50000.00"), d("2026-10-10"), d("2026-10-31"), "DS-TEST"),
    )
    assert app_input.peak_daily_messages is None


def test_application_created_after_the_period_is_left_out(price_book):
    early = ApplicationFactory(plan="premium", created_on=d("2026-10-20"))
    late = ApplicationFactory(plan="premium", created_on=d("2026-11-05"))
    inputs = application_inputs(applications=[early, late], period=OCT)
    assert set(inputs) == {early.id}
    assert inputs[early.id].plan_segments == (
        PlanSegment("premium", d("2026-10-20"), d("2026-10-31"), None, None),
    )


def test_application_inputs_read_many_applications_in_a_fixed_number_of_queries(
    price_book, django_assert_num_queries
):
    apps = [ApplicationFactory(plan="premium", created_on=d("2026-01-01")) for _ in range(4)]
    for index, application in enumerate(apps):
        addon_change(application, "sensitive_words", index + 1, d("2026-10-05"))
        usage(application, d("2026-10-05"), 1000 * (index + 1))
        contract(application, "30000.00", d("2026-10-01"))
        discount(application=application, percent="5", first_day=d("2026-10-01"))
        discount(customer=application.customer, amount_off="100.00", first_day=d("2026-10-01"))
    # Plan changes, add-on changes, usage, contracts, discounts: one query each, however many
    # apps.
    with django_assert_num_queries(5):
        inputs = application_inputs(applications=apps, period=OCT)
    assert [inputs[a.id].plan_segments[0].peak_dau for a in apps] == [1000, 2000, 3000, 4000]
    assert [inputs[a.id].addon_segments[0].quantity for a in apps] == [1, 2, 3, 4]
    assert all(len(inputs[a.id].discounts) == 2 for a in apps)
