"""One migration per test run, not one per xdist worker.

pytest-django builds each worker's test database by running every migration (98 of them, most
of the time spent rendering model states): two workers paid it twice, in the same CPU slice.
Here the first worker migrates a template database under a file lock and every worker takes a
copy of it with PostgreSQL's `CREATE DATABASE ... TEMPLATE` (a file copy, about a second).
The template is rebuilt on each run (the run's id is written next to the lock once the
migration succeeded), so it is never older than the migrations; the xdist controller drops it
when the run ends.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

TEMPLATE_SUFFIX = "template"


def template_name(test_db_name: str) -> str:
    """`test_billing_gw0` (a worker's database) and `test_billing` (the controller's name for
    the same run) share the template `test_billing_template`."""

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        test_db_name = test_db_name.removesuffix(f"_{worker}")
    return f"{test_db_name}_{TEMPLATE_SUFFIX}"


@contextmanager
def locked(name: str):
    """Held while the template is built or copied."""
    lock_path = Path(tempfile.gettempdir()) / f"{name}.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            lock.seek(0)
            yield lock
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _quoted(connection, name: str) -> str:
    return connection.ops.quote_name(name)


def setup_worker_database(connection, *, run_id: str, verbosity: int):
    """Give this worker its test database, copied from the run's migrated template.

    Returns the `old_config` entry Django's `teardown_databases` expects."""

    worker_db = connection.creation._get_test_db_name()
    template = template_name(worker_db)
    old_name = connection.settings_dict["NAME"]
    with locked(template) as lock:
        if lock.read().strip() != run_id:
            connection.settings_dict["TEST"]["NAME"] = template
            try:
                connection.creation.create_test_db(
                    verbosity=verbosity, autoclobber=True, serialize=False
                )
            finally:
                connection.settings_dict["TEST"]["NAME"] = worker_db
            lock.truncate(0)
            lock.write(run_id)
            lock.flush()
        # CREATE DATABASE ... TEMPLATE refuses while anyone is connected to the template.
        connection.close()
        connection.settings_dict["NAME"] = old_name
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {_quoted(connection, worker_db)}")
            cursor.execute(
                f"CREATE DATABASE {_quoted(connection, worker_db)} "
                f"TEMPLATE {_quoted(connection, template)}"
            )
    settings.DATABASES[connection.alias]["NAME"] = worker_db
    connection.settings_dict["NAME"] = worker_db
    return (connection, old_name, True)


def drop_template(settings_dict: dict, test_db_name: str) -> None:
    import psycopg  # noqa: PLC0415 (only the xdist controller on PostgreSQL needs it)

    template = template_name(test_db_name)
    with psycopg.connect(
        dbname="postgres",
        user=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        host=settings_dict.get("HOST") or None,
        port=settings_dict.get("PORT") or None,
        autocommit=True,
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{template}"')
    lock_path = Path(tempfile.gettempdir()) / f"{template}.lock"
    lock_path.unlink(missing_ok=True)
