"""The lists finance works in: exports of customers, invoices, ledger and credit notes (CSV with
BOM and XLSX through django-import-export, the list's filters, plain decimals, per role, a fixed
number of queries), and the customers list's below-recommended filter and days-left sort."""

import csv
import io
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import record_adjustment
from invoices.documents.services import bill_customer, credit_note_create
from tests.admin.conftest import OCTOBER, as_user, october_usage
from tests.factories import NOW, ApplicationFactory, CustomerFactory, StaffFactory, deposit

pytestmark = pytest.mark.django_db

CSV, XLSX = "0", "1"


def export(client, model: str, fmt: str, query: str = ""):
    url = reverse(f"admin:{model}_export") + query
    return client.post(url, {"format": fmt, "resource": "0"})


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.content[:500]
    # Excel needs the byte-order mark to read UTF-8.
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def xlsx_rows(response) -> list[tuple]:
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    return [tuple(cell.value for cell in row) for row in sheet.iter_rows()]


@pytest.fixture
def gamma(month):
    """Well funded: 30,000.00 after its October invoice of 6,000.00 (Premium) lasts 150 days,
    above the recommended 18,000.00. Its name would be a formula in a spreadsheet."""
    customer = CustomerFactory(name="=Gamma 有限公司", external_id="cust-gamma")
    app = ApplicationFactory(customer=customer, app_key="gamma-app", plan="premium")
    october_usage(app, peak_dau=8000, peak_day=15)
    deposit(customer, "36000.00")
    assert bill_customer(customer=customer, period=OCTOBER, now=NOW) == "issued"
    return customer


@pytest.fixture
def idle(month):
    """No application: nothing charged, no days left."""
    return CustomerFactory(name="Idle Ltd", external_id="cust-idle")


# --- customers list ----------------------------------------------------------------------


def changelist(client, query: str = ""):
    response = client.get(reverse("admin:accounts_customer_changelist") + query)
    assert response.status_code == 200
    return response


def external_ids(response) -> list[str]:
    return [customer.external_id for customer in response.context["cl"].result_list]


def test_below_recommended_filter_is_the_dashboards_list(client, clerk, gamma, idle):
    as_user(client, clerk)
    # Alpha 14,000.00 and Beta 10,000.00 are below 18,000.00; Gamma is above, Idle pays nothing.
    assert sorted(external_ids(changelist(client, "?recommended=below"))) == [
        "cust-alpha",
        "cust-beta",
    ]
    assert len(external_ids(changelist(client))) == 4


def test_customers_sort_by_days_left(client, clerk, gamma, idle):
    as_user(client, clerk)
    columns = list(changelist(client).context["cl"].list_display)
    column = str(columns.index("days_left_display"))
    # At the last invoice's debit: Alpha 70 days, Gamma 150; Beta (its invoice held, no debit)
    # and Idle (nothing charged) have no figure: last, newest first, and first when reversed.
    assert external_ids(changelist(client, f"?o={column}")) == [
        "cust-alpha",
        "cust-gamma",
        "cust-idle",
        "cust-beta",
    ]
    assert external_ids(changelist(client, f"?o=-{column}")) == [
        "cust-idle",
        "cust-beta",
        "cust-gamma",
        "cust-alpha",
    ]
    body = changelist(client, f"?o={column}&recommended=below").content.decode()
    assert "cust-gamma" not in body
    # The export keeps the list's order.
    rows = csv_rows(export(client, "accounts_customer", CSV, f"?o={column}"))
    assert [row[0] for row in rows[1:]] == ["cust-alpha", "cust-gamma", "cust-idle", "cust-beta"]


# --- exports -------------------------------------------------------------------------------


def test_customers_export_csv_has_bom_plain_decimals_and_the_lists_filter(
    client, auditor, gamma, idle
):
    as_user(client, auditor)
    rows = csv_rows(export(client, "accounts_customer", CSV))
    assert rows[0] == [
        "external_id",
        "name",
        "billing_email",
        "balance_cny",
        "recommended_balance_cny",
        "days_left",
        "arrears_since",
        "suspended_at",
    ]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["cust-alpha"][3:6] == ["14000.00", "18000.00", "70"]
    assert by_id["cust-beta"][3:6] == ["10000.00", "18000.00", ""]  # held: no debit yet
    # A spreadsheet formula is written as text; Chinese survives the round trip.
    assert by_id["cust-gamma"][1] == "'=Gamma 有限公司"
    assert by_id["cust-gamma"][3:6] == ["30000.00", "18000.00", "150"]
    # No application: nothing is rated, so no recommended balance and no days left.
    assert by_id["cust-idle"][3:6] == ["0.00", "", ""]

    filtered = csv_rows(export(client, "accounts_customer", CSV, "?recommended=below"))
    assert sorted(row[0] for row in filtered[1:]) == ["cust-alpha", "cust-beta"]


def test_customers_export_xlsx_opens_with_numbers(client, auditor, gamma):
    as_user(client, auditor)
    rows = xlsx_rows(export(client, "accounts_customer", XLSX, "?q=cust-alpha"))
    assert rows[0][:6] == (
        "external_id",
        "name",
        "billing_email",
        "balance_cny",
        "recommended_balance_cny",
        "days_left",
    )
    (alpha,) = rows[1:]
    assert alpha[0] == "cust-alpha"
    assert Decimal(str(alpha[3])) == Decimal("14000.00")
    assert Decimal(str(alpha[4])) == Decimal("18000.00")
    assert alpha[5] == 70


def test_invoices_export_respects_the_status_filter(client, auditor, month):
    as_user(client, auditor)
    rows = csv_rows(export(client, "invoices_invoice", CSV, "?status__exact=issued"))
    assert rows[0][:9] == [
        "number",
        "status",
        "period",
        "customer_external_id",
        "customer_name",
        "customer_tax_id",
        "total",
        "credited",
        "currency",
    ]
    (issued,) = rows[1:]
    assert issued[:3] == ["INV-2026-000001", "issued", "2026-10"]
    assert issued[6:10] == ["6000.00", "0.00", "CNY", "2026-11-02"]
    xlsx = xlsx_rows(export(client, "invoices_invoice", XLSX))
    totals = {row[1]: Decimal(str(row[6])) for row in xlsx[1:]}
    assert totals == {"issued": Decimal("6000.00"), "held": Decimal("9000.00")}


def test_ledger_and_credit_note_exports(client, manager, auditor, month):
    line = month.issued.lines.first()
    credit_note_create(
        invoice=month.issued,
        line_amounts={line.pk: Decimal("120.50")},
        reason="Goodwill 折让",
        created_by=manager,
        idempotency_key="cn-export",
        now=NOW,
    )
    as_user(client, auditor)
    ledger = csv_rows(export(client, "accounts_ledgerentry", CSV, "?q=cust-alpha"))
    assert ledger[0] == [
        "created_at",
        "customer_external_id",
        "customer_name",
        "kind",
        "amount_cny",
        "method",
        "reference",
        "reason",
        "recorded_by",
    ]
    amounts = sorted((row[3], row[4]) for row in ledger[1:])
    assert amounts == [
        ("credit_note_credit", "120.50"),
        ("deposit", "20000.00"),
        ("invoice_debit", "-6000.00"),
    ]
    notes = csv_rows(export(client, "invoices_creditnote", CSV))
    (note,) = notes[1:]
    assert note[1:5] == ["INV-2026-000001", "cust-alpha", "Alpha Ltd", "120.50"]
    assert (note[7], note[8]) == ("Goodwill 折让", "manager")


def test_export_needs_the_lists_view_permission(client, clerk, manager, auditor, month):
    nobody = StaffFactory(username="nobody", groups=[])
    as_user(client, nobody)
    for model in ["accounts_customer", "invoices_invoice", "accounts_ledgerentry"]:
        assert client.get(reverse(f"admin:{model}_export")).status_code == 403
        assert export(client, model, CSV).status_code == 403
    for user in (clerk, manager, auditor):
        as_user(client, user)
        page = client.get(reverse("admin:invoices_invoice_changelist")).content.decode()
        assert reverse("admin:invoices_invoice_export") in page
        assert export(client, "invoices_invoice", CSV).status_code == 200


def test_export_queries_do_not_grow_with_rows(client, auditor, month):
    as_user(client, auditor)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            csv_rows(export(client, "accounts_ledgerentry", CSV))
        return len(captured)

    before = queries()
    for n in range(5):
        record_adjustment(
            customer=month.alpha,
            amount=Decimal("-1.00"),
            reason=f"fee {n}",
            created_by=auditor,
            idempotency_key=f"adj-{n}",
            now=NOW,
        )
    assert queries() == before


@pytest.mark.parametrize(
    "model",
    ["accounts_customer", "invoices_invoice", "accounts_ledgerentry", "invoices_creditnote"],
)
@pytest.mark.parametrize("query", ["?zzz=1", "?format=csv", "?issue_date__gte=not-a-date"])
def test_export_with_a_filter_the_list_cannot_apply_is_a_message_not_a_500(
    client, auditor, month, model, query
):
    """A stale bookmark or an edited address: the list itself answers such a filter by
    redirecting; the export said 500 (IncorrectLookupParameters). It goes back to the list,
    unfiltered, saying why, and writes no file."""
    as_user(client, auditor)
    for response in (
        client.get(reverse(f"admin:{model}_export") + query),
        export(client, model, CSV, query),
    ):
        assert response.status_code == 302
        assert response["Location"] == reverse(f"admin:{model}_changelist")
    page = client.get(response["Location"]).content.decode()
    assert "The export&#x27;s filters could not be applied" in page
