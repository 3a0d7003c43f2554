"""What the customer pages say: lines and their reasons, totals, the debit, the balance,
the estimate, the arrears banner, and the Chinese translation."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from accounts import roles
from accounts.low_balance import low_balance_alert_set
from accounts.models import Customer, CustomerEvent
from invoices.documents.pdf import render_credit_note_pdf
from invoices.documents.services import credit_note_create
from invoices.mail.messages import days_lasting
from invoices.selectors import customer_financials, estimate_current_month, rated_financials
from plans.rating.engine import PricedLine
from tests.factories import (
    NOW,
    ApplicationFactory,
    CustomerFactory,
    CustomerUserFactory,
    StaffFactory,
    deposit,
    usage,
)
from tests.portal.conftest import OCTOBER
from tests.portal.factories import credit_note, issued_invoice
from tests.portal.test_pdf import pdf_text

pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    """The page's visible text, whitespace collapsed, for phrase assertions."""
    assert response.status_code == 200
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r"</?(a|span|strong|em|b)\b[^>]*>", "", body)  # inline: no gap
    body = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", body).replace("&#x27;", "'").replace("&amp;", "&")


@pytest.fixture
def today():
    with freeze_time("2026-11-20 10:00:00+08:00") as frozen:
        yield frozen


@pytest.fixture
def alice(client_for, acme_user):
    """A browser session of Acme's user."""
    return client_for(acme_user)


def test_invoice_list_shows_number_period_total_status_and_credit_notes(today, alice, acme_invoice):
    first = acme_invoice.lines.order_by("position").first()
    note = credit_note(invoice=acme_invoice, amounts={first.pk: Decimal("500.00")})
    page = text_of(alice.get(reverse("portal:invoice-list")))
    assert f"{acme_invoice.number} October 2026 2026-11-02 Partly credited ¥20,129.03" in page
    assert f"{note.number} {acme_invoice.number} October 2026 2026-11-05 ¥500.00" in page
    # Balance: 50,000.00 deposit - 20,129.03 debit + 500.00 credit.
    assert "Current balance ¥30,370.97" in page


def test_invoice_detail_explains_every_line_grouped_by_application(today, alice, acme_invoice):
    page = text_of(alice.get(reverse("portal:invoice-detail", args=[acme_invoice.number])))

    assert f"Invoice {acme_invoice.number} Issued" in page
    assert "Billing period October 2026 · issued 2026-11-02" in page
    assert "Total ¥20,129.03" in page
    # Lines grouped by application, each with its reason and amount.
    chat, live = page.index("Acme Chat acme-chat"), page.index("Acme Live acme-live")
    assert chat < live
    chat_part, live_part = page[chat:live], page[live:]
    assert (
        "Premium plan, monthly fee by peak DAU peak DAU 25,000 on 2026-10-17: "
        "6,000.00 + 2 x 3,000.00 = 12,000.00 10-01 – 10-31 31 of 31 days 1 ¥12,000.00 ¥12,000.00"
    ) in chat_part
    assert "Chat room keep-alive 1 x 2,000.00 (enabled)" in chat_part
    assert "Subtotal for Acme Chat ¥16,000.00" in chat_part
    assert "Plan: Free → Ultimate" in live_part
    assert "pro rata 16 of 31 days: 8,000.00 x 16/31 = 4,129.03" in live_part
    assert "16 of 31 days 1 ¥8,000.00 ¥4,129.03" in live_part
    # Included services are shown at 0.00 with the reason.
    assert (
        "Chat room keep-alive included in the Ultimate plan 10-16 – 10-31 16 of 31 days 1 ¥0.00 ¥0.00"
        in live_part
    )
    assert "Subtotal for Acme Live ¥4,129.03" in live_part
    # What the invoice took from the balance, and what was left.
    assert "Debited from balance ¥20,129.03 on 2026-11-02 Balance after it ¥29,870.97" in page
    # Frozen bill-to details.
    assert "Billed to Acme Chat Ltd 1 Century Avenue Shanghai Tax ID:" in page


def test_invoice_detail_links_its_credit_notes(today, alice, acme_invoice):
    first = acme_invoice.lines.order_by("position").first()
    note = credit_note(invoice=acme_invoice, amounts={first.pk: Decimal("120.50")}, reason="SLA")
    page = text_of(alice.get(reverse("portal:invoice-detail", args=[acme_invoice.number])))
    assert f"Credit notes on this invoice {note.number}: ¥120.50 (2026-11-05)" in page

    note_page = text_of(alice.get(reverse("portal:credit-note-detail", args=[note.number])))
    assert f"Credit note {note.number}" in note_page
    assert f"Credits invoice {acme_invoice.number}" in note_page
    assert "Total credited ¥120.50 Reason SLA" in note_page
    assert "Credited to balance ¥120.50 on 2026-11-05 Balance after it ¥29,991.47" in note_page
    assert (
        "Acme Chat acme-chat Premium plan, monthly fee by peak DAU ¥12,000.00 ¥120.50" in note_page
    )


def test_credit_note_names_the_credited_item_once_in_both_languages(today, alice, acme_invoice):
    """The service freezes a credit note line as "<app key> <item>" (for finance's lists); the
    page and the PDF have the application in its own column, so English read "acme-chat
    acme-chat Premium plan" while Chinese named the item once. Both name the item once."""
    first = acme_invoice.lines.order_by("position").first()
    note = credit_note_create(
        invoice=acme_invoice, line_amounts={first.pk: Decimal("120.50")}, reason="SLA",
        now=timezone.now(), idempotency_key="qa-credit-item-once",
    )  # fmt: skip
    assert note.lines.get().description == "acme-chat Premium plan, monthly fee by peak DAU"
    url = reverse("portal:credit-note-detail", args=[note.number])

    page = text_of(alice.get(url))
    assert "Acme Chat acme-chat Premium plan, monthly fee by peak DAU ¥12,000.00 ¥120.50" in page
    assert "acme-chat acme-chat" not in page
    alice.cookies["django_language"] = "zh-hans"
    page = text_of(alice.get(url))
    assert "Acme Chat acme-chat 尊享版套餐，按峰值日活计算的月费 ¥12,000.00 ¥120.50" in page

    pdf = pdf_text(render_credit_note_pdf(credit_note=note))
    # Application (name, key), then the item in English and in Chinese.
    assert (
        "Acme Chat\nacme-chat\nPremium plan, monthly fee by peak DAU\n尊享版套餐，按峰值日活计算的月费"
        in pdf
    )


def test_zero_invoice_says_nothing_was_debited(today, alice, acme):
    free_line = PricedLine(
        app_key="acme-live", app_name="Acme Live", code="free", category="dau_fee",
        plan_code="free", plan_name="Free", description="Free plan, monthly fee by peak DAU",
        quantity=1, unit_price=Decimal("0.00"), amount=Decimal("0.00"),
        first_day=OCTOBER.start, last_day=OCTOBER.end, days=31, days_in_month=31,
        explanation="peak DAU 10 on 2026-10-02: Free plan has no monthly fee",
    )  # fmt: skip
    invoice = issued_invoice(customer=acme, period=OCTOBER, lines=[free_line])
    page = text_of(alice.get(reverse("portal:invoice-detail", args=[invoice.number])))
    assert "Total ¥0.00" in page
    assert "Debited from balance Nothing (no amount due)" in page


def test_balance_page_shows_ledger_recommended_balance_and_days_left(
    today, alice, acme, acme_invoice
):
    financials = customer_financials(customer=acme, today=dt.date(2026, 11, 20))
    # November at today's plans, no usage yet: premium 6,000 + 2 x 2,000 add-ons + ultimate 8,000.
    assert financials.monthly_run_rate == Decimal("18000.00")
    assert financials.recommended_balance == Decimal("54000.00")
    # 29,870.97 at the last invoice's 20,129.03 a month of 30 days (one rule with the alert).
    assert financials.days_left == 44

    page = text_of(alice.get(reverse("portal:balance")))
    assert "Current balance ¥29,870.97 as of 2026-11-20" in page
    assert (
        "Recommended balance ¥54,000.00 three months of your current monthly fees (¥18,000.00 a month)"
        in page
    )
    assert "Balance lasts 44 days at your last invoice (¥20,129.03 a month)" in page
    assert "Runway" not in page  # one figure of days left, not two
    acme = Customer.objects.get(external_id="acme")
    assert (
        f"Top up ¥24,129.03 to reach it; by bank transfer, write your transfer reference "
        f"{acme.transfer_reference} in the remark" in page
    )
    assert f"Your transfer reference {acme.transfer_reference}" in page
    # Newest first, each row with the balance after it; references link to the documents.
    assert (
        f"2026-11-02 Invoice {acme_invoice.number} -¥20,129.03 ¥29,870.97 "
        "2026-11-02 Deposit TEST +¥50,000.00 ¥50,000.00"
    ) in page
    body = alice.get(reverse("portal:balance")).content.decode()
    assert f'href="{reverse("portal:invoice-detail", args=[acme_invoice.number])}"' in body


def test_balance_ledger_pages_keep_running_balances(today, alice, acme):
    for n in range(60):
        deposit(acme, "10.00", key=f"small-{n}")
    first = text_of(alice.get(reverse("portal:balance")))
    assert "Page 1 of 2" in first
    assert "+¥10.00 ¥50,600.00" in first  # the newest entry
    second = text_of(alice.get(reverse("portal:balance") + "?page=2"))
    assert "Deposit TEST +¥50,000.00 ¥50,000.00" in second


def test_estimate_is_the_rating_engine_total_and_clearly_marked(today, alice, acme):
    chat = acme.applications.get(app_key="acme-chat")
    usage(chat, dt.date(2026, 11, 3), 31_000)
    expected = estimate_current_month(customer=acme, today=dt.date(2026, 11, 20))
    # 6,000 + 3 x 3,000 + 2 x 2,000 + ultimate 8,000.
    assert expected.total == Decimal("27000.00")

    page = text_of(alice.get(reverse("portal:estimate")))
    assert "November 2026 so far Estimate" in page
    assert "This is an estimate, not a bill" in page
    assert "usage received up to 2026-11-03" in page
    assert "The invoice is issued on 2026-12-02" in page
    assert "Estimated total for the month ¥27,000.00" in page
    assert "peak DAU 31,000 on 2026-11-03: 6,000.00 + 3 x 3,000.00 = 15,000.00" in page
    assert "Subtotal for Acme Chat ¥19,000.00" in page


def test_estimate_without_usage_says_so_instead_of_a_total(today, alice, acme):
    # Acme has October usage; none for November yet.
    assert acme.applications.get(app_key="acme-chat").usage.filter(day__month=10).exists()
    page = text_of(alice.get(reverse("portal:estimate")))
    assert "No usage has arrived yet for this month" in page
    assert "Estimated total for the month" not in page
    assert "peak DAU 0" not in page and "Subtotal for" not in page


def test_estimate_warns_about_high_volume(today, alice, acme):
    chat = acme.applications.get(app_key="acme-chat")
    usage(chat, dt.date(2026, 11, 4), 100, delivered_messages=2_500_000)
    page = text_of(alice.get(reverse("portal:estimate")))
    assert "sent more messages in a day than its plan allows" in page


# --- arrears --------------------------------------------------------------------------------


@pytest.fixture
def in_arrears(price_book):
    """Issued on 2026-11-02: a 6,000.00 invoice against a 1,000.00 balance."""
    customer = CustomerFactory(name="Late Payer Ltd", external_id="late")
    app = ApplicationFactory(customer=customer, app_key="late-app", plan="premium")
    usage(app, dt.date(2026, 10, 9), 9_000)
    deposit(customer, "1000.00", key="late-deposit")
    invoice = issued_invoice(customer=customer, period=OCTOBER)
    customer.refresh_from_db()
    assert customer.arrears_since == dt.date(2026, 11, 2)
    user = CustomerUserFactory(customer=customer, user__username="late").user
    return customer, user, invoice


def test_no_banner_while_the_balance_is_positive(today, alice, acme_invoice):
    page = text_of(alice.get(reverse("portal:invoice-list")))
    assert "Your balance is negative" not in page
    assert "suspended" not in page


def test_arrears_banner_from_the_first_day_with_the_suspension_date(client_for, in_arrears):
    customer, user, invoice = in_arrears
    client = client_for(user)
    with freeze_time("2026-11-02 09:00:00+08:00"):
        page = text_of(client.get(reverse("portal:invoice-list")))
    assert "Your balance is negative: -¥5,000.00" in page
    assert (
        "Your balance has been below zero since 2026-11-02. Unless it is back to zero or above, "
        "service for all your applications will be suspended on 2026-11-09 (in 7 days)."
    ) in page
    reference = Customer.objects.get(external_id="late").transfer_reference
    assert (
        f"top up at least ¥5,000.00 by 2026-11-08, quoting your transfer reference {reference} "
        "in the remark" in page
    )
    assert f"Your transfer reference: {reference}. Write it in the transfer's remark." in page

    with freeze_time("2026-11-08 09:00:00+08:00"):
        for name in ["portal:balance", "portal:estimate"]:
            page = text_of(client.get(reverse(name)))
            assert "will be suspended on 2026-11-09 (in 1 day)" in page, name
        detail = text_of(client.get(reverse("portal:invoice-detail", args=[invoice.number])))
        assert "Your balance is negative: -¥5,000.00" in detail


def test_after_suspension_the_banner_says_what_to_do(client_for, in_arrears):
    customer, user, _ = in_arrears
    # What the daily arrears check does on day 8 (accounts.arrears, tested by its owner).
    Customer.objects.filter(pk=customer.pk).update(
        suspended_at=dt.datetime(2026, 11, 9, 0, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    )
    client = client_for(user)
    with freeze_time("2026-11-10 09:00:00+08:00"):
        page = text_of(client.get(reverse("portal:invoice-list")))
    assert "Your service is suspended" in page
    assert "below zero since 2026-11-02" in page
    assert "all your applications were suspended on 2026-11-09" in page
    assert "Top up your prepaid balance by at least ¥5,000.00 (the amount you owe)" in page
    assert "all your applications are reactivated automatically" in page


def test_banner_goes_away_when_the_balance_is_restored(client_for, in_arrears):
    customer, user, _ = in_arrears
    with freeze_time("2026-11-05 09:00:00+08:00"):
        deposit(customer, "5000.00", key="late-top-up")
        page = text_of(client_for(user).get(reverse("portal:invoice-list")))
    assert "Your balance is negative" not in page
    assert "Current balance ¥0.00" in page


# --- language -------------------------------------------------------------------------------


def test_switching_to_chinese_translates_pages_and_lines(today, alice, acme_invoice):
    url = reverse("portal:invoice-detail", args=[acme_invoice.number])
    response = alice.post(reverse("set_language"), {"language": "zh-hans", "next": url})
    assert response.status_code == 302 and response["Location"] == url

    page = text_of(alice.get(url))
    assert f"账单 {acme_invoice.number} 已开具" in page
    assert "账期 2026年10月 · 开具于 2026-11-02" in page
    assert (
        "尊享版套餐，按峰值日活计算的月费 峰值日活 25,000（2026-10-17）：6,000.00 + 2 x 3,000.00 = 12,000.00"
        in page
    )
    assert "聊天室保活 至尊版已包含" in page
    assert "按天折算 16/31 天：8,000.00 x 16/31 = 4,129.03" in page
    assert "合计 ¥20,129.03" in page  # amounts read the same in both languages
    assert "下载 PDF" in page

    alice.post(reverse("set_language"), {"language": "en", "next": url})
    assert "Premium plan, monthly fee by peak DAU" in text_of(alice.get(url))


def test_arrears_banner_in_chinese(client_for, in_arrears):
    _, user, _ = in_arrears
    client = client_for(user)
    client.cookies["django_language"] = "zh-hans"
    with freeze_time("2026-11-03 09:00:00+08:00"):
        page = text_of(client.get(reverse("portal:balance")))
    assert "您的余额为负：-¥5,000.00" in page
    assert "将于 2026-11-09 暂停（还剩 6 天）" in page
    assert "请在 2026-11-08 前至少充值 ¥5,000.00" in page


def test_portal_customers_list_and_alert_say_the_same_days_left(
    today, alice, acme, acme_invoice, client
):
    """One rule of days left (`accounts.low_balance.runway` at the last invoice's debit): the
    balance page, the finance customers list (and its export) and the low-balance alert give
    the same figure for the same customer."""
    low_balance_alert_set(
        customer=acme, alert=Customer.LowBalanceAlert.AMOUNT, amount=Decimal("40000.00"), now=NOW
    )
    alert = CustomerEvent.objects.get(customer=acme, kind=CustomerEvent.Kind.BALANCE_LOW)
    assert alert.payload["days_left"] == 44  # 29,870.97 x 30 / 20,129.03
    assert "Balance lasts 44 days" in text_of(alice.get(reverse("portal:balance")))
    client.force_login(StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK]))
    listed = client.get(reverse("admin:accounts_customer_changelist") + "?q=acme")
    [row] = listed.context["cl"].result_list
    assert listed.context["cl"].model_admin.days_left_display(row) == 44
    assert rated_financials(today=dt.date(2026, 11, 20))[acme.pk].days_left == 44
    assert days_lasting(event=alert, balance=acme_invoice_balance(acme)) == 44


def acme_invoice_balance(customer) -> Decimal:
    return customer_financials(customer=customer, today=dt.date(2026, 11, 20)).balance


def test_pages_name_their_tab_icon_so_browsers_do_not_ask_for_a_missing_favicon(client):
    """Without a <link rel="icon"> every page load also requested /favicon.ico: a 404 in the
    browser's console on every portal and admin page."""
    assert client.get("/favicon.ico").status_code == 404  # still nothing served there
    for url in (reverse("portal:login"), reverse("admin:login")):
        page = client.get(url).content.decode()
        assert '<link rel="icon" href="data:image/svg+xml,' in page, url
