"""Contracted discounts in the pure rating engine: table-driven amounts, the words of the line,
customer-wide fixed amounts shared out, and the invariant total = sum of lines >= 0."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plans.rating.engine import (
    DiscountSegment,
    PlanSegment,
    RatingError,
    rate_account,
    rate_application,
)
from plans.rating.messages import CHINESE, render
from plans.rating.tax import VatTerms
from tests.hypothesis_budget import examples
from tests.plans.test_rating import BOOK, NOV, OCT, app_input, d


def percent(value: str, first_day=OCT.start, last_day=OCT.end, **kwargs) -> DiscountSegment:
    return DiscountSegment(
        key=kwargs.pop("key", "p"),
        first_day=first_day,
        last_day=last_day,
        percent=Decimal(value),
        **kwargs,
    )


def fixed(value: str, first_day=OCT.start, last_day=OCT.end, **kwargs) -> DiscountSegment:
    return DiscountSegment(
        key=kwargs.pop("key", "f"),
        first_day=first_day,
        last_day=last_day,
        amount_off=Decimal(value),
        **kwargs,
    )


def with_discounts(*discounts, **kwargs):
    app = app_input(**kwargs)
    return type(app)(**{**app.__dict__, "discounts": tuple(discounts)})


# Premium at peak DAU 25,000 with desktop_pc: 12,000.00 + 5,000.00 = 17,000.00 in October (31 d).
@pytest.mark.parametrize(
    ("discounts", "discount_amounts", "total"),
    [
        # 10% of the whole month's charges.
        ((percent("10"),), ["-1700.00"], "15300.00"),
        # 12.5% rounds half-up once: 17,000 x 0.125 = 2,125.00.
        ((percent("12.5"),), ["-2125.00"], "14875.00"),
        # 100%: the month is free, never below zero.
        ((percent("100"),), ["-17000.00"], "0.00"),
        # 10% from the 16th: the charges of 16 of 31 days, 17,000 x 16/31 = 8,774.19...; 877.42.
        ((percent("10", d("2026-10-16")),), ["-877.42"], "16122.58"),
        # A fixed 3,000.00 a month, whole month.
        ((fixed("3000"),), ["-3000.00"], "14000.00"),
        # Fixed from the 16th: 3,000 x 16/31 = 1,548.387 -> 1,548.39.
        ((fixed("3000", d("2026-10-16")),), ["-1548.39"], "15451.61"),
        # More than the charges: limited to them, the total is 0.00.
        ((fixed("20000"),), ["-17000.00"], "0.00"),
        # A percentage first (of the charges), then a fixed amount from what is left.
        ((fixed("1000", key="a"), percent("50", key="b")), ["-8500.00", "-1000.00"], "7500.00"),
        # 60% then 50% of the charges: the second is limited to the 40% left.
        ((percent("60", key="a"), percent("50", key="b")), ["-10200.00", "-6800.00"], "0.00"),
    ],
)
def test_discount_amounts(discounts, discount_amounts, total):
    rated = rate_application(
        book=BOOK,
        app=with_discounts(*discounts, plan="premium", peak_dau=25000, addons={"desktop_pc": 1}),
    )
    lines = [line for line in rated.lines if line.category == "discount"]
    assert [line.amount for line in lines] == [Decimal(a) for a in discount_amounts]
    assert rated.total == Decimal(total)
    assert rated.total == sum(line.amount for line in rated.lines)


def test_discount_line_is_explained_in_english_and_chinese():
    rated = rate_application(
        book=BOOK,
        app=with_discounts(
            fixed("3000", d("2026-10-16"), reference="CD-7"), plan="premium", peak_dau=5000
        ),
    )
    line = rated.lines[-1]
    assert (line.code, line.category, line.quantity) == ("discount", "discount", 1)
    assert (line.unit_price, line.amount, line.days) == (
        Decimal("-3000.00"),
        Decimal("-1548.39"),
        16,
    )
    assert line.description == "Contracted discount CD-7"
    assert line.explanation == (
        "3,000.00 off a month; pro rata 16 of 31 days: 3,000.00 x 16/31 = 1,548.39"
    )
    assert line.messages["title"] == ["discount_title_reference", {"reference": "CD-7"}]
    # The pages render the same frozen ids through gettext; the catalogue has every id.
    assert render(line.explanation_parts, names=line.names, language=CHINESE)


def test_percentage_of_part_of_the_month_names_its_days():
    rated = rate_application(
        book=BOOK, app=with_discounts(percent("10", d("2026-10-16")), peak_dau=5000)
    )
    assert rated.lines[-1].explanation == (
        "10% of the charges of 2026-10-16 to 2026-10-31 (3,096.77)"
    )


def test_limited_discount_says_so():
    rated = rate_application(
        book=BOOK, app=with_discounts(fixed("9000"), plan="premium", peak_dau=5000)
    )
    assert rated.lines[-1].amount == Decimal("-6000.00")
    assert rated.lines[-1].explanation == (
        "9,000.00 off a month; limited to the charges left, 6,000.00: never below zero"
    )


def test_free_plan_gets_no_discount_line():
    rated = rate_application(book=BOOK, app=with_discounts(percent("10"), plan="free"))
    assert [line.category for line in rated.lines] == ["dau_fee"]
    assert rated.total == Decimal("0.00")


def test_customer_wide_fixed_amount_is_shared_out_in_app_key_order():
    shared = fixed("7000", key="c", customer_wide=True)
    apps = [
        with_discounts(shared, app_key="b-app", plan="premium", peak_dau=5000),  # 6,000.00
        with_discounts(shared, app_key="a-app", plan="premium", peak_dau=5000),  # 6,000.00
    ]
    account = rate_account(book=BOOK, applications=apps)
    discounts = [(line.app_key, line.amount) for line in account.lines if line.code == "discount"]
    assert discounts == [("a-app", Decimal("-6000.00")), ("b-app", Decimal("-1000.00"))]
    assert account.total == Decimal("5000.00")
    b_line = [line for line in account.lines if line.app_key == "b-app"][-1]
    assert "1,000.00 left after the customer's other applications" in b_line.explanation
    assert [app.total for app in account.applications] == [Decimal("0.00"), Decimal("5000.00")]


def test_customer_wide_percentage_applies_to_each_application():
    shared = percent("10", key="c", customer_wide=True)
    apps = [
        with_discounts(shared, app_key="a", plan="premium", peak_dau=5000),
        with_discounts(shared, app_key="b", plan="ultimate", peak_dau=5000),
    ]
    account = rate_account(book=BOOK, applications=apps)
    assert [line.amount for line in account.lines if line.code == "discount"] == [
        Decimal("-600.00"),
        Decimal("-800.00"),
    ]
    assert "agreed for all the customer's applications" in account.lines[1].explanation


@pytest.mark.parametrize(
    "discount",
    [
        percent("0"),
        percent("100.01"),
        fixed("0"),
        DiscountSegment(key="x", first_day=OCT.start, last_day=OCT.end),
        percent("10", d("2026-09-30")),
    ],
)
def test_bad_discounts_are_refused(discount):
    with pytest.raises(RatingError):
        rate_application(book=BOOK, app=with_discounts(discount))


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50000"), places=2)
percentages = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)


@st.composite
def discount_segments(draw, key: str):
    first = draw(st.integers(min_value=1, max_value=30))
    last = draw(st.integers(min_value=first, max_value=30))
    days = (NOV.start + dt.timedelta(days=first - 1), NOV.start + dt.timedelta(days=last - 1))
    customer_wide = draw(st.booleans())
    if draw(st.booleans()):
        return DiscountSegment(key, *days, percent=draw(percentages), customer_wide=customer_wide)
    return DiscountSegment(key, *days, amount_off=draw(money), customer_wide=customer_wide)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    peaks=st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=3),
    discounts=st.lists(st.sampled_from("abcd"), max_size=4, unique=True).flatmap(
        lambda keys: st.tuples(*(discount_segments(key) for key in keys))
    ),
)
def test_total_is_the_sum_of_lines_and_never_below_zero(peaks, discounts):
    apps = [
        type(base)(**{**base.__dict__, "discounts": discounts})
        for base in (
            app_input(
                "premium",
                peak,
                period=NOV,
                app_key=f"app-{index}",
                segments=(PlanSegment("premium", NOV.start, NOV.end, peak),),
            )
            for index, peak in enumerate(peaks)
        )
    ]
    account = rate_account(book=BOOK, applications=apps)
    assert account.total == sum(line.amount for line in account.lines)
    assert account.total >= 0
    for app in account.applications:
        assert app.total == sum(line.amount for line in app.lines) >= 0
    charges = sum(line.amount for line in account.lines if line.code != "discount")
    assert account.total <= charges


def test_customer_wide_fixed_amount_with_prices_before_vat_is_net_and_taxed_like_every_line():
    # Prices exclude 6% VAT: the 7,000.00 off is in price terms (net), capped at each
    # application's net charges, then taxed; no application goes below zero.
    book = dataclasses.replace(BOOK, vat=VatTerms(rate=Decimal("0.06"), prices_include_vat=False))
    shared = fixed("7000", key="c", customer_wide=True)
    apps = [
        with_discounts(shared, app_key="b-app", plan="premium", peak_dau=5000),  # 6,000.00 net
        with_discounts(shared, app_key="a-app", plan="premium", peak_dau=5000),  # 6,000.00 net
    ]
    account = rate_account(book=book, applications=apps)
    discounts = [
        (line.app_key, line.net_amount, line.vat_amount, line.amount)
        for line in account.lines
        if line.code == "discount"
    ]
    assert discounts == [
        ("a-app", Decimal("-6000.00"), Decimal("-360.00"), Decimal("-6360.00")),
        ("b-app", Decimal("-1000.00"), Decimal("-60.00"), Decimal("-1060.00")),
    ]
    assert [app.total for app in account.applications] == [Decimal("0.00"), Decimal("5300.00")]
    assert account.total == sum((line.amount for line in account.lines), Decimal("0"))
