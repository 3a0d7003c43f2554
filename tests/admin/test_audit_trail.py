"""The audit trail: paginated (no cap), filtered by days, kind, user and customer, exportable;
saves that changed nothing and the price book's loads are not changes; system writes name
their process; a page costs the same queries however many rows it shows."""

import csv
import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import LedgerEntry
from billingsite.audit import system_actor
from billingsite.clock import BILLING_TZ
from invoices.admin.dashboard import AUDIT_KINDS, AuditFilters, AuditTrail, _issue
from invoices.models import Invoice
from plans.models import PlanPrice
from plans.price_book import load_price_book
from tests.admin.conftest import as_user
from tests.factories import CustomerFactory, StaffFactory, contract

pytestmark = pytest.mark.django_db

AUDIT = "/admin/audit/"
ALL_KINDS = frozenset(kind.code for kind in AUDIT_KINDS)


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=BILLING_TZ)


def deposits(customer, user, count: int, *, day: int = 5) -> None:
    """`count` deposits on one day; bulk-inserted (the ledger is append-only, inserts are
    what it allows) so a long trail costs no receipts."""
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            customer=customer,
            kind=LedgerEntry.Kind.DEPOSIT,
            amount=Decimal("10.00"),
            idempotency_key=f"{customer.external_id}-{day}-{n}",
            reference=f"BANK-{day}-{n}",
            method=LedgerEntry.Method.BANK_TRANSFER,
            created_by=user,
            created_at=at(day) + dt.timedelta(minutes=n),
        )
        for n in range(count)
    )


def page(client, query: str = ""):
    response = client.get(AUDIT + query)
    assert response.status_code == 200
    return response.context


def test_the_trail_pages_through_every_entry_not_only_the_latest_200(client, clerk, auditor, month):
    deposits(month.alpha, clerk, 230)
    as_user(client, auditor)
    first = page(client, "?kind=deposit")
    # 230 by the clerk and the fixture's two deposits.
    assert first["page"].paginator.count == 232
    assert first["page"].paginator.num_pages == 5
    assert [e.subject for e in first["entries"]][:1] == ["Alpha Ltd: ¥10.00"]
    last = page(client, "?kind=deposit&p=5")
    assert len(last["entries"]) == 32
    # The oldest: the fixture's deposits, written by no person.
    assert {e.actor for e in last["entries"][-2:]} == {"system"}


def test_filters_by_days_kind_user_and_customer(client, clerk, manager, auditor, month):
    deposits(month.alpha, clerk, 3, day=5)
    deposits(month.beta, manager, 2, day=6)
    as_user(client, auditor)

    def keys(query):
        return sorted(
            (e.kind, e.username, e.subject.split(":")[0]) for e in page(client, query)["entries"]
        )

    assert (
        keys("?kind=deposit&since=2026-11-06&until=2026-11-06")
        == [("deposit", "manager", "Beta Ltd")] * 2
    )
    assert keys("?kind=deposit&user=clerk") == [("deposit", "clerk", "Alpha Ltd")] * 3
    assert keys("?customer=cust-beta&kind=deposit") == [
        ("deposit", "", "Beta Ltd"),
        ("deposit", "manager", "Beta Ltd"),
        ("deposit", "manager", "Beta Ltd"),
    ]
    # Part of the name works too; a customer filter leaves out what is about no customer.
    assert {e.subject.split(":")[0] for e in page(client, "?customer=alpha")["entries"]} == {
        "Alpha Ltd",
        "INV-2026-000001 Alpha Ltd",
    }
    # "system": what no person wrote (the fixture's deposits and its billing).
    system = page(client, "?user=system")["entries"]
    assert {e.username for e in system} == {""} and len(system) == 3
    assert keys("?kind=deposit&since=2026-11-07") == []


def test_bad_filters_are_a_form_error_not_a_500(client, auditor, month):
    as_user(client, auditor)
    response = client.get(AUDIT + "?since=2026-13-45")
    assert response.status_code == 200
    assert "since" in response.context["form"].errors
    response = client.get(AUDIT + "?since=2026-11-09&until=2026-11-01")
    assert response.status_code == 200
    assert "The first day is after the last day." in response.content.decode()


def test_unchanged_saves_and_price_book_loads_are_not_changes(client, manager, auditor, month):
    price = PlanPrice.objects.get(plan__code="premium")
    plan = price.plan
    before = price.history.count() + plan.history.count()
    # The loader again (as every deploy runs it), and saves that change nothing.
    load_price_book()
    plan.save()
    assert price.history.count() + plan.history.count() > before  # in history, not listed
    filters = AuditFilters(kinds=frozenset({"price"}))
    assert AuditTrail(filters).count() == 0

    plan.notes = "negotiated"
    plan._history_user = manager
    plan.save()
    (entry,) = AuditTrail(filters)[:10]
    assert (entry.username, entry.subject) == ("manager", f"Plan {plan.name} (changed)")
    assert entry.detail.startswith("notes: ") and entry.detail.endswith(" → negotiated")
    # The loader's history rows name it.
    reasons = set(PlanPrice.history.values_list("history_change_reason", flat=True))
    assert "system: load_price_book" in reasons


def test_system_writes_name_their_process(month):
    app = month.alpha_app
    with system_actor("billing run 2026-10"):
        contract(app, "5000.00", dt.date(2026, 11, 1))
    (entry,) = AuditTrail(AuditFilters(kinds=frozenset({"contract"})))[:10]
    assert (entry.username, entry.actor) == ("", "system: billing run 2026-10")
    # An invoice its billing run issued names the run; one issued by a person names them.
    by_run = Invoice(period=dt.date(2026, 10, 1), number="INV-1", billing_run_id=7)
    assert _issue(by_run)[:2] == ("", "system: billing run 2026-10")
    # A deposit without a person: an online top-up's names the payment, others are "system".
    LedgerEntry.objects.create(
        customer=month.alpha,
        kind=LedgerEntry.Kind.DEPOSIT,
        amount=Decimal("300.00"),
        idempotency_key="alipay-1",
        reference="ALI-1",
        method=LedgerEntry.Method.ALIPAY,
        created_at=at(20),
    )
    trail = AuditTrail(AuditFilters(kinds=frozenset({"deposit"}), username="system"))
    assert [e.actor for e in trail[:10]] == ["system: online top-up (Alipay)", "system", "system"]


def test_a_page_costs_the_same_queries_however_many_rows(client, clerk, manager, auditor, month):
    as_user(client, auditor)
    plan = PlanPrice.objects.get(plan__code="premium").plan

    def change_plan(times: int) -> None:
        for _ in range(times):
            plan.notes = f"{plan.notes} +"
            plan._history_user = manager
            plan.save()

    def queries() -> int:
        trail = AuditTrail(AuditFilters(kinds=ALL_KINDS))
        with CaptureQueriesContext(connection) as captured:
            entries = trail[:50]
        assert len(entries) == trail.count()
        return len(captured)

    change_plan(2)
    deposits(month.alpha, clerk, 2)
    few = queries()
    few_page = _page_queries(client, AUDIT)
    change_plan(6)
    deposits(month.beta, clerk, 20, day=6)
    assert queries() == few
    assert _page_queries(client, AUDIT) == few_page


def _page_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_export_csv_with_bom_and_xlsx(client, clerk, auditor, month):
    deposits(month.alpha, clerk, 60)
    CustomerFactory(name="Gamma 有限公司", external_id="cust-gamma")
    as_user(client, auditor)
    response = client.get(AUDIT + "?kind=deposit&user=clerk&export=csv")
    assert response.status_code == 200
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["when", "who", "what", "object", "details"]
    # Every matching entry, not one page.
    assert len(rows) == 61
    assert rows[1] == [
        "2026-11-05 10:59:00",
        "clerk",
        "Deposit recorded",
        "Alpha Ltd: ¥10.00",
        "BANK-5-59",
    ]
    xlsx = client.get(AUDIT + "?kind=deposit&user=clerk&export=xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.max_row == 61 and sheet["B2"].value == "clerk"


def test_the_trail_needs_a_finance_role(client, month):
    as_user(client, StaffFactory(username="nobody", groups=[]))
    assert client.get(AUDIT).status_code == 403
    assert client.get(AUDIT + "?export=csv").status_code == 403
