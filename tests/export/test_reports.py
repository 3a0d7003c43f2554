"""Revenue summary (reconciles to the cent with the period's invoices minus its credit notes) and
journal (balanced per document, posted on document dates)."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billingsite.clock import BILLING_TZ, Period
from invoices.exports.reports import OUTPUT_VAT, journal_entries, revenue_summary
from invoices.models import Invoice, InvoiceLine
from plans.rating.tax import DEFAULT_VAT
from tests.export.conftest import csv_rows, json_body
from tests.export.factories import (
    ISSUED_AT,
    OCTOBER,
    Line,
    credit_note,
    issued_invoice,
    ledger_entry,
)
from tests.factories import CustomerFactory
from tests.hypothesis_budget import examples

# Every category, always; contracted discounts only in a period that has some (none here).
CATEGORIES = [
    category.value for category in InvoiceLine.Category if category != InvoiceLine.Category.DISCOUNT
]
PLANS = ["free", "premium", "ultimate"]


def shanghai(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BILLING_TZ)


def decimal(text: str) -> Decimal:
    return Decimal(text)


def all_pages(client, url, query) -> list[dict]:
    rows, response = [], client.get(url, {**query, "page_size": 1000})
    while True:
        payload = json_body(response)
        rows += payload["results"]
        if not payload["next"]:
            return rows
        response = client.get(payload["next"])


# --- Revenue summary ----------------------------------------------------------------------

cents = st.integers(min_value=0, max_value=2_000_000).map(lambda c: Decimal(c) / 100)
line_strategy = st.tuples(st.sampled_from(CATEGORIES), st.sampled_from(PLANS), cents)
invoice_strategy = st.fixed_dictionaries(
    {
        "period": st.sampled_from([Period(2026, 9), OCTOBER, Period(2026, 11)]),
        "status": st.sampled_from(["issued", "issued", "draft", "held"]),
        "lines": st.lists(line_strategy, min_size=1, max_size=6),
        # For each line, the share of it credited (0 = not credited), and in how many notes.
        "credit_shares": st.lists(st.sampled_from([0, 0, 1, 3, 10]), min_size=6, max_size=6),
        "notes": st.integers(min_value=1, max_value=2),
        # Issued with a VAT split (6% included) or before VAT (gross only).
        "vat": st.sampled_from([None, DEFAULT_VAT]),
    }
)


def build_month(spec: list[dict]) -> None:
    for item in spec:
        lines = [
            Line(category, f"{amount:.2f}", plan_code=plan)
            for category, plan, amount in item["lines"]
        ]
        invoice = issued_invoice(
            period=item["period"], lines=lines, status=item["status"], vat=item.get("vat")
        )
        if item["status"] != "issued":
            continue
        credits = {}
        for position, (share, line) in enumerate(
            zip(item["credit_shares"], lines, strict=False), 1
        ):
            amount = (Decimal(line.amount) * share / 10).quantize(Decimal("0.01"))
            if share and amount > 0:
                credits[position] = amount
        # Credit in one or two notes, issued in November and in December: both belong to the
        # billing period of the invoice.
        notes = [dict(list(credits.items())[i :: item["notes"]]) for i in range(item["notes"])]
        for n, amounts in enumerate(notes):
            if amounts:
                credit_note(
                    invoice=invoice,
                    amounts={k: str(v) for k, v in amounts.items()},
                    issued_at=shanghai(2026, 11 + n, 20),
                )


@pytest.mark.django_db
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=st.lists(invoice_strategy, min_size=0, max_size=6))
def test_revenue_summary_reconciles_to_the_cent(accounting, spec):
    with transaction.atomic():
        build_month(spec)
        summary = revenue_summary(period=OCTOBER)
        invoices = all_pages(accounting, "/api/v1/accounting/invoices/", {"period": "2026-10"})
        notes = all_pages(accounting, "/api/v1/accounting/credit-notes/", {"period": "2026-10"})
        api = json_body(
            accounting.get("/api/v1/accounting/revenue-summary/", {"period": "2026-10"})
        )
        transaction.set_rollback(True)

    billed = sum((decimal(row["total"]) for row in invoices), Decimal("0.00"))
    credited = sum((decimal(row["total"]) for row in notes), Decimal("0.00"))
    # Independently of the database: what the spec says October's issued invoices bill.
    expected_billed = sum(
        (
            amount
            for item in spec
            if item["period"] == OCTOBER and item["status"] == "issued"
            for _, _, amount in item["lines"]
        ),
        Decimal("0.00"),
    )
    assert billed == expected_billed
    assert summary.billed == billed
    assert summary.credited == credited
    assert summary.net == billed - credited
    assert summary.invoice_count == len(invoices)
    assert summary.credit_note_count == len(notes)
    for breakdown in (summary.by_category, summary.by_plan):
        assert sum((line.billed for line in breakdown), Decimal("0.00")) == billed
        assert sum((line.credited for line in breakdown), Decimal("0.00")) == credited
        assert sum((line.net for line in breakdown), Decimal("0.00")) == billed - credited
    # Per category, against the lines of the exported documents.
    billed_by_category = defaultdict(Decimal)
    for row in invoices:
        for line in row["lines"]:
            billed_by_category[line["category"]] += decimal(line["amount"])
    credited_by_category = defaultdict(Decimal)
    for row in notes:
        for line in row["lines"]:
            credited_by_category[line["category"]] += decimal(line["amount"])
    assert [line.key for line in summary.by_category] == CATEGORIES
    for line in summary.by_category:
        assert line.billed == billed_by_category[line.key]
        assert line.credited == credited_by_category[line.key]
    # The API says the same, as two-decimal strings.
    assert api["billed"] == f"{billed:.2f}"
    assert api["credited"] == f"{credited:.2f}"
    assert api["net"] == f"{billed - credited:.2f}"
    assert [row["net"] for row in api["by_category"]] == [
        f"{line.net:.2f}" for line in summary.by_category
    ]


@pytest.mark.django_db
def test_revenue_summary_of_a_mixed_month(accounting):
    """A hand-checked month: two customers, three plans, a partial and a full credit note, a
    draft and a held invoice and a September invoice that must not count."""
    a = issued_invoice(
        lines=[
            Line("dau_fee", "9000.00"),
            Line("value_added", "2000.00"),
            Line("sensitive_words", "2400.00", quantity=2),
        ]
    )
    b = issued_invoice(
        lines=[
            Line("dau_fee", "17000.00", plan_code="ultimate"),
            Line("value_added", "0.00", plan_code="ultimate"),
        ]
    )
    issued_invoice(lines=[Line("dedicated_service", "50000.00")], status=Invoice.Status.HELD)
    issued_invoice(lines=[Line("dau_fee", "6000.00")], status=Invoice.Status.DRAFT)
    issued_invoice(period=Period(2026, 9), lines=[Line("desktop", "5000.00")])
    credit_note(invoice=a, amounts={3: "1200.00"})
    credit_note(invoice=b, issued_at=shanghai(2026, 12, 15))

    summary = json_body(
        accounting.get("/api/v1/accounting/revenue-summary/", {"period": "2026-10"})
    )
    assert summary["invoice_count"] == 2
    assert summary["credit_note_count"] == 2
    assert (summary["billed"], summary["credited"], summary["net"]) == (
        "30400.00",
        "18200.00",
        "12200.00",
    )
    by_category = {
        row["key"]: (row["billed"], row["credited"], row["net"]) for row in summary["by_category"]
    }
    assert by_category == {
        "dau_fee": ("26000.00", "17000.00", "9000.00"),
        "value_added": ("2000.00", "0.00", "2000.00"),
        "storage": ("0.00", "0.00", "0.00"),
        "sensitive_words": ("2400.00", "1200.00", "1200.00"),
        "api_rate_limit": ("0.00", "0.00", "0.00"),
        "desktop": ("0.00", "0.00", "0.00"),
        "dedicated_service": ("0.00", "0.00", "0.00"),
    }
    assert summary["by_plan"] == [
        {
            "key": "premium",
            "label": "Premium",
            "billed": "13400.00",
            "credited": "1200.00",
            "net": "12200.00",
        },
        {
            "key": "ultimate",
            "label": "Ultimate",
            "billed": "17000.00",
            "credited": "17000.00",
            "net": "0.00",
        },
    ]
    rows = csv_rows(
        accounting.get(
            "/api/v1/accounting/revenue-summary/", {"period": "2026-10", "format": "csv"}
        )
    )
    assert rows[-1] == {
        "dimension": "total",
        "key": "",
        "label": "Total",
        "billed": "30400.00",
        "credited": "18200.00",
        "net": "12200.00",
        "currency": "CNY",
    }
    assert [row["key"] for row in rows if row["dimension"] == "plan"] == ["premium", "ultimate"]
    # An empty month is all zeros, not an error.
    empty = json_body(accounting.get("/api/v1/accounting/revenue-summary/", {"period": "2027-01"}))
    assert (empty["billed"], empty["net"], empty["by_plan"]) == ("0.00", "0.00", [])
    assert len(empty["by_category"]) == 7


# --- Journal ------------------------------------------------------------------------------


def balances(rows) -> dict[str, Decimal]:
    totals = defaultdict(Decimal)
    for row in rows:
        totals[row["document_number"]] += decimal(row["debit"]) - decimal(row["credit"])
    return totals


@pytest.fixture
def november(db):
    """Documents dated in November 2026 (and a few outside it)."""
    alpha = CustomerFactory(external_id="alpha")
    beta = CustomerFactory(external_id="beta")
    invoice = issued_invoice(
        customer=alpha,
        number="INV-2026-000010",
        lines=[
            Line("dau_fee", "6000.00"),
            Line("dau_fee", "3000.00", app_key="app-two"),
            Line("value_added", "0.00"),
            Line("storage", "1200.00"),
        ],
    )
    issued_invoice(
        customer=beta, number="INV-2026-000011", lines=[Line("dedicated_service", "40000.00")]
    )
    # Not posted in November: a draft, and the September invoice issued on 2 October.
    issued_invoice(customer=CustomerFactory(), status=Invoice.Status.DRAFT)
    issued_invoice(customer=alpha, period=Period(2026, 9), issued_at=shanghai(2026, 10, 2))
    credit_note(
        invoice=invoice,
        amounts={1: "500.00", 4: "1200.00"},
        number="CN-2026-000004",
        issued_at=shanghai(2026, 11, 20, 10),
    )
    ledger_entry(
        customer=alpha,
        kind="deposit",
        amount="20000.00",
        created_at=shanghai(2026, 11, 1, 0, 0),
        reference="ICBC-1",
    )
    ledger_entry(
        customer=alpha,
        kind="invoice_debit",
        amount="-10200.00",
        created_at=ISSUED_AT,
        reference="INV-2026-000010",
    )
    ledger_entry(
        customer=beta, kind="refund", amount="-800.00", created_at=shanghai(2026, 11, 25, 16)
    )
    ledger_entry(
        customer=beta,
        kind="adjustment",
        amount="150.00",
        created_at=shanghai(2026, 11, 26),
        reason="Goodwill",
    )
    ledger_entry(
        customer=beta,
        kind="adjustment",
        amount="-50.00",
        created_at=shanghai(2026, 11, 27),
        reason="Bank fee",
    )
    # 23:59 on 31 October is October, whatever UTC says.
    ledger_entry(
        customer=beta, kind="deposit", amount="70.00", created_at=shanghai(2026, 10, 31, 23, 59)
    )
    return alpha, beta


def test_journal_postings_by_issue_date(accounting, november):
    response = accounting.get(
        "/api/v1/accounting/journal/", {"period": "2026-11", "basis": "issue_date"}
    )
    assert response.status_code == 200
    assert response.streaming
    journal = json_body(response)
    assert (journal["period"], journal["basis"], journal["currency"]) == (
        "2026-11",
        "issue_date",
        "CNY",
    )
    rows = [
        (r["date"], r["document_number"], r["account_code"], r["account"], r["debit"], r["credit"])
        for r in journal["entries"]
    ]
    le = {
        r["document_type"]: r["document_number"]
        for r in journal["entries"]
        if r["document_number"].startswith("LE-")
    }
    adjustments = [
        r["document_number"] for r in journal["entries"] if r["document_type"] == "adjustment"
    ]
    assert rows == [
        ("2026-11-01", le["deposit"], "1100", "Bank", "20000.00", "0.00"),
        ("2026-11-01", le["deposit"], "2200", "Customer prepaid balance", "0.00", "20000.00"),
        ("2026-11-02", "INV-2026-000010", "2200", "Customer prepaid balance", "10200.00", "0.00"),
        ("2026-11-02", "INV-2026-000010", "4010", "Revenue: DAU fees", "0.00", "9000.00"),
        ("2026-11-02", "INV-2026-000010", "4030", "Revenue: Storage", "0.00", "1200.00"),
        ("2026-11-02", "INV-2026-000011", "2200", "Customer prepaid balance", "40000.00", "0.00"),
        ("2026-11-02", "INV-2026-000011", "4070", "Revenue: Dedicated service", "0.00", "40000.00"),
        ("2026-11-20", "CN-2026-000004", "4010", "Revenue: DAU fees", "500.00", "0.00"),
        ("2026-11-20", "CN-2026-000004", "4030", "Revenue: Storage", "1200.00", "0.00"),
        ("2026-11-20", "CN-2026-000004", "2200", "Customer prepaid balance", "0.00", "1700.00"),
        ("2026-11-25", le["refund"], "2200", "Customer prepaid balance", "800.00", "0.00"),
        ("2026-11-25", le["refund"], "1100", "Bank", "0.00", "800.00"),
        ("2026-11-26", adjustments[0], "6900", "Balance adjustments", "150.00", "0.00"),
        ("2026-11-26", adjustments[0], "2200", "Customer prepaid balance", "0.00", "150.00"),
        ("2026-11-27", adjustments[2], "2200", "Customer prepaid balance", "50.00", "0.00"),
        ("2026-11-27", adjustments[2], "6900", "Balance adjustments", "0.00", "50.00"),
    ]
    assert set(balances(journal["entries"]).values()) == {Decimal("0.00")}
    invoice_row = journal["entries"][2]
    assert invoice_row["billing_period"] == "2026-10"
    assert invoice_row["customer_external_id"] == "alpha"
    assert invoice_row["document_type"] == "invoice"
    # The CSV carries the same rows.
    csv_response = accounting.get(
        "/api/v1/accounting/journal/",
        {"period": "2026-11", "basis": "issue_date", "format": "csv"},
    )
    assert "journal-2026-11-issue_date.csv" in csv_response["Content-Disposition"]
    assert csv_rows(csv_response) == journal["entries"]


def test_journal_recognises_invoices_in_their_service_month(accounting, november):
    """The default basis: October's invoices on 31 October, against the prepaid balance; the
    November credit note reverses revenue in November, naming October."""
    october = json_body(accounting.get("/api/v1/accounting/journal/", {"period": "2026-10"}))
    assert october["basis"] == "service_month"
    assert [
        (
            r["date"],
            r["document_number"],
            r["billing_period"],
            r["account_code"],
            r["debit"],
            r["credit"],
        )
        for r in october["entries"]
    ] == [
        ("2026-10-31", "INV-2026-000010", "2026-10", "2200", "10200.00", "0.00"),
        ("2026-10-31", "INV-2026-000010", "2026-10", "4010", "0.00", "9000.00"),
        ("2026-10-31", "INV-2026-000010", "2026-10", "4030", "0.00", "1200.00"),
        ("2026-10-31", "INV-2026-000011", "2026-10", "2200", "40000.00", "0.00"),
        ("2026-10-31", "INV-2026-000011", "2026-10", "4070", "0.00", "40000.00"),
        ("2026-10-31", october["entries"][5]["document_number"], "", "1100", "70.00", "0.00"),
        ("2026-10-31", october["entries"][5]["document_number"], "", "2200", "0.00", "70.00"),
    ]
    november_rows = json_body(
        accounting.get(
            "/api/v1/accounting/journal/", {"period": "2026-11", "basis": "service_month"}
        )
    )["entries"]
    assert {r["document_type"] for r in november_rows} == {
        "deposit",
        "credit_note",
        "refund",
        "adjustment",
    }
    credit = [r for r in november_rows if r["document_type"] == "credit_note"]
    assert [(r["date"], r["billing_period"], r["debit"], r["credit"]) for r in credit] == [
        ("2026-11-20", "2026-10", "500.00", "0.00"),
        ("2026-11-20", "2026-10", "1200.00", "0.00"),
        ("2026-11-20", "2026-10", "0.00", "1700.00"),
    ]
    # September's invoice (issued on 2 October) belongs to September.
    september = json_body(accounting.get("/api/v1/accounting/journal/", {"period": "2026-09"}))
    assert [(r["date"], r["billing_period"]) for r in september["entries"]] == [
        ("2026-09-30", "2026-09"),
        ("2026-09-30", "2026-09"),
    ]


def test_journal_refuses_an_unknown_basis(accounting, november):
    response = accounting.get("/api/v1/accounting/journal/", {"period": "2026-10", "basis": "cash"})
    assert response.status_code == 400
    assert json_body(response)["field"] == "basis"


def test_journal_is_by_posting_month(accounting, november):
    october = json_body(
        accounting.get("/api/v1/accounting/journal/", {"period": "2026-10", "basis": "issue_date"})
    )["entries"]
    # The September invoice issued on 2 October and the late-evening October deposit.
    assert [(r["date"], r["document_type"], r["billing_period"]) for r in october] == [
        ("2026-10-02", "invoice", "2026-09"),
        ("2026-10-02", "invoice", "2026-09"),
        ("2026-10-31", "deposit", ""),
        ("2026-10-31", "deposit", ""),
    ]
    assert (
        json_body(
            accounting.get(
                "/api/v1/accounting/journal/", {"period": "2026-12", "basis": "issue_date"}
            )
        )["entries"]
        == []
    )


@pytest.mark.django_db
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=st.lists(invoice_strategy, min_size=1, max_size=5))
def test_journal_balances_per_document_and_matches_the_documents(spec):
    """Whatever the month holds, every document balances, its rows are consecutive, and the
    postings of a billing period's documents net to the revenue summary."""
    with transaction.atomic():
        build_month(spec)
        by_issue_date = [
            row
            for month in (11, 12)
            for row in journal_entries(period=Period(2026, month), basis="issue_date")
        ]
        by_service_month = [
            row for month in (10, 11, 12) for row in journal_entries(period=Period(2026, month))
        ]
        summary = revenue_summary(period=OCTOBER)
        transaction.set_rollback(True)

    for rows in (by_issue_date, by_service_month):
        check_journal_against_summary(rows, summary)
    # Both bases post October's documents with the same amounts, only on other dates.
    assert sorted(
        (row.document_number, row.account.code, row.debit, row.credit)
        for row in by_service_month
        if row.billing_period == "2026-10"
    ) == sorted(
        (row.document_number, row.account.code, row.debit, row.credit)
        for row in by_issue_date
        if row.billing_period == "2026-10"
    )


def check_journal_against_summary(rows, summary) -> None:
    seen, previous = set(), None
    for row in rows:
        assert (row.debit == 0) != (row.credit == 0), "one side per row"
        assert row.debit >= 0 and row.credit >= 0
        if row.document_number != previous:
            assert row.document_number not in seen, "a document's rows are split"
            seen.add(row.document_number)
            previous = row.document_number
    totals = defaultdict(Decimal)
    for row in rows:
        totals[row.document_number] += row.debit - row.credit
    assert set(totals.values()) <= {Decimal("0.00")}
    assert [row.date for row in rows] == sorted(row.date for row in rows)
    # October's invoices are posted on 2 November (issue date) or 31 October (service month);
    # their credit notes in November and December: revenue accounts (at the net) and output
    # VAT of those documents net to the summary (gross).
    october_revenue = sum(
        (
            row.credit - row.debit
            for row in rows
            if row.billing_period == "2026-10"
            and (row.account.code.startswith("40") or row.account == OUTPUT_VAT)
        ),
        Decimal("0.00"),
    )
    assert october_revenue == summary.net
