import importlib
import os

import pytest

# DRF's throttles keep `time.time` as a class attribute; imported for the first time inside a
# freezegun block they would keep freezegun's fake for the whole run (order-dependent failures).
import rest_framework.throttling  # noqa: F401,E402
from celery._state import _set_task_join_will_block
from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.operations import DatabaseOperations
from django.utils import translation

from billingsite.celery import app
from billingsite.db_guards import ALLOW_TRUNCATE_SETTING
from tests import db_template, hypothesis_budget
from tests.price_book_replay import price_book_load


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    # Tasks run in-process unless a test starts a real worker (tests/invoices/test_worker.py).
    settings.CELERY_TASK_ALWAYS_EAGER = True

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    # A worker built in this process (tests/invoices/test_worker.py) marks the process as a
    # worker's, where waiting for a result is refused; with work stealing a plain test may
    # come after it on the same xdist worker.
    _set_task_join_will_block(False)
    yield


@pytest.fixture(autouse=True)
def _email_without_pdf(settings):
    # Rendering a PDF per e-mail costs a WeasyPrint layout (~0.5 s); the tests of the e-mails
    # themselves (tests/accounts/test_customer_emails.py) turn the attachments back on.
    settings.BILLING_EMAIL_ATTACH_PDF = False


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    # A page served in Chinese leaves Chinese active in the thread (LocaleMiddleware activates
    # the request's language and nothing deactivates it); with work stealing the next test on
    # this xdist worker could then render in Chinese what it expects in English.
    yield
    translation.deactivate()


@pytest.fixture
def price_book(db):
    """The default price book of PRICING.md, as `manage.py load_price_book` loads it (the
    rows of the worker's first real load, written back: tests/price_book_replay.py)."""
    price_book_load()


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


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_use_migrations,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """pytest-django's fixture, except that xdist workers on PostgreSQL copy one migrated
    template instead of each running the migrations (tests/db_template.py)."""

    from django.db import connections  # noqa: PLC0415
    from django.test.utils import setup_databases, teardown_databases  # noqa: PLC0415
    from pytest_django.fixtures import (  # noqa: PLC0415
        _disable_migrations,
        _get_databases_for_setup,
    )

    verbosity = request.config.option.verbose
    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    copy_template = (
        run_id
        and os.environ.get("PYTEST_XDIST_WORKER")
        and django_db_use_migrations
        and not django_db_keepdb
        and set(aliases) == {"default"}
        and not serialized_aliases
        and connections["default"].vendor == "postgresql"
    )
    with django_db_blocker.unblock():
        if copy_template:
            db_cfg = [
                db_template.setup_worker_database(
                    connections["default"], run_id=run_id, verbosity=verbosity
                )
            ]
        else:
            if not django_db_use_migrations:
                _disable_migrations()
            db_cfg = setup_databases(
                verbosity=verbosity,
                interactive=False,
                aliases=aliases,
                serialized_aliases=serialized_aliases,
                keepdb=django_db_keepdb and not django_db_createdb,
            )
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            if connections["default"].vendor == "postgresql":
                # A thread a test started may still hold a connection (daemon threads of the
                # concurrency tests): DROP DATABASE refuses while anyone is connected.
                connections.close_all()
                with connections["default"]._nodb_cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        [connections["default"].settings_dict["NAME"]],
                    )
            teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture(autouse=True, scope="session")
def _migration_data_after_flush():
    """What data migrations seed (the roles, the default VAT rate) again after each flush.

    A transactional test ends with a flush that empties every table, then Django's post_migrate
    recreates content types and permissions only. pytest-django runs those tests after the
    others, but `make test`'s work stealing lets a worker that ran some go on with plain `db`
    tests, which expect the migrated database."""
    from django.apps import apps as global_apps  # noqa: PLC0415
    from django.db.models.signals import post_migrate  # noqa: PLC0415

    from accounts.roles import sync_roles  # noqa: PLC0415

    vat_default = importlib.import_module("plans.migrations.0008_vat_rate").seed_default
    last_app = list(global_apps.get_app_configs())[-1]

    def reseed(sender, **kwargs):
        # After the last app's post_migrate: every app's permissions exist by then.
        if sender is last_app:
            sync_roles()
            vat_default(global_apps, None)

    post_migrate.connect(reseed, dispatch_uid="tests-migration-data-after-flush")
    yield
    post_migrate.disconnect(dispatch_uid="tests-migration-data-after-flush")


def pytest_sessionfinish(session):
    # The xdist controller drops the run's template once every worker has finished.
    if hasattr(session.config, "workerinput") or not session.config.pluginmanager.has_plugin(
        "dsession"
    ):
        return
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        from django.db import connections  # noqa: PLC0415

        db_template.drop_template(
            settings.DATABASES["default"], connections["default"].creation._get_test_db_name()
        )


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (long fuzz runs, the heavier end-to-end variants)",
    )


def pytest_collection_modifyitems(config, items):
    # Skipped rather than deselected by `-m`: a `-m` of one's own (e.g. "not browser") would
    # replace a default "not slow" and silently start the long runs.
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="marked slow: pytest --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    # Before the test modules are imported: their @settings read the budget then.
    hypothesis_budget.use(
        long=config.getoption("--run-slow"), profile=config.getoption("hypothesis_profile", None)
    )

    # Password hashing costs ~0.6 s a user with the production hasher; tests only need it to work.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
