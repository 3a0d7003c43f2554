"""Database triggers that keep append-only and issued documents unchangeable.

The application never writes these rows in the refused ways; the triggers make sure nothing
else does either (a shell, a bug, an admin action). PostgreSQL refuses the inserts, updates,
deletes and TRUNCATEs. SQLite, the development default, refuses inserts and updates only:
Django's test flush empties SQLite tables with DELETE, which a delete trigger would block; the
models refuse deletes there.

TRUNCATE has one way through, a transaction-local setting (ALLOW_TRUNCATE_SETTING) that only
the test suite's flush sets. A superuser-only exception would not do: CI and many deployments
connect as a superuser or the tables' owner, who may disable any trigger anyway; the setting
makes truncating a deliberate, named act, never an accident.
"""

import re

from django.db import migrations

ISSUED = "('issued', 'partially_credited', 'credited')"


def _pg_function(name: str, condition_sql: str, message: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
BEGIN
  IF {condition_sql} THEN
    RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
"""


def guard(
    *, table: str, name: str, message: str, update_when: str, delete_when: str
) -> migrations.RunPython:
    """A RunPython that installs the right trigger for the database vendor.

    `update_when`/`delete_when` are SQL conditions over OLD/NEW valid in both dialects.
    """

    def install(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            condition = (
                f"(TG_OP = 'UPDATE' AND ({update_when})) OR (TG_OP = 'DELETE' AND ({delete_when}))"
            )
            schema_editor.execute(_pg_function(name, condition, message))
            schema_editor.execute(
                f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}();"
            )
        elif vendor == "sqlite":
            schema_editor.execute(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW "
                f"WHEN {update_when} BEGIN SELECT RAISE(ABORT, '{message}'); END;"
            )

    def remove(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table};")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}();")
        elif vendor == "sqlite":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name};")

    return migrations.RunPython(install, remove)


# Asia/Shanghai keeps no daylight saving time: SQLite's fixed +8 hours is its clock.
BILLING_TODAY = {
    "postgresql": "(CURRENT_TIMESTAMP AT TIME ZONE 'Asia/Shanghai')::date",
    "sqlite": "date('now', '+8 hours')",
}


def _refusal(message: str) -> str:
    return f"RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';"


def row_guard(
    *,
    table: str,
    name: str,
    message: str,
    insert_when: str | None = None,
    update_when: str | None = None,
    delete_when: str | None = None,
) -> migrations.RunPython:
    """A RunPython that refuses the row writes for which a condition over NEW/OLD holds: one
    BEFORE ... FOR EACH ROW trigger per event, named `<name>_<event>`.

    Conditions are SQL valid in both dialects. On PostgreSQL a condition without a subquery is
    the trigger's WHEN clause, evaluated without calling the function (cheap on hot paths); one
    reading other rows runs inside the function (WHEN takes no subquery). SQLite gets no delete
    triggers: Django's test flush empties its tables with DELETE. `{billing_today}` in a
    condition is the database's today on the billing clock (Asia/Shanghai).
    """
    events = {"insert": insert_when, "update": update_when, "delete": delete_when}
    events = {event: when for event, when in events.items() if when}

    def install(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for event, when in events.items():
            trigger = f"{name}_{event}"
            when = when.replace("{billing_today}", BILLING_TODAY.get(vendor, ""))
            if vendor == "postgresql":
                reads_rows = "SELECT" in when.upper()
                refusal = _refusal(message)
                body = f"IF {when} THEN {refusal} END IF;" if reads_rows else refusal
                returned = "OLD" if event == "delete" else "NEW"
                schema_editor.execute(
                    f"CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger AS $$ "
                    f"BEGIN {body} RETURN {returned}; END $$ LANGUAGE plpgsql;"
                )
                condition = "" if reads_rows else f"WHEN ({when}) "
                schema_editor.execute(
                    f"CREATE TRIGGER {trigger} BEFORE {event.upper()} ON {table} "
                    f"FOR EACH ROW {condition}EXECUTE FUNCTION {trigger}();"
                )
            elif vendor == "sqlite" and event != "delete":
                schema_editor.execute(
                    f"CREATE TRIGGER {trigger} BEFORE {event.upper()} ON {table} FOR EACH ROW "
                    f"WHEN {when} BEGIN SELECT RAISE(ABORT, '{message}'); END;"
                )

    def remove(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        for event in events:
            trigger = f"{name}_{event}"
            if vendor == "postgresql":
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table};")
                schema_editor.execute(f"DROP FUNCTION IF EXISTS {trigger}();")
            elif vendor == "sqlite":
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger};")

    return migrations.RunPython(install, remove)


# The one way past the TRUNCATE guard: `SET LOCAL billing.allow_truncate = 'on'` in the
# truncating transaction. Only the test suite's flush (tests/conftest.py) says it.
ALLOW_TRUNCATE_SETTING = "billing.allow_truncate"


def truncate_guard(*, tables: list[str], name: str) -> migrations.RunPython:
    """PostgreSQL: refuse TRUNCATE of `tables` (row triggers never see it). SQLite has no
    TRUNCATE."""

    def install(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
            f"IF current_setting('{ALLOW_TRUNCATE_SETTING}', true) IS DISTINCT FROM 'on' THEN "
            "RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', MESSAGE = "
            "'TRUNCATE of ' || TG_TABLE_NAME || ' refused: these rows are never removed';"
            " END IF; RETURN NULL; END $$ LANGUAGE plpgsql;"
        )
        for table in tables:
            schema_editor.execute(
                f"CREATE TRIGGER {name} BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
            )

    def remove(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table};")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}();")

    return migrations.RunPython(install, remove)


def rebuilt_on_sqlite(*, operations: list, guards: list[migrations.RunPython]) -> list:
    """`operations` with `guards` (row guards of the table they change) installed again on
    SQLite after them, both ways: SQLite rebuilds a table for a changed column or a new CHECK
    constraint and the rebuild silently drops the table's triggers. A new migration uses
    `sqlite_triggers_kept` instead: it also keeps the triggers of other tables that name the
    rebuilt table (SQLite refuses the rebuild's rename while they exist); the landed migrations
    keep this one."""

    def reinstall(apps, schema_editor):
        if schema_editor.connection.vendor != "sqlite":
            return
        for operation in guards:
            operation.reverse_code(apps, schema_editor)
            operation.code(apps, schema_editor)

    noop = migrations.RunPython.noop
    return [
        migrations.RunPython(noop, reinstall),
        *operations,
        migrations.RunPython(reinstall, noop),
    ]


def sqlite_triggers_kept(*, table: str, operations: list) -> list:
    """`operations` (ones that make SQLite rebuild `table`: a new CHECK constraint, a changed
    column) with every trigger that is on `table` or names it kept as it was, both ways.

    SQLite rebuilds a table as a copy that is renamed back: the rebuild drops the table's own
    triggers silently, and the rename back is refused while a trigger on another table names it
    ("error in trigger ...: no such table"). The triggers are set aside from `sqlite_master`
    before and created again from their own text after. Nothing on other databases."""
    names_table = re.compile(rf"\b{re.escape(table)}\b")
    set_aside_sql: list[tuple[str, str]] = []

    def set_aside(apps, schema_editor):
        if schema_editor.connection.vendor != "sqlite":
            return
        set_aside_sql.clear()
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            triggers = cursor.fetchall()
            for name, on_table, sql in triggers:
                if on_table == table or names_table.search(sql):
                    set_aside_sql.append((name, sql))
                    cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')

    def put_back(apps, schema_editor):
        if schema_editor.connection.vendor != "sqlite":
            return
        with schema_editor.connection.cursor() as cursor:
            for name, sql in set_aside_sql:
                cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')
                cursor.execute(sql)
        set_aside_sql.clear()

    return [
        migrations.RunPython(set_aside, put_back),
        *operations,
        migrations.RunPython(put_back, set_aside),
    ]
