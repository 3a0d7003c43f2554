"""The admin index (the month at a glance) and the audit trail."""

import datetime as dt
import html
import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from freezegun import freeze_time

from accounts.services import record_adjustment, record_deposit
from billingsite.clock import Period
from invoices.admin.dashboard import audit_trail, month_at_a_glance
from invoices.documents.services import credit_note_create
from invoices.models import BillingRun
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
    assert "Import usage (CSV)" in body and "Start a billing run" not in body


def test_the_index_names_starting_a_run_one_way(client, manager, month):
    # The latest run's card and the buttons both lead to the start page, in the words of its
    # title and of the runs list's button.
    page = as_user(client, manager).get(reverse("admin:index")).content.decode()
    url = reverse("admin:invoices_billingrun_add")
    assert re.findall(rf'<a [^>]*href="{url}">([^<]*)</a>', page) == ["Start a billing run"] * 2


def chart_captions(page) -> dict[str, str]:
    return dict(re.findall(r'<figcaption id="chart-(\w+)-caption">([^<]*)</figcaption>', page))


def test_the_chinese_index_page_captions_its_charts_in_chinese(client, clerk, month, late_payer):
    # Held at the month's end: Alpha 14,000.00 + Beta 10,000.00 (Late Payer's -250.00 is owed,
    # not held).
    as_user(client, clerk)
    chinese = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    english = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert chart_captions(chinese) == {
        "billed": "每月开票收入（已开具账单，最近 12 个月）",
        "arrears": "每月末欠费客户数（余额低于零）",
        "prepaid": "每月末预付余额总额（当前 ¥24,000.00）",
    }
    assert chinese.count('<th scope="col">月份</th>') == 3
    assert chart_captions(english) == {
        "billed": "Billed revenue by month (issued invoices, last 12 months)",
        "arrears": "Customers in arrears (balance below zero) at each month end",
        "prepaid": "Total prepaid balance held at each month end (now ¥24,000.00)",
    }


def dashboard_text(page: str) -> list[str]:
    """The dashboard's visible text above the app list, one string per element, charts left
    out (their captions are the test above's)."""
    start = page.index('<div id="content-main">')
    body = page[start : page.index('<div class="billing-index-apps">')]
    body = re.sub(r"<figure.*?</figure>", "", body, flags=re.S)
    text = re.sub(r"<[^>]+>", "\n", body)
    return [line.strip() for line in html.unescape(text).split("\n") if line.strip()]


def test_the_chinese_index_page_speaks_chinese(client, clerk, month, late_payer):
    """Every caption of the cards, the buttons and the panels; the figures and what finance
    typed (names, the held invoice's reason) stay as they are."""
    as_user(client, clerk)
    page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert "<title>本月概览 | IM 计费</title>" in page
    # The app list: a Chinese model name without the English plural's "s".
    assert '<a href="/admin/invoices/fapiaorequest/">发票申请</a>' in page
    assert '<a href="/admin/">IM 计费后台</a>' in page
    reason = month.held.hold_reason
    # The sentences of a card: a space between them in English, none after Chinese 。
    english = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 invoice issued. 1 not issued yet." in dashboard_text(english)
    assert dashboard_text(page) == [
        "2026-10 出账金额", "¥6,000.00", "已开具 1 张账单。1 张尚未开具。", "2026-10 的账单",
        "待审核", "1", "打开审核队列",
        "欠费客户", "1", "下次暂停：2026-11-09",
        "低于建议余额", "2", "余额不足当前三个月的费用。",
        "最近一次出账", "—", "尚无出账记录。",
        "导入用量（CSV）", "审核队列", "审计记录",
        "待审核的账单", "客户", "账期", "合计", "余额", "原因",
        "Beta Ltd", "2026-10", "¥9,000.00", "¥10,000.00", reason,
        "欠费客户", "客户", "余额", "欠费起始日", "暂停",
        "Late Payer", "-¥250.00", "2026-11-02", "于 2026-11-09",
        "低于建议余额的客户", "客户", "余额", "建议余额", "差额", "剩余天数",
        "Alpha Ltd", "¥14,000.00", "¥18,000.00", "¥4,000.00", "70",
        "Beta Ltd", "¥10,000.00", "¥18,000.00", "¥8,000.00", "—",
    ]  # fmt: skip


def test_the_chinese_index_page_names_a_run_its_state_and_a_stalled_run(
    client, manager, month, settings
):
    run = BillingRun.objects.create(
        period=dt.date(2026, 10, 1),
        status=BillingRun.Status.RUNNING,
        created_at=NOW,
        started_at=NOW,
        progress_at=NOW,
        accounts_total=3,
        invoices_issued=2,
        invoices_held=1,
    )
    as_user(client, manager)
    with freeze_time(NOW + dt.timedelta(seconds=settings.BILLING_RUN_STALL_AFTER + 60)):
        page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    text = dashboard_text(page)
    card = text[text.index("最近一次出账") : text.index("导入用量（CSV）")]
    assert card == [
        "最近一次出账", "2026-10", "Running", "已停滞", "已开具 2，待审核 1，失败 0。", "详情",
        "出账", f"2026-10 #{run.pk}", "已停滞：自 2026-11-02 00:00 起没有进展。",
        "开始出账",
    ]  # fmt: skip
    run_url = reverse("admin:invoices_billingrun_change", args=[run.pk])
    assert f'出账 <a href="{run_url}">2026-10 #{run.pk}</a> 已停滞' in page


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
