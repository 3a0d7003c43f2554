"""Every deposit says how its money arrived; no other kind of entry carries a method."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from moneyed import Money

from accounts.models import LedgerEntry
from accounts.services import IdempotencyConflict, LedgerError, ledger_record, record_deposit
from tests.factories import CustomerFactory

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.mark.django_db
def test_a_deposit_is_a_bank_transfer_unless_told_otherwise():
    customer = CustomerFactory()
    bank, _ = record_deposit(
        customer=customer,
        amount=Decimal("100.00"),
        reference="ICBC 1",
        idempotency_key="d1",
        now=NOW,
    )
    alipay, _ = record_deposit(
        customer=customer,
        amount=Decimal("50.00"),
        reference="2026120122001",
        idempotency_key="d2",
        now=NOW,
        method=LedgerEntry.Method.ALIPAY,
    )
    assert LedgerEntry.objects.get(pk=bank.pk).method == "bank_transfer"
    assert LedgerEntry.objects.get(pk=alipay.pk).deposit_method == "alipay"


@pytest.mark.django_db
def test_a_retry_with_another_method_is_a_conflict_and_records_nothing():
    customer = CustomerFactory()
    record_deposit(
        customer=customer, amount=Decimal("100.00"), reference="r", idempotency_key="k", now=NOW
    )
    with pytest.raises(IdempotencyConflict):
        record_deposit(
            customer=customer,
            amount=Decimal("100.00"),
            reference="r",
            idempotency_key="k",
            now=NOW,
            method=LedgerEntry.Method.WECHAT_PAY,
        )
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_methods_are_refused_where_they_mean_nothing():
    customer = CustomerFactory()
    with pytest.raises(LedgerError) as refused:
        ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            amount=Decimal("5.00"),
            reason="goodwill",
            idempotency_key="a",
            now=NOW,
            method=LedgerEntry.Method.ALIPAY,
        )
    assert refused.value.field == "method"
    with pytest.raises(LedgerError):
        ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.DEPOSIT,
            amount=Decimal("5.00"),
            idempotency_key="b",
            now=NOW,
            method="cash",
        )
    assert LedgerEntry.objects.count() == 0
    # The database refuses it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            customer=customer,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            amount=Money("5.00", "CNY"),
            reason="goodwill",
            idempotency_key="c",
            method="alipay",
            created_at=NOW,
        )


@pytest.mark.django_db
def test_legacy_deposits_without_a_method_read_as_bank_transfers():
    customer = CustomerFactory()
    legacy = LedgerEntry.objects.create(
        customer=customer,
        kind=LedgerEntry.Kind.DEPOSIT,
        amount=Money("5.00", "CNY"),
        idempotency_key="legacy",
        created_at=NOW,
    )
    assert legacy.method is None and legacy.deposit_method == "bank_transfer"
