"""The price book kept per process (plans/price_book_cache.py) is never served after a write to
the price book, whatever wrote it, and costs one query while nothing changed."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from moneyed import Money

from billingsite.clock import Period
from plans.models import AddOn, AddOnPrice, Plan, PlanPrice
from plans.price_book_cache import cached_price_book, forget_price_book, price_book_token
from plans.quotes import QuoteError, quote_build

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 10, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
# The database's clock decides which prices are in force (and frozen): this one is far ahead.
FUTURE = Period(2099, 1)


@pytest.fixture
def future_price(price_book):
    forget_price_book()
    current = PlanPrice.objects.get(plan__code="premium")
    current.pk = None
    current.valid_from = FUTURE.start
    current.save()
    return current


def quote_total(**kwargs) -> Decimal:
    return quote_build(
        plan_code="premium", peak_dau=15_000, period=FUTURE, now=NOW, **kwargs
    ).rated.total


def test_a_price_edit_is_priced_by_the_next_quote(future_price):
    assert quote_total() == Decimal("9000.00")  # 6,000 base + one 10,000-DAU block at 3,000

    future_price.dau_base_fee = Money("7000.00", "CNY")
    future_price.save()
    assert quote_total() == Decimal("10000.00")

    # A bulk write, raw SQL and a delete do too (no model signal involved).
    PlanPrice.objects.filter(pk=future_price.pk).update(dau_block_price=Money("600.00", "CNY"))
    assert quote_total() == Decimal("7600.00")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE plans_planprice SET dau_base_fee = 8000 WHERE id = %s", [future_price.pk]
        )
    assert quote_total() == Decimal("8600.00")
    PlanPrice.objects.filter(pk=future_price.pk).delete()
    assert quote_total() == Decimal("9000.00")


def test_a_plan_or_add_on_edit_is_seen_by_the_next_quote(future_price):
    assert (
        quote_build(plan_code="premium", peak_dau=1, period=FUTURE, now=NOW).plan.name == "Premium"
    )
    Plan.objects.filter(code="premium").update(name="Premium Plus")
    assert (
        quote_build(plan_code="premium", peak_dau=1, period=FUTURE, now=NOW).plan.name
        == "Premium Plus"
    )

    addon = AddOn.objects.filter(is_switch=False).first()
    price = AddOnPrice.objects.filter(addon=addon, plan__code="premium").first()
    order = {addon.code: addon.max_quantity + 1}
    if addon.requires is not None:
        order[addon.requires.code] = 1
    with pytest.raises(QuoteError):
        quote_total(addons=order)
    AddOn.objects.filter(pk=addon.pk).update(max_quantity=addon.max_quantity + 1)
    if price is None or price.availability == "unavailable":
        pytest.skip("no add-on with a quantity is available on Premium")
    quote_total(addons=order)  # accepted now


def test_a_rolled_back_edit_leaves_the_committed_prices(future_price):
    before = price_book_token()
    with pytest.raises(RuntimeError), transaction.atomic():
        future_price.dau_base_fee = Money("9999.00", "CNY")
        future_price.save()
        assert price_book_token() != before
        assert quote_total() == Decimal("12999.00")  # this transaction sees its own edit
        raise RuntimeError("roll back")
    assert price_book_token() == before
    assert quote_total() == Decimal("9000.00")


def test_while_nothing_changes_a_quote_reads_no_price(future_price):
    quote_total()
    with CaptureQueriesContext(connection) as queries:
        quote_total(addons={"chatroom_keepalive": 1})
    assert [q["sql"] for q in queries] == [
        "SELECT token FROM plans_price_book_version WHERE id = 1"
    ]


def test_the_estimate_reads_the_same_book_once_per_change(future_price):
    first = cached_price_book(period=FUTURE)
    assert cached_price_book(period=FUTURE) is first
    future_price.dau_base_fee = Money("7000.00", "CNY")
    future_price.save()
    assert cached_price_book(period=FUTURE) is not first
    assert cached_price_book(period=FUTURE).plans["premium"].dau_base_fee == Decimal("7000.00")
