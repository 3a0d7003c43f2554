"""Issued invoices and credit notes never change: the database refuses it, whoever asks."""

from decimal import Decimal

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from moneyed import Money

from accounts.selectors import ledger_balance
from invoices.documents.numbering import number_allocate
from invoices.documents.services import credit_note_create, invoice_rate
from invoices.models import (
    BillingRun,
    CreditNote,
    CreditNoteLine,
    ImmutableDocumentError,
    Invoice,
    InvoiceLine,
    NumberSequence,
)
from tests.conftest import is_postgres, postgres_only
from tests.factories import StaffFactory
from tests.invoices.test_credit_notes import LATER, issued_invoice
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db


def refused(action) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        action()


@pytest.mark.parametrize(
    "change",
    [
        {"total": Money(Decimal("1.00"), "CNY")},
        {"number": "INV-2026-999999"},
        {"customer_name": "Someone Else"},
        {"status": "draft"},
        {"issued_at": LATER},
    ],
)
def test_the_database_refuses_to_change_an_issued_invoice(price_book, change):
    invoice = issued_invoice()
    refused(lambda: Invoice.objects.filter(pk=invoice.pk).update(**change))
    invoice.refresh_from_db()
    assert invoice.number == "INV-2026-000001"
    assert invoice.total.amount == Decimal("8400.00")


def test_the_database_refuses_to_change_lines_of_an_issued_invoice(price_book):
    invoice = issued_invoice()
    refused(
        lambda: InvoiceLine.objects.filter(invoice=invoice).update(
            amount=Money(Decimal("0.01"), "CNY")
        )
    )
    refused(lambda: InvoiceLine.objects.filter(invoice=invoice).update(explanation="edited"))
    assert sorted(line.amount.amount for line in invoice.lines.all()) == [
        Decimal("2400.00"),
        Decimal("6000.00"),
    ]


def test_issued_invoices_and_credit_notes_are_never_deleted(price_book):
    invoice = issued_invoice()
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    with pytest.raises(ImmutableDocumentError):
        invoice.delete()
    with pytest.raises(ImmutableDocumentError):
        note.delete()
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    assert CreditNote.objects.filter(pk=note.pk).exists()


def test_credit_notes_never_change(price_book):
    invoice = issued_invoice()
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    refused(lambda: CreditNote.objects.filter(pk=note.pk).update(reason="edited"))
    refused(
        lambda: CreditNoteLine.objects.filter(credit_note=note).update(
            amount=Money(Decimal("1.00"), "CNY")
        )
    )
    note.refresh_from_db()
    assert note.reason == "x"


def test_drafts_are_still_editable_until_issued(price_book):
    customer, _ = premium_customer()
    draft = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    Invoice.objects.filter(pk=draft.pk).update(hold_reason="checking")
    InvoiceLine.objects.filter(invoice=draft).update(explanation="re-explained")
    draft.delete()
    assert not Invoice.objects.filter(pk=draft.pk).exists()


@postgres_only
def test_postgresql_refuses_bulk_deletes_of_issued_documents(price_book):
    invoice = issued_invoice()
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    refused(lambda: CreditNoteLine.objects.filter(credit_note=note).delete())
    refused(lambda: InvoiceLine.objects.filter(invoice=invoice).delete())
    refused(lambda: Invoice.objects.filter(pk=invoice.pk).update(status="draft"))
    assert InvoiceLine.objects.filter(invoice=invoice).count() == 2


# --- What the database refuses beyond updates and deletes (invoices/migrations/0006) ---------


def refused_sql(sql: str, params: list) -> None:
    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    refused(run)


def line_copy(line: InvoiceLine, **changes) -> InvoiceLine:
    fields = {
        field.attname: getattr(line, field.attname)
        for field in InvoiceLine._meta.concrete_fields
        if field.attname != "id"
    }
    return InvoiceLine(**{**fields, **changes})


LINE_INSERT_SQL = (
    "INSERT INTO invoices_invoiceline (invoice_id, position, app_key, app_name, code, category, "
    "plan_code, plan_name, description, quantity, unit_price_currency, unit_price, "
    "amount_currency, amount, first_day, last_day, days, days_in_month, explanation) "
    "SELECT invoice_id, 9, app_key, app_name, code, category, plan_code, plan_name, "
    "description, 1, 'CNY', 50000.00, 'CNY', 50000.00, first_day, last_day, days, "
    "days_in_month, explanation FROM invoices_invoiceline WHERE id = %s"
)


def test_no_line_is_added_to_an_issued_invoice_so_a_credit_note_gives_back_what_it_billed(
    price_book,
):
    invoice = issued_invoice()
    balance_before = ledger_balance(customer=invoice.customer)
    first = invoice.lines.first()
    fifty_thousand = Money(Decimal("50000.00"), "CNY")

    refused(
        lambda: line_copy(
            first, position=9, unit_price=fifty_thousand, amount=fifty_thousand
        ).save()
    )
    refused(lambda: InvoiceLine.objects.bulk_create([line_copy(first, position=9)]))
    refused_sql(LINE_INSERT_SQL, [first.pk])

    assert invoice.lines.count() == 2
    note = credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    assert note.total.amount == Decimal("8400.00")
    assert ledger_balance(customer=invoice.customer) == balance_before + Decimal("8400.00")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.total.amount) == ("credited", Decimal("8400.00"))


def test_a_draft_line_is_never_moved_into_an_issued_invoice(price_book):
    invoice = issued_invoice()
    customer, _ = premium_customer()
    draft = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)
    draft_line = draft.lines.first()

    refused(
        lambda: InvoiceLine.objects.filter(pk=draft_line.pk).update(invoice=invoice, position=9)
    )
    refused_sql(
        "UPDATE invoices_invoiceline SET invoice_id = %s, position = 9 WHERE id = %s",
        [invoice.pk, draft_line.pk],
    )

    assert invoice.lines.count() == 2
    assert InvoiceLine.objects.get(pk=draft_line.pk).invoice_id == draft.pk


def test_a_credit_note_gets_no_line_once_written(price_book):
    invoice = issued_invoice()
    fee = invoice.lines.get(category="dau_fee")
    note = credit_note_create(
        invoice=invoice,
        line_amounts={fee.pk: Decimal("1000.00")},
        reason="goodwill",
        now=LATER,
        idempotency_key="k",
    )
    other = invoice.lines.exclude(pk=fee.pk).get()
    extra = CreditNoteLine(
        credit_note=note,
        invoice_line=other,
        description="more",
        amount=Money(Decimal("2400.00"), "CNY"),
    )

    refused(lambda: extra.save())
    refused_sql(
        "INSERT INTO invoices_creditnoteline (credit_note_id, invoice_line_id, description, "
        "amount_currency, amount) VALUES (%s, %s, 'more', 'CNY', 2400.00)",
        [note.pk, other.pk],
    )

    assert [line.amount.amount for line in note.lines.all()] == [Decimal("1000.00")]


def test_an_issued_invoice_moves_status_only_as_its_credit_notes_say(price_book):
    invoice = issued_invoice()
    for status in ("partially_credited", "credited"):
        refused(lambda status=status: Invoice.objects.filter(pk=invoice.pk).update(status=status))
        refused_sql("UPDATE invoices_invoice SET status = %s WHERE id = %s", [status, invoice.pk])
    fee = invoice.lines.get(category="dau_fee")
    credit_note_create(
        invoice=invoice,
        line_amounts={fee.pk: Decimal("1000.00")},
        reason="goodwill",
        now=LATER,
        idempotency_key="k",
    )
    for status in ("issued", "credited"):
        refused(lambda status=status: Invoice.objects.filter(pk=invoice.pk).update(status=status))
        refused_sql("UPDATE invoices_invoice SET status = %s WHERE id = %s", [status, invoice.pk])

    invoice.refresh_from_db()
    assert invoice.status == "partially_credited"


def test_a_draft_is_never_credited_without_being_issued(price_book):
    customer, _ = premium_customer()
    draft = invoice_rate(customer=customer, period=OCTOBER, now=BILLING_MOMENT)

    numbered = {"number": "INV-2026-999999", "issued_at": LATER}
    refused(lambda: Invoice.objects.filter(pk=draft.pk).update(status="credited", **numbered))
    refused_sql(
        "UPDATE invoices_invoice SET status = 'credited', number = %s, issued_at = %s "
        "WHERE id = %s",
        [numbered["number"], LATER, draft.pk],
    )

    assert Invoice.objects.get(pk=draft.pk).status == "draft"


def other_run_and_user():
    return (
        BillingRun.objects.create(period=OCTOBER.start, created_at=BILLING_MOMENT),
        StaffFactory(),
    )


@pytest.mark.parametrize(
    "column", ["issued_by", "billing_run", "hold_reason", "rated_usage_version", "created_at"]
)
def test_no_other_column_of_an_issued_invoice_changes(price_book, column):
    invoice = issued_invoice()
    run, user = other_run_and_user()
    value = {
        "issued_by": user,
        "billing_run": run,
        "hold_reason": "looked at it",
        "rated_usage_version": 999,
        "created_at": LATER,
    }[column]
    before = Invoice.objects.filter(pk=invoice.pk).values().get()

    refused(lambda: Invoice.objects.filter(pk=invoice.pk).update(**{column: value}))
    db_column = Invoice._meta.get_field(column).column
    raw = value.pk if hasattr(value, "pk") else value
    refused_sql(f"UPDATE invoices_invoice SET {db_column} = %s WHERE id = %s", [raw, invoice.pk])

    assert Invoice.objects.filter(pk=invoice.pk).values().get() == before


def test_a_number_sequence_moves_only_up_by_one(price_book):
    issued_invoice()
    sequence = NumberSequence.objects.get(series="INV", year=2026)
    assert sequence.last_number == 1

    for last_number in (0, 1, 3, F("last_number") + 2):
        refused(
            lambda last_number=last_number: NumberSequence.objects.filter(pk=sequence.pk).update(
                last_number=last_number
            )
        )
    refused(lambda: NumberSequence.objects.filter(pk=sequence.pk).update(year=2027))
    refused_sql("UPDATE invoices_numbersequence SET last_number = 5 WHERE id = %s", [sequence.pk])
    if is_postgres():
        refused(lambda: NumberSequence.objects.filter(pk=sequence.pk).delete())

    sequence.refresh_from_db()
    assert (sequence.series, sequence.year, sequence.last_number) == ("INV", 2026, 1)
    assert number_allocate_in_transaction() == "INV-2026-000002"


def number_allocate_in_transaction() -> str:
    with transaction.atomic():
        return number_allocate(series="INV", year=2026)


def test_invoice_and_credit_note_history_rows_never_change(price_book):
    invoice = issued_invoice()
    credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    for history in (Invoice.history, CreditNote.history):
        rows = history.count()
        assert rows >= 1
        refused(lambda history=history: history.update(history_change_reason="rewritten"))
        refused_sql(
            f"UPDATE {history.model._meta.db_table} SET history_change_reason = 'rewritten'", []
        )
        if is_postgres():
            refused(lambda history=history: history.all().delete())
        assert history.count() == rows
        assert not history.filter(history_change_reason="rewritten").exists()


GUARDED_TABLES = [
    "invoices_invoice",
    "invoices_invoiceline",
    "invoices_creditnote",
    "invoices_creditnoteline",
    "invoices_numbersequence",
    "invoices_historicalinvoice",
    "invoices_historicalcreditnote",
    "accounts_ledgerentry",
    "accounts_historicalcustomer",
    "plans_planprice",
    "plans_addonprice",
    "plans_planchange",
    "plans_addonchange",
    "plans_historicalplanprice",
]


@postgres_only
def test_postgresql_refuses_truncate(price_book):
    invoice = issued_invoice()
    credit_note_create(
        invoice=invoice, line_amounts=None, reason="x", now=LATER, idempotency_key="k"
    )
    models = {model._meta.db_table: model for model in apps.get_models(include_auto_created=True)}
    rows = {table: models[table]._base_manager.count() for table in GUARDED_TABLES}
    assert all(rows.values())

    for table in GUARDED_TABLES:
        refused_sql(f"TRUNCATE {table} CASCADE", [])

    assert {table: models[table]._base_manager.count() for table in GUARDED_TABLES} == rows
