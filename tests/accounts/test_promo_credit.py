"""Promotional credit: granting it (service and its refusals), what the database refuses, what is
available on a day, its lapse (idempotent, dated, arrears), and the invariants of the balance
(hypothesis)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moneyed import Money

from accounts.models import Customer, CustomerEvent, LedgerEntry
from accounts.promo_credit import (
    PromoCredit,
    PromoGrantAvailable,
    paid_balance,
    promo_credit,
    promo_credit_available,
    promo_credit_consumption,
    promo_credit_held,
)
from accounts.selectors import ledger_balance
from accounts.services import (
    LedgerError,
    ledger_record,
    promo_credit_grant,
    promo_credit_lapse_due,
    promo_lapse_moment,
)
from billingsite.clock import BILLING_TZ
from invoices.run.tasks import lapse_promo_credit
from tests.factories import CustomerFactory, deposit
from tests.hypothesis_budget import examples

pytestmark = pytest.mark.django_db

SHANGHAI = BILLING_TZ
NOW = dt.datetime(2026, 11, 10, 9, 0, tzinfo=SHANGHAI)


def refused(action) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        action()


def _grant(customer, amount="300.00", expires_on=dt.date(2026, 12, 31), key="g-1", **kwargs):
    return promo_credit_grant(
        customer=customer,
        amount=Decimal(amount),
        reason=kwargs.pop("reason", "Welcome offer"),
        expires_on=expires_on,
        granted_by=None,
        now=kwargs.pop("now", NOW),
        idempotency_key=key,
    )


# --- Granting -----------------------------------------------------------------------------------


def test_a_grant_is_a_positive_entry_apart_from_the_paid_balance_and_recorded_once():
    customer = CustomerFactory()
    deposit(customer, "1000.00")

    entry, created = _grant(customer)
    again, created_again = _grant(customer)

    assert created and not created_again and again.pk == entry.pk
    assert (entry.kind, entry.amount, entry.expires_on, entry.reason) == (
        "promo_grant",
        Money("300.00", "CNY"),
        dt.date(2026, 12, 31),
        "Welcome offer",
    )
    assert ledger_balance(customer=customer) == Decimal("1300.00")
    assert paid_balance(customer=customer) == Decimal("1000.00")
    assert promo_credit_held(customer=customer) == Decimal("300.00")


@pytest.mark.parametrize(
    ("amount", "reason", "expires_on", "field"),
    [
        ("0.00", "Welcome", dt.date(2026, 12, 31), "amount"),
        ("-5.00", "Welcome", dt.date(2026, 12, 31), "amount"),
        ("1.005", "Welcome", dt.date(2026, 12, 31), "amount"),
        ("10.00", "  ", dt.date(2026, 12, 31), "reason"),
        ("10.00", "Welcome", dt.date(2026, 11, 10), "expires_on"),  # today is not the future
        ("10.00", "Welcome", dt.date(2026, 11, 9), "expires_on"),
    ],
)
def test_a_bad_grant_is_refused_and_writes_nothing(amount, reason, expires_on, field):
    customer = CustomerFactory()

    with pytest.raises(LedgerError) as refusal:
        _grant(customer, amount=amount, reason=reason, expires_on=expires_on)

    assert refusal.value.field == field
    assert not LedgerEntry.objects.filter(customer=customer).exists()


def test_a_grant_whose_key_was_used_for_another_amount_is_refused():
    customer = CustomerFactory()
    _grant(customer)

    with pytest.raises(LedgerError, match="idempotency key"):
        _grant(customer, amount="301.00")
    assert LedgerEntry.objects.filter(customer=customer).count() == 1


# --- What the database refuses ------------------------------------------------------------------


def _draw(customer, grant, amount, *, kind="promo_use", key="draw", reference="INV-1"):
    return LedgerEntry.objects.create(
        customer=customer,
        kind=kind,
        amount=Money(Decimal(amount), "CNY"),
        idempotency_key=key,
        reference=reference,
        reason="by hand",
        promo_grant=grant,
        created_at=NOW,
    )


def test_the_database_refuses_what_the_code_never_writes():
    customer, other = CustomerFactory(), CustomerFactory()
    grant, _ = _grant(customer)
    deposit_entry = deposit(customer, "50.00")

    refused(lambda: _draw(customer, grant, "10.00"))  # a use is negative
    refused(lambda: _draw(customer, grant, "-300.01"))  # below zero
    refused(lambda: _draw(other, grant, "-10.00"))  # another customer's grant
    refused(lambda: _draw(customer, deposit_entry, "-10.00"))  # not a grant
    refused(lambda: _draw(customer, None, "-10.00"))  # a use names its grant
    refused(  # a grant without expiry
        lambda: LedgerEntry.objects.create(
            customer=customer,
            kind="promo_grant",
            amount=Money("5.00", "CNY"),
            idempotency_key="no-expiry",
            reason="x",
            created_at=NOW,
        )
    )
    refused(  # a grant without reason
        lambda: LedgerEntry.objects.create(
            customer=customer,
            kind="promo_grant",
            amount=Money("5.00", "CNY"),
            idempotency_key="no-reason",
            expires_on=dt.date(2027, 1, 1),
            created_at=NOW,
        )
    )
    _draw(customer, grant, "-100.00", key="use-1", reference="INV-1")
    refused(lambda: _draw(customer, grant, "-1.00", key="use-2", reference="INV-1"))  # same invoice
    refused(lambda: _draw(customer, grant, "-200.01", key="use-3", reference="INV-2"))
    _draw(customer, grant, "-50.00", kind="promo_lapse", key="lapse-1", reference="")
    refused(lambda: _draw(customer, grant, "-1.00", kind="promo_lapse", key="lapse-2"))
    assert promo_credit_held(customer=customer) == Decimal("150.00")


# --- Available on a day, and what an invoice consumes -------------------------------------------


def test_available_credit_is_per_valid_grant_earliest_expiry_first():
    customer = CustomerFactory()
    late, _ = _grant(customer, "300.00", dt.date(2027, 3, 31), key="late")
    soon, _ = _grant(customer, "200.00", dt.date(2026, 11, 30), key="soon")
    short, _ = _grant(customer, "100.00", dt.date(2026, 11, 12), key="short")
    _draw(customer, soon, "-50.00")

    on_the_12th = dt.datetime(2026, 11, 12, 23, 59, tzinfo=SHANGHAI)
    on_the_13th = dt.datetime(2026, 11, 13, 0, 0, tzinfo=SHANGHAI)
    assert [
        (g.grant_id, g.remaining)
        for g in promo_credit_available(customer=customer, now=on_the_12th)
    ] == [
        (short.pk, Decimal("100.00")),
        (soon.pk, Decimal("150.00")),
        (late.pk, Decimal("300.00")),
    ]
    assert [g.grant_id for g in promo_credit_available(customer=customer, now=on_the_13th)] == [
        soon.pk,
        late.pk,
    ]
    # Not yet granted at an earlier moment.
    assert promo_credit_available(customer=customer, now=NOW - dt.timedelta(hours=1)) == []


def _available(*remaining: str) -> list[PromoGrantAvailable]:
    return [
        PromoGrantAvailable(i, 1, dt.date(2026, 12, i), Decimal(amount))
        for i, amount in enumerate(remaining, start=1)
    ]


@pytest.mark.parametrize(
    ("total", "remaining", "taken"),
    [
        ("6000.00", ("500.00", "1000.00"), ("500.00", "1000.00")),
        ("6000.00", ("500.00", "9000.00"), ("500.00", "5500.00")),
        ("300.00", ("500.00", "9000.00"), ("300.00",)),
        ("500.00", ("500.00", "9000.00"), ("500.00",)),
        ("0.00", ("500.00",), ()),
        ("6000.00", (), ()),
    ],
)
def test_an_invoice_consumes_credit_in_order_never_more_than_its_total(total, remaining, taken):
    consumed = promo_credit_consumption(total=Decimal(total), grants=_available(*remaining))

    assert tuple(str(amount) for _, amount in consumed) == taken
    assert sum((amount for _, amount in consumed), Decimal("0")) <= Decimal(total)


# --- Lapse ----------------------------------------------------------------------------------------


def test_what_is_left_lapses_once_on_the_day_after_the_expiry():
    customer = CustomerFactory()
    deposit(customer, "1000.00")
    grant, _ = _grant(customer, "300.00", dt.date(2026, 11, 20))
    _draw(customer, grant, "-120.00")
    still_valid, _ = _grant(customer, "80.00", dt.date(2026, 11, 21), key="g-2")

    assert promo_credit_lapse_due(now=dt.datetime(2026, 11, 20, 23, 0, tzinfo=SHANGHAI)) == 0
    after = dt.datetime(2026, 11, 21, 0, 5, tzinfo=SHANGHAI)
    assert promo_credit_lapse_due(now=after) == 1
    assert promo_credit_lapse_due(now=after) == 0  # rerun: nothing new
    assert lapse_promo_credit.delay(after.isoformat()).get() == 0  # the beat task too

    [lapse] = LedgerEntry.objects.filter(kind="promo_lapse")
    assert (lapse.promo_grant_id, lapse.amount, lapse.customer_id) == (
        grant.pk,
        Money("-180.00", "CNY"),
        customer.pk,
    )
    assert lapse.created_at == dt.datetime(2026, 11, 21, 0, 0, tzinfo=SHANGHAI)
    assert lapse.created_at == promo_lapse_moment(dt.date(2026, 11, 20))
    assert not LedgerEntry.objects.filter(kind="promo_lapse", promo_grant=still_valid).exists()
    assert promo_credit_held(customer=customer) == Decimal("80.00")
    assert ledger_balance(customer=customer) == Decimal("1080.00")


def test_a_used_up_grant_writes_no_lapse():
    customer = CustomerFactory()
    grant, _ = _grant(customer, "300.00", dt.date(2026, 11, 20))
    _draw(customer, grant, "-300.00")

    assert promo_credit_lapse_due(now=dt.datetime(2026, 12, 1, tzinfo=SHANGHAI)) == 0
    assert not LedgerEntry.objects.filter(kind="promo_lapse").exists()


def test_a_lapse_below_zero_starts_arrears_like_a_debit():
    customer = CustomerFactory()
    grant, _ = _grant(customer, "300.00", dt.date(2026, 11, 20))
    # An invoice debit of 200 from the paid balance while the credit held the total above zero.
    ledger_record(
        customer=customer,
        kind="invoice_debit",
        amount=Decimal("-200.00"),
        idempotency_key="debit-1",
        now=NOW,
    )
    customer.refresh_from_db()
    assert customer.arrears_since is None  # what it owes after credits: nothing

    promo_credit_lapse_due(now=dt.datetime(2026, 11, 22, 9, 0, tzinfo=SHANGHAI))

    customer.refresh_from_db()
    assert ledger_balance(customer=customer) == Decimal("-200.00")
    assert customer.arrears_since == dt.date(2026, 11, 21)
    assert CustomerEvent.objects.filter(customer=customer, kind="arrears_started").count() == 1


def test_a_lapse_refused_by_the_database_writes_nothing_else():
    customer = CustomerFactory()
    grant, _ = _grant(customer, "300.00", dt.date(2026, 11, 20))
    with pytest.raises(LedgerError):
        ledger_record(
            customer=customer,
            kind="promo_lapse",
            amount=Decimal("-10.00"),
            idempotency_key="lapse",
            now=NOW,
        )
    with pytest.raises(LedgerError):
        ledger_record(
            customer=customer,
            kind="deposit",
            amount=Decimal("10.00"),
            idempotency_key="dep",
            now=NOW,
            promo_grant=grant,
        )
    assert LedgerEntry.objects.filter(customer=customer).count() == 1


# --- Invariants ---------------------------------------------------------------------------------

AMOUNT = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)
STEP = st.one_of(
    st.tuples(st.just("deposit"), AMOUNT, st.integers(0, 0)),
    st.tuples(st.just("grant"), AMOUNT, st.integers(1, 40)),  # expiry: days ahead
    st.tuples(st.just("debit"), AMOUNT, st.integers(0, 0)),  # an invoice: credit first
    st.tuples(st.just("days"), st.just(Decimal("0")), st.integers(1, 30)),  # time passes, lapses
)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_balance_invariants_hold_for_any_history(steps):
    with transaction.atomic():
        customer = Customer.objects.create(external_id="hyp", name="Hypothesis")
        now = NOW
        for number, (kind, amount, days) in enumerate(steps):
            key = f"hyp-{number}"
            if kind == "deposit":
                ledger_record(
                    customer=customer, kind="deposit", amount=amount, idempotency_key=key, now=now
                )
            elif kind == "grant":
                _grant(
                    customer, str(amount), now.date() + dt.timedelta(days=days), key=key, now=now
                )
            elif kind == "debit":
                # What the issue path does: credit first, the rest from the paid balance.
                grants = promo_credit_available(customer=customer, now=now)
                consumed = promo_credit_consumption(total=amount, grants=grants)
                for grant, taken in consumed:
                    ledger_record(
                        customer=customer,
                        kind="promo_use",
                        amount=-taken,
                        idempotency_key=f"{key}-{grant.grant_id}",
                        reference=key,
                        promo_grant=LedgerEntry.objects.get(pk=grant.grant_id),
                        now=now,
                    )
                rest = amount - sum((taken for _, taken in consumed), Decimal("0"))
                if rest:
                    ledger_record(
                        customer=customer,
                        kind="invoice_debit",
                        amount=-rest,
                        idempotency_key=key,
                        now=now,
                    )
            else:
                now += dt.timedelta(days=days)
                promo_credit_lapse_due(now=now)

            total = ledger_balance(customer=customer)
            entries = LedgerEntry.objects.filter(customer=customer)
            assert total == sum((e.amount.amount for e in entries), Decimal("0.00"))
            assert paid_balance(customer=customer) + promo_credit_held(customer=customer) == total
            for grant in entries.filter(kind="promo_grant"):
                left = grant.amount.amount + sum(
                    (d.amount.amount for d in grant.promo_draws.all()), Decimal("0")
                )
                assert left >= 0
            assert all(g.remaining > 0 for g in promo_credit_available(customer=customer, now=now))
            # The balance page's one read says the same as the two it replaces.
            assert promo_credit(customer=customer, now=now) == PromoCredit(
                held=promo_credit_held(customer=customer),
                available=promo_credit_available(customer=customer, now=now),
            )
            customer.refresh_from_db()
            assert (customer.arrears_since is not None) is (total < 0)
        transaction.set_rollback(True)
