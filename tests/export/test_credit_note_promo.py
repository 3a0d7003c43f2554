"""The credit-note export says how each note was given back: `promo_credit_returned` (as
promotional credit) and `paid_balance_returned` (to the paid balance), in JSON and CSV, from
notes written by the credit-note service."""

from decimal import Decimal

import pytest

from billingsite.clock import Period
from invoices.exports.rollforward import prepayment_rollforward
from tests.accounts.test_promo_credit_credit_notes import _credit, issued_invoice
from tests.export.conftest import csv_rows, json_body

pytestmark = pytest.mark.django_db
CREDIT_NOTES = "/api/v1/accounting/credit-notes/"


@pytest.fixture
def notes(price_book):
    """An 8,400.00 invoice that 3,000.00 of promotional credit paid first, and three notes on
    its premium line: 2,000.00 (all promotional), 1,400.00 (1,000.00 promotional, then paid)
    and 500.00 (the promotion all given back: none)."""
    invoice = issued_invoice(grant="3000.00", balance="20000.00")
    premium = invoice.lines.get(amount=Decimal("6000.00"))
    return [
        _credit(invoice, key, {premium.pk: Decimal(amount)})
        for key, amount in (("cn-1", "2000.00"), ("cn-2", "1400.00"), ("cn-3", "500.00"))
    ]


EXPECTED = [
    # (total, promo_credit_returned, paid_balance_returned)
    ("2000.00", "2000.00", "0.00"),
    ("1400.00", "1000.00", "400.00"),
    ("500.00", "0.00", "500.00"),
]


def test_json_gives_each_notes_promotional_and_paid_parts(accounting, notes):
    response = accounting.get(CREDIT_NOTES)

    assert response.status_code == 200
    results = json_body(response)["results"]
    assert [r["number"] for r in results] == [note.number for note in notes]
    assert [
        (r["total"], r["promo_credit_returned"], r["paid_balance_returned"]) for r in results
    ] == EXPECTED
    # The frozen split, to the cent, as the service wrote it.
    assert [note.promo_credit_returned for note in notes] == [
        Decimal(promo) for _, promo, _ in EXPECTED
    ]


def test_csv_gives_each_notes_promotional_and_paid_parts_on_its_rows(accounting, notes):
    response = accounting.get(CREDIT_NOTES, {"format": "csv"})

    assert response.status_code == 200
    rows = csv_rows(response)
    assert [row["credit_note_number"] for row in rows] == [note.number for note in notes]
    assert [
        (
            row["credit_note_total"],
            row["credit_note_promo_credit_returned"],
            row["credit_note_paid_balance_returned"],
        )
        for row in rows
    ] == EXPECTED


def test_the_paid_parts_sum_to_the_rollforwards_credit_notes(accounting, notes):
    # Issued on 5 November: their paid parts are the month's `credit_note_credit` entries.
    response = accounting.get(
        CREDIT_NOTES, {"issue_date_from": "2026-11-01", "issue_date_to": "2026-11-30"}
    )
    results = json_body(response)["results"]
    rollforward = prepayment_rollforward(period=Period(2026, 11))

    assert sum(Decimal(r["paid_balance_returned"]) for r in results) == Decimal("900.00")
    assert rollforward.total.credit_notes == Decimal("900.00")
