import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache

from accounts.models import DailyUsage
from billingsite.clock import BILLING_TZ, Period
from tests.factories import (
    ApplicationFactory,
    CustomerFactory,
    CustomerUserFactory,
    addon_change,
    deposit,
    plan_change,
    usage,
)
from tests.portal.factories import issued_invoice

OCTOBER = Period(2026, 10)
_REPORTED = {"delivered_messages": 1000, "updated_at": dt.datetime(2026, 11, 1, tzinfo=BILLING_TZ)}
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # PBKDF2 costs ~0.6 s per user on this machine; these tests are about access, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _reset_axes_and_cache():
    # django-axes keeps failed attempts in the database (reset per test) and in the cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def acme(price_book):
    """A customer with two applications and a month of usage in October 2026:

    - chat (Premium, peak DAU 25,000 on 10-17, keep-alive + message callback): 16,000.00
    - live (Free until 10-15, Ultimate from 10-16, peak 5,000, keep-alive included):
      free 0.00 + 8,000 x 16/31 = 4,129.03
    """
    customer = CustomerFactory(
        name="Acme Chat Ltd", external_id="acme", address="1 Century Avenue\nShanghai"
    )
    chat = ApplicationFactory(
        customer=customer, app_key="acme-chat", name="Acme Chat", plan="premium"
    )
    addon_change(chat, "chatroom_keepalive", 1, dt.date(2026, 1, 1))
    addon_change(chat, "message_callback", 1, dt.date(2026, 1, 1))
    live = ApplicationFactory(customer=customer, app_key="acme-live", name="Acme Live", plan="free")
    plan_change(live, "ultimate", dt.date(2026, 10, 16))
    addon_change(live, "chatroom_keepalive", 1, dt.date(2026, 10, 16))
    DailyUsage.objects.bulk_create(
        [
            DailyUsage(application=app, day=dt.date(2026, 10, day), dau=dau, **_REPORTED)
            for day in range(1, 32)
            for app, dau in (
                (chat, 25_000 if day == 17 else 20_000),
                (live, 5_000 if day == 20 else 1_200),
            )
        ]
    )
    deposit(customer, "50000.00", key="acme-deposit-1")
    return customer


@pytest.fixture
def acme_user(acme):
    return CustomerUserFactory(customer=acme, user__username="alice").user


@pytest.fixture
def acme_invoice(acme):
    return issued_invoice(customer=acme, period=OCTOBER)


@pytest.fixture
def rival(price_book):
    """Another customer, with its own user and its own issued invoice."""
    customer = CustomerFactory(name="Rival Messaging Co", external_id="rival")
    app = ApplicationFactory(customer=customer, app_key="rival-app", plan="premium")
    usage(app, dt.date(2026, 10, 3), 8_000)
    deposit(customer, "20000.00", key="rival-deposit-1")
    return customer


@pytest.fixture
def rival_user(rival):
    return CustomerUserFactory(customer=rival, user__username="bob").user


@pytest.fixture
def client_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def at(year, month, day, hour=10) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=BILLING_TZ)


EXPECTED_TOTAL = Decimal("20129.03")
