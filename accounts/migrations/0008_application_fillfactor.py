"""PostgreSQL: leave room in the application table's pages for updated row versions.

A usage write to a month that is over bumps `usage_version` of every application it touches
(10,000 rows for a 10,000-row request). The column is not indexed, so with free space on the
page the new row version is a heap-only tuple: no index is touched. Full pages (the default
fillfactor of 100) make every bump insert into all four indexes of the table.
"""

from django.db import migrations


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE accounts_application SET (fillfactor = 80)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE accounts_application RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_application_usage_version")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
