"""Prepayment roll-forward: opening + movements = closing = the ledger sum at the month's end,
to the cent, per customer and in total, whatever the ledger holds (hypothesis); the API's JSON
and CSV carry the same rows."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import LedgerEntry
from accounts.selectors import ledger_balance
from billingsite.clock import BILLING_TZ, Period, start_of_day
from invoices.exports.rollforward import AMOUNT_COLUMNS, MOVEMENTS, prepayment_rollforward
from tests.export.conftest import csv_rows, json_body
from tests.export.factories import ledger_entry
from tests.factories import CustomerFactory
from tests.hypothesis_budget import examples

D = Decimal
MONTHS = [Period(2026, month) for month in (9, 10, 11, 12)]


def shanghai(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BILLING_TZ)


# --- Every ledger kind lands in exactly one movement ------------------------------------------

EVERY_KIND = [
    ("deposit", "100.00", None),
    ("deposit", "200.00", "bank_transfer"),
    ("deposit", "400.00", "alipay"),
    ("deposit", "800.00", "wechat_pay"),
    ("invoice_debit", "-1600.00", None),
    ("credit_note_credit", "32.00", None),
    ("refund", "-64.00", None),
    ("adjustment", "-1.28", None),
    ("adjustment", "2.56", None),
    ("promo_grant", "1000.00", None),
    ("promo_use", "-300.00", None),
    ("promo_lapse", "-700.00", None),
]


@pytest.mark.django_db
def test_every_kind_and_method_is_one_movement():
    assert {kind for kind, _, _ in EVERY_KIND} == set(LedgerEntry.Kind.values)
    assert {method for _, _, method in EVERY_KIND} >= set(LedgerEntry.Method.values)
    customer = CustomerFactory(external_id="every")
    grant = None
    for kind, amount, method in EVERY_KIND:
        entry = ledger_entry(
            customer=customer,
            kind=kind,
            amount=amount,
            method=method,
            created_at=shanghai(2026, 10, 10),
            reason="Roll-forward test",
            expires_on=dt.date(2026, 10, 9) if kind == "promo_grant" else None,
            promo_grant=grant if kind in ("promo_use", "promo_lapse") else None,
        )
        grant = entry if kind == "promo_grant" else grant
    (row,) = prepayment_rollforward(period=Period(2026, 10)).customers
    assert {column: getattr(row, column) for column in MOVEMENTS} == {
        "deposits_bank_transfer": D("300.00"),
        "deposits_alipay": D("400.00"),
        "deposits_wechat_pay": D("800.00"),
        "invoice_debits": D("-1600.00"),
        "credit_notes": D("32.00"),
        "adjustments": D("1.28"),
        "refunds": D("-64.00"),
        "promo_granted": D("1000.00"),
        "promo_used": D("-300.00"),
        "promo_lapsed": D("-700.00"),
    }
    assert row.deposits == D("1500.00")
    assert row.opening_balance == D("0.00")
    assert row.closing_balance == row.movements == D("-130.72")
    assert (row.closing_paid_balance, row.closing_promo_credit) == (D("-130.72"), D("0.00"))


# --- Random histories reconcile to the ledger ----------------------------------------------

ENTRY_KINDS = [
    ("deposit", 1, None),
    ("deposit", 1, "bank_transfer"),
    ("deposit", 1, "alipay"),
    ("deposit", 1, "wechat_pay"),
    ("invoice_debit", -1, None),
    ("credit_note_credit", 1, None),
    ("refund", -1, None),
    ("adjustment", 1, None),
    ("adjustment", -1, None),
    # Promotional credit: a use or a lapse draws on the customer's latest grant (no more than
    # it has left; a lapse once per grant), whatever its date: the roll-forward reads dates only.
    ("promo_grant", 1, None),
    ("promo_use", -1, None),
    ("promo_lapse", -1, None),
]
# Moments from 1 September to 31 December 2026, with the edges of each month likely: the
# first instant of a month in Shanghai (16:00 UTC the day before) and the last second before it.
month_edges = st.sampled_from(
    [start_of_day(month.start) for month in MONTHS]
    + [start_of_day(month.start) - dt.timedelta(seconds=1) for month in MONTHS[1:]]
)
any_moment = st.integers(min_value=0, max_value=121 * 24 * 60 - 1).map(
    lambda minutes: shanghai(2026, 9, 1) + dt.timedelta(minutes=minutes)
)
entry_strategy = st.tuples(
    st.sampled_from(ENTRY_KINDS),
    st.integers(min_value=1, max_value=10_000_000),
    st.one_of(month_edges, any_moment),
)
history_strategy = st.lists(
    st.lists(entry_strategy, min_size=0, max_size=10), min_size=1, max_size=3
)


@pytest.mark.django_db
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=history_strategy)
def test_rollforward_reconciles_to_the_ledger_for_random_histories(history):
    with transaction.atomic():
        customers = []
        for number, entries in enumerate(history):
            customer = CustomerFactory(external_id=f"random-{number}")
            customers.append(customer)
            grant, left, lapsed = None, D("0"), False
            for index, ((kind, sign, method), cents, moment) in enumerate(entries):
                amount = D(cents) / 100
                if kind in ("promo_use", "promo_lapse"):
                    if grant is None or not left or lapsed:
                        continue
                    amount = left if kind == "promo_lapse" else min(amount, left)
                    left -= amount
                    lapsed = kind == "promo_lapse"
                entry = ledger_entry(
                    customer=customer,
                    kind=kind,
                    amount=str(sign * amount),
                    method=method,
                    created_at=moment,
                    reason="Random history",
                    # The database takes one use per grant and invoice number.
                    reference=f"INV-{number}-{index}" if kind == "promo_use" else "",
                    expires_on=moment.date() if kind == "promo_grant" else None,
                    promo_grant=grant if kind in ("promo_use", "promo_lapse") else None,
                )
                if kind == "promo_grant":
                    grant, left, lapsed = entry, amount, False
        reports = {month: prepayment_rollforward(period=month) for month in MONTHS}
        balances = {
            (customer.external_id, month): ledger_balance(
                customer=customer, before=start_of_day(month.start)
            )
            for customer in customers
            for month in [*MONTHS, MONTHS[-1].next()]
        }
        promo_held = {
            (customer.external_id, month): sum(
                (
                    entry.amount.amount
                    for entry in LedgerEntry.objects.filter(
                        customer=customer,
                        kind__in=LedgerEntry.PROMO_KINDS,
                        created_at__lt=start_of_day(month.next().start),
                    )
                ),
                D("0.00"),
            )
            for customer in customers
            for month in MONTHS
        }
        in_month = {
            (customer.external_id, month): LedgerEntry.objects.filter(
                customer=customer,
                created_at__gte=start_of_day(month.start),
                created_at__lt=start_of_day(month.next().start),
            ).exists()
            for customer in customers
            for month in MONTHS
        }
        transaction.set_rollback(True)

    for month, report in reports.items():
        listed = {row.customer_external_id for row in report.customers}
        assert listed == {
            customer.external_id
            for customer in customers
            if in_month[customer.external_id, month] or balances[customer.external_id, month]
        }
        for row in report.customers:
            opening = balances[row.customer_external_id, month]
            closing = balances[row.customer_external_id, month.next()]
            assert row.opening_balance == opening
            assert row.opening_balance + row.movements == row.closing_balance == closing
            assert row.deposits == (
                row.deposits_bank_transfer + row.deposits_alipay + row.deposits_wechat_pay
            )
            assert row.closing_promo_credit == promo_held[row.customer_external_id, month]
            assert row.closing_paid_balance + row.closing_promo_credit == row.closing_balance
        for column in AMOUNT_COLUMNS:
            assert getattr(report.total, column) == sum(
                (getattr(row, column) for row in report.customers), D("0.00")
            )
        assert report.total.opening_balance + report.total.movements == (
            report.total.closing_balance
        )
    # A month opens where the month before closed.
    for month in MONTHS[1:]:
        assert (
            reports[month].total.opening_balance == reports[month.previous()].total.closing_balance
        )


# --- The API ------------------------------------------------------------------------------


@pytest.fixture
def october(db):
    alpha = CustomerFactory(external_id="alpha", name="Alpha Ltd")
    beta = CustomerFactory(external_id="beta", name="=Beta Games")
    gamma = CustomerFactory(external_id="gamma", name="Gamma")
    ledger_entry(customer=alpha, kind="deposit", amount="1000.00", created_at=shanghai(2026, 9, 3))
    ledger_entry(
        customer=alpha,
        kind="deposit",
        amount="500.00",
        method="alipay",
        created_at=shanghai(2026, 10, 1, 0, 0),
    )
    ledger_entry(
        customer=alpha, kind="invoice_debit", amount="-800.00", created_at=shanghai(2026, 10, 2)
    )
    ledger_entry(
        customer=beta,
        kind="adjustment",
        amount="-25.50",
        created_at=shanghai(2026, 10, 31, 23, 59),
        reason="Bank fee",
    )
    # Posted after October (1 November in Shanghai, still 31 October in UTC).
    ledger_entry(
        customer=beta, kind="deposit", amount="99.00", created_at=shanghai(2026, 11, 1, 0, 0)
    )
    # A zero balance and nothing in October: not listed.
    ledger_entry(customer=gamma, kind="deposit", amount="10.00", created_at=shanghai(2026, 8, 1))
    ledger_entry(customer=gamma, kind="refund", amount="-10.00", created_at=shanghai(2026, 8, 2))


def test_rollforward_json_and_csv(accounting, october):
    response = accounting.get("/api/v1/accounting/prepayment-rollforward/", {"period": "2026-10"})
    assert response.status_code == 200
    payload = json_body(response)
    zero = "0.00"
    assert payload == {
        "period": "2026-10",
        "currency": "CNY",
        "customers": [
            {
                "customer_external_id": "alpha",
                "customer_name": "Alpha Ltd",
                "opening_balance": "1000.00",
                "deposits_bank_transfer": zero,
                "deposits_alipay": "500.00",
                "deposits_wechat_pay": zero,
                "deposits": "500.00",
                "invoice_debits": "-800.00",
                "credit_notes": zero,
                "adjustments": zero,
                "refunds": zero,
                "closing_balance": "700.00",
                "currency": "CNY",
                "promo_granted": zero,
                "promo_used": zero,
                "promo_lapsed": zero,
                "closing_paid_balance": "700.00",
                "closing_promo_credit": zero,
            },
            {
                "customer_external_id": "beta",
                "customer_name": "=Beta Games",
                "opening_balance": zero,
                "deposits_bank_transfer": zero,
                "deposits_alipay": zero,
                "deposits_wechat_pay": zero,
                "deposits": zero,
                "invoice_debits": zero,
                "credit_notes": zero,
                "adjustments": "-25.50",
                "refunds": zero,
                "closing_balance": "-25.50",
                "currency": "CNY",
                "promo_granted": zero,
                "promo_used": zero,
                "promo_lapsed": zero,
                "closing_paid_balance": "-25.50",
                "closing_promo_credit": zero,
            },
        ],
        "total": {
            "customer_external_id": None,
            "customer_name": None,
            "opening_balance": "1000.00",
            "deposits_bank_transfer": zero,
            "deposits_alipay": "500.00",
            "deposits_wechat_pay": zero,
            "deposits": "500.00",
            "invoice_debits": "-800.00",
            "credit_notes": zero,
            "adjustments": "-25.50",
            "refunds": zero,
            "closing_balance": "674.50",
            "currency": "CNY",
            "promo_granted": zero,
            "promo_used": zero,
            "promo_lapsed": zero,
            "closing_paid_balance": "674.50",
            "closing_promo_credit": zero,
        },
    }
    csv_response = accounting.get(
        "/api/v1/accounting/prepayment-rollforward/", {"period": "2026-10", "format": "csv"}
    )
    assert csv_response.status_code == 200
    assert "prepayment-rollforward-2026-10.csv" in csv_response["Content-Disposition"]
    rows = csv_rows(csv_response)
    assert [row.pop("row") for row in rows] == ["customer", "customer", "total"]
    # The same values; a formula-like name is written as text; the total's customer is empty.
    expected = [*payload["customers"], payload["total"]]
    expected[1] = {**expected[1], "customer_name": "'=Beta Games"}
    expected[2] = {**expected[2], "customer_external_id": "", "customer_name": ""}
    assert rows == expected


def test_rollforward_of_an_empty_month(accounting, october):
    payload = json_body(
        accounting.get("/api/v1/accounting/prepayment-rollforward/", {"period": "2025-01"})
    )
    assert payload["customers"] == []
    assert payload["total"]["closing_balance"] == "0.00"


@pytest.mark.parametrize("period", ["", "2026-13", "26-10", "2026-10-01"])
def test_rollforward_refuses_a_bad_period_with_the_error_shape(accounting, october, period):
    query = {"period": period} if period else {}
    response = accounting.get("/api/v1/accounting/prepayment-rollforward/", query)
    assert response.status_code == 400
    body = json_body(response)
    assert body["code"] == "invalid" and body["field"] == "period"
