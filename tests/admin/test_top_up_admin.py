"""Finance sees every online top-up and a daily reconciliation per method whose difference is
0.00 unless something needs a look, listed order by order."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from accounts.payments.reconciliation import daily_reconciliation
from accounts.payments.services import top_up_create
from accounts.services import record_deposit
from tests.accounts import payment_fakes as fakes
from tests.factories import CustomerFactory

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)  # 18:00 in Shanghai
DAY = dt.date(2026, 12, 1)


@pytest.fixture(autouse=True)
def _notified_on_the_day():
    with freeze_time(NOW):
        yield


@pytest.fixture
def paid_day(settings, db):
    """Three Alipay orders on one day: paid, paid with another amount, and a hand-typed
    Alipay deposit finance recorded without an order."""
    fakes.configure(settings)
    customer = CustomerFactory(name="Acme")

    def order(amount):
        return top_up_create(
            customer=customer,
            amount=amount,
            method="alipay",
            now=NOW,
            return_url=lambda n: f"https://billing.example.com/{n}/",
        )

    paid, short = order("500.00"), order("200.00")
    client = Client()
    for top_up, amount, trade in ((paid, "500.00", "A1"), (short, "20.00", "A2")):
        client.post(
            "/payments/alipay/notify/",
            fakes.alipay_notification(order_number=top_up.number, amount=amount, trade_no=trade),
        )
    record_deposit(
        customer=customer,
        amount=Decimal("30.00"),
        reference="typed by hand",
        idempotency_key="manual-alipay",
        now=NOW,
        method="alipay",
    )
    return paid, short


def test_the_reconciliation_lists_each_difference(paid_day):
    paid, short = paid_day
    alipay, wechat = daily_reconciliation(day=DAY)

    assert (alipay.provider_paid, alipay.ledger_deposits, alipay.difference) == (
        Decimal("520.00"),
        Decimal("530.00"),
        Decimal("-10.00"),
    )
    assert [(line.order_number, line.difference) for line in alipay.lines] == [
        (short.number, Decimal("20.00")),
        ("", Decimal("-30.00")),
    ]
    assert (wechat.provider_paid, wechat.ledger_deposits, wechat.lines) == (
        Decimal("0.00"),
        Decimal("0.00"),
        [],
    )
    # The day before has nothing.
    assert all(
        m.difference == 0 and not m.lines
        for m in daily_reconciliation(day=DAY - dt.timedelta(days=1))
    )


def test_a_clean_day_differs_by_zero(settings, db):
    fakes.configure(settings)
    customer = CustomerFactory()
    top_up = top_up_create(
        customer=customer, amount="99.99", method="alipay", now=NOW, return_url=lambda n: n
    )
    Client().post(
        "/payments/alipay/notify/",
        fakes.alipay_notification(order_number=top_up.number, amount="99.99"),
    )
    alipay, _ = daily_reconciliation(day=DAY)
    assert (alipay.provider_paid, alipay.difference, alipay.lines) == (
        Decimal("99.99"),
        Decimal("0.00"),
        [],
    )


@pytest.mark.parametrize("role", ["clerk", "manager", "auditor"])
def test_finance_roles_see_the_orders_and_the_report(paid_day, role, request):
    user = request.getfixturevalue(role)
    client = Client()
    client.force_login(user)
    paid, short = paid_day

    listing = client.get(reverse("admin:accounts_topup_changelist") + "?needs_review=yes")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert short.number in html and paid.number not in html
    assert (
        client.get(
            reverse("admin:accounts_topup_changelist") + "?method=alipay&status=paid"
        ).status_code
        == 200
    )
    assert client.get(reverse("admin:accounts_topup_change", args=[paid.pk])).status_code == 200

    report = client.get(reverse("admin:accounts_topup_reconciliation") + "?day=2026-12-01")
    assert report.status_code == 200
    html = report.content.decode()
    assert short.number in html and "typed by hand" in html and "-10.00" in html
    bad = client.get(reverse("admin:accounts_topup_reconciliation") + "?day=yesterday")
    assert bad.status_code == 200 and "YYYY-MM-DD" in bad.content.decode()
