"""Golden files: the JSON and CSV of every export endpoint for a fixed month (October 2026,
posted in November), compared byte for byte after normalising database ids.

The files under tests/export/golden/ were generated once and reviewed by hand. After a
deliberate change of the export's format, regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/export/test_golden.py

and review the diff before committing: these files are the published contract.
"""

import csv
import datetime as dt
import io
import json
import os
import re
from pathlib import Path

import pytest

from accounts.models import Customer, LedgerEntry, TopUp
from billingsite.clock import BILLING_TZ
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from plans.rating.tax import DEFAULT_VAT
from tests.export.conftest import body
from tests.export.factories import Line, cny, credit_note, issued_invoice, ledger_entry

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def shanghai(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BILLING_TZ)


def customer(external_id: str, name: str, created: dt.datetime, **fields) -> Customer:
    record = Customer(
        external_id=external_id,
        name=name,
        billing_email=f"billing@{external_id}.example.com",
        address="1 Century Avenue, Pudong, Shanghai",
        tax_id=f"9131000{external_id.upper()}",
        **fields,
    )
    # History rows are append-only: their date is given when they are written.
    record._history_date = created
    record.save()
    Customer.objects.filter(pk=record.pk).update(created_at=created)
    record.refresh_from_db()
    return record


@pytest.fixture
def golden_month(db):
    lantern = customer("lantern", "Lantern Games Ltd", shanghai(2026, 1, 5, 11))
    harbour = customer(
        "harbour",
        "海港科技有限公司",
        shanghai(2026, 3, 1, 9, 30),
        contact_name="王芳",
        contact_phone="+86 21 5555 0100",
    )
    comet = customer("comet", "Comet, Social & Co", shanghai(2026, 6, 18, 14))

    ledger_entry(
        customer=lantern,
        kind="deposit",
        amount="30000.00",
        created_at=shanghai(2026, 10, 15, 9, 30),
        reference="ICBC 2026101500042",
    )
    ledger_entry(
        customer=harbour,
        kind="deposit",
        amount="60000.00",
        created_at=shanghai(2026, 10, 20, 14),
        reference="BOC 77120",
    )
    ledger_entry(
        customer=comet,
        kind="deposit",
        amount="3000.00",
        created_at=shanghai(2026, 10, 31, 23, 59),
        reference="CMB 6225 top-up",
    )
    lantern_october = issued_invoice(
        customer=lantern,
        vat=DEFAULT_VAT,
        number="INV-2026-000101",
        lines=[
            Line("dau_fee", "9000.00", app_key="lanternchat", peak_dau=12500),
            Line("value_added", "2000.00", code="chatroom_keepalive", app_key="lanternchat"),
            Line("sensitive_words", "2400.00", quantity=2, app_key="lanternchat"),
            Line("api_rate_limit", "1200.00", code="api_push", app_key="lanternchat"),
        ],
    )
    harbour_october = issued_invoice(
        customer=harbour,
        vat=DEFAULT_VAT,
        number="INV-2026-000102",
        lines=[
            Line("dau_fee", "17000.00", plan_code="ultimate", app_key="harbour-im", peak_dau=25000),
            Line(
                "value_added",
                "0.00",
                plan_code="ultimate",
                code="message_callback",
                app_key="harbour-im",
            ),
            Line(
                "desktop", "5000.00", plan_code="ultimate", code="desktop_pc", app_key="harbour-im"
            ),
            Line(
                "storage",
                "1000.00",
                plan_code="ultimate",
                code="chatroom_storage",
                app_key="harbour-im",
            ),
            Line("dedicated_service", "45000.00", plan_code="premium", app_key="harbour-live"),
        ],
    )
    comet_october = issued_invoice(
        customer=comet,
        vat=DEFAULT_VAT,
        number="INV-2026-000103",
        lines=[Line("dau_fee", "3000.00", app_key="comet-app")],
    )
    # Never exported: a held invoice.
    issued_invoice(
        customer=customer("quasar", "Quasar Ltd", shanghai(2026, 9, 1)),
        status=Invoice.Status.HELD,
        lines=[Line("dau_fee", "6000.00", app_key="quasar-app")],
    )
    # The run debits each balance; Harbour falls into arrears.
    for who, amount, number in (
        (lantern, "-14600.00", "INV-2026-000101"),
        (harbour, "-68000.00", "INV-2026-000102"),
        (comet, "-3000.00", "INV-2026-000103"),
    ):
        ledger_entry(
            customer=who,
            kind="invoice_debit",
            amount=amount,
            created_at=shanghai(2026, 11, 2),
            reference=number,
        )
    Customer.objects.filter(pk=harbour.pk).update(arrears_since=dt.date(2026, 11, 2))
    credit_note(
        invoice=lantern_october,
        amounts={3: "1200.00"},
        number="CN-2026-000007",
        issued_at=shanghai(2026, 11, 20, 10, 15),
        reason="One sensitive-word pack was cancelled on 1 October",
    )
    credit_note(
        invoice=comet_october,
        number="CN-2026-000008",
        issued_at=shanghai(2026, 11, 21, 16),
        reason="=Activation date entered wrongly",
    )
    ledger_entry(
        customer=lantern,
        kind="credit_note_credit",
        amount="1200.00",
        created_at=shanghai(2026, 11, 20, 10, 15),
        reference="CN-2026-000007",
    )
    ledger_entry(
        customer=comet,
        kind="credit_note_credit",
        amount="3000.00",
        created_at=shanghai(2026, 11, 21, 16),
        reference="CN-2026-000008",
    )
    ledger_entry(
        customer=comet,
        kind="refund",
        amount="-3000.00",
        created_at=shanghai(2026, 11, 25, 11),
        reference="Refund to CMB 6225",
    )
    ledger_entry(
        customer=harbour,
        kind="adjustment",
        amount="-25.50",
        created_at=shanghai(2026, 11, 26, 9),
        reason="Bank transfer fee",
    )
    # A customer tops up by Alipay in November: its deposit posts to the Alipay clearing account
    # and carries the method, the trade number and the top-up order.
    nimbus = customer("nimbus", "Nimbus Cloud Ltd", shanghai(2026, 11, 3, 8))
    alipay = ledger_entry(
        customer=nimbus,
        kind="deposit",
        amount="5000.00",
        created_at=shanghai(2026, 11, 27, 15, 30),
        reference="2026112722001400001000000042",
        method="alipay",
    )
    TopUp.objects.create(
        number="TU20261127152801A1B2C3D4E5",
        customer=nimbus,
        amount=cny("5000.00"),
        method="alipay",
        status="paid",
        provider_trade_no="2026112722001400001000000042",
        paid_amount="5000.00",
        created_at=shanghai(2026, 11, 27, 15, 28),
        expires_at=shanghai(2026, 11, 27, 15, 58),
        settled_at=shanghai(2026, 11, 27, 15, 30),
        deposit=alipay,
    )
    assert harbour_october.total.amount == 68000


# Ids differ between databases and runs; each is replaced by its rank among its model's ids.
ID_KEYS = {
    "invoices": {"id": Invoice, "customer_id": Customer, "lines.id": InvoiceLine},
    "credit-notes": {
        "id": CreditNote,
        "invoice_id": Invoice,
        "customer_id": Customer,
        "lines.id": CreditNoteLine,
        "lines.invoice_line_id": InvoiceLine,
    },
    "ledger-entries": {"id": LedgerEntry, "customer_id": Customer},
    "customers": {"id": Customer},
}
CSV_ID_COLUMNS = {
    "invoices": {"invoice_id": Invoice, "customer_id": Customer, "line_id": InvoiceLine},
    "credit-notes": {
        "credit_note_id": CreditNote,
        "invoice_id": Invoice,
        "customer_id": Customer,
        "line_id": CreditNoteLine,
        "invoice_line_id": InvoiceLine,
    },
    "ledger-entries": {"id": LedgerEntry, "customer_id": Customer},
    "customers": {"id": Customer},
}


def ranks(model) -> dict[int, int]:
    return {
        pk: rank
        for rank, pk in enumerate(model.objects.order_by("pk").values_list("pk", flat=True), 1)
    }


def ledger_number(text: str, entry_ranks: dict[int, int]) -> str:
    return re.sub(r"LE-(\d{8})", lambda m: f"LE-{entry_ranks[int(m.group(1))]:08d}", text)


def normalise_json(resource: str, payload) -> str:
    entry_ranks = ranks(LedgerEntry)
    keys = ID_KEYS.get(resource, {})
    maps = {key: ranks(model) for key, model in keys.items()}

    def fix(document: dict, prefix: str = "") -> None:
        for key, value in document.items():
            path = f"{prefix}{key}"
            if path in maps and value is not None:
                document[key] = maps[path][value]
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for item in value:
                    fix(item, f"{path}.")

    for document in payload.get("results", []):
        fix(document)
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    return ledger_number(text, entry_ranks)


def normalise_csv(resource: str, text: str) -> str:

    columns = CSV_ID_COLUMNS.get(resource, {})
    maps = {column: ranks(model) for column, model in columns.items()}
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in reader:
        writer.writerow(
            [
                str(maps[name][int(value)]) if name in maps and value else value
                for name, value in zip(header, row, strict=True)
            ]
        )
    return ledger_number(out.getvalue(), ranks(LedgerEntry))


CASES = [
    ("invoices", {"period": "2026-10"}),
    ("credit-notes", {"period": "2026-10"}),
    ("ledger-entries", {}),
    ("customers", {}),
    ("revenue-summary", {"period": "2026-10"}),
    # Service month (the default): October's invoices on 31 October, November's credit notes.
    ("journal", {"period": "2026-10"}),
    ("journal", {"period": "2026-11"}),
    # The issue-date journal (the only one before issue 17): October's invoices on 2 November.
    ("journal", {"period": "2026-11", "basis": "issue_date"}),
]


def golden_name(resource: str, query: dict, extension: str) -> str:
    suffix = "".join(f"-{query[key]}" for key in ("period", "basis") if key in query)
    return f"{resource}{suffix}.{extension}"


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(actual.encode("utf-8"))
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 and review it"
    # Bytes, so CSV's CRLF line ends are compared as they are sent.
    expected = path.read_bytes().decode("utf-8")
    assert actual == expected, f"{name} differs from its golden file"


@pytest.mark.parametrize("resource,query", CASES)
def test_json_matches_golden_file(accounting, golden_month, resource, query):
    response = accounting.get(f"/api/v1/accounting/{resource}/", {**query, "page_size": 1000})
    assert response.status_code == 200
    check(
        golden_name(resource, query, "json"), normalise_json(resource, json.loads(body(response)))
    )


@pytest.mark.parametrize("resource,query", CASES)
def test_csv_matches_golden_file(accounting, golden_month, resource, query):
    response = accounting.get(f"/api/v1/accounting/{resource}/", {**query, "format": "csv"})
    assert response.status_code == 200
    check(
        golden_name(resource, query, "csv"), normalise_csv(resource, body(response).decode("utf-8"))
    )
