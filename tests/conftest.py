import os

import pytest

# DRF's throttles keep `time.time` as a class attribute; imported for the first time inside a
# freezegun block they would keep freezegun's fake for the whole run (order-dependent failures).
import rest_framework.throttling  # noqa: F401,E402
from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.operations import DatabaseOperations

from billingsite.celery import app
from billingsite.db_guards import ALLOW_TRUNCATE_SETTING
from plans.price_book import load_price_book


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    # Tasks run in-process unless a test starts a real worker (tests/invoices/test_worker.py).
    settings.CELERY_TASK_ALWAYS_EAGER = True

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture(autouse=True)
def _email_without_pdf(settings):
    # Rendering a PDF per e-mail costs a WeasyPrint layout (~0.5 s); the tests of the e-mails
    # themselves (tests/accounts/test_customer_emails.py) turn the attachments back on.
    settings.BILLING_EMAIL_ATTACH_PDF = False


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


@pytest.fixture(autouse=True, scope="session")
def _flush_may_truncate_guarded_tables():
    """The flush between transactional tests TRUNCATEs every table on PostgreSQL, which the
    guards of billingsite/db_guards.py refuse unless the truncating transaction says it means
    it. Only this flush says it."""

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return flush(self, [f"SET LOCAL {ALLOW_TRUNCATE_SETTING} = 'on'", *sql_list])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "execute_sql_flush", execute_sql_flush)
        yield


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (the fuzz tests' long exploration)",
    )


def pytest_collection_modifyitems(config, items):
    # Skipped rather than deselected by `-m`: a `-m` of one's own (e.g. "not browser") would
    # replace a default "not slow" and silently start the long runs.
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="a long fuzz run: pytest --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):

    # Password hashing costs ~0.6 s a user with the production hasher; tests only need it to work.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
