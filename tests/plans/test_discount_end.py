"""Ending a contracted discount early: the service's refusals (before its start, later than it
ends, in a month an issued invoice froze), the retry, the database's guard, the admin page with
its confirmation step and the audit trail."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from freezegun import freeze_time

from accounts import roles
from accounts.models import InvoicedMonth
from invoices.admin.dashboard import audit_trail
from plans.models import Discount
from plans.services import SubscriptionError, discount_end
from tests.factories import NOW, ApplicationFactory, CustomerFactory, StaffFactory, discount

pytestmark = pytest.mark.django_db


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.fixture
def running(price_book):
    """A customer-wide 10% discount from September, open-ended; September is invoiced."""
    customer = CustomerFactory(name="Beta Ltd")
    InvoicedMonth.objects.create(
        customer=customer, period=d("2026-09-01"), status="issued", number="INV-2026-000009"
    )
    return discount(customer=customer, percent="10", first_day=d("2026-09-01"), reference="CD-1")


@pytest.mark.parametrize(
    ("before", "ends_on", "after", "code"),
    [
        (None, "2026-11-15", "2026-11-15", None),  # open end: set
        ("2026-12-31", "2026-11-30", "2026-11-30", None),  # shortened
        ("2026-12-31", "2026-12-31", "2026-12-31", None),  # the same day again: nothing
        ("2026-12-31", "2027-01-31", "2026-12-31", "invalid_dates"),  # later: refused
        (None, "2026-08-31", None, "invalid_dates"),  # before its start
        (None, "2026-09-15", None, "month_invoiced"),  # days of September would change
        (None, "2026-09-30", "2026-09-30", None),  # from October on: not frozen
    ],
)
def test_discount_end(running, before, ends_on, after, code):
    if before:
        Discount.objects.filter(pk=running.pk).update(last_day=d(before))
        running.refresh_from_db()
    if code:
        with pytest.raises(SubscriptionError) as refused:
            discount_end(discount=running, ends_on=d(ends_on), now=NOW)
        assert (refused.value.code, refused.value.field) == (code, "ends_on")
    else:
        assert discount_end(discount=running, ends_on=d(ends_on), now=NOW).pk == running.pk
    running.refresh_from_db()
    assert running.last_day == (d(after) if after else None)
    assert (running.percent, running.first_day) == (Decimal("10.00"), d("2026-09-01"))


def test_the_database_lets_a_discount_end_earlier_only(running):
    Discount.objects.filter(pk=running.pk).update(last_day=d("2026-12-31"))
    Discount.objects.filter(pk=running.pk).update(last_day=d("2026-11-30"))  # earlier: allowed
    for last_day in (d("2027-01-31"), None):
        with pytest.raises(IntegrityError), transaction.atomic():
            Discount.objects.filter(pk=running.pk).update(last_day=last_day)
    with pytest.raises(IntegrityError), transaction.atomic():
        Discount.objects.filter(pk=running.pk).update(last_day=d("2026-08-01"))  # before start


def test_an_application_discount_ends_under_its_customers_rules(price_book):
    app = ApplicationFactory(plan="premium", created_on=d("2026-09-01"))
    saved = discount(application=app, amount_off="300.00", first_day=d("2026-10-01"))
    InvoicedMonth.objects.create(
        customer=app.customer, period=d("2026-10-01"), status="issued", number="INV-2026-000010"
    )
    with pytest.raises(SubscriptionError, match="INV-2026-000010"):
        discount_end(discount=saved, ends_on=d("2026-10-20"), now=NOW)
    assert discount_end(discount=saved, ends_on=d("2026-10-31"), now=NOW).last_day == d(
        "2026-10-31"
    )


@freeze_time("2026-11-02 10:00:00+08:00")
def test_manager_ends_a_discount_after_the_confirmation_step(client, running, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    manager = StaffFactory(username="manager", groups=[roles.FINANCE_MANAGER])
    client.force_login(manager)
    change_page = client.get(reverse("admin:plans_discount_change", args=[running.pk]))
    url = reverse("admin:plans_discount_end", args=[running.pk])
    assert url in change_page.content.decode()

    refused = client.post(url, {"ends_on": "2026-09-10"})
    assert refused.status_code == 200
    assert "INV-2026-000009" in refused.context["form"].errors["ends_on"][0]

    review = client.post(url, {"ends_on": "2026-11-30"})
    assert review.status_code == 200
    assert "Nothing is written until you confirm." in review.content.decode()
    running.refresh_from_db()
    assert running.last_day is None  # nothing written yet

    done = client.post(url, {"ends_on": "2026-11-30", "_confirm": "End the discount"})
    assert done.status_code == 302
    running.refresh_from_db()
    assert running.last_day == d("2026-11-30")
    again = client.post(url, {"ends_on": "2026-11-30", "_confirm": "End the discount"})
    assert again.status_code == 302  # a resent form changes nothing

    # The audit trail: the end, by the manager (the factory's row had no user).
    [ended] = [e for e in audit_trail(kinds=["discount"]) if e.username == "manager"]
    assert ended.detail == "last_day: — → 2026-11-30"

    clerk = StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])
    client.force_login(clerk)
    assert client.post(url, {"ends_on": "2026-11-20", "_confirm": "x"}).status_code == 403
