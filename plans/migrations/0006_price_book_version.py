"""A price-book version token that every write to the price book replaces (plans/price_book_cache.py).

Triggers, not model signals: bulk writes, `QuerySet.update`, the admin, `load_price_book`, a
data migration and a shell all change the token, so a cached price book is never served after
a price changed, whatever wrote it. The token is random, never a counter: a transaction that
changed prices and rolled back leaves no token that a later change could reuse while a process
still holds the rolled-back book under it.

Self-contained on purpose (no import of application code): the SQL stays what it was when
this migration ran. SQLite rebuilds a table for some schema changes and drops its triggers: a
later migration that alters one of TABLES on SQLite must run INSTALL_SQLITE again
(tests/plans/test_price_book_cache.py fails otherwise).
"""

from django.db import migrations

TABLES = ["plans_plan", "plans_planprice", "plans_addon", "plans_addonprice"]
FUNCTION = "plans_price_book_changed"

CREATE_TABLE = (
    "CREATE TABLE plans_price_book_version (id integer PRIMARY KEY CHECK (id = 1), "
    "token varchar(36) NOT NULL)"
)

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
  INSERT INTO plans_price_book_version (id, token) VALUES (1, gen_random_uuid()::text)
  ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    schema_editor.execute(CREATE_TABLE)
    if vendor == "postgresql":
        schema_editor.execute(PG_FUNCTION)
        for table in TABLES:
            # One statement-level trigger per table: a bulk write bumps the token once.
            schema_editor.execute(
                f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();"
            )
    elif vendor == "sqlite":
        install_sqlite(schema_editor)
    token = "gen_random_uuid()::text" if vendor == "postgresql" else "lower(hex(randomblob(16)))"
    schema_editor.execute(f"INSERT INTO plans_price_book_version (id, token) VALUES (1, {token})")


def install_sqlite(schema_editor):
    for table in TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            schema_editor.execute(
                f"CREATE TRIGGER IF NOT EXISTS {FUNCTION}_{table}_{event.lower()} AFTER {event} "
                f"ON {table} BEGIN INSERT OR REPLACE INTO plans_price_book_version (id, token) "
                "VALUES (1, lower(hex(randomblob(16)))); END;"
            )


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {FUNCTION} ON {table};")
        elif vendor == "sqlite":
            for event in ("insert", "update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {FUNCTION}_{table}_{event};")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}();")
    schema_editor.execute("DROP TABLE plans_price_book_version")


class Migration(migrations.Migration):
    dependencies = [("plans", "0005_prices_in_force_and_history_closed")]

    operations = [migrations.RunPython(install, remove)]
