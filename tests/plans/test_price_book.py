from decimal import Decimal

import pytest
from moneyed import Money

from plans.models import AddOnPrice, PlanPrice
from plans.price_book import load_price_book


@pytest.mark.django_db
def test_second_load_changes_nothing():
    first = load_price_book()
    second = load_price_book()
    assert len(first.created) == 142
    assert second.created == [] and second.reset == [] and second.differences == []
    assert PlanPrice.objects.count() == 3
    assert AddOnPrice.objects.count() == 34 * 3


@pytest.mark.django_db
def test_finance_edit_is_reported_not_overwritten_unless_forced():
    load_price_book()
    price = PlanPrice.objects.get(plan__code="ultimate")
    price.dau_block_price = Money(Decimal("3000.00"), "CNY")
    price.save()

    report = load_price_book()
    price.refresh_from_db()
    assert price.dau_block_price.amount == Decimal("3000.00")
    assert len(report.differences) == 1 and "dau_block_price" in report.differences[0]

    forced = load_price_book(force=True)
    price.refresh_from_db()
    assert price.dau_block_price.amount == Decimal("4500.00")
    assert len(forced.reset) == 1


@pytest.mark.django_db
def test_sheet_contradictions_are_recorded_in_plan_notes():
    load_price_book()
    ultimate = PlanPrice.objects.get(plan__code="ultimate").plan
    premium = PlanPrice.objects.get(plan__code="premium").plan
    assert "4,500" in ultimate.notes and "3,000" in ultimate.notes
    assert "600" in premium.notes and "1,200" in premium.notes
