"""accounts.frozen_months reads the invoiced months in one fixed statement on PostgreSQL and
through the ORM elsewhere: both reads give the same rows for every kind of change, and the
policy answers (which month freezes which) are the documented ones."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.frozen_months import (
    FREEZE,
    Change,
    _rows_orm,
    _rows_postgresql,
    frozen_by,
    frozen_months,
)
from accounts.models import InvoicedMonth
from tests.conftest import postgres_only
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

AUG, SEP, OCT, NOV = (dt.date(2026, month, 1) for month in (8, 9, 10, 11))


@pytest.fixture
def customers():
    """Customer a: September issued, October held. Customer b: August draft, October issued."""
    a, b, c = CustomerFactory(), CustomerFactory(), CustomerFactory()
    for customer, period, status, number in (
        (a, SEP, "issued", "INV-2026-000001"),
        (a, OCT, "held", None),
        (b, AUG, "draft", None),
        (b, OCT, "issued", "INV-2026-000002"),
    ):
        InvoicedMonth.objects.create(customer=customer, period=period, status=status, number=number)
    return a, b, c


def as_tuples(rows) -> list[tuple]:
    return sorted((r.pk, r.customer_id, r.period, r.status, r.number) for r in rows)


@postgres_only
@pytest.mark.parametrize("change", list(Change))
@pytest.mark.parametrize(
    "months",
    [{AUG}, {SEP}, {OCT}, {NOV}, {AUG, NOV}, {SEP, OCT}],
    ids=lambda m: "+".join(map(str, sorted(m))),
)
def test_the_postgresql_read_gives_the_orms_rows(customers, change, months):
    ids = {customer.pk for customer in customers}
    freeze = FREEZE[change]
    expected = as_tuples(_rows_orm(freeze=freeze, customer_ids=ids, months=months))
    assert as_tuples(_rows_postgresql(freeze=freeze, customer_ids=ids, months=months)) == expected


@pytest.mark.parametrize(
    ("change", "who", "month", "frozen_by_period"),
    [
        # Usage: only the month of an issued invoice.
        (Change.USAGE, "a", SEP, SEP),
        (Change.USAGE, "a", AUG, None),
        (Change.USAGE, "a", OCT, None),
        (Change.USAGE, "b", OCT, OCT),
        (Change.USAGE, "b", AUG, None),
        # Plans and add-ons: any invoice, and every month before it (the earliest that does).
        (Change.PLAN_UPGRADE, "a", AUG, SEP),
        (Change.PLAN_UPGRADE, "a", OCT, OCT),
        (Change.ADDON_START, "b", AUG, AUG),
        (Change.ADDON_REDUCE, "b", SEP, OCT),
        (Change.PLAN_DOWNGRADE, "a", NOV, None),
        # Contracts and discounts: only issued invoices, and the months before them.
        (Change.CONTRACT, "a", OCT, None),
        (Change.CONTRACT, "a", AUG, SEP),
        (Change.DISCOUNT, "b", AUG, OCT),
        (Change.DISCOUNT, "c", AUG, None),
    ],
)
def test_which_month_freezes(customers, change, who, month, frozen_by_period):
    customer = dict(zip("abc", customers, strict=True))[who]
    found = frozen_by(change=change, customer_id=customer.pk, day=month.replace(day=15))
    assert (found.period if found else None) == frozen_by_period


def test_one_read_answers_for_several_customers(customers, django_assert_num_queries):
    a, b, c = customers
    with django_assert_num_queries(1):
        found = frozen_months(
            change=Change.USAGE, customer_months={(a.pk, SEP), (b.pk, OCT), (c.pk, OCT)}
        )
    assert {key: row.number for key, row in found.items()} == {
        (a.pk, SEP): "INV-2026-000001",
        (b.pk, OCT): "INV-2026-000002",
    }
