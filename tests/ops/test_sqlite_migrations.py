"""The embedded default (`make run` on a fresh clone) migrates SQLite from nothing. CI's suite
runs on PostgreSQL, so without this a migration that only SQLite refuses (a table rebuild that
a trigger on another table names) would land unseen, as invoices 0013 once did."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Guards that read invoices_creditnote from other tables, and guards on it: SQLite's rebuild of
# the table for a new CHECK constraint must keep all of them.
CREDIT_NOTE_GUARDS = {
    "invoices_credit_note_closed_insert",
    "invoices_status_by_credit_notes_update",
    "invoices_credit_note_frozen",
    "invoices_credit_notes_within_total_insert",
    "invoices_creditnote_net_plus_vat_is_gross_insert",
    "invoices_creditnote_net_plus_vat_is_gross_update",
}


def test_every_migration_runs_on_an_empty_sqlite_database_and_keeps_the_guards(tmp_path):
    database = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "BILLING_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "billingsite.settings",
    }
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    with sqlite3.connect(database) as connection:
        triggers = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            )
        }
        unapplied = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--check", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        history_tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%historical%'"
            )
        }
    assert CREDIT_NOTE_GUARDS <= triggers, CREDIT_NOTE_GUARDS - triggers
    # Every history table is append-only, however often a migration rebuilt it (0013 once
    # dropped the credit notes' guard silently: a new column with a default rebuilds the table).
    history_guards = {f"{table}_append_only_update" for table in history_tables}
    assert len(history_guards) >= 11 and history_guards <= triggers, history_guards - triggers
    assert unapplied.returncode == 0, unapplied.stdout + unapplied.stderr
