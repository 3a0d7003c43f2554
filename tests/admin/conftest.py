"""Fixtures for the finance back-office tests: the three finance roles, and a month of
billing (October 2026, billed on 2 November) with one issued and one held invoice."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.cache import cache
from freezegun import freeze_time

from accounts import roles
from accounts.models import Application, Customer
from billingsite.clock import Period
from invoices.documents.services import bill_customer
from invoices.models import Invoice
from tests.factories import NOW, ApplicationFactory, CustomerFactory, StaffFactory, deposit, usage

OCTOBER = Period(2026, 10)
# Admin requests happen on the billing day unless a test says otherwise.
BILLING_DAY = "2026-11-02 10:00:00+08:00"


@pytest.fixture(autouse=True)
def _empty_cache():
    # The dashboard caches run-rates by a fingerprint of the data; SQLite reuses ids after a
    # test's rollback, so two tests could share a fingerprint.

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The default PBKDF2 costs ~0.3 s per user; these tests are about permissions, not hashes.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def frozen_now():
    with freeze_time(BILLING_DAY):
        yield


@pytest.fixture
def clerk(db):
    return StaffFactory(username="clerk", groups=[roles.FINANCE_CLERK])


@pytest.fixture
def manager(db):
    return StaffFactory(username="manager", groups=[roles.FINANCE_MANAGER])


@pytest.fixture
def auditor(db):
    return StaffFactory(username="auditor", groups=[roles.AUDITOR])


@pytest.fixture
def users(clerk, manager, auditor):
    return {"clerk": clerk, "manager": manager, "auditor": auditor}


def as_user(client, user):
    client.force_login(user)
    return client


@dataclass
class Month:
    alpha: Customer
    alpha_app: Application
    beta: Customer
    beta_app: Application
    issued: Invoice
    held: Invoice


def october_usage(application, *, peak_dau: int, peak_day: int, peak_messages: int = 1000):
    for day in range(1, 32):
        usage(
            application,
            dt.date(2026, 10, day),
            dau=peak_dau if day == peak_day else 1000 + day,
            delivered_messages=peak_messages if day == peak_day else 1000,
        )


@pytest.fixture
def month(price_book, frozen_now):
    """Alpha: Premium, peak DAU 8,000 on 10-15 -> issued INV for 6,000.00 (balance 20,000 ->
    14,000). Beta: Premium, 3,000,000 messages on 10-20 without a contract -> held."""

    alpha = CustomerFactory(name="Alpha Ltd", external_id="cust-alpha")
    alpha_app = ApplicationFactory(
        customer=alpha, app_key="alpha-app", name="Alpha Chat", plan="premium"
    )
    october_usage(alpha_app, peak_dau=8000, peak_day=15)
    deposit(alpha, "20000.00")
    beta = CustomerFactory(name="Beta Ltd", external_id="cust-beta")
    beta_app = ApplicationFactory(
        customer=beta, app_key="beta-app", name="Beta Live", plan="premium"
    )
    october_usage(beta_app, peak_dau=12000, peak_day=20, peak_messages=3_000_000)
    deposit(beta, "10000.00")
    assert bill_customer(customer=alpha, period=OCTOBER, now=NOW) == "issued"
    assert bill_customer(customer=beta, period=OCTOBER, now=NOW) == "held"
    return Month(
        alpha=alpha,
        alpha_app=alpha_app,
        beta=beta,
        beta_app=beta_app,
        issued=Invoice.objects.get(customer=alpha, period=OCTOBER.start),
        held=Invoice.objects.get(customer=beta, period=OCTOBER.start),
    )


def form_errors(response) -> dict:
    """The errors of the page's form, {field or '__all__': [messages]}."""
    form = response.context["form"]
    return {field: list(errors) for field, errors in form.errors.items()}


ZERO = Decimal("0.00")
