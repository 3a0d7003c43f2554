"""The admin index (the month at a glance) and the audit trail."""

import datetime as dt
import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.services import record_adjustment, record_deposit
from billingsite.clock import Period
from invoices.admin.dashboard import audit_trail, month_at_a_glance
from invoices.documents.services import credit_note_create
from tests.admin.conftest import as_user, post_confirmed
from tests.factories import NOW, CustomerFactory, usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def late_payer(month):
    customer = CustomerFactory(name="Late Payer", external_id="cust-late")
    record_adjustment(
        customer=customer, amount=Decimal("-250.00"), reason="test", idempotency_key="late", now=NOW
    )
    return customer


def test_month_at_a_glance(month, late_payer):
    dashboard = month_at_a_glance(today=dt.date(2026, 11, 2))
    assert dashboard.last_period == Period(2026, 10)
    assert (dashboard.invoices_issued, dashboard.billed_total) == (1, Decimal("6000.00"))
    assert (dashboard.credited_total, dashboard.invoices_pending) == (Decimal("0.00"), 1)
    assert dashboard.held_count == 1
    assert [(row.invoice.pk, row.balance) for row in dashboard.held] == [
        (month.held.pk, Decimal("10000.00"))
    ]
    assert [
        (row.customer.name, row.balance, row.arrears_since, row.suspension_date)
        for row in dashboard.arrears
    ] == [("Late Payer", Decimal("-250.00"), dt.date(2026, 11, 2), dt.date(2026, 11, 9))]
    # November so far: each Premium app 6,000.00 a month -> recommended 18,000.00. Days left
    # at the last invoice's debit: Alpha's 6,000.00 a month; Beta's invoice is held (no debit).
    assert [
        (row.customer.name, row.balance, row.recommended_balance, row.shortfall, row.days_left)
        for row in dashboard.low_balance
    ] == [
        ("Alpha Ltd", Decimal("14000.00"), Decimal("18000.00"), Decimal("4000.00"), 70),
        ("Beta Ltd", Decimal("10000.00"), Decimal("18000.00"), Decimal("8000.00"), None),
    ]
    assert dashboard.low_balance_count == 2


def test_credits_count_against_the_billed_month(month):

    line = month.issued.lines.get()
    credit_note_create(
        invoice=month.issued,
        line_amounts={line.pk: Decimal("1500.00")},
        reason="goodwill",
        now=NOW,
        idempotency_key="cn",
    )
    dashboard = month_at_a_glance(today=dt.date(2026, 11, 2))
    assert (dashboard.billed_total, dashboard.credited_total, dashboard.net_billed) == (
        Decimal("6000.00"),
        Decimal("1500.00"),
        Decimal("4500.00"),
    )


def test_index_page_shows_the_month(client, clerk, month, late_payer):
    body = as_user(client, clerk).get(reverse("admin:index")).content.decode()
    assert 'data-testid="billed-total">¥6,000.00' in body
    assert 'data-testid="held-count">1' in body
    assert 'data-testid="arrears-count">1' in body
    assert 'data-testid="low-balance-count">2' in body
    assert "Billed for 2026-10" in body
    assert "on 2026-11-09" in body  # Late Payer's suspension date
    assert "high-volume application" in body  # the held invoice's reason
    assert "Import usage (CSV)" in body and "Start billing run" not in body


def chart_captions(page) -> dict[str, str]:
    return dict(re.findall(r'<figcaption id="chart-(\w+)-caption">([^<]*)</figcaption>', page))


def test_the_chinese_index_page_captions_its_charts_in_chinese(client, clerk, month, late_payer):
    # Held at the month's end: Alpha 14,000.00 + Beta 10,000.00 (Late Payer's -250.00 is owed,
    # not held).
    as_user(client, clerk)
    chinese = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    english = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert chart_captions(chinese) == {
        "billed": "每月开票收入（已开具发票，最近 12 个月）",
        "arrears": "每月末欠费客户数（余额低于零）",
        "prepaid": "每月末预付余额总额（当前 ¥24,000.00）",
    }
    assert chinese.count('<th scope="col">月份</th>') == 3
    assert chart_captions(english) == {
        "billed": "Billed revenue by month (issued invoices, last 12 months)",
        "arrears": "Customers in arrears (balance below zero) at each month end",
        "prepaid": "Total prepaid balance held at each month end (now ¥24,000.00)",
    }


def test_audit_trail_records_who_did_what(client, clerk, manager, auditor, month):
    as_user(client, clerk)
    post_confirmed(
        client,
        reverse("admin:accounts_customer_deposit", args=[month.alpha.pk]),
        {"amount": "500.00", "bank_reference": "BOC-77", "token": uuid.uuid4().hex},
    )
    as_user(client, manager)
    client.post(reverse("admin:invoices_invoice_issue", args=[month.held.pk]))
    post_confirmed(
        client,
        reverse("admin:invoices_invoice_credit", args=[month.issued.pk]),
        {"mode": "whole", "reason": "wrong plan", "token": uuid.uuid4().hex},
    )
    entries = audit_trail(kinds=["deposit", "issue", "credit"], username=None)
    seen = [(entry.kind, entry.username, entry.subject) for entry in entries]
    assert ("deposit", "clerk", "Alpha Ltd: ¥500.00") in seen
    assert ("issue", "manager", "INV-2026-000002 Beta Ltd") in seen
    assert ("credit", "manager", "CN-2026-000001 for INV-2026-000001: ¥6,000.00") in seen
    # The October run issued Alpha's invoice: the system, not a person.
    assert ("issue", "", "INV-2026-000001 Alpha Ltd") in seen

    as_user(client, auditor)
    only_clerk = client.get(reverse("admin:audit") + "?user=clerk").context["entries"]
    assert {(e.kind, e.username) for e in only_clerk} == {("deposit", "clerk")}
    deposits = client.get(reverse("admin:audit") + "?kind=deposit").context["entries"]
    assert {e.kind for e in deposits} == {"deposit"}
    assert len(deposits) == 3  # two fixture deposits (system) and the clerk's
    assert "BOC-77" in client.get(reverse("admin:audit") + "?kind=deposit").content.decode()
    assert "wrong plan" in client.get(reverse("admin:audit") + "?kind=credit").content.decode()
    # Everything: the loaded price book is not a change anyone made, so it is not listed.
    everything = client.get(reverse("admin:audit"))
    assert {e.kind for e in everything.context["entries"]} == {"deposit", "issue", "credit"}
    assert len(everything.context["entries"]) == 6


def test_cached_run_rates_follow_new_usage_and_deposits(month):
    today = dt.date(2026, 11, 2)
    before = {row.customer.name: row for row in month_at_a_glance(today=today).low_balance}
    assert before["Alpha Ltd"].recommended_balance == Decimal("18000.00")
    # A November peak of 25,000 DAU: Premium 6,000 + 2 x 3,000 = 12,000 a month.

    usage(month.alpha_app, dt.date(2026, 11, 1), dau=25000)
    deposit_key = "more"

    record_deposit(
        customer=month.beta,
        amount=Decimal("9000.00"),
        reference="R",
        idempotency_key=deposit_key,
        now=NOW,
    )
    after = {row.customer.name: row for row in month_at_a_glance(today=today).low_balance}
    assert after["Alpha Ltd"].recommended_balance == Decimal("36000.00")
    # Days left stay at the last invoice's debit (14,000 x 30 / 6,000) until the next invoice.
    assert after["Alpha Ltd"].days_left == 70
    assert "Beta Ltd" not in after  # 19,000 >= 18,000
