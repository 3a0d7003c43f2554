"""Golden files of a seeded year (2026): the prepayment roll-forward of June and December, the
roll-forward totals of every month, and December's journal on the service-month basis.

The history is random but seeded (the same every run): four customers deposit by every
method, are invoiced each month on the 2nd for the month before (debiting their balance),
and now and then receive a credit note, a refund or an adjustment. Regenerate with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/export/test_golden_year.py

and review the diff: these files are the published contract.
"""

import csv
import datetime as dt
import io
import json
import random
from decimal import Decimal

import pytest

from billingsite.clock import BILLING_TZ, Period
from tests.export.conftest import body
from tests.export.factories import Line, credit_note, customer_created, issued_invoice, ledger_entry
from tests.export.test_golden import check, normalise_csv, normalise_json

YEAR = 2026
CATEGORIES = ["dau_fee", "value_added", "storage", "sensitive_words", "api_rate_limit"]
METHODS = [None, "bank_transfer", "alipay", "wechat_pay"]


def shanghai(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BILLING_TZ)


def cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


@pytest.fixture
def seeded_year(db):
    rng = random.Random(17)
    customers = [
        customer_created(at=shanghai(YEAR, 1, 1, 9), external_id=name, name=title)
        for name, title in (
            ("comet", "Comet Social"),
            ("harbour", "海港科技有限公司"),
            ("lantern", "Lantern Games Ltd"),
            ("nimbus", "Nimbus Cloud Ltd"),
        )
    ]
    # Gapless per series and year, as numbering gives them.
    numbers: dict[str, int] = {}

    def number_of(series: str, year: int) -> str:
        key = f"{series}-{year}"
        numbers[key] = numbers.get(key, 0) + 1
        return f"{key}-{numbers[key]:06d}"

    for month in range(1, 13):
        for customer in customers:
            if rng.random() < 0.6:
                day = rng.randint(1, 28)
                method = rng.choice(METHODS)
                ledger_entry(
                    customer=customer,
                    kind="deposit",
                    amount=str(cents(rng, 500, 30000)),
                    created_at=shanghai(YEAR, month, day, rng.randint(0, 23), rng.randint(0, 59)),
                    reference=f"{(method or 'legacy').upper()} {month:02d}{day:02d}",
                    method=method,
                )
        # The month's invoices, issued on the 2nd of the next month (December's in January).
        issued_at = shanghai(YEAR + month // 12, month % 12 + 1, 2)
        for customer in customers:
            lines = [
                Line(category, str(cents(rng, 0, 9000)), app_key=f"{customer.external_id}-app")
                for category in rng.sample(CATEGORIES, rng.randint(1, 3))
            ]
            number = number_of("INV", issued_at.year)
            invoice = issued_invoice(
                customer=customer,
                period=Period(YEAR, month),
                lines=lines,
                issued_at=issued_at,
                number=number,
            )
            if invoice.total.amount:
                ledger_entry(
                    customer=customer,
                    kind="invoice_debit",
                    amount=str(-invoice.total.amount),
                    created_at=issued_at,
                    reference=number,
                )
            credited = next((line for line in invoice.lines.all() if line.amount), None)
            if credited is not None and rng.random() < 0.2:
                amount = (credited.amount.amount / 2).quantize(Decimal("0.01"))
                note_at = issued_at + dt.timedelta(days=18, hours=10)
                note_number = number_of("CN", note_at.year)
                credit_note(
                    invoice=invoice,
                    amounts={credited.position: str(amount)},
                    issued_at=note_at,
                    number=note_number,
                )
                ledger_entry(
                    customer=customer,
                    kind="credit_note_credit",
                    amount=str(amount),
                    created_at=note_at,
                    reference=note_number,
                )
        for customer in customers:
            roll = rng.random()
            moment = shanghai(YEAR, month, rng.randint(1, 28), 15)
            if roll < 0.08:
                ledger_entry(
                    customer=customer,
                    kind="refund",
                    amount=str(-cents(rng, 10, 500)),
                    created_at=moment,
                    reference="Refund by bank transfer",
                )
            elif roll < 0.2:
                ledger_entry(
                    customer=customer,
                    kind="adjustment",
                    amount=str(cents(rng, -200, 200) or Decimal("1.00")),
                    created_at=moment,
                    reason="Goodwill or bank fee",
                )


CASES = [
    ("prepayment-rollforward", {"period": "2026-06"}),
    ("prepayment-rollforward", {"period": "2026-12"}),
    ("journal", {"period": "2026-12"}),
]


@pytest.mark.parametrize("resource,query", CASES)
def test_seeded_year_matches_golden_files(accounting, seeded_year, resource, query):
    url = f"/api/v1/accounting/{resource}/"
    response = accounting.get(url, query)
    assert response.status_code == 200
    name = f"year-{resource}-{query['period']}"
    check(f"{name}.json", normalise_json(resource, json.loads(body(response))))
    response = accounting.get(url, {**query, "format": "csv"})
    assert response.status_code == 200
    check(f"{name}.csv", normalise_csv(resource, body(response).decode("utf-8")))


def test_seeded_year_rolls_forward_month_to_month(accounting, seeded_year):
    """Each month opens where the one before closed; the totals of the year in one file."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    previous_closing = "0.00"
    for month in range(1, 13):
        period = f"{YEAR}-{month:02d}"
        response = accounting.get(
            "/api/v1/accounting/prepayment-rollforward/", {"period": period, "format": "csv"}
        )
        rows = list(csv.reader(io.StringIO(body(response).decode("utf-8"), newline="")))
        header, total = rows[0], dict(zip(rows[0], rows[-1], strict=True))
        if month == 1:
            writer.writerow(["period", *header[3:]])
        assert total["row"] == "total"
        assert total["opening_balance"] == previous_closing
        previous_closing = total["closing_balance"]
        writer.writerow([period, *rows[-1][3:]])
    check("year-prepayment-rollforward-2026-totals.csv", out.getvalue())
