"""What the database refuses on the ledger and the customer history, whoever asks (shell, bug,
raw SQL): a sign against the entry's kind, any rewrite (also after SQLite rebuilt the table for
the sign constraint), and history rows changing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from moneyed import Money

from accounts.models import Customer, LedgerEntry
from accounts.selectors import ledger_balance
from tests.conftest import is_postgres
from tests.factories import CustomerFactory, deposit

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def refused(action) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        action()


def refused_sql(sql: str, params: list) -> None:
    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    refused(run)


INSERT_SQL = (
    "INSERT INTO accounts_ledgerentry (customer_id, kind, amount_currency, amount, "
    "idempotency_key, reference, reason, created_at) "
    "VALUES (%s, %s, 'CNY', %s, %s, '', 'by hand', %s)"
)


@pytest.mark.parametrize(
    "kind,amount",
    [
        ("invoice_debit", "50000.00"),
        ("refund", "100.00"),
        ("deposit", "-100.00"),
        ("credit_note_credit", "-100.00"),
    ],
)
def test_an_entry_whose_sign_contradicts_its_kind_is_refused(kind, amount):
    customer = CustomerFactory()
    deposit(customer, "1000.00")

    refused(
        lambda: LedgerEntry.objects.create(
            customer=customer,
            kind=kind,
            amount=Money(Decimal(amount), "CNY"),
            idempotency_key="orm",
            reason="by hand",
            created_at=NOW,
        )
    )
    refused_sql(INSERT_SQL, [customer.pk, kind, Decimal(amount), "raw", NOW])

    assert LedgerEntry.objects.filter(customer=customer).count() == 1
    assert ledger_balance(customer=customer) == Decimal("1000.00")


def test_signs_matching_their_kind_are_recorded():
    customer = CustomerFactory()
    for key, (kind, amount) in enumerate(
        [
            ("deposit", "1000.00"),
            ("invoice_debit", "-600.00"),
            ("credit_note_credit", "100.00"),
            ("refund", "-200.00"),
            ("adjustment", "-50.00"),
            ("adjustment", "20.00"),
        ]
    ):
        with connection.cursor() as cursor:
            cursor.execute(INSERT_SQL, [customer.pk, kind, Decimal(amount), f"ok-{key}", NOW])
    assert ledger_balance(customer=customer) == Decimal("270.00")


def test_the_ledger_stays_append_only_after_the_sign_constraint_rebuilt_its_table():
    # SQLite rebuilt accounts_ledgerentry to add the CHECK constraint, which drops triggers.
    customer = CustomerFactory()
    entry = deposit(customer, "1000.00")

    refused(lambda: LedgerEntry.objects.filter(pk=entry.pk).update(reason="rewritten"))
    refused_sql("UPDATE accounts_ledgerentry SET amount = 1.00 WHERE id = %s", [entry.pk])
    if is_postgres():
        refused_sql("DELETE FROM accounts_ledgerentry WHERE id = %s", [entry.pk])

    entry.refresh_from_db()
    assert (entry.amount.amount, entry.reason) == (Decimal("1000.00"), "")


def test_customer_history_rows_never_change():
    customer = CustomerFactory(name="First Name Ltd")
    customer.name = "Second Name Ltd"
    customer.save()
    history = Customer.history.filter(id=customer.pk)
    assert [row.name for row in history.order_by("history_id")] == [
        "First Name Ltd",
        "Second Name Ltd",
    ]

    refused(lambda: history.update(name="Rewritten Ltd"))
    refused_sql(
        "UPDATE accounts_historicalcustomer SET history_date = %s WHERE id = %s", [NOW, customer.pk]
    )
    if is_postgres():
        refused(lambda: history.delete())

    assert [row.name for row in history.order_by("history_id")] == [
        "First Name Ltd",
        "Second Name Ltd",
    ]
    assert not history.filter(history_date=NOW).exists()


def test_adjustment_request_history_rows_never_change(price_book):
    """Who proposed and who decided an adjustment is its history: append-only in the database
    (accounts 0026), like the customers' history."""
    from accounts.models import AdjustmentRequest  # noqa: PLC0415
    from accounts.services import adjustment_submit  # noqa: PLC0415

    submission = adjustment_submit(
        customer=CustomerFactory(),
        amount=Decimal("150.00"),
        reason="goodwill for the outage",
        idempotency_key="adjustment-history",
        submitted_by=None,
        now=NOW,
    )
    assert submission.request is not None and submission.entry is None
    history = AdjustmentRequest.history.filter(id=submission.request.pk)
    assert [row.status for row in history] == ["proposed"]

    refused(lambda: history.update(reason="rewritten"))
    refused_sql(
        "UPDATE accounts_historicaladjustmentrequest SET status = 'approved' WHERE id = %s",
        [submission.request.pk],
    )
    if is_postgres():
        refused(lambda: history.delete())
    assert [(row.status, row.reason) for row in history] == [
        ("proposed", "goodwill for the outage")
    ]
