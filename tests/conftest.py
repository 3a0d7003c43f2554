import os

import pytest

# DRF's throttles keep `time.time` as a class attribute; imported for the first time inside a
# freezegun block they would keep freezegun's fake for the whole run (order-dependent failures).
import rest_framework.throttling  # noqa: F401,E402
from django.db import connection

from plans.price_book import load_price_book


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    # Tasks run in-process unless a test starts a real worker (tests/invoices/test_worker.py).
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from billingsite.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture
def price_book(db):
    """The default price book of PRICING.md, as `manage.py load_price_book` loads it."""
    load_price_book()


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


postgres_only = pytest.mark.skipif(
    "postgres" not in os.environ.get("DATABASE_URL", ""),
    reason="needs PostgreSQL: runs in .ci/run with DATABASE_URL set",
)


def pytest_configure(config):
    from django.conf import settings

    # Password hashing costs ~0.6 s a user with the production hasher; tests only need it to work.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
