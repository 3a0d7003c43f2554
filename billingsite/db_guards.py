"""Database triggers that keep append-only and issued documents unchangeable.

The application never updates or deletes these rows; the triggers make sure nothing else does
either (a shell, a bug, an admin action). PostgreSQL refuses updates and deletes. SQLite, the
development default, refuses updates only: Django's test flush empties SQLite tables with
DELETE, which a delete trigger would block; the models refuse deletes there.
"""

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
