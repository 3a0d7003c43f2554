import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from moneyed import Money

from plans.models import AddOnPrice, PlanPrice
from plans.price_book import DEFAULT_BOOK, load_price_book


@pytest.mark.django_db
def test_second_load_changes_nothing():
    first = load_price_book()
    second = load_price_book()
    assert len(first.created) == 142
    assert second.created == [] and second.reset == [] and second.differences == []
    assert PlanPrice.objects.count() == 3
    assert AddOnPrice.objects.count() == 34 * 3


def future_book(tmp_path) -> Path:
    """The default price book, from a month that has not started (so its rows may change)."""
    book = json.loads(DEFAULT_BOOK.read_text(encoding="utf-8"))
    book["valid_from"] = "2099-01-01"
    path = tmp_path / "price_book.json"
    path.write_text(json.dumps(book), encoding="utf-8")
    return path


@pytest.mark.django_db
def test_finance_edit_is_reported_not_overwritten_unless_forced(tmp_path):
    book = future_book(tmp_path)
    load_price_book(path=book)
    price = PlanPrice.objects.get(plan__code="ultimate")
    price.dau_block_price = Money(Decimal("3000.00"), "CNY")
    price.save()

    report = load_price_book(path=book)
    price.refresh_from_db()
    assert price.dau_block_price.amount == Decimal("3000.00")
    assert len(report.differences) == 1 and "dau_block_price" in report.differences[0]

    forced = load_price_book(path=book, force=True)
    price.refresh_from_db()
    assert price.dau_block_price.amount == Decimal("4500.00")
    assert len(forced.reset) == 1


@pytest.mark.django_db
def test_force_never_resets_a_price_in_force(tmp_path):
    load_price_book()
    book = json.loads(DEFAULT_BOOK.read_text(encoding="utf-8"))
    ultimate = next(spec for spec in book["plans"] if spec["code"] == "ultimate")
    ultimate["dau_block_price"] = "9999.00"
    path = tmp_path / "price_book.json"
    path.write_text(json.dumps(book), encoding="utf-8")

    forced = load_price_book(path=path, force=True, now=dt.datetime(2026, 11, 30, tzinfo=dt.UTC))

    assert forced.reset == []
    assert len(forced.differences) == 1
    assert "in force since 2025-01-01" in forced.differences[0]
    price = PlanPrice.objects.get(plan__code="ultimate")
    assert price.dau_block_price.amount == Decimal("4500.00")


@pytest.mark.django_db
def test_sheet_contradictions_are_recorded_in_plan_notes():
    load_price_book()
    ultimate = PlanPrice.objects.get(plan__code="ultimate").plan
    premium = PlanPrice.objects.get(plan__code="premium").plan
    assert "4,500" in ultimate.notes and "3,000" in ultimate.notes
    assert "600" in premium.notes and "1,200" in premium.notes
