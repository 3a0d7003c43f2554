"""The pure rating engine against PRICING.md: worked examples, tier boundaries, every add-on,
proration and rounding, plan changes, contracts and high volume. No database: the price book
is built straight from plans/price_book.json, the file `manage.py load_price_book` loads.

Expected amounts are written out by hand from PRICING.md, never recomputed with the engine's
own formula, so a wrong formula cannot agree with itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billingsite.clock import Period
from plans.price_book import DEFAULT_BOOK
from plans.rating.engine import (
    INCLUDED,
    PRICED,
    UNAVAILABLE,
    AddOnPriceTerms,
    AddOnSegment,
    AddOnTerms,
    ApplicationInput,
    ContractSegment,
    PlanSegment,
    PlanTerms,
    PriceBook,
    RatingError,
    rate_account,
    rate_application,
)
from tests.hypothesis_budget import examples

BOOK_DATA = json.loads(DEFAULT_BOOK.read_text(encoding="utf-8"))
SWITCHES = {spec["code"] for spec in BOOK_DATA["addons"] if spec["is_switch"]}


def book_from_json(data: dict = BOOK_DATA) -> PriceBook:
    """The default book as the engine sees it (what price_book_for_period returns after
    load_price_book; tests/plans/test_selectors.py checks the two are equal)."""
    plans = {
        spec["code"]: PlanTerms(
            code=spec["code"],
            name=spec["name"],
            minimum_deposit=Decimal(spec["minimum_deposit"]),
            dau_base_fee=Decimal(spec["dau_base_fee"]),
            included_dau=spec["included_dau"],
            dau_block_size=spec["dau_block_size"],
            dau_block_price=Decimal(spec["dau_block_price"]),
            daily_message_limit=spec["daily_message_limit"],
            supports_ultragroups=spec["supports_ultragroups"],
            rank=spec["rank"],
            name_zh=spec["name_zh"],
        )
        for spec in data["plans"]
    }
    addons = {
        spec["code"]: AddOnTerms(
            spec["code"],
            spec["name"],
            spec["category"],
            spec["unit_description"],
            name_zh=spec["name_zh"],
            unit_description_zh=spec["unit_description_zh"],
        )
        for spec in data["addons"]
    }
    prices = {}
    for spec in data["addons"]:
        for plan_code, price in spec["prices"].items():
            if price in (INCLUDED, UNAVAILABLE):
                prices[(spec["code"], plan_code)] = AddOnPriceTerms(price, Decimal("0.00"))
            else:
                prices[(spec["code"], plan_code)] = AddOnPriceTerms(PRICED, Decimal(price))
    return PriceBook(plans=plans, addons=addons, addon_prices=prices)


BOOK = book_from_json()
OCT = Period(2026, 10)  # 31 days
NOV = Period(2026, 11)  # 30 days
FEB_2026 = Period(2026, 2)  # 28 days
FEB_2028 = Period(2028, 2)  # 29 days (leap year)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def app_input(
    plan: str = "premium",
    peak_dau: int | None = 8000,
    *,
    period: Period = OCT,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    addons: dict[str, int] | None = None,
    segments: tuple[PlanSegment, ...] | None = None,
    addon_segments: tuple[AddOnSegment, ...] = (),
    contracts: tuple[ContractSegment, ...] = (),
    peak_daily_messages: int | None = None,
    peak_messages_day: dt.date | None = None,
    app_key: str = "app-1",
) -> ApplicationInput:
    """One application; by default one plan segment and its add-ons over the same days."""
    first_day = first_day or period.start
    last_day = last_day or period.end
    if segments is None:
        segments = (PlanSegment(plan, first_day, last_day, peak_dau),)
    addon_segments = addon_segments + tuple(
        AddOnSegment(code, quantity, first_day, last_day)
        for code, quantity in (addons or {}).items()
    )
    return ApplicationInput(
        app_key=app_key,
        app_name=f"App {app_key}",
        period_start=period.start,
        days_in_month=period.days,
        plan_segments=segments,
        addon_segments=addon_segments,
        contracts=contracts,
        peak_daily_messages=peak_daily_messages,
        peak_messages_day=peak_messages_day,
    )


def amounts(rated) -> list[tuple[str, Decimal]]:
    return [(line.code, line.amount) for line in rated.lines]


# --- Worked examples of PRICING.md ------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "peak_dau", "addons", "expected_lines", "total"),
    [
        # 1. Premium, peak DAU 8,000, nothing else: 6,000.00.
        ("premium", 8000, {}, [("premium", "6000.00")], "6000.00"),
        # 2. Premium, peak DAU 10,000: 6,000.00; 10,001: 9,000.00; 20,000: 9,000.00.
        ("premium", 10000, {}, [("premium", "6000.00")], "6000.00"),
        ("premium", 10001, {}, [("premium", "9000.00")], "9000.00"),
        ("premium", 20000, {}, [("premium", "9000.00")], "9000.00"),
        # 3. Ultimate, 25,000, two included services: 8,000 + 2 x 4,500 = 17,000.00.
        (
            "ultimate",
            25000,
            {"chatroom_keepalive": 1, "message_callback": 1},
            [
                ("ultimate", "17000.00"),
                ("chatroom_keepalive", "0.00"),
                ("message_callback", "0.00"),
            ],
            "17000.00",
        ),
        # 4. Premium, 25,000, the same services: 6,000 + 2 x 3,000 + 2 x 2,000 = 16,000.00.
        (
            "premium",
            25000,
            {"chatroom_keepalive": 1, "message_callback": 1},
            [
                ("premium", "12000.00"),
                ("chatroom_keepalive", "2000.00"),
                ("message_callback", "2000.00"),
            ],
            "16000.00",
        ),
        # 5. Premium, 5,000, sensitive_words x 2, api_private_publish x 3: 9,600.00.
        (
            "premium",
            5000,
            {"sensitive_words": 2, "api_private_publish": 3},
            [
                ("premium", "6000.00"),
                ("api_private_publish", "1200.00"),
                ("sensitive_words", "2400.00"),
            ],
            "9600.00",
        ),
    ],
)
def test_worked_examples(plan, peak_dau, addons, expected_lines, total):
    rated = rate_application(book=BOOK, app=app_input(plan, peak_dau, addons=addons))
    assert amounts(rated) == [(code, Decimal(amount)) for code, amount in expected_lines]
    assert rated.total == Decimal(total)
    assert rated.high_volume is False and rated.hold_reason is None


def test_worked_example_6_activated_on_the_16th_of_a_30_day_month():
    rated = rate_application(
        book=BOOK, app=app_input("premium", 5000, period=NOV, first_day=d("2026-11-16"))
    )
    (line,) = rated.lines
    assert (line.amount, line.unit_price, line.days, line.days_in_month) == (
        Decimal("3000.00"),
        Decimal("6000.00"),
        15,
        30,
    )
    assert rated.total == Decimal("3000.00")
    assert line.explanation == (
        "peak DAU 5,000: 6,000.00 (up to 10,000 DAU); "
        "pro rata 15 of 30 days: 6,000.00 x 15/30 = 3,000.00"
    )


# --- Tier boundaries ----------------------------------------------------------------------------

PREMIUM_TIERS = [
    (0, "6000.00"),
    (1, "6000.00"),
    (9999, "6000.00"),
    (10000, "6000.00"),
    (10001, "9000.00"),
    (20000, "9000.00"),
    (20001, "12000.00"),
    (30000, "12000.00"),
    (30001, "15000.00"),
    (40000, "15000.00"),
    (40001, "18000.00"),
    (100000, "33000.00"),
    (100001, "36000.00"),
    (1000000, "303000.00"),
]
ULTIMATE_TIERS = [
    (0, "8000.00"),
    (1, "8000.00"),
    (10000, "8000.00"),
    (10001, "12500.00"),
    (20000, "12500.00"),
    (20001, "17000.00"),
    (30000, "17000.00"),
    (30001, "21500.00"),
    (40000, "21500.00"),
    (40001, "26000.00"),
    (100000, "48500.00"),
    (100001, "53000.00"),
]
FREE_TIERS = [(0, "0.00"), (10000, "0.00"), (10001, "0.00"), (5000000, "0.00")]


@pytest.mark.parametrize(
    ("plan", "peak_dau", "fee"),
    [("premium", *row) for row in PREMIUM_TIERS]
    + [("ultimate", *row) for row in ULTIMATE_TIERS]
    + [("free", *row) for row in FREE_TIERS],
)
def test_dau_fee_at_every_tier_boundary(plan, peak_dau, fee):
    rated = rate_application(book=BOOK, app=app_input(plan, peak_dau))
    (line,) = rated.lines
    assert (line.code, line.category, line.amount, line.unit_price) == (
        plan,
        "dau_fee",
        Decimal(fee),
        Decimal(fee),
    )
    assert line.peak_dau == peak_dau
    assert rated.total == Decimal(fee)


@pytest.mark.parametrize(
    ("plan", "peak_dau", "explanation"),
    [
        ("premium", 34812, "peak DAU 34,812: 6,000.00 + 3 x 3,000.00 = 15,000.00"),
        ("premium", 10000, "peak DAU 10,000: 6,000.00 (up to 10,000 DAU)"),
        ("ultimate", 10001, "peak DAU 10,001: 8,000.00 + 1 x 4,500.00 = 12,500.00"),
        ("free", 8000, "peak DAU 8,000: Free plan has no monthly fee"),
        ("premium", None, "no usage reported: billed at peak DAU 0: 6,000.00 (up to 10,000 DAU)"),
    ],
)
def test_dau_explanation_shows_the_peak_and_block_arithmetic(plan, peak_dau, explanation):
    (line,) = rate_application(book=BOOK, app=app_input(plan, peak_dau)).lines
    assert line.explanation == explanation


def test_dau_explanation_names_the_peak_day():
    segment = PlanSegment("premium", OCT.start, OCT.end, 34812, d("2026-10-12"))
    (line,) = rate_application(book=BOOK, app=app_input(segments=(segment,))).lines
    assert "peak DAU 34,812 on 2026-10-12" in line.explanation
    assert "6,000.00 + 3 x 3,000.00" in line.explanation
    assert line.peak_day == d("2026-10-12")


# --- Every add-on code on every plan ------------------------------------------------------------

# Transcribed from PRICING.md: code -> (premium, ultimate) monthly price per unit;
# "included" = a 0.00 line, None = not available on that plan.
PRICING_MD_ADDONS: dict[str, tuple[str | None, str | None]] = {
    "chatroom_keepalive": ("2000.00", "included"),
    "chatroom_global_mute": ("2000.00", "included"),
    "chatroom_message_priority": ("2000.00", "included"),
    "chatroom_whitelist": ("2000.00", "included"),
    "chatroom_broadcast": ("2000.00", "included"),
    "message_callback": ("2000.00", "included"),
    "push_template": ("2000.00", "included"),
    "desktop_pc": ("5000.00", "5000.00"),
    "private_storage": ("included", "included"),
    "private_storage_extension": ("1200.00", "1200.00"),
    "chatroom_storage": ("1000.00", "1000.00"),
    "chatroom_storage_extension": ("1000.00", "1000.00"),
    "ultragroup_storage_extension": (None, "1000.00"),
    "sensitive_words": ("1200.00", "1200.00"),
    "api_group_user_query": ("400.00", "400.00"),
    "api_push": ("1200.00", "1200.00"),
    "api_private_publish": ("400.00", "400.00"),
    "api_private_publish_template": ("400.00", "400.00"),
    "api_group_publish": ("400.00", "400.00"),
    "api_chatroom_broadcast": ("1200.00", "1200.00"),
    "api_chatroom_publish": ("400.00", "400.00"),
    "api_system_publish": ("400.00", "400.00"),
    "api_system_publish_template": ("400.00", "400.00"),
    "api_broadcast": ("1200.00", "1200.00"),
    "api_user_check_online": ("400.00", "400.00"),
    "api_user_block": ("400.00", "400.00"),
    "api_user_unblock": ("400.00", "400.00"),
    "api_user_block_query": ("400.00", "400.00"),
    "api_user_blacklist_add": ("400.00", "400.00"),
    "api_user_blacklist_remove": ("400.00", "400.00"),
    "api_user_blacklist_query": ("400.00", "400.00"),
    "api_user_whitelist_add": ("400.00", "400.00"),
    "api_user_whitelist_remove": ("400.00", "400.00"),
    "api_user_whitelist_query": ("400.00", "400.00"),
}
JSON_ADDON_CODES = [spec["code"] for spec in BOOK_DATA["addons"]]


def test_the_book_file_has_exactly_the_addon_codes_of_pricing_md():
    assert sorted(JSON_ADDON_CODES) == sorted(PRICING_MD_ADDONS)
    assert len(JSON_ADDON_CODES) == 34


@pytest.mark.parametrize("plan", ["premium", "ultimate"])
@pytest.mark.parametrize("code", JSON_ADDON_CODES)
def test_every_addon_on_premium_and_ultimate(code, plan):
    expected = PRICING_MD_ADDONS[code][0 if plan == "premium" else 1]
    # Quantity add-ons are bought 3 times to show the price is per unit; switches once.
    quantity = 1 if code in SWITCHES else 3
    app = app_input(plan, 8000, addons={code: quantity})
    if expected is None:
        with pytest.raises(RatingError, match="not available on the"):
            rate_application(book=BOOK, app=app)
        return
    rated = rate_application(book=BOOK, app=app)
    dau_line, addon_line = rated.lines
    assert dau_line.code == plan
    assert (addon_line.code, addon_line.quantity, addon_line.plan_code) == (code, quantity, plan)
    assert addon_line.description == BOOK.addons[code].name
    if expected == "included":
        assert (addon_line.unit_price, addon_line.amount) == (Decimal("0.00"), Decimal("0.00"))
        assert addon_line.explanation == f"included in the {BOOK.plans[plan].name} plan"
    else:
        assert addon_line.unit_price == Decimal(expected)
        assert addon_line.amount == Decimal(expected) * quantity
    assert rated.total == dau_line.amount + addon_line.amount


@pytest.mark.parametrize("code", JSON_ADDON_CODES)
def test_no_addon_is_available_on_free(code):
    with pytest.raises(RatingError, match="not available on the Free plan"):
        rate_application(book=BOOK, app=app_input("free", 8000, addons={code: 1}))


def test_ultragroup_storage_only_on_plans_supporting_ultragroups():
    assert BOOK.plans["ultimate"].supports_ultragroups
    assert not BOOK.plans["premium"].supports_ultragroups
    assert not BOOK.is_available("ultragroup_storage_extension", "premium")
    rated = rate_application(
        book=BOOK, app=app_input("ultimate", 0, addons={"ultragroup_storage_extension": 4})
    )
    assert amounts(rated) == [
        ("ultimate", Decimal("8000.00")),
        ("ultragroup_storage_extension", Decimal("4000.00")),
    ]
    assert rated.lines[1].explanation == "4 x 1,000.00 (month extended) = 4,000.00"


def test_private_storage_extension_uses_the_tables_1200_not_the_footnotes_600():
    rated = rate_application(
        book=BOOK, app=app_input("premium", 0, addons={"private_storage_extension": 2})
    )
    assert rated.lines[1].amount == Decimal("2400.00")


@pytest.mark.parametrize(
    ("addons", "message"),
    [
        ({"gold_support": 1}, "unknown add-on 'gold_support'"),
        ({"sensitive_words": 0}, "quantity of at least 1"),
        ({"sensitive_words": -1}, "quantity of at least 1"),
    ],
)
def test_bad_addon_inputs_are_refused(addons, message):
    with pytest.raises(RatingError, match=message):
        rate_application(book=BOOK, app=app_input("premium", 0, addons=addons))


def test_unknown_plan_is_refused():
    with pytest.raises(RatingError, match="unknown plan 'gold'"):
        rate_application(book=BOOK, app=app_input("gold", 0))


# --- Partial months -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "peak_dau", "period", "first_day", "last_day", "amount", "pro_rata"),
    [
        # February 2026: 28 days.
        ("premium", 5000, FEB_2026, "2026-02-15", "2026-02-28", "3000.00", "14 of 28"),
        ("premium", 5000, FEB_2026, "2026-02-28", "2026-02-28", "214.29", "1 of 28"),
        ("ultimate", 25000, FEB_2026, "2026-02-01", "2026-02-10", "6071.43", "10 of 28"),
        ("premium", 5000, FEB_2026, "2026-02-01", "2026-02-28", "6000.00", None),
        # February 2028: 29 days (leap year).
        ("premium", 5000, FEB_2028, "2028-02-29", "2028-02-29", "206.90", "1 of 29"),
        ("premium", 5000, FEB_2028, "2028-02-15", "2028-02-29", "3103.45", "15 of 29"),
        ("ultimate", 25000, FEB_2028, "2028-02-17", "2028-02-29", "7620.69", "13 of 29"),
        ("ultimate", 0, FEB_2028, "2028-02-01", "2028-02-13", "3586.21", "13 of 29"),
        ("premium", 5000, FEB_2028, "2028-02-01", "2028-02-29", "6000.00", None),
        # November 2026: 30 days.
        ("premium", 5000, NOV, "2026-11-16", "2026-11-30", "3000.00", "15 of 30"),
        ("premium", 5000, NOV, "2026-11-30", "2026-11-30", "200.00", "1 of 30"),
        ("ultimate", 0, NOV, "2026-11-24", "2026-11-30", "1866.67", "7 of 30"),
        ("ultimate", 0, NOV, "2026-11-01", "2026-11-30", "8000.00", None),
        # October 2026: 31 days.
        ("premium", 5000, OCT, "2026-10-16", "2026-10-31", "3096.77", "16 of 31"),
        ("premium", 5000, OCT, "2026-10-01", "2026-10-15", "2903.23", "15 of 31"),
        ("premium", 5000, OCT, "2026-10-31", "2026-10-31", "193.55", "1 of 31"),
        ("premium", 18000, OCT, "2026-10-01", "2026-10-15", "4354.84", "15 of 31"),
        ("premium", 5000, OCT, "2026-10-01", "2026-10-31", "6000.00", None),
    ],
)
def test_dau_fee_pro_rata_by_days(plan, peak_dau, period, first_day, last_day, amount, pro_rata):
    app = app_input(plan, peak_dau, period=period, first_day=d(first_day), last_day=d(last_day))
    (line,) = rate_application(book=BOOK, app=app).lines
    assert line.amount == Decimal(amount)
    assert line.days == (d(last_day) - d(first_day)).days + 1
    assert line.days_in_month == period.days
    if pro_rata:
        assert f"pro rata {pro_rata} days" in line.explanation
        assert line.explanation.endswith(f"= {Decimal(amount):,.2f}")
    else:
        assert "pro rata" not in line.explanation


@pytest.mark.parametrize(
    ("period", "days", "price", "amount"),
    [
        # Exact half cents round up (half-even would give the lower figure in each case).
        # Only even-length months can produce an exact half cent from whole-cent prices:
        # 2 x price_cents x days = days_in_month x odd has no solution when days_in_month is odd.
        (FEB_2026, 14, "100.01", "50.01"),  # 50.005
        (NOV, 15, "1000.05", "500.03"),  # 500.025
        (NOV, 15, "0.01", "0.01"),  # 0.005
        (NOV, 15, "2000.01", "1000.01"),  # 1000.005
        # Below and above the half: the usual direction.
        (FEB_2028, 1, "6000.00", "206.90"),  # 206.8965...
        (OCT, 16, "6000.00", "3096.77"),  # 3096.7741...
    ],
)
def test_pro_rata_rounds_each_line_half_up_once(period, days, price, amount):
    # A finance-edited book: the Premium base fee and the keep-alive price both set to `price`.
    premium = dataclasses.replace(BOOK.plans["premium"], dau_base_fee=Decimal(price))
    prices = dict(BOOK.addon_prices)
    prices[("chatroom_keepalive", "premium")] = AddOnPriceTerms(PRICED, Decimal(price))
    book = dataclasses.replace(BOOK, plans={**BOOK.plans, "premium": premium}, addon_prices=prices)
    first_day = period.end - dt.timedelta(days=days - 1)
    app = app_input(
        "premium",
        0,
        period=period,
        first_day=first_day,
        addons={"chatroom_keepalive": 1},
    )
    rated = rate_application(book=book, app=app)
    assert amounts(rated) == [("premium", Decimal(amount)), ("chatroom_keepalive", Decimal(amount))]
    assert rated.total == Decimal(amount) * 2


def test_addon_pro_rata_with_quantity():
    app = app_input(
        "premium",
        0,
        period=OCT,
        first_day=d("2026-10-16"),
        addons={"sensitive_words": 2, "desktop_pc": 1},
    )
    rated = rate_application(book=BOOK, app=app)
    # 2,400 x 16/31 = 1,238.709... ; 5,000 x 16/31 = 2,580.645...
    assert amounts(rated) == [
        ("premium", Decimal("3096.77")),
        ("desktop_pc", Decimal("2580.65")),
        ("sensitive_words", Decimal("1238.71")),
    ]
    assert rated.total == Decimal("6916.13")
    assert rated.lines[2].explanation == (
        "2 x 1,200.00 (pack of 1,000 words) = 2,400.00; "
        "pro rata 16 of 31 days: 2,400.00 x 16/31 = 1,238.71"
    )


def test_addon_for_part_of_the_plans_days():
    app = app_input(
        "premium",
        0,
        period=NOV,
        addon_segments=(AddOnSegment("chatroom_keepalive", 1, d("2026-11-21"), d("2026-11-30")),),
    )
    rated = rate_application(book=BOOK, app=app)
    # 2,000 x 10/30 = 666.666...
    assert amounts(rated) == [
        ("premium", Decimal("6000.00")),
        ("chatroom_keepalive", Decimal("666.67")),
    ]


@pytest.mark.parametrize(
    ("first_day", "last_day"),
    [("2026-09-30", "2026-10-31"), ("2026-10-01", "2026-11-01"), ("2026-10-20", "2026-10-19")],
)
def test_days_outside_the_period_or_reversed_are_refused(first_day, last_day):
    with pytest.raises(RatingError, match="not inside the period"):
        rate_application(book=BOOK, app=app_input(first_day=d(first_day), last_day=d(last_day)))


def test_negative_peak_dau_is_refused():
    with pytest.raises(RatingError, match="negative"):
        rate_application(book=BOOK, app=app_input("premium", -1))


# --- Plan change inside a month -----------------------------------------------------------------


def test_plan_change_premium_to_ultimate_on_the_16th_splits_the_month():
    segments = (
        PlanSegment("premium", d("2026-11-01"), d("2026-11-15"), 18000, d("2026-11-09")),
        PlanSegment("ultimate", d("2026-11-16"), d("2026-11-30"), 34812, d("2026-11-20")),
    )
    addon_segments = (
        AddOnSegment("chatroom_keepalive", 1, d("2026-11-01"), d("2026-11-30")),
        AddOnSegment("desktop_pc", 1, d("2026-11-01"), d("2026-11-30")),
        AddOnSegment("sensitive_words", 2, d("2026-11-10"), d("2026-11-30")),
    )
    app = app_input(period=NOV, segments=segments, addon_segments=addon_segments)
    rated = rate_application(book=BOOK, app=app)
    assert [(line.code, line.plan_code, line.days, line.amount) for line in rated.lines] == [
        # 9,000 (peak 18,000 on Premium) x 15/30
        ("premium", "premium", 15, Decimal("4500.00")),
        # 8,000 + 3 x 4,500 = 21,500 (peak 34,812 on Ultimate) x 15/30
        ("ultimate", "ultimate", 15, Decimal("10750.00")),
        # keep-alive: 2,000 x 15/30 on Premium, included on Ultimate
        ("chatroom_keepalive", "premium", 15, Decimal("1000.00")),
        ("chatroom_keepalive", "ultimate", 15, Decimal("0.00")),
        # desktop: 5,000 on both plans
        ("desktop_pc", "premium", 15, Decimal("2500.00")),
        ("desktop_pc", "ultimate", 15, Decimal("2500.00")),
        # 2 packs from the 10th: 2,400 x 6/30 on Premium, 2,400 x 15/30 on Ultimate
        ("sensitive_words", "premium", 6, Decimal("480.00")),
        ("sensitive_words", "ultimate", 15, Decimal("1200.00")),
    ]
    assert rated.total == Decimal("22930.00")
    premium_line, ultimate_line = rated.lines[:2]
    assert (premium_line.peak_dau, premium_line.peak_day) == (18000, d("2026-11-09"))
    assert (ultimate_line.peak_dau, ultimate_line.peak_day) == (34812, d("2026-11-20"))
    assert premium_line.explanation == (
        "peak DAU 18,000 on 2026-11-09: 6,000.00 + 1 x 3,000.00 = 9,000.00; "
        "pro rata 15 of 30 days: 9,000.00 x 15/30 = 4,500.00"
    )
    assert ultimate_line.explanation == (
        "peak DAU 34,812 on 2026-11-20: 8,000.00 + 3 x 4,500.00 = 21,500.00; "
        "pro rata 15 of 30 days: 21,500.00 x 15/30 = 10,750.00"
    )
    assert (rated.lines[6].first_day, rated.lines[6].last_day) == (
        d("2026-11-10"),
        d("2026-11-15"),
    )


def test_plan_change_in_a_31_day_month_rounds_each_segment():
    segments = (
        PlanSegment("premium", d("2026-10-01"), d("2026-10-15"), 18000),
        PlanSegment("ultimate", d("2026-10-16"), d("2026-10-31"), 34812),
    )
    rated = rate_application(book=BOOK, app=app_input(segments=segments))
    # 9,000 x 15/31 = 4,354.838... ; 21,500 x 16/31 = 11,096.774...
    assert amounts(rated) == [("premium", Decimal("4354.84")), ("ultimate", Decimal("11096.77"))]
    assert rated.total == Decimal("15451.61")


def test_addon_unavailable_on_one_segments_plan_is_refused():
    segments = (
        PlanSegment("free", d("2026-10-01"), d("2026-10-15"), 100),
        PlanSegment("premium", d("2026-10-16"), d("2026-10-31"), 100),
    )
    addon = (AddOnSegment("desktop_pc", 1, d("2026-10-01"), d("2026-10-31")),)
    with pytest.raises(RatingError, match="not available on the Free plan"):
        rate_application(book=BOOK, app=app_input(segments=segments, addon_segments=addon))
    # From the upgrade day on it is fine.
    addon = (AddOnSegment("desktop_pc", 1, d("2026-10-16"), d("2026-10-31")),)
    rated = rate_application(book=BOOK, app=app_input(segments=segments, addon_segments=addon))
    assert amounts(rated) == [
        ("free", Decimal("0.00")),
        ("premium", Decimal("3096.77")),
        ("desktop_pc", Decimal("2580.65")),
    ]
    assert rated.has_paid_plan


# --- High volume and dedicated contracts -------------------------------------------------------


def test_dedicated_contract_replaces_the_dau_fee():
    contract = ContractSegment(Decimal("50000.00"), OCT.start, OCT.end, reference="DS-1")
    app = app_input(
        "premium",
        34812,
        addons={"chatroom_keepalive": 1},
        contracts=(contract,),
        peak_daily_messages=3_500_000,
        peak_messages_day=d("2026-10-12"),
    )
    rated = rate_application(book=BOOK, app=app)
    assert amounts(rated) == [
        ("dedicated_service", Decimal("50000.00")),
        ("chatroom_keepalive", Decimal("2000.00")),
    ]
    assert "premium" not in [line.code for line in rated.lines]
    assert rated.total == Decimal("52000.00")
    assert rated.high_volume is True
    assert rated.hold_reason is None
    assert rated.lines[0].explanation == (
        "dedicated-service contract DS-1: 50,000.00 / month; "
        "peak 3,500,000 delivered messages in a day"
    )


def test_dedicated_contract_from_the_16th_is_pro_rata_and_the_table_bills_days_before_it():
    contract = ContractSegment(Decimal("50000.00"), d("2026-11-16"), NOV.end)
    rated = rate_application(
        book=BOOK, app=app_input("ultimate", 50000, period=NOV, contracts=(contract,))
    )
    # Days 1-15 are not covered: the DAU table bills them (8,000 + 4 x 4,500 = 26,000 x 15/30).
    assert amounts(rated) == [
        ("dedicated_service", Decimal("25000.00")),
        ("ultimate", Decimal("13000.00")),
    ]
    assert rated.total == Decimal("38000.00")
    assert rated.lines[0].explanation.endswith(
        "pro rata 15 of 30 days: 50,000.00 x 15/30 = 25,000.00"
    )
    assert (rated.lines[1].first_day, rated.lines[1].last_day) == (NOV.start, d("2026-11-15"))


def test_contract_in_the_middle_leaves_table_days_on_both_sides():
    contract = ContractSegment(Decimal("31000.00"), d("2026-10-11"), d("2026-10-20"))
    rated = rate_application(book=BOOK, app=app_input("premium", 8000, contracts=(contract,)))
    assert amounts(rated) == [
        ("dedicated_service", Decimal("10000.00")),
        ("premium", Decimal("1935.48")),
        ("premium", Decimal("2129.03")),
    ]
    assert rated.total == Decimal("14064.51")


def test_high_volume_with_a_contract_covering_part_of_the_month_is_held():
    contract = ContractSegment(Decimal("50000.00"), d("2026-10-16"), OCT.end)
    app = app_input(
        "premium",
        8000,
        contracts=(contract,),
        peak_daily_messages=3_000_000,
        peak_messages_day=d("2026-10-20"),
    )
    rated = rate_application(book=BOOK, app=app)
    assert rated.hold_reason is not None
    assert "15 day(s) not covered by its dedicated-service contract" in rated.hold_reason


@pytest.mark.parametrize(
    ("peak_daily_messages", "high_volume"),
    [(None, False), (0, False), (2_000_000, False), (2_000_001, True), (9_000_000, True)],
)
def test_high_volume_without_contract_is_held(peak_daily_messages, high_volume):
    app = app_input(
        "premium",
        8000,
        peak_daily_messages=peak_daily_messages,
        peak_messages_day=d("2026-10-07") if peak_daily_messages else None,
    )
    rated = rate_application(book=BOOK, app=app)
    assert rated.high_volume is high_volume
    # The table price is still shown, but the hold keeps it from being billed silently.
    assert amounts(rated) == [("premium", Decimal("6000.00"))]
    if high_volume:
        assert rated.hold_reason == (
            f"app-1: high-volume application ({peak_daily_messages:,} delivered messages on "
            "2026-10-07, limit 2,000,000 a day) has no dedicated-service contract"
        )
    else:
        assert rated.hold_reason is None


def test_high_volume_free_application_is_held_too():
    rated = rate_application(book=BOOK, app=app_input("free", 100, peak_daily_messages=2_500_000))
    assert rated.high_volume and rated.hold_reason and "2,500,000" in rated.hold_reason
    assert not rated.has_paid_plan


def test_rate_account_sums_applications_in_app_key_order():
    apps = [
        app_input("ultimate", 25000, app_key="b-app"),
        app_input("premium", 8000, app_key="a-app", peak_daily_messages=3_000_000),
    ]
    account = rate_account(book=BOOK, applications=apps)
    assert [app.app_key for app in account.applications] == ["a-app", "b-app"]
    assert [line.app_key for line in account.lines] == ["a-app", "b-app"]
    assert account.total == Decimal("23000.00")
    assert len(account.hold_reasons) == 1 and account.hold_reasons[0].startswith("a-app:")


# --- Properties ---------------------------------------------------------------------------------

PERIODS = st.builds(Period, st.integers(2025, 2030), st.integers(1, 12))
PAID_PLANS = st.sampled_from(["premium", "ultimate"])


@st.composite
def applications(draw, plans=st.sampled_from(["free", "premium", "ultimate"])):
    period = draw(PERIODS)
    plan = draw(plans)
    first = draw(st.integers(1, period.days))
    last = draw(st.integers(first, period.days))
    available = sorted(c for c in JSON_ADDON_CODES if BOOK.is_available(c, plan))
    codes = draw(st.lists(st.sampled_from(available), unique=True)) if available else []
    addons = {c: 1 if c in SWITCHES else draw(st.integers(1, 20)) for c in codes}
    return app_input(
        plan,
        draw(st.integers(0, 2_000_000)),
        period=period,
        first_day=period.start.replace(day=first),
        last_day=period.start.replace(day=last),
        addons=addons,
        peak_daily_messages=draw(st.none() | st.integers(0, 5_000_000)),
    )


PROPERTY_SETTINGS = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(applications())
def test_property_total_is_the_sum_of_the_lines_and_amounts_have_two_decimals(app):
    rated = rate_application(book=BOOK, app=app)
    assert rated.total == sum(line.amount for line in rated.lines)
    for value in [rated.total] + [
        v for line in rated.lines for v in (line.amount, line.unit_price)
    ]:
        assert isinstance(value, Decimal)
        assert value.as_tuple().exponent == -2, value
        assert value >= 0
    for line in rated.lines:
        # A part of a month never costs more than the whole month.
        assert line.amount <= line.unit_price * line.quantity


@PROPERTY_SETTINGS
@given(
    plan=PAID_PLANS,
    period=PERIODS,
    days=st.integers(1, 31),
    lower=st.integers(0, 1_000_000),
    more=st.integers(0, 1_000_000),
)
def test_property_fee_never_falls_when_peak_dau_rises(plan, period, days, lower, more):
    days = min(days, period.days)
    first_day = period.end - dt.timedelta(days=days - 1)

    def fee(peak: int) -> Decimal:
        app = app_input(plan, peak, period=period, first_day=first_day)
        return rate_application(book=BOOK, app=app).total

    assert fee(lower) <= fee(lower + more)
    if lower <= 10_000 < lower + more:
        # Crossing into the first paid block always costs more.
        assert fee(lower) < fee(lower + more)


VALUE_ADDED = [c for c in JSON_ADDON_CODES if BOOK.addons[c].category == "value_added"]


@PROPERTY_SETTINGS
@given(app=applications(plans=st.just("ultimate")), codes=st.sets(st.sampled_from(VALUE_ADDED)))
def test_property_ultimate_value_added_services_are_always_free(app, codes):
    segment = app.plan_segments[0]
    extra = tuple(AddOnSegment(c, 1, segment.first_day, segment.last_day) for c in codes)
    app = dataclasses.replace(app, addon_segments=app.addon_segments + extra)
    rated = rate_application(book=BOOK, app=app)
    value_added = [line for line in rated.lines if line.category == "value_added"]
    assert {line.code for line in value_added} >= codes
    for line in value_added:
        assert (line.amount, line.unit_price) == (Decimal("0.00"), Decimal("0.00"))
    non_value_added = [line for line in rated.lines if line.category != "value_added"]
    assert rated.total == sum(line.amount for line in non_value_added)
