"""The prepaid ledger: append-only entries, idempotency, refusals, arrears and races."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moneyed import Money

from accounts.arrears import suspension_date
from accounts.models import CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import (
    IdempotencyConflict,
    LedgerError,
    ledger_record,
    record_adjustment,
    record_deposit,
)
from tests.conftest import postgres_only
from tests.factories import CustomerFactory
from tests.hypothesis_budget import examples

NOW = dt.datetime(2026, 10, 16, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.mark.django_db
def test_deposit_debit_and_adjustment_make_the_balance():
    customer = CustomerFactory()
    entry, created = record_deposit(
        customer=customer,
        amount=Decimal("10000.00"),
        reference="ICBC 88412",
        idempotency_key="dep-1",
        now=NOW,
    )
    assert created and entry.kind == "deposit" and entry.amount == Money("10000.00", "CNY")
    ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.INVOICE_DEBIT,
        amount=Decimal("-6000.00"),
        idempotency_key="inv-1",
        reference="INV-2026-000001",
        now=NOW,
    )
    record_adjustment(
        customer=customer,
        amount=Decimal("-0.50"),
        reason="bank fee agreed with the customer",
        idempotency_key="adj-1",
        now=NOW,
    )
    assert ledger_balance(customer=customer) == Decimal("3999.50")
    assert list(LedgerEntry.objects.filter(customer=customer).values_list("kind", flat=True)) == [
        "deposit",
        "invoice_debit",
        "adjustment",
    ]


@pytest.mark.django_db
def test_the_same_key_records_once_and_a_different_entry_is_a_conflict():
    customer = CustomerFactory()
    other = CustomerFactory()
    first, created = record_deposit(
        customer=customer, amount=Decimal("500"), reference="A", idempotency_key="k", now=NOW
    )
    again, created_again = record_deposit(
        customer=customer, amount=Decimal("500.00"), reference="A", idempotency_key="k", now=NOW
    )
    assert created and not created_again and again.pk == first.pk
    for kwargs in (
        {"customer": customer, "amount": Decimal("501")},
        {"customer": other, "amount": Decimal("500")},
    ):
        with pytest.raises(IdempotencyConflict):
            record_deposit(**kwargs, reference="A", idempotency_key="k", now=NOW)
    assert LedgerEntry.objects.count() == 1
    assert ledger_balance(customer=customer) == Decimal("500.00")
    assert ledger_balance(customer=other) == Decimal("0.00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "field"),
    [
        (Money("100", "USD"), "currency"),
        (Decimal("0"), "amount"),
        (Decimal("-100"), "amount"),
        (Decimal("0.001"), "amount"),
        (100.0, "amount"),
        (Decimal("NaN"), "amount"),
    ],
)
def test_bad_deposits_are_refused(amount, field):
    customer = CustomerFactory()
    with pytest.raises(LedgerError) as info:
        record_deposit(customer=customer, amount=amount, reference="", idempotency_key="x", now=NOW)
    assert info.value.field == field
    assert LedgerEntry.objects.count() == 0


@pytest.mark.django_db
def test_non_cny_refusal_says_contract_pricing():
    with pytest.raises(LedgerError, match="non-RMB settlement: contract pricing"):
        record_deposit(
            customer=CustomerFactory(),
            amount=Money("100", "EUR"),
            reference="",
            idempotency_key="x",
            now=NOW,
        )


@pytest.mark.django_db
@pytest.mark.parametrize("reason", ["", "   "])
def test_adjustment_needs_a_reason(reason):
    with pytest.raises(LedgerError) as info:
        record_adjustment(
            customer=CustomerFactory(),
            amount=Decimal("10"),
            reason=reason,
            idempotency_key="adj",
            now=NOW,
        )
    assert info.value.field == "reason"
    assert LedgerEntry.objects.count() == 0


@pytest.mark.django_db
def test_entries_cannot_be_changed_or_deleted():
    customer = CustomerFactory()
    entry, _ = record_deposit(
        customer=customer, amount=Decimal("100"), reference="", idempotency_key="k", now=NOW
    )
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
    # The database refuses it too, whoever asks (the trigger of migration 0002).
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Money("1000000", "CNY"))
    assert ledger_balance(customer=customer) == Decimal("100.00")


@postgres_only
@pytest.mark.django_db
def test_postgresql_refuses_deleting_ledger_rows():
    record_deposit(
        customer=CustomerFactory(),
        amount=Decimal("100"),
        reference="",
        idempotency_key="k",
        now=NOW,
    )
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.all()._raw_delete(connection.alias)
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_negative_balance_starts_arrears_and_a_deposit_ends_them():
    customer = CustomerFactory()
    ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.INVOICE_DEBIT,
        amount=Decimal("-6000.00"),
        idempotency_key="inv-1",
        now=NOW,
    )
    customer.refresh_from_db()
    assert customer.arrears_since == dt.date(2026, 10, 16)
    assert suspension_date(arrears_since=customer.arrears_since) == dt.date(2026, 10, 23)
    assert CustomerEvent.objects.filter(customer=customer, kind="arrears_started").count() == 1
    record_deposit(
        customer=customer, amount=Decimal("6000.00"), reference="", idempotency_key="d", now=NOW
    )
    customer.refresh_from_db()
    assert customer.arrears_since is None


@pytest.mark.django_db
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(
        st.decimals(min_value=Decimal("-5000"), max_value=Decimal("5000"), places=2).filter(
            lambda d: d != 0
        ),
        min_size=1,
        max_size=12,
    )
)
def test_balance_is_the_sum_of_the_ledger(db, amounts):
    with transaction.atomic():
        customer = CustomerFactory()
        for index, amount in enumerate(amounts):
            if amount > 0:
                record_deposit(
                    customer=customer,
                    amount=amount,
                    reference="",
                    idempotency_key=f"p{index}",
                    now=NOW,
                )
            else:
                record_adjustment(
                    customer=customer,
                    amount=amount,
                    reason="property test",
                    idempotency_key=f"p{index}",
                    now=NOW,
                )
            # Replaying a key never changes the balance.
            ledger_record(
                customer=customer,
                kind="deposit" if amount > 0 else "adjustment",
                amount=amount,
                reason="property test",
                idempotency_key=f"p{index}",
                now=NOW,
            )
        assert ledger_balance(customer=customer) == sum(amounts, Decimal("0.00"))
        customer.refresh_from_db()
        assert (customer.arrears_since is not None) == (sum(amounts) < 0)
        transaction.set_rollback(True)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_deposits_and_a_debit_racing_end_with_the_exact_balance():
    customer = CustomerFactory()
    record_deposit(
        customer=customer, amount=Decimal("1000.00"), reference="", idempotency_key="seed", now=NOW
    )
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(kind: str, amount: str, key: str) -> None:
        try:
            barrier.wait(timeout=10)
            ledger_record(
                customer=customer,
                kind=kind,
                amount=Decimal(amount),
                idempotency_key=key,
                now=NOW,
            )
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=("deposit", "2500.50", "race-d1")),
        threading.Thread(target=run, args=("deposit", "700.25", "race-d2")),
        threading.Thread(target=run, args=("invoice_debit", "-4500.00", "race-inv")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert ledger_balance(customer=customer) == Decimal("-299.25")
    assert LedgerEntry.objects.filter(customer=customer).count() == 4
    customer.refresh_from_db()
    # Arrears are derived from the balance the last writer saw, under the row lock.
    assert customer.arrears_since == dt.date(2026, 10, 16)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_key_sent_twice_at_once_records_one_deposit():
    customer = CustomerFactory()
    barrier = threading.Barrier(2)
    results: list = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(
                record_deposit(
                    customer=customer,
                    amount=Decimal("800.00"),
                    reference="",
                    idempotency_key="twice",
                    now=NOW,
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(created for _entry, created in results) == [False, True]
    assert len({entry.pk for entry, _created in results}) == 1
    assert ledger_balance(customer=customer) == Decimal("800.00")
