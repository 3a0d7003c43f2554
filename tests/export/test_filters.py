"""Filters of every export endpoint, in JSON and CSV, and the 400s for bad values."""

import datetime as dt

import pytest

from accounts.models import Customer
from billingsite.clock import BILLING_TZ, Period
from invoices.models import Invoice
from tests.export.conftest import csv_rows, json_body
from tests.export.factories import (
    ISSUED_AT,
    Line,
    credit_note,
    customer_created,
    issued_invoice,
    ledger_entry,
)

URL = "/api/v1/accounting/{}/"


def shanghai(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BILLING_TZ)


def numbers(client, resource: str, **query) -> list[str]:
    response = client.get(URL.format(resource), query)
    assert response.status_code == 200, response.content
    return [row["number"] for row in json_body(response)["results"]]


def csv_numbers(client, resource: str, column: str, **query) -> list[str]:
    response = client.get(URL.format(resource), {**query, "format": "csv"})
    assert response.status_code == 200
    # One row per line: keep each document once, in order.
    return list(dict.fromkeys(row[column] for row in csv_rows(response)))


@pytest.fixture
def documents(db):
    alpha = customer_created(at=shanghai(2026, 1, 5), external_id="alpha", name="Alpha Ltd")
    beta = customer_created(at=shanghai(2026, 2, 5), external_id="beta", name="Beta Ltd")
    september = issued_invoice(
        customer=alpha,
        period=Period(2026, 9),
        issued_at=shanghai(2026, 10, 2),
        number="INV-2026-000001",
    )
    alpha_october = issued_invoice(
        customer=alpha,
        lines=[Line("dau_fee", "6000.00"), Line("storage", "1000.00")],
        number="INV-2026-000002",
    )
    beta_october = issued_invoice(customer=beta, number="INV-2026-000003")
    # Credited in full on 12 November: its status and updated_at change.
    full_credit = credit_note(
        invoice=beta_october, issued_at=shanghai(2026, 11, 12, 9), number="CN-2026-000001"
    )
    partial_credit = credit_note(
        invoice=alpha_october,
        amounts={2: "250.00"},
        issued_at=shanghai(2026, 12, 3, 9),
        number="CN-2026-000002",
    )
    # Never exported.
    issued_invoice(
        customer=customer_created(at=shanghai(2026, 1, 1), external_id="gamma"),
        status=Invoice.Status.DRAFT,
    )
    issued_invoice(
        customer=customer_created(at=shanghai(2026, 1, 1), external_id="delta"),
        status=Invoice.Status.HELD,
    )
    return {
        "alpha": alpha,
        "beta": beta,
        "september": september,
        "alpha_october": alpha_october,
        "beta_october": beta_october,
        "full_credit": full_credit,
        "partial_credit": partial_credit,
    }


def test_invoice_filters(accounting, documents):
    everything = ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]
    assert numbers(accounting, "invoices") == everything
    assert numbers(accounting, "invoices", period="2026-10") == everything[1:]
    assert numbers(accounting, "invoices", period="2026-09") == everything[:1]
    assert numbers(accounting, "invoices", period="2026-11") == []
    assert numbers(accounting, "invoices", status="credited") == ["INV-2026-000003"]
    assert numbers(accounting, "invoices", status=["issued", "partially_credited"]) == [
        "INV-2026-000001",
        "INV-2026-000002",
    ]
    assert numbers(accounting, "invoices", customer="alpha") == everything[:2]
    assert numbers(accounting, "invoices", customer="nobody") == []
    assert numbers(accounting, "invoices", number="INV-2026-000002") == ["INV-2026-000002"]
    assert numbers(accounting, "invoices", issue_date_from="2026-11-02") == everything[1:]
    assert numbers(accounting, "invoices", issue_date_to="2026-11-01") == everything[:1]
    assert (
        numbers(accounting, "invoices", issue_date_from="2026-10-02", issue_date_to="2026-10-02")
        == everything[:1]
    )
    # Credited after issue: the credit notes bumped updated_at of both October invoices.
    assert numbers(accounting, "invoices", updated_since="2026-11-12T09:00:00+08:00") == [
        "INV-2026-000002",
        "INV-2026-000003",
    ]
    assert numbers(accounting, "invoices", updated_since="2026-12-01T00:00:00+08:00") == [
        "INV-2026-000002"
    ]
    # A time without an offset is Asia/Shanghai time; "Z" is UTC (01:00 UTC = 09:00 +08:00).
    assert numbers(accounting, "invoices", updated_since="2026-12-03T09:00:01") == []
    assert numbers(accounting, "invoices", updated_since="2026-12-03T01:00:00Z") == [
        "INV-2026-000002"
    ]
    # Filters combine.
    assert numbers(accounting, "invoices", period="2026-10", customer="alpha") == [
        "INV-2026-000002"
    ]


def test_drafts_and_held_invoices_are_never_exported(accounting, documents):
    exported = json_body(accounting.get(URL.format("invoices"), {"page_size": 1000}))["results"]
    assert Invoice.objects.count() == 5
    assert {row["status"] for row in exported} <= {"issued", "partially_credited", "credited"}
    assert len(exported) == 3
    csv_invoice_ids = {
        row["invoice_id"]
        for row in csv_rows(accounting.get(URL.format("invoices"), {"format": "csv"}))
    }
    assert csv_invoice_ids == {str(row["id"]) for row in exported}
    # Asking for them is an error, not an empty list.
    response = accounting.get(URL.format("invoices"), {"status": "draft"})
    assert response.status_code == 400
    assert json_body(response)["field"] == "status"
    assert "status" in json_body(response)["errors"]


def test_csv_honours_the_same_filters(accounting, documents):
    assert csv_numbers(accounting, "invoices", "invoice_number", period="2026-10") == [
        "INV-2026-000002",
        "INV-2026-000003",
    ]
    assert csv_numbers(accounting, "invoices", "invoice_number", customer="beta") == [
        "INV-2026-000003"
    ]
    assert csv_numbers(
        accounting, "credit-notes", "credit_note_number", updated_since="2026-12-01T00:00:00+08:00"
    ) == ["CN-2026-000002"]


def test_credit_note_filters(accounting, documents):
    both = ["CN-2026-000001", "CN-2026-000002"]
    assert numbers(accounting, "credit-notes") == both
    # The period of a credit note is the billing period of the invoice it credits.
    assert numbers(accounting, "credit-notes", period="2026-10") == both
    assert numbers(accounting, "credit-notes", period="2026-12") == []
    assert numbers(accounting, "credit-notes", customer="alpha") == ["CN-2026-000002"]
    assert numbers(accounting, "credit-notes", invoice="INV-2026-000003") == ["CN-2026-000001"]
    assert numbers(accounting, "credit-notes", number="CN-2026-000002") == ["CN-2026-000002"]
    assert numbers(accounting, "credit-notes", issue_date_from="2026-12-01") == both[1:]
    assert numbers(accounting, "credit-notes", issue_date_to="2026-11-30") == both[:1]
    assert numbers(accounting, "credit-notes", updated_since="2026-11-12T09:00:00+08:00") == both
    assert numbers(accounting, "credit-notes", updated_since="2026-11-12T09:00:01+08:00") == [
        "CN-2026-000002"
    ]


def test_ledger_entry_filters(accounting, documents):
    alpha, beta = documents["alpha"], documents["beta"]
    # 23:59 on 31 October in Shanghai is still October; 00:00 on 1 November is not.
    october_deposit = ledger_entry(
        customer=alpha, kind="deposit", amount="9000.00", created_at=shanghai(2026, 10, 31, 23, 59)
    )
    november_deposit = ledger_entry(
        customer=beta, kind="deposit", amount="500.00", created_at=shanghai(2026, 11, 1)
    )
    debit = ledger_entry(
        customer=alpha,
        kind="invoice_debit",
        amount="-7000.00",
        created_at=ISSUED_AT,
        reference="INV-2026-000002",
    )
    refund = ledger_entry(
        customer=beta, kind="refund", amount="-500.00", created_at=shanghai(2026, 11, 20, 15)
    )

    def ids(**query):
        response = accounting.get(URL.format("ledger-entries"), query)
        assert response.status_code == 200
        return [row["id"] for row in json_body(response)["results"]]

    assert ids() == [october_deposit.pk, november_deposit.pk, debit.pk, refund.pk]
    assert ids(period="2026-10") == [october_deposit.pk]
    assert ids(period="2026-11") == [november_deposit.pk, debit.pk, refund.pk]
    assert ids(kind="deposit") == [october_deposit.pk, november_deposit.pk]
    assert ids(kind=["refund", "invoice_debit"]) == [debit.pk, refund.pk]
    assert ids(customer="beta") == [november_deposit.pk, refund.pk]
    assert ids(date_from="2026-11-01", date_to="2026-11-02") == [november_deposit.pk, debit.pk]
    assert ids(date_to="2026-10-31") == [october_deposit.pk]
    assert ids(updated_since="2026-11-20T15:00:00+08:00") == [refund.pk]
    rows = json_body(accounting.get(URL.format("ledger-entries"), {"kind": "refund"}))["results"]
    assert rows[0]["amount"] == "-500.00"
    assert rows[0]["date"] == "2026-11-20"
    assert rows[0]["created_at"] == "2026-11-20T15:00:00+08:00"
    assert rows[0]["document_number"] == f"LE-{refund.pk:08d}"


def test_customer_filters(accounting, documents):
    beta = documents["beta"]
    # Beta's address changes in March (a history record), then it falls into arrears.
    beta.refresh_from_db()
    beta.address = "2 Nanjing Road, Shanghai"
    beta._history_date = shanghai(2026, 3, 1)
    beta.save()
    Customer.objects.filter(pk=beta.pk).update(arrears_since=dt.date(2026, 11, 2))
    gamma = Customer.objects.get(external_id="gamma")
    Customer.objects.filter(pk=gamma.pk).update(
        arrears_since=dt.date(2026, 10, 1), suspended_at=shanghai(2026, 10, 8)
    )

    def external_ids(**query):
        response = accounting.get(URL.format("customers"), query)
        assert response.status_code == 200
        return [row["external_id"] for row in json_body(response)["results"]]

    assert external_ids() == ["alpha", "beta", "gamma", "delta"]
    assert external_ids(customer="beta") == ["beta"]
    assert external_ids(status="in_arrears") == ["beta"]
    assert external_ids(status="suspended") == ["gamma"]
    assert external_ids(status=["active", "suspended"]) == ["alpha", "gamma", "delta"]
    assert external_ids(updated_since="2026-02-01T00:00:00+08:00") == ["beta"]
    assert external_ids(updated_since="2026-03-01T00:00:01+08:00") == []
    beta_row = json_body(accounting.get(URL.format("customers"), {"customer": "beta"}))["results"][
        0
    ]
    assert beta_row["updated_at"] == "2026-03-01T00:00:00+08:00"
    assert beta_row["created_at"] == "2026-02-05T00:00:00+08:00"
    assert beta_row["status"] == "in_arrears"
    assert beta_row["arrears_since"] == "2026-11-02"


@pytest.mark.parametrize(
    "resource,query,field",
    [
        ("invoices", {"period": "2026-13"}, "period"),
        ("invoices", {"period": "October"}, "period"),
        ("invoices", {"status": "held"}, "status"),
        ("invoices", {"issue_date_from": "2026-02-30"}, "issue_date_from"),
        ("invoices", {"issue_date_to": "0001-01-01"}, "issue_date_to"),
        ("invoices", {"updated_since": "yesterday"}, "updated_since"),
        ("invoices", {"updated_since": ""}, "updated_since"),
        ("invoices", {"period": ""}, "period"),
        ("ledger-entries", {"date_to": " "}, "date_to"),
        ("invoices", {"updated_since": "0001-01-01T00:00:00+14:00"}, "updated_since"),
        ("invoices", {"updated_since": "9999-12-31T23:59:59-14:00"}, "updated_since"),
        ("invoices", {"page_size": "0"}, "page_size"),
        ("invoices", {"page_size": "ten"}, "page_size"),
        ("invoices", {"cursor": "not-a-cursor"}, "cursor"),
        # A well-formed cursor whose position is not an id.
        ("invoices", {"cursor": "cD1hYmM="}, "cursor"),
        # p=99999999999999999999 (beyond bigint) and p=² (a digit, but not 0-9).
        ("invoices", {"cursor": "cD05OTk5OTk5OTk5OTk5OTk5OTk5OQ=="}, "cursor"),
        ("invoices", {"cursor": "cD3Csg=="}, "cursor"),
        ("invoices", {"customer": "nul\x00byte"}, "customer"),
        ("credit-notes", {"period": "2026-1"}, "period"),
        ("credit-notes", {"period": " 2026-10"}, "period"),
        ("ledger-entries", {"kind": "bonus"}, "kind"),
        ("ledger-entries", {"date_from": "1999-12-31"}, "date_from"),
        ("customers", {"status": "happy"}, "status"),
        ("revenue-summary", {}, "period"),
        ("revenue-summary", {"period": "2026-00"}, "period"),
        ("journal", {"period": "1999-12"}, "period"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(accounting, db, resource, query, field):
    # CSV is not paginated: it ignores the cursor and page size.
    formats = [{}] if field in ("cursor", "page_size") else [{}, {"format": "csv"}]
    for params in ({**query, **extra} for extra in formats):
        response = accounting.get(URL.format(resource), params)
        assert response.status_code == 400, (query, response.content)
        # Errors are JSON even when CSV was asked for.
        assert response["Content-Type"] == "application/json"
        body = json_body(response)
        assert (body["code"], body["field"]) == ("invalid", field), body
        assert body["message"] == "the request has invalid fields"
        assert list(body["errors"]) == [field]


def test_unknown_format_is_406(accounting, db):
    response = accounting.get(URL.format("invoices"), {"format": "xlsx"})
    assert response.status_code == 406
    assert json_body(response) == {
        "code": "not_acceptable",
        "message": "Unknown format 'xlsx': use one of json, csv.",
        "field": None,
    }
    response = accounting.get(URL.format("invoices"), {"format": ""})
    assert response.status_code == 406
    response = accounting.get(URL.format("invoices"), HTTP_ACCEPT="application/xml")
    assert response.status_code == 406


@pytest.mark.parametrize("resource", ["invoices", "credit-notes", "ledger-entries", "customers"])
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_an_offset_postgresql_cannot_hold_is_the_same_moment(accounting, documents, resource, fmt):
    """Found by tests/api/test_schemathesis.py: Python reads offsets up to +-23:59, PostgreSQL
    only +-15:59; "+22:08" reached the query (a 500, or a CSV cut off after its 200)."""
    response = accounting.get(
        URL.format(resource), {"updated_since": "2026-12-03T23:00:00+22:00", "format": fmt}
    )
    assert response.status_code == 200
    same_moment = accounting.get(
        URL.format(resource), {"updated_since": "2026-12-03T01:00:00Z", "format": fmt}
    )
    assert b"".join(response.streaming_content if response.streaming else [response.content]) == (
        b"".join(same_moment.streaming_content if same_moment.streaming else [same_moment.content])
    )
