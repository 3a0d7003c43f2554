"""Cursor pagination: following `next` visits every row exactly once even while new documents
are issued (and old ones credited) between page fetches."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billingsite.clock import BILLING_TZ, Period
from invoices.exports.views import ExportCursorPagination
from tests.export.conftest import json_body
from tests.export.factories import ISSUED_AT, Line, credit_note, issued_invoice, ledger_entry
from tests.factories import CustomerFactory


def follow(client, url, query, between_pages=lambda page: None) -> list[list[dict]]:
    """Fetch every page through the `next` links, calling `between_pages(n)` after page n."""
    pages = []
    response = client.get(url, query)
    while True:
        assert response.status_code == 200, response.content
        payload = json_body(response)
        pages.append(payload["results"])
        if payload["next"] is None:
            return pages
        between_pages(len(pages))
        response = client.get(payload["next"])


@pytest.mark.django_db
def test_no_invoice_lost_or_repeated_while_new_ones_arrive(accounting):
    originals = [issued_invoice() for _ in range(7)]
    arrivals = []

    def issue_more(page_number):
        # Another customer is billed: one invoice for this period and one late invoice for an
        # earlier period, issued earlier in the day; and a page-1 invoice gets credited.
        arrivals.append(issued_invoice())
        arrivals.append(
            issued_invoice(period=Period(2026, 9), issued_at=ISSUED_AT - dt.timedelta(days=30))
        )
        if page_number == 1:
            credit_note(invoice=originals[0])

    pages = follow(
        accounting, "/api/v1/accounting/invoices/", {"page_size": 3}, between_pages=issue_more
    )
    seen = [row["id"] for page in pages for row in page]
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert seen[:7] == [invoice.pk for invoice in originals]
    # Everything issued while paging shows up once, after the rows that were there before.
    assert seen[7:] == [invoice.pk for invoice in arrivals]
    assert all(len(page) <= 3 for page in pages)


@pytest.mark.django_db
def test_filtered_pages_with_inserts(accounting):
    """New rows outside the filter never shift a filtered page."""
    october = [issued_invoice() for _ in range(5)]
    pages = follow(
        accounting,
        "/api/v1/accounting/invoices/",
        {"page_size": 2, "period": "2026-10"},
        between_pages=lambda n: issued_invoice(period=Period(2026, 9)),
    )
    assert [row["id"] for page in pages for row in page] == [invoice.pk for invoice in october]


@pytest.mark.django_db
def test_ledger_pages_with_inserts(accounting):
    customer = CustomerFactory()
    moment = dt.datetime(2026, 10, 5, 9, tzinfo=BILLING_TZ)
    entries = [
        ledger_entry(customer=customer, kind="deposit", amount=f"{n}00.00", created_at=moment)
        for n in range(1, 6)
    ]
    added = []

    def deposit(_):
        # Recorded later but stamped earlier (a bank statement entered late): still appended.
        added.append(
            ledger_entry(
                customer=customer,
                kind="deposit",
                amount="1.00",
                created_at=moment - dt.timedelta(days=3),
            )
        )

    pages = follow(
        accounting, "/api/v1/accounting/ledger-entries/", {"page_size": 2}, between_pages=deposit
    )
    seen = [row["id"] for page in pages for row in page]
    assert seen == [entry.pk for entry in entries + added]


@pytest.mark.django_db
def test_previous_link_returns_the_same_page(accounting):
    invoices = [issued_invoice() for _ in range(5)]
    first = json_body(accounting.get("/api/v1/accounting/invoices/", {"page_size": 2}))
    second = json_body(accounting.get(first["next"]))
    back = json_body(accounting.get(second["previous"]))
    assert [row["id"] for row in back["results"]] == [invoice.pk for invoice in invoices[:2]]
    assert [row["id"] for row in second["results"]] == [invoice.pk for invoice in invoices[2:4]]


@pytest.mark.django_db
def test_page_size_default_and_cap(accounting):

    customer = CustomerFactory()
    moment = dt.datetime(2026, 10, 5, 9, tzinfo=BILLING_TZ)
    for _ in range(ExportCursorPagination.page_size + 1):
        ledger_entry(customer=customer, kind="deposit", amount="1.00", created_at=moment)
    default = json_body(accounting.get("/api/v1/accounting/ledger-entries/"))
    assert len(default["results"]) == 100
    assert default["next"] is not None
    capped = json_body(accounting.get("/api/v1/accounting/ledger-entries/", {"page_size": 5000}))
    assert len(capped["results"]) == 101
    assert capped["next"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["invoices", "credit-notes", "ledger-entries", "customers"])
def test_a_page_costs_the_same_queries_however_many_rows(accounting, resource):

    def queries_for_one_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = accounting.get(f"/api/v1/accounting/{resource}/", {"page_size": 1000})
            assert response.status_code == 200
        return len(queries)

    def add(count):
        for _ in range(count):
            invoice = issued_invoice(lines=[Line("dau_fee", "6000.00"), Line("storage", "1000.00")])
            credit_note(invoice=invoice, amounts={2: "100.00"})
            ledger_entry(
                customer=invoice.customer, kind="deposit", amount="50.00", created_at=ISSUED_AT
            )

    add(2)
    few = queries_for_one_page()
    add(20)
    assert queries_for_one_page() == few
