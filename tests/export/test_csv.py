"""CSV: negotiated by Accept or ?format=csv, one row per line, fixed columns, streamed in chunks
with a number of queries that does not grow with the number of rows."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billingsite.clock import BILLING_TZ
from invoices.exports.renderers import FLUSH_BYTES
from tests.export.conftest import body, csv_header, csv_rows, json_body
from tests.export.factories import Line, credit_note, issued_invoice, ledger_entry
from tests.factories import CustomerFactory

INVOICES = "/api/v1/accounting/invoices/"

# The published column order; changing it breaks accounting's imports.
INVOICE_COLUMNS = (
    "invoice_id,invoice_number,status,period,customer_id,customer_external_id,customer_name,"
    "customer_address,customer_tax_id,customer_email,issue_date,issued_at,currency,"
    "invoice_total,invoice_credited_total,updated_at,line_id,line_position,app_key,app_name,"
    "code,category,plan_code,plan_name,description,quantity,unit_price,amount,first_day,"
    "last_day,days,days_in_month,peak_dau,peak_day,explanation,"
    # Added by issue 17 (VAT), after every column that was.
    "net_amount,vat_amount,vat_rate,invoice_net_total,invoice_vat_total,invoice_vat_rate,"
    "invoice_promo_credit_applied"
).split(",")
CREDIT_NOTE_COLUMNS = (
    "credit_note_id,credit_note_number,invoice_id,invoice_number,period,customer_id,"
    "customer_external_id,customer_name,reason,issue_date,issued_at,currency,credit_note_total,"
    "line_id,invoice_line_id,invoice_line_position,app_key,code,category,description,amount,"
    # Added by issue 17 (VAT).
    "net_amount,vat_amount,credit_note_net_total,credit_note_vat_total,"
    # Added for promotional credit, after every column that was.
    "credit_note_promo_credit_returned,credit_note_paid_balance_returned"
).split(",")
LEDGER_COLUMNS = (
    "id,document_number,customer_id,customer_external_id,kind,date,created_at,currency,amount,"
    "reference,reason,payment_method,top_up_number,expires_on,promo_grant_document_number"
).split(",")
CUSTOMER_COLUMNS = (
    "id,external_id,name,billing_email,address,tax_id,contact_name,contact_phone,status,"
    "arrears_since,suspended_at,currency,balance,created_at,updated_at"
).split(",")
JOURNAL_COLUMNS = (
    "date,document_type,document_number,billing_period,customer_external_id,account_code,"
    "account,debit,credit,currency,description,payment_method,payment_reference"
).split(",")
REVENUE_COLUMNS = "dimension,key,label,billed,credited,net,currency".split(",")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource,query,columns",
    [
        ("invoices", {}, INVOICE_COLUMNS),
        ("credit-notes", {}, CREDIT_NOTE_COLUMNS),
        ("ledger-entries", {}, LEDGER_COLUMNS),
        ("customers", {}, CUSTOMER_COLUMNS),
        ("journal", {"period": "2026-11"}, JOURNAL_COLUMNS),
        ("revenue-summary", {"period": "2026-10"}, REVENUE_COLUMNS),
    ],
)
def test_columns_are_fixed_even_when_empty(accounting, resource, query, columns):
    response = accounting.get(f"/api/v1/accounting/{resource}/", {**query, "format": "csv"})
    assert response.status_code == 200
    assert csv_header(response) == columns
    period = query.get("period")
    expected_name = f"{resource}-{period}.csv" if period else f"{resource}.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{expected_name}"'


@pytest.mark.django_db
def test_one_row_per_line_with_the_invoice_repeated(accounting):
    invoice = issued_invoice(
        lines=[
            Line("dau_fee", "9000.00", peak_dau=12000),
            Line("value_added", "2000.00", code="chatroom_keepalive"),
            Line("sensitive_words", "2400.00", quantity=2),
        ]
    )
    credit_note(invoice=invoice, amounts={3: "1200.00"})
    rows = csv_rows(accounting.get(INVOICES, {"format": "csv"}))
    assert [row["line_position"] for row in rows] == ["1", "2", "3"]
    assert {row["invoice_number"] for row in rows} == {invoice.number}
    assert {row["invoice_total"] for row in rows} == {"13400.00"}
    assert {row["invoice_credited_total"] for row in rows} == {"1200.00"}
    assert {row["status"] for row in rows} == {"partially_credited"}
    assert [row["amount"] for row in rows] == ["9000.00", "2000.00", "2400.00"]
    assert rows[2]["unit_price"] == "1200.00"
    assert rows[2]["quantity"] == "2"
    assert rows[0]["peak_dau"] == "12000"
    assert rows[1]["peak_dau"] == ""
    assert rows[1]["code"] == "chatroom_keepalive"
    assert rows[0]["issued_at"] == "2026-11-02T00:00:00+08:00"
    assert rows[0]["currency"] == "CNY"


@pytest.mark.django_db
def test_accept_header_and_format_parameter_give_the_same_csv(accounting):
    issued_invoice(lines=[Line("dau_fee", "6000.00"), Line("storage", "1000.00")])
    by_format = accounting.get(INVOICES, {"format": "csv"})
    by_accept = accounting.get(INVOICES, HTTP_ACCEPT="text/csv")
    assert by_accept["Content-Type"] == "text/csv; charset=utf-8"
    assert body(by_format) == body(by_accept)
    # JSON stays the default, also for browsers' Accept headers.
    assert accounting.get(INVOICES)["Content-Type"] == "application/json"
    assert accounting.get(INVOICES, HTTP_ACCEPT="application/json")["Content-Type"] == (
        "application/json"
    )


@pytest.mark.django_db
def test_json_and_csv_carry_the_same_values(accounting):
    issued_invoice(lines=[Line("dau_fee", "6000.00"), Line("api_rate_limit", "1200.00")])
    document = json_body(accounting.get(INVOICES))["results"][0]
    rows = csv_rows(accounting.get(INVOICES, {"format": "csv"}))
    for line, row in zip(document["lines"], rows, strict=True):
        assert row["invoice_number"] == document["number"]
        assert row["invoice_total"] == document["total"]
        assert row["issued_at"] == document["issued_at"]
        assert row["line_id"] == str(line["id"])
        for field in ("code", "category", "plan_code", "amount", "unit_price", "first_day"):
            assert row[field] == str(line[field])


@pytest.mark.django_db
def test_csv_streams_in_chunks_with_constant_queries(accounting):
    """A bigger export is sent in several blocks and costs the same number of queries as a
    small one: rows are read in chunks, never one query per invoice."""
    lines = [Line("dau_fee", "6000.00"), Line("storage", "1000.00"), Line("desktop", "5000.00")]

    def export():
        with CaptureQueriesContext(connection) as queries:
            response = accounting.get(INVOICES, {"format": "csv"})
            assert response.streaming
            chunks = list(response.streaming_content)
        return chunks, len(queries)

    for _ in range(3):
        issued_invoice(lines=lines)
    small_chunks, small_queries = export()
    for _ in range(250):
        issued_invoice(lines=lines)
    big_chunks, big_queries = export()
    assert big_queries == small_queries
    assert len(small_chunks) == 1
    assert len(big_chunks) > 3
    assert all(len(chunk) < FLUSH_BYTES + 4096 for chunk in big_chunks)
    text = b"".join(big_chunks).decode("utf-8")
    assert text.count("\r\n") == 1 + 253 * 3


@pytest.mark.django_db
def test_text_is_utf8_and_formulas_are_defused(accounting):
    customer = CustomerFactory(name='=HYPERLINK("http://evil.example")', address="上海市浦东新区")
    issued_invoice(customer=customer)
    row = csv_rows(accounting.get(INVOICES, {"format": "csv"}))[0]
    assert row["customer_name"] == '\'=HYPERLINK("http://evil.example")'
    assert row["customer_address"] == "上海市浦东新区"
    # JSON is data, not a spreadsheet: it keeps the text as it is.
    document = json_body(accounting.get(INVOICES))["results"][0]
    assert document["customer_name"] == '=HYPERLINK("http://evil.example")'
    # Negative amounts are numbers, never defused.

    ledger_entry(
        customer=customer,
        kind="refund",
        amount="-300.00",
        created_at=dt.datetime(2026, 11, 3, tzinfo=BILLING_TZ),
        reference="-refund to bank",
    )
    ledger_row = csv_rows(accounting.get("/api/v1/accounting/ledger-entries/", {"format": "csv"}))[
        0
    ]
    assert ledger_row["amount"] == "-300.00"
    assert ledger_row["reference"] == "'-refund to bank"


@pytest.mark.django_db
def test_times_are_shanghai_whatever_zone_they_were_stored_in(accounting):
    utc_evening = dt.datetime(2026, 11, 1, 16, 30, tzinfo=dt.UTC)
    issued_invoice(issued_at=utc_evening)
    document = json_body(accounting.get(INVOICES))["results"][0]
    assert document["issued_at"] == "2026-11-02T00:30:00+08:00"
    assert document["issue_date"] == "2026-11-02"
    row = csv_rows(accounting.get(INVOICES, {"format": "csv"}))[0]
    assert row["issued_at"] == "2026-11-02T00:30:00+08:00"
