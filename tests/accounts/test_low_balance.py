"""The low-balance alert: one e-mail and one signed webhook `balance.low` per crossing of the
customer's threshold, re-armed when a deposit lifts the balance above it; after every ledger
write, and once per chunk in the month-end run."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.events import webhooks
from accounts.events.webhooks import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_body,
    webhook_verify,
)
from accounts.low_balance import (
    LowBalanceChange,
    LowBalanceSettingError,
    low_balance_alert_set,
    low_balance_change,
    low_balance_follow,
    low_balance_threshold,
    runway,
)
from accounts.models import Customer, CustomerEvent, LedgerEntry
from accounts.services import ledger_record
from invoices.run.runs import billing_run_start
from tests.conftest import postgres_only
from tests.factories import NOW, CustomerFactory, CustomerUserFactory, deposit
from tests.invoices.test_invoices import BILLING_MOMENT, OCTOBER, premium_customer

pytestmark = pytest.mark.django_db


def alerts(customer) -> list[CustomerEvent]:
    return list(CustomerEvent.objects.filter(customer=customer, kind="balance_low").order_by("id"))


def spend(customer, amount: str, key: str, *, kind=LedgerEntry.Kind.ADJUSTMENT, minutes=0):
    ledger_record(
        customer=customer,
        kind=kind,
        amount=-Decimal(amount),
        reason="spent",
        reference=key,
        idempotency_key=key,
        now=NOW + dt.timedelta(minutes=minutes),
    )


@pytest.mark.parametrize(
    "balance, threshold, alerted, change",
    [
        (Decimal("400"), Decimal("500"), False, LowBalanceChange.ALERT),
        (Decimal("400"), Decimal("500"), True, None),  # told already
        (Decimal("500"), Decimal("500"), True, LowBalanceChange.REARM),  # at it: re-armed
        (Decimal("600"), Decimal("500"), False, None),
        (Decimal("-1"), Decimal("500"), False, LowBalanceChange.DISARM),  # arrears say it
        (Decimal("400"), None, True, LowBalanceChange.REARM),  # alert switched off
        (Decimal("400"), None, False, None),
    ],
)
def test_the_rule(balance, threshold, alerted, change):
    assert low_balance_change(balance=balance, threshold=threshold, alerted=alerted) == change


@pytest.mark.parametrize(
    "alert, amount, rate, threshold",
    [
        ("runway", None, Decimal("6000.00"), Decimal("6000.00")),  # 30 days of 200 a day
        ("runway", None, None, None),  # no invoice yet: no run-rate
        ("amount", Decimal("1000.00"), Decimal("6000.00"), Decimal("1000.00")),
        ("off", None, Decimal("6000.00"), None),
    ],
)
def test_threshold_by_choice(alert, amount, rate, threshold):
    assert low_balance_threshold(alert=alert, amount=amount, monthly_run_rate=rate) == threshold


def test_runway_in_days_at_the_last_invoice():
    assert runway(balance=Decimal("2000.00"), monthly_run_rate=Decimal("6000.00")).days_left == 10
    assert runway(balance=Decimal("-5.00"), monthly_run_rate=Decimal("6000.00")).days_left == 0
    assert runway(balance=Decimal("5.00"), monthly_run_rate=None).days_left is None


def test_alert_fires_once_per_crossing_and_rearms_after_a_deposit(
    django_capture_on_commit_callbacks,
):
    customer = CustomerFactory()
    deposit(customer, "1000.00")
    low_balance_alert_set(customer=customer, alert="amount", amount=Decimal("500.00"), now=NOW)
    assert alerts(customer) == []

    spend(customer, "600.00", "a")  # 400: crossed
    spend(customer, "100.00", "b", minutes=1)  # 300: still below, told already
    [first] = alerts(customer)
    assert first.payload == {
        "balance": "400.00",
        "days_left": None,
        "recommended_balance": None,
        "threshold": "500.00",
    }
    assert Customer.objects.get(pk=customer.pk).low_balance_alerted_at == NOW

    deposit(customer, "400.00")  # 700: above, re-armed, no alert
    assert Customer.objects.get(pk=customer.pk).low_balance_alerted_at is None
    assert len(alerts(customer)) == 1
    spend(customer, "300.00", "c", minutes=2)  # 400 again: a second crossing, a second alert
    assert [event.payload["balance"] for event in alerts(customer)] == ["400.00", "400.00"]


def test_default_threshold_is_thirty_days_at_the_last_invoice():
    customer = CustomerFactory()
    deposit(customer, "20000.00")
    spend(customer, "6000.00", "INV-2026-000001", kind=LedgerEntry.Kind.INVOICE_DEBIT)
    assert alerts(customer) == []  # 14,000 lasts 70 days at 6,000 a month
    spend(customer, "9000.00", "INV-2026-000002", kind=LedgerEntry.Kind.INVOICE_DEBIT, minutes=1)
    [event] = alerts(customer)
    # 5,000 at the last invoice's 9,000 a 30-day month: 16 days, below the 9,000 threshold.
    assert event.payload["balance"] == "5000.00"
    assert event.payload["days_left"] == 16
    assert event.payload["threshold"] == "9000.00"


def test_below_zero_the_arrears_email_speaks_instead():
    customer = CustomerFactory()
    deposit(customer, "100.00")
    low_balance_alert_set(customer=customer, alert="amount", amount=Decimal("50.00"), now=NOW)
    spend(customer, "200.00", "big")
    assert alerts(customer) == []
    assert CustomerEvent.objects.filter(customer=customer, kind="arrears_started").exists()
    assert Customer.objects.get(pk=customer.pk).low_balance_alerted_at == NOW


@pytest.mark.parametrize(
    "alert, amount",
    [("amount", None), ("amount", Decimal("0")), ("amount", Decimal("1.234")), ("x", None)],
)
def test_a_bad_threshold_is_refused_and_changes_nothing(alert, amount):
    customer = CustomerFactory()
    with pytest.raises(LowBalanceSettingError):
        low_balance_alert_set(customer=customer, alert=alert, amount=amount, now=NOW)
    customer.refresh_from_db()
    assert (customer.low_balance_alert, customer.low_balance_amount) == ("runway", None)


def test_webhook_is_balance_low_and_signed(settings):
    settings.BILLING_WEBHOOK_SECRET = "secret"
    customer = CustomerFactory()
    deposit(customer, "1000.00")
    low_balance_alert_set(customer=customer, alert="amount", amount=Decimal("2000.00"), now=NOW)
    [event] = alerts(customer)
    body = webhook_body(event=event)
    document = json.loads(body)
    assert document["kind"] == "balance.low"
    assert document["data"]["balance"] == "1000.00"
    assert document["customer"]["external_id"] == customer.external_id


def test_webhook_delivery_headers(settings, monkeypatch):
    sent = {}

    class Response:
        status = 204

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

    def fake_open(request, timeout):
        sent["headers"] = dict(request.header_items())
        sent["body"] = request.data
        return Response()

    monkeypatch.setattr(webhooks._webhook_opener, "open", fake_open)
    settings.BILLING_WEBHOOK_URL = "https://console.example.com/hooks"
    settings.BILLING_WEBHOOK_SECRET = "secret"
    customer = CustomerFactory()
    deposit(customer, "10.00")
    low_balance_alert_set(customer=customer, alert="amount", amount=Decimal("20.00"), now=NOW)
    [event] = alerts(customer)
    now = timezone.now()
    delivery = webhooks.event_deliver(event=event, now=now)
    assert delivery.webhook.succeeded
    headers = {name.title(): value for name, value in sent["headers"].items()}
    assert headers[EVENT_HEADER.title()] == "balance.low"
    assert webhook_verify(
        body=sent["body"],
        timestamp=headers[TIMESTAMP_HEADER.title()],
        signature=headers[SIGNATURE_HEADER.title()],
        secret="secret",
        now=now,
    )


def test_follow_for_many_customers_alerts_each_once():
    customers = [CustomerFactory() for _ in range(3)]
    for customer in customers:
        deposit(customer, "100.00")
        Customer.objects.filter(pk=customer.pk).update(
            low_balance_alert="amount", low_balance_amount=Decimal("500.00")
        )
    ids = [customer.pk for customer in customers]
    assert low_balance_follow(customer_ids=ids, now=NOW) == ids
    assert low_balance_follow(customer_ids=ids, now=NOW) == []
    assert CustomerEvent.objects.filter(kind="balance_low").count() == 3


@postgres_only
def test_the_runs_fast_path_raises_the_alert(price_book, django_capture_on_commit_callbacks):
    # 8,000 - 6,000 = 2,000 after October's invoice: below a month of 6,000 (10 days left).
    low, _ = premium_customer(dau=8000, balance="8000.00")
    rich, _ = premium_customer(dau=8000, balance="30000.00")
    with django_capture_on_commit_callbacks(execute=True):
        billing_run_start(period=OCTOBER, now=BILLING_MOMENT)
    [event] = alerts(low)
    assert event.payload == {
        "balance": "2000.00",
        "days_left": 10,
        "recommended_balance": None,
        "threshold": "6000.00",
    }
    assert alerts(rich) == []
    # A chunk delivered again alerts nobody twice.
    assert low_balance_follow(customer_ids=[low.pk, rich.pk], now=BILLING_MOMENT) == []


def test_the_customer_sets_the_threshold_on_the_balance_page(client):
    customer = CustomerFactory()
    deposit(customer, "100.00")
    login = CustomerUserFactory(customer=customer)
    client.force_login(login.user)

    bad = client.post(
        reverse("portal:low-balance"), {"low_balance_alert": "amount", "low_balance_amount": "x"}
    )
    assert bad.status_code == 400
    assert "Enter an amount above zero." in bad.content.decode()
    customer.refresh_from_db()
    assert customer.low_balance_alert == "runway"

    good = client.post(
        reverse("portal:low-balance"),
        {"low_balance_alert": "amount", "low_balance_amount": "1,000.00"},
    )
    assert good.status_code == 302
    customer.refresh_from_db()
    assert (customer.low_balance_alert, customer.low_balance_amount) == (
        "amount",
        Decimal("1000.00"),
    )
    assert len(alerts(customer)) == 1  # 100 is below the new threshold: told at once
    page = client.get(reverse("portal:balance")).content.decode()
    assert 'Current threshold: <span class="amount">¥1,000.00</span>.' in page
    assert customer.transfer_reference in page


def test_follow_costs_the_same_statements_for_one_or_many_alerts():
    def alerting(count: int) -> list[int]:
        ids = []
        for _ in range(count):
            customer = CustomerFactory()
            deposit(customer, "100.00")
            Customer.objects.filter(pk=customer.pk).update(
                low_balance_alert="amount", low_balance_amount=Decimal("500.00")
            )
            ids.append(customer.pk)
        return ids

    one, five = alerting(1), alerting(5)
    with CaptureQueriesContext(connection) as one_queries:
        assert low_balance_follow(customer_ids=one, now=NOW) == one
    with CaptureQueriesContext(connection) as five_queries:
        assert low_balance_follow(customer_ids=five, now=NOW) == five
    assert len(one_queries) == len(five_queries)
