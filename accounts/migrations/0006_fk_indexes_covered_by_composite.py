"""Drop single-column foreign-key indexes that a composite index already leads with.

Only the index goes: the column and its constraint stay. An AlterField alone would make SQLite
rebuild the tables, which drops the triggers of `billingsite.db_guards` with them.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_roles_see_beat_schedule"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="dailyusage",
                    name="application",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="usage",
                        to="accounts.application",
                    ),
                ),
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="ledger_entries",
                        to="accounts.customer",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS accounts_dailyusage_application_id_7e1b2f6e",
                    'CREATE INDEX accounts_dailyusage_application_id_7e1b2f6e ON accounts_dailyusage ("application_id")',
                ),
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS accounts_ledgerentry_customer_id_bacb52b0",
                    'CREATE INDEX accounts_ledgerentry_customer_id_bacb52b0 ON accounts_ledgerentry ("customer_id")',
                ),
            ],
        ),
    ]
