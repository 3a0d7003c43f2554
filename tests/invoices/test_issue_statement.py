"""The run's two-statement issue on PostgreSQL writes exactly the rows of the general path.

`bill_account` issues a run invoice either in two prepared statements (PostgreSQL, no invoice
seen by the chunk's read; the chunk then applies the arrears rule with `arrears_follow`) or
through the general path (the same `invoices.documents.issuing.invoice_issue_write` inserting row by row,
used on SQLite, for re-runs and for finance's issue of a held invoice). Each path runs here on
the same account, in a transaction that is rolled back, and every row it leaves is compared.
"""

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict

import invoices.run.statements as statements
from accounts.arrears import arrears_follow
from accounts.models import Application, Customer, CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import ledger_record
from invoices.documents.services import (
    HELD,
    ISSUED,
    accounts_rate,
    bill_account,
    bill_account_rerating,
    invoice_issue,
)
from invoices.models import Invoice, InvoiceLine, NumberSequence
from tests.conftest import postgres_only
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    addon_change,
    deposit,
    discount,
    promo_grant,
    usage,
)
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, october_usage, premium_customer

pytestmark = [pytest.mark.django_db, postgres_only]

WALL_CLOCK = {"id", "created_at", "updated_at", "history_id", "history_date"}


def _rows(queryset, *, drop=()):
    return [
        {key: value for key, value in row.items() if key not in WALL_CLOCK | set(drop)}
        for row in queryset.values()
    ]


def _state(customer: Customer) -> dict:
    invoice = Invoice.objects.get(customer=customer, period=OCTOBER.start)

    def named(dedupe_key: str) -> str:
        # Each path takes its own invoice id (sequences do not roll back).
        issued = f"invoice_issued:{invoice.pk}"
        return "invoice_issued:<invoice id>" if dedupe_key == issued else dedupe_key

    events = []
    # The setup's deposits leave their receipts (payment_received); the bill writes the rest.
    billed = CustomerEvent.objects.filter(customer=customer).exclude(kind="payment_received")
    for event in billed.order_by("kind"):
        payload = dict(event.payload)
        if payload.get("invoice_id") == invoice.pk:
            payload["invoice_id"] = "<invoice id>"
        events.append((event.kind, named(event.dedupe_key), payload, event.created_at))
    customer.refresh_from_db()
    return {
        "invoice": _rows(Invoice.objects.filter(pk=invoice.pk)),
        "lines": _rows(InvoiceLine.objects.filter(invoice=invoice), drop={"invoice_id"}),
        "invoice history": _rows(Invoice.history.filter(id=invoice.pk).order_by("history_id")),
        "ledger": _rows(
            LedgerEntry.objects.filter(customer=customer).order_by(
                "created_at", "kind", "idempotency_key"
            )
        ),
        "balance": ledger_balance(customer=customer),
        "events": events,
        "customer": model_to_dict(customer),
        "customer history": _rows(Customer.history.filter(id=customer.pk).order_by("history_id")),
        "sequence": NumberSequence.objects.get(series="INV", year=2026).last_number,
    }


RUN = "run's statements"
GENERAL = "general path"
HELD_THEN_ISSUED = "held, then issued by finance"


def _bill_and_roll_back(customer: Customer, *, path: str, queries: list) -> dict:

    prepared = accounts_rate(customer_ids=[customer.pk], period=OCTOBER, issue_at=BILLING_MOMENT)[
        customer.pk
    ]
    if path == RUN and prepared.rated.hold_reasons:
        # The run holds such an account for finance; issued as it is, it must write what
        # finance's issue of the held invoice writes.
        prepared = dataclasses.replace(
            prepared, rated=dataclasses.replace(prepared.rated, hold_reasons=())
        )
    with transaction.atomic():
        count_before = len(connection.queries)
        deferred: set[int] = set()
        outcome = bill_account(
            customer_id=customer.pk,
            period=OCTOBER,
            now=BILLING_MOMENT,
            prepared=prepared,
            # The general path reads the invoice again; the run's path trusts the chunk's read.
            invoice_absent=path == RUN,
            arrears_deferred=deferred if path == RUN else None,
        )
        queries.append(
            sum(1 for query in connection.queries[count_before:] if "SAVEPOINT" not in query["sql"])
        )
        if path == HELD_THEN_ISSUED:
            assert outcome == HELD
            invoice_issue(
                invoice=Invoice.objects.get(customer=customer, period=OCTOBER.start),
                now=BILLING_MOMENT,
            )
        else:
            assert outcome == ISSUED
        # What the run's chunk does once its accounts are billed.
        arrears_follow(customer_ids=deferred, now=BILLING_MOMENT)
        state = _state(customer)
        transaction.set_rollback(True)
    assert not Invoice.objects.filter(customer=customer).exists()
    return state


@pytest.mark.parametrize(
    ("balance", "in_arrears_before", "arrears_after"),
    [
        ("100000.00", False, False),  # the bill leaves the balance above zero
        ("100.00", False, True),  # the debit starts arrears on the billing day
        ("", True, True),  # arrears already running (a refund took the balance below zero)
    ],
)
@pytest.mark.parametrize("prepared_statements", [True, False])
def test_the_run_statements_write_the_same_rows_as_the_general_path(
    price_book, settings, balance, in_arrears_before, arrears_after, prepared_statements
):
    settings.DEBUG = True  # connection.queries
    settings.BILLING_RUN_PREPARED_STATEMENTS = prepared_statements
    customer, premium = premium_customer(dau=8000, balance=balance)
    ultimate = ApplicationFactory(
        customer=customer, plan="ultimate", created_on=dt.date(2026, 9, 1)
    )
    october_usage(ultimate, {9: 24_000, 10: 31_000})
    addon_change(ultimate, "private_storage_extension", 3, dt.date(2026, 10, 12))
    addon_change(premium, "desktop_pc", 1, dt.date(2026, 9, 1))
    addon_change(premium, "message_callback", 1, dt.date(2026, 9, 1))
    if in_arrears_before:
        deposit(customer, "50.00")
        LedgerEntry.objects.create(
            customer=customer,
            kind=LedgerEntry.Kind.REFUND,
            amount=Decimal("-80.00"),
            idempotency_key="refund-1",
            reason="refund",
            created_at=BILLING_MOMENT - dt.timedelta(days=3),
        )
        Customer.objects.filter(pk=customer.pk).update(arrears_since=dt.date(2026, 10, 30))
        customer.refresh_from_db()

    queries: list[int] = []
    run_path = _bill_and_roll_back(customer, path=RUN, queries=queries)
    general_path = _bill_and_roll_back(customer, path=GENERAL, queries=queries)

    assert run_path == general_path
    assert len(run_path["lines"]) >= 4
    assert run_path["invoice"][0]["status"] == "issued"
    assert run_path["invoice"][0]["number"] == "INV-2026-000001"
    # The VAT split is among the columns compared: frozen alike by both paths, and adding up.
    invoice = run_path["invoice"][0]
    assert invoice["vat_total"] is not None
    assert invoice["net_total"] + invoice["vat_total"] == invoice["total"]
    assert invoice["vat_total"] == sum(line["vat_amount"] for line in run_path["lines"])
    assert all(
        line["net_amount"] + line["vat_amount"] == line["amount"] for line in run_path["lines"]
    )
    assert run_path["invoice history"][-1]["vat_total"] == invoice["vat_total"]
    assert run_path["balance"] == general_path["balance"] < Decimal("100000.00")
    assert (run_path["customer"]["arrears_since"] is not None) is arrears_after
    kinds = [kind for kind, *_ in run_path["events"]]
    started_now = arrears_after and not in_arrears_before
    assert ("arrears_started" in kinds) is started_now
    if started_now:
        [(_, key, payload, _)] = [e for e in run_path["events"] if e[0] == "arrears_started"]
        assert key == f"arrears_started:{customer.pk}:2026-11-02"
        assert payload == {
            "balance": f"{run_path['balance']:.2f}",
            "arrears_since": "2026-11-02",
            "suspension_date": "2026-11-09",
        }
    # Two statements on the run's path whatever the account holds, against a dozen or more.
    assert queries[0] == 2
    assert queries[1] > 8


@pytest.mark.parametrize("prepared_statements", [True, False])
def test_a_discounted_customer_is_billed_alike(price_book, settings, prepared_statements):
    settings.DEBUG = True
    settings.BILLING_RUN_PREPARED_STATEMENTS = prepared_statements
    customer, premium = premium_customer(dau=8000, balance="100000.00")
    ultimate = ApplicationFactory(
        customer=customer, plan="ultimate", created_on=dt.date(2026, 9, 1)
    )
    october_usage(ultimate, {9: 24_000})
    # 10% off everything of the customer, and 1,000.00 a month off the premium application
    # from the 16th (pro rata: 1,000 x 16/31 = 516.13).
    discount(customer=customer, percent="10", first_day=dt.date(2026, 9, 1), reference="CD-1")
    discount(application=premium, amount_off="1000.00", first_day=dt.date(2026, 10, 16))

    queries: list[int] = []
    run_path = _bill_and_roll_back(customer, path=RUN, queries=queries)
    general_path = _bill_and_roll_back(customer, path=GENERAL, queries=queries)

    assert run_path == general_path
    discounts = [
        (row["app_key"], row["amount"])
        for row in run_path["lines"]
        if row["category"] == "discount"
    ]
    assert discounts == [
        (premium.app_key, Decimal("-600.00")),
        (premium.app_key, Decimal("-516.13")),
        (ultimate.app_key, Decimal("-1700.00")),
    ]
    # premium 6,000.00 + ultimate 8,000 + 2 x 4,500 = 17,000.00; less the discounts.
    assert run_path["invoice"][0]["total"] == Decimal("23000.00") - Decimal("2816.13")
    assert sum(row["amount"] for row in run_path["lines"]) == run_path["invoice"][0]["total"]
    assert queries[0] == 2


@pytest.mark.parametrize(
    ("second_grant", "promo_used", "debited"),
    [
        # 500.00 (expiring first) used in full, then 1,000.00 in full: 4,500.00 from the balance.
        ("1000.00", Decimal("1500.00"), Decimal("-4500.00")),
        # 500.00 in full, then 5,500.00 of 9,000.00: nothing left to debit.
        ("9000.00", Decimal("6000.00"), None),
    ],
)
@pytest.mark.parametrize("path", [GENERAL, HELD_THEN_ISSUED])
def test_promotional_credit_is_consumed_alike_on_every_path(
    price_book, settings, second_grant, promo_used, debited, path
):
    settings.DEBUG = True
    customer, _ = premium_customer(dau=8000, balance="100.00")  # Premium: 6,000.00
    if path == HELD_THEN_ISSUED:
        app = ApplicationFactory(customer=customer, plan="free", created_on=dt.date(2026, 9, 1))
        usage(app, dt.date(2026, 10, 21), 100, delivered_messages=3_000_000)  # held for review
    expired = promo_grant(customer, "700.00", dt.date(2026, 11, 1))  # over on the 2nd
    later = promo_grant(customer, second_grant, dt.date(2026, 12, 31))
    first = promo_grant(customer, "500.00", dt.date(2026, 11, 2))  # valid through the issue day

    queries: list[int] = []
    run_path = _bill_and_roll_back(customer, path=RUN, queries=queries)
    other_path = _bill_and_roll_back(customer, path=path, queries=queries)

    if path == HELD_THEN_ISSUED:
        assert _without_review(run_path) == _without_review(other_path)
    else:
        assert run_path == other_path
    invoice = run_path["invoice"][0]
    assert invoice["total"] == Decimal("6000.00")
    assert invoice["promo_credit_applied"] == promo_used
    # Promotional credit is a means of payment: the VAT is the total's.
    assert invoice["net_total"] + invoice["vat_total"] == Decimal("6000.00")
    uses = [
        (row["promo_grant_id"], row["amount"], row["reference"])
        for row in run_path["ledger"]
        if row["kind"] == "promo_use"
    ]
    used_later = promo_used - Decimal("500.00")
    assert sorted(uses) == sorted(
        [
            (first.pk, Decimal("-500.00"), invoice["number"]),
            (later.pk, -used_later, invoice["number"]),
        ]
    )
    assert expired.pk not in {grant for grant, *_ in uses}
    debits = [row["amount"] for row in run_path["ledger"] if row["kind"] == "invoice_debit"]
    assert debits == ([debited] if debited else [])
    # The balance counts every promotional row: deposit 100 + grants - uses - 6,000 ... the
    # expired grant stays in it until its lapse.
    granted = Decimal("700.00") + Decimal(second_grant) + Decimal("500.00")
    assert run_path["balance"] == Decimal("100.00") + granted - Decimal("6000.00")
    assert queries[0] == 2


def _suspended(customer: Customer) -> None:
    """Arrears since 20 October, suspended on the 27th (a refund took the balance below zero)."""
    deposit(customer, "50.00")
    LedgerEntry.objects.create(
        customer=customer,
        kind=LedgerEntry.Kind.REFUND,
        amount=Decimal("-80.00"),
        idempotency_key="refund-1",
        reason="refund",
        created_at=BILLING_MOMENT - dt.timedelta(days=13),
    )
    Customer.objects.filter(pk=customer.pk).update(
        arrears_since=dt.date(2026, 10, 20),
        suspended_at=BILLING_MOMENT - dt.timedelta(days=6),
    )
    Application.objects.filter(customer=customer).update(status=Application.Status.SUSPENDED)
    customer.refresh_from_db()


def test_a_suspended_customer_is_billed_alike_and_stays_suspended(price_book, settings):
    settings.DEBUG = True
    customer, _ = premium_customer(dau=8000, balance="")
    _suspended(customer)

    queries: list[int] = []
    run_path = _bill_and_roll_back(customer, path=RUN, queries=queries)
    general_path = _bill_and_roll_back(customer, path=GENERAL, queries=queries)

    assert run_path == general_path
    assert run_path["balance"] == Decimal("-30.00") - Decimal("6000.00")
    assert run_path["customer"]["arrears_since"] == dt.date(2026, 10, 20)
    assert run_path["customer"]["suspended_at"] is not None
    assert [kind for kind, *_ in run_path["events"]] == ["invoice_issued"]
    assert queries[0] == 2


def _without_review(state: dict) -> dict:
    """What finance's review adds to an invoice the run would have issued: the hold reason,
    kept as the record of why it was reviewed, and the held invoice's own history row."""
    state = dict(state)
    state["invoice"] = [{**row, "hold_reason": ""} for row in state["invoice"]]
    history = state["invoice history"]
    state["invoice history"] = [
        {**row, "hold_reason": "", "history_type": "issued"} for row in history[-1:]
    ]
    return state


@pytest.mark.parametrize(
    ("plan", "balance", "total", "arrears_after"),
    [
        ("free", "100.00", Decimal("0.00"), False),  # a 0.00 invoice: nothing is debited
        ("premium", "100.00", Decimal("6000.00"), True),  # the debit starts arrears
    ],
)
def test_a_held_invoice_issued_by_finance_writes_what_the_run_writes(
    price_book, settings, plan, balance, total, arrears_after
):
    settings.DEBUG = True
    customer = CustomerFactory()
    app = ApplicationFactory(customer=customer, plan=plan, created_on=dt.date(2026, 9, 1))
    october_usage(app, {3: 7900, 17: 8000, 30: 1})
    usage(app, dt.date(2026, 10, 21), 100, delivered_messages=3_000_000)  # held for review
    deposit(customer, balance)

    queries: list[int] = []
    run_path = _bill_and_roll_back(customer, path=RUN, queries=queries)
    held_path = _bill_and_roll_back(customer, path=HELD_THEN_ISSUED, queries=queries)

    assert "high-volume" in held_path["invoice"][0]["hold_reason"]
    assert [row["history_type"] for row in held_path["invoice history"]] == ["+", "~"]
    assert _without_review(run_path) == _without_review(held_path)
    assert held_path["invoice"][0]["total"] == total
    debits = [row for row in held_path["ledger"] if row["kind"] == "invoice_debit"]
    assert [row["amount"] for row in debits] == ([-total] if total else [])
    assert held_path["balance"] == Decimal(balance) - total
    assert (held_path["customer"]["arrears_since"] is not None) is arrears_after
    kinds = sorted(kind for kind, *_ in held_path["events"])
    assert kinds == (["arrears_started", "invoice_issued"] if arrears_after else ["invoice_issued"])
    assert queries[0] == 2


def test_a_failure_after_the_first_statement_gives_the_number_back(price_book, monkeypatch):
    customer, _ = premium_customer(dau=8000)
    prepared = accounts_rate(customer_ids=[customer.pk], period=OCTOBER, issue_at=BILLING_MOMENT)[
        customer.pk
    ]

    def broken(*args, **kwargs):
        raise ConnectionError("connection lost")

    def bill() -> str:
        return bill_account(
            customer_id=customer.pk,
            period=OCTOBER,
            now=BILLING_MOMENT,
            prepared=prepared,
            invoice_absent=True,
        )

    monkeypatch.setattr(statements, "issue_insert", broken)
    with pytest.raises(ConnectionError):
        bill()
    assert not Invoice.objects.exists()
    assert not NumberSequence.objects.filter(last_number__gt=0).exists()
    monkeypatch.undo()

    assert bill() == ISSUED
    assert Invoice.objects.get(customer=customer).number == "INV-2026-000001"


def test_a_stale_chunk_read_of_promotional_credit_falls_back_and_never_overdraws(price_book):
    """The chunk read a grant's 500.00; another invoice used 400.00 of it before this account
    was locked. The run's statement would take the grant below zero: the database refuses it,
    nothing is written, and the account is billed the general way with what is left under the
    lock (100.00), its number the first of the series."""
    customer, _ = premium_customer(dau=8000, balance="10000.00")
    grant = promo_grant(customer, "500.00", dt.date(2026, 11, 30))
    prepared = accounts_rate(customer_ids=[customer.pk], period=OCTOBER, issue_at=BILLING_MOMENT)[
        customer.pk
    ]
    assert [g.remaining for g in prepared.promo_grants] == [Decimal("500.00")]
    ledger_record(
        customer=customer,
        kind="promo_use",
        amount=Decimal("-400.00"),
        idempotency_key="another-invoice",
        reference="INV-ELSEWHERE",
        promo_grant=grant,
        now=BILLING_MOMENT,
    )

    outcome = bill_account_rerating(
        customer_id=customer.pk,
        period=OCTOBER,
        now=BILLING_MOMENT,
        prepared=prepared,
        invoice_absent=True,
    )

    assert outcome == ISSUED
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.number == "INV-2026-000001"
    assert invoice.promo_credit_applied == Decimal("100.00")
    uses = LedgerEntry.objects.filter(promo_grant=grant, kind="promo_use")
    assert sorted(use.amount.amount for use in uses) == [Decimal("-400.00"), Decimal("-100.00")]
    [debit] = LedgerEntry.objects.filter(customer=customer, kind="invoice_debit")
    assert debit.amount.amount == Decimal("-5900.00")
    assert ledger_balance(customer=customer) == Decimal("10000.00") + Decimal("500.00") - Decimal(
        "400.00"
    ) - Decimal("6000.00")
