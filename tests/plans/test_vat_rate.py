"""VAT in the price book: dated rows (plans.VatRate), edited in the admin like prices, read by
the price book of a period and by its per-process cache."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse
from freezegun import freeze_time

from accounts import roles
from billingsite.clock import Period
from plans.models import VatRate
from plans.price_book_cache import cached_price_book, forget_price_book
from plans.rating.tax import DEFAULT_VAT, VatTerms
from plans.selectors import price_book_for_period, vat_terms_for_period
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db
FUTURE = Period(2099, 1)


def test_the_migration_records_the_default_and_a_dated_row_takes_over(price_book):
    # The default row (migration plans/0007), unless a transactional test flushed it.
    assert vat_terms_for_period(period=Period(2026, 10)) == DEFAULT_VAT
    VatRate.objects.create(
        valid_from=FUTURE.start, rate=Decimal("0.0900"), prices_include_vat=False
    )
    assert price_book_for_period(period=FUTURE).vat == VatTerms(Decimal("0.09"), False)
    assert price_book_for_period(period=FUTURE.previous()).vat == DEFAULT_VAT


def test_a_vat_change_is_seen_by_the_cached_price_book(price_book):
    forget_price_book()
    assert cached_price_book(period=FUTURE).vat == DEFAULT_VAT
    row = VatRate.objects.create(valid_from=FUTURE.start, rate=Decimal("0.1300"))
    assert cached_price_book(period=FUTURE).vat.rate == Decimal("0.1300")
    VatRate.objects.filter(pk=row.pk).update(rate=Decimal("0.0500"))
    assert cached_price_book(period=FUTURE).vat.rate == Decimal("0.0500")


def test_the_database_refuses_a_rate_out_of_range_and_changing_a_row_in_force(price_book):
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 (vendor's error class)
        VatRate.objects.create(valid_from=FUTURE.start, rate=Decimal("1.0000"))
    row = VatRate.objects.create(valid_from=dt.date(2026, 1, 1), rate=Decimal("0.0600"))
    with pytest.raises(Exception, match="never changes"), transaction.atomic():
        VatRate.objects.filter(pk=row.pk).update(prices_include_vat=False)


@freeze_time("2026-11-02 10:00:00+08:00")
def test_finance_adds_a_rate_from_a_future_month_in_the_admin(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    manager = StaffFactory(username="manager", groups=[roles.FINANCE_MANAGER])
    client.force_login(manager)
    url = reverse("admin:plans_vatrate_add")
    past = client.post(url, {"valid_from": "2026-01-01", "rate": "0.0600"})
    assert past.status_code == 200 and "future month" in past.content.decode()
    mid_month = client.post(url, {"valid_from": "2099-01-15", "rate": "0.0600"})
    assert mid_month.status_code == 200
    too_high = client.post(url, {"valid_from": "2099-01-01", "rate": "1.5"})
    assert too_high.status_code == 200
    added = client.post(url, {"valid_from": "2099-01-01", "rate": "0.0900"})
    assert added.status_code == 302
    row = VatRate.objects.get(valid_from=dt.date(2099, 1, 1))
    assert (row.rate, row.prices_include_vat) == (Decimal("0.0900"), False)
    assert VatRate.history.filter(id=row.pk).get().history_user == manager
