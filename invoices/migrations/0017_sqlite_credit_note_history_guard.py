"""Credit note history rows append-only on SQLite again.

Migration 0013 added a column to invoices_historicalcreditnote; SQLite adds a NOT NULL column
with a default by rebuilding the table, which dropped the table's append-only trigger
silently (0013 kept only the triggers on or naming invoices_creditnote). PostgreSQL kept its
trigger: nothing happens there."""

from django.db import migrations

from billingsite.db_guards import row_guard

_guard = row_guard(
    table="invoices_historicalcreditnote",
    name="invoices_historicalcreditnote_append_only",
    message="history rows are append-only",
    update_when="1 = 1",
    delete_when="1 = 1",
)


def _on_sqlite(step):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            step(apps, schema_editor)

    return run


class Migration(migrations.Migration):
    dependencies = [("invoices", "0016_fapiao_request_plural")]

    operations = [migrations.RunPython(_on_sqlite(_guard.code), _on_sqlite(_guard.reverse_code))]
