"""Issue 12, item 2: the recommended balance is three whole months of fees at today's plans and
add-ons, whatever day of the month they started (the estimate stays this month's bill)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from freezegun import freeze_time
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import roles
from invoices.selectors import (
    customer_financials,
    customers_below_recommended,
    financials_for_customers,
)
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    UserFactory,
    addon_change,
    deposit,
    plan_change,
    usage,
)

pytestmark = [pytest.mark.usefixtures("price_book"), pytest.mark.django_db]

NOV = lambda day: dt.date(2026, 11, day)  # noqa: E731
TODAY = NOV(30)  # November has 30 days


def premium_since_september(customer):
    return ApplicationFactory(customer=customer, plan="premium", created_on=dt.date(2026, 9, 1))


def activated_on_the_30th(customer):
    # Premium-like case of the issue: 6,000 x 1/30 = 200.00 this month, 6,000.00 a whole month.
    return ApplicationFactory(customer=customer, plan="premium", created_on=TODAY)


def upgraded_on_the_10th(customer):
    app = premium_since_september(customer)
    usage(app, NOV(5), dau=25_000)
    plan_change(app, "ultimate", NOV(10))
    return app


def addon_from_the_20th(customer):
    app = premium_since_september(customer)
    addon_change(app, "sensitive_words", 2, NOV(20))
    return app


def addon_ended_on_the_10th(customer):
    app = premium_since_september(customer)
    addon_change(app, "desktop_pc", 1, dt.date(2026, 10, 1))
    addon_change(app, "desktop_pc", 0, NOV(10))
    return app


def downgrade_pending_for_december(customer):
    app = ApplicationFactory(customer=customer, plan="ultimate", created_on=dt.date(2026, 9, 1))
    plan_change(app, "premium", dt.date(2026, 12, 1))
    return app


@pytest.mark.parametrize(
    ("build", "this_month", "recommended"),
    [
        (activated_on_the_30th, "200.00", "18000.00"),
        # This month: Premium 1-9 at 25,000 DAU 12,000 x 9/30 + Ultimate 10-30 (no usage yet)
        # 8,000 x 21/30; a whole month of Ultimate at the month's peak: 8,000 + 2 x 4,500.
        (upgraded_on_the_10th, "9200.00", "51000.00"),
        # Premium 6,000 + 2 x 1,200 from the 20th: a whole month 8,400.
        (addon_from_the_20th, "6880.00", "25200.00"),
        (addon_ended_on_the_10th, "7500.00", "18000.00"),
        (downgrade_pending_for_december, "8000.00", "24000.00"),
    ],
)
def test_recommended_balance_is_three_whole_months_at_todays_subscriptions(
    build, this_month, recommended
):
    customer = CustomerFactory()
    build(customer)
    figures = customer_financials(customer=customer, today=TODAY)
    assert figures.monthly_run_rate == Decimal(this_month)
    assert figures.recommended_balance == Decimal(recommended)
    assert financials_for_customers(customers=[customer], today=TODAY)[customer.pk] == figures


def test_api_dashboard_and_page_agree_on_the_activated_on_the_30th_case(client):
    customer = CustomerFactory(external_id="late-starter")
    activated_on_the_30th(customer)
    deposit(customer, "6000.00")
    with freeze_time(dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))):
        assert timezone.localdate() == TODAY

        api = APIClient()
        user = UserFactory(groups=[roles.CONSOLE])
        api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        response = api.get("/api/v1/customers/late-starter/")
    assert response.status_code == 200, response.content
    assert response.json()["recommended_balance"] == "18000.00"
    (row,) = [r for r in customers_below_recommended(today=TODAY) if r.customer == customer]
    assert (row.recommended_balance, row.shortfall) == (Decimal("18000.00"), Decimal("12000.00"))
    # No invoice yet: no month measured, so no days left (not 900 days at this month's 200.00).
    assert row.days_left is None
