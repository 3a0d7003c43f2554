"""What the database refuses in the price book and the plan history, whoever asks (shell, bug,
raw SQL): a dated price in force changing, a plan or add-on decision being edited (a pending
one is only cancelled), history rows changing. Future prices stay editable."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from moneyed import Money

from plans.models import AddOnChange, AddOnPrice, Plan, PlanChange, PlanPrice
from tests.conftest import is_postgres
from tests.factories import ApplicationFactory, CustomerFactory, addon_change

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
# The database's clock decides what is in force; these months are far on either side of it.
FUTURE = dt.date(2099, 1, 1)


def refused(action) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        action()


def refused_sql(sql: str, params: list) -> None:
    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    refused(run)


def test_a_price_in_force_never_changes(price_book):
    price = PlanPrice.objects.get(plan__code="premium")
    assert price.valid_from == dt.date(2025, 1, 1)
    addon_price = AddOnPrice.objects.filter(availability="priced").first()

    refused(
        lambda: PlanPrice.objects.filter(pk=price.pk).update(
            dau_base_fee=Money(Decimal("1.00"), "CNY")
        )
    )
    refused(lambda: PlanPrice.objects.filter(pk=price.pk).update(valid_from=FUTURE))
    refused_sql("UPDATE plans_planprice SET dau_base_fee = 1 WHERE id = %s", [price.pk])
    refused_sql("UPDATE plans_addonprice SET unit_price = 1 WHERE id = %s", [addon_price.pk])
    if is_postgres():
        refused(lambda: PlanPrice.objects.filter(pk=price.pk).delete())
        refused_sql("DELETE FROM plans_addonprice WHERE id = %s", [addon_price.pk])

    price.refresh_from_db()
    assert (price.valid_from, price.dau_base_fee.amount) == (dt.date(2025, 1, 1), Decimal("6000"))
    assert AddOnPrice.objects.get(pk=addon_price.pk).unit_price == addon_price.unit_price


def test_a_future_price_changes_until_its_month_starts_but_never_moves_into_force(price_book):
    current = PlanPrice.objects.get(plan__code="premium")
    future = PlanPrice.objects.create(
        plan=current.plan,
        valid_from=FUTURE,
        minimum_deposit=current.minimum_deposit,
        dau_base_fee=Money(Decimal("7000.00"), "CNY"),
        dau_block_price=current.dau_block_price,
    )

    PlanPrice.objects.filter(pk=future.pk).update(dau_base_fee=Money(Decimal("7500.00"), "CNY"))
    refused(lambda: PlanPrice.objects.filter(pk=future.pk).update(valid_from=dt.date(2026, 2, 1)))

    future.refresh_from_db()
    assert (future.valid_from, future.dau_base_fee.amount) == (FUTURE, Decimal("7500.00"))
    future.delete()
    assert not PlanPrice.objects.filter(pk=future.pk).exists()


def test_a_plan_decision_is_never_edited_only_cancelled_once(price_book):
    app = ApplicationFactory(customer=CustomerFactory(), plan="premium")
    decision = PlanChange.objects.get(application=app)
    ultimate = Plan.objects.get(code="ultimate")

    refused(lambda: PlanChange.objects.filter(pk=decision.pk).update(plan=ultimate))
    refused(
        lambda: PlanChange.objects.filter(pk=decision.pk).update(effective_date=dt.date(2026, 1, 1))
    )
    refused_sql(
        "UPDATE plans_planchange SET plan_id = %s, cancelled_at = %s WHERE id = %s",
        [ultimate.pk, NOW, decision.pk],
    )
    if is_postgres():
        refused(lambda: PlanChange.objects.filter(pk=decision.pk).delete())
    decision.refresh_from_db()
    assert (decision.plan.code, decision.cancelled_at) == ("premium", None)

    PlanChange.objects.filter(pk=decision.pk).update(cancelled_at=NOW)
    refused(lambda: PlanChange.objects.filter(pk=decision.pk).update(cancelled_at=None))
    refused(
        lambda: PlanChange.objects.filter(pk=decision.pk).update(cancelled_at=NOW.replace(day=3))
    )
    decision.refresh_from_db()
    assert decision.cancelled_at == NOW


def test_an_add_on_decision_is_never_edited(price_book):
    app = ApplicationFactory(customer=CustomerFactory(), plan="premium")
    decision = addon_change(app, "sensitive_words", 2, dt.date(2026, 9, 1))

    refused(lambda: AddOnChange.objects.filter(pk=decision.pk).update(quantity=5))
    refused_sql("UPDATE plans_addonchange SET quantity = 5 WHERE id = %s", [decision.pk])
    if is_postgres():
        refused(lambda: AddOnChange.objects.filter(pk=decision.pk).delete())

    decision.refresh_from_db()
    assert (decision.quantity, decision.cancelled_at) == (2, None)


@pytest.mark.parametrize("model", [Plan, PlanPrice, AddOnPrice])
def test_price_book_history_rows_never_change(price_book, model):
    history = model.history.all()
    rows = history.count()
    assert rows > 0
    # The loader names itself on its rows (billingsite.audit); nothing may rewrite that.
    assert set(history.values_list("history_change_reason", flat=True)) == {
        "system: load_price_book"
    }

    refused(lambda: history.update(history_change_reason="rewritten"))
    refused_sql(f"UPDATE {history.model._meta.db_table} SET history_change_reason = 'x'", [])
    if is_postgres():
        refused(lambda: history.delete())

    assert history.count() == rows
    assert not history.exclude(history_change_reason="system: load_price_book").exists()
