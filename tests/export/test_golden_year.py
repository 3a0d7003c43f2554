"""Golden files of a seeded year (2026): the prepayment roll-forward of June and December, the
roll-forward totals of every month, and October's and December's journals on the
service-month basis.

The history is random but seeded (the same every run): four customers deposit by every
method, are invoiced each month on the 2nd for the month before (debiting their balance),
and now and then receive a credit note, a refund or an adjustment, or promotional credit that
the next invoices consume (by the one rule, `promo_credit_consumption`) and whose rest lapses
on the day after its expiry. Promotional credit draws on its own seeded generator, so the rest
of the history is the one of the files before it existed. Regenerate with

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

from accounts.promo_credit import PromoGrantAvailable, promo_credit_consumption
from billingsite.clock import BILLING_TZ, Period, start_of_day
from invoices.exports.reports import journal_entries, journal_is_balanced
from invoices.exports.rollforward import prepayment_rollforward
from tests.export.conftest import body
from tests.export.factories import Line, credit_note, customer_created, issued_invoice, ledger_entry
from tests.export.test_golden import check, normalise_csv, normalise_json

YEAR = 2026
D0 = Decimal("0.00")
CATEGORIES = ["dau_fee", "value_added", "storage", "sensitive_words", "api_rate_limit"]
METHODS = [None, "bank_transfer", "alipay", "wechat_pay"]


def shanghai(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BILLING_TZ)


def cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


@pytest.fixture
def seeded_year(db):
    rng = random.Random(17)
    promo_rng = random.Random(1717)
    grants: list[dict] = []  # {"entry", "customer", "left"}
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
        for customer in customers:
            if promo_rng.random() < 0.2:
                granted_at = shanghai(YEAR, month, promo_rng.randint(1, 28), 11)
                amount = cents(promo_rng, 100, 4000)
                entry = ledger_entry(
                    customer=customer,
                    kind="promo_grant",
                    amount=str(amount),
                    created_at=granted_at,
                    reason="Seasonal promotion",
                    expires_on=granted_at.date() + dt.timedelta(days=promo_rng.randint(20, 100)),
                )
                grants.append({"entry": entry, "customer": customer, "left": amount})
        # The month's invoices, issued on the 2nd of the next month (December's in January).
        issued_at = shanghai(YEAR + month // 12, month % 12 + 1, 2)
        for customer in customers:
            lines = [
                Line(category, str(cents(rng, 0, 9000)), app_key=f"{customer.external_id}-app")
                for category in rng.sample(CATEGORIES, rng.randint(1, 3))
            ]
            number = number_of("INV", issued_at.year)
            valid = sorted(
                (
                    grant
                    for grant in grants
                    if grant["customer"] == customer
                    and grant["left"] > 0
                    and grant["entry"].created_at <= issued_at
                    and grant["entry"].expires_on >= issued_at.date()
                ),
                key=lambda grant: (grant["entry"].expires_on, grant["entry"].pk),
            )
            consumed = promo_credit_consumption(
                total=sum((Decimal(line.amount) for line in lines), Decimal("0.00")),
                grants=[
                    PromoGrantAvailable(
                        g["entry"].pk, customer.pk, g["entry"].expires_on, g["left"]
                    )
                    for g in valid
                ],
            )
            used = sum((taken for _, taken in consumed), Decimal("0.00"))
            invoice = issued_invoice(
                customer=customer,
                period=Period(YEAR, month),
                lines=lines,
                issued_at=issued_at,
                number=number,
                promo_credit_applied=str(used),
            )
            for available, taken in consumed:
                [grant] = [g for g in valid if g["entry"].pk == available.grant_id]
                grant["left"] -= taken
                ledger_entry(
                    customer=customer,
                    kind="promo_use",
                    amount=str(-taken),
                    created_at=issued_at,
                    reference=number,
                    promo_grant=grant["entry"],
                )
            if invoice.total.amount - used:
                ledger_entry(
                    customer=customer,
                    kind="invoice_debit",
                    amount=str(-(invoice.total.amount - used)),
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
    # What is left of each grant lapses at the start of the day after its expiry.
    for grant in grants:
        if grant["left"] > 0:
            ledger_entry(
                customer=grant["customer"],
                kind="promo_lapse",
                amount=str(-grant["left"]),
                created_at=start_of_day(grant["entry"].expires_on + dt.timedelta(days=1)),
                promo_grant=grant["entry"],
            )


CASES = [
    ("prepayment-rollforward", {"period": "2026-06"}),
    ("prepayment-rollforward", {"period": "2026-12"}),
    ("journal", {"period": "2026-12"}),
    # October's invoices (issued on 2 November) consumed promotional credit: 6610.
    ("journal", {"period": "2026-10"}),
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


def test_seeded_year_posts_promotional_credit_to_its_expense_and_balances(seeded_year):
    """Every month's journal balances; the promotion expense of the year's invoices is the
    promotional credit the ledger says they used (issued a month later: February to next
    January), and grants and lapses post nothing."""
    expense = Decimal("0.00")
    for month in range(1, 13):
        rows = list(journal_entries(period=Period(YEAR, month)))
        assert journal_is_balanced(rows)
        expense += sum((row.debit - row.credit for row in rows if row.account.code == "6610"), D0)
    used = sum(
        (
            prepayment_rollforward(period=period).total.promo_used
            for period in [Period(YEAR, m) for m in range(2, 13)] + [Period(YEAR + 1, 1)]
        ),
        D0,
    )
    assert expense == -used > 0
