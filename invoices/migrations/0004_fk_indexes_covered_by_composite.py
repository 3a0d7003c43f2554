"""Drop single-column foreign-key indexes that a composite index already leads with.

Only the index goes: the column and its constraint stay. An AlterField alone would make SQLite
rebuild the tables, which drops the triggers of `billingsite.db_guards` with them.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_fk_indexes_covered_by_composite"),
        ("invoices", "0003_billing_run_already_billed"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="invoice",
                    name="customer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="invoices",
                        to="accounts.customer",
                    ),
                ),
                migrations.AlterField(
                    model_name="invoiceline",
                    name="invoice",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lines",
                        to="invoices.invoice",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS invoices_invoice_customer_id_137e7301",
                    'CREATE INDEX invoices_invoice_customer_id_137e7301 ON invoices_invoice ("customer_id")',
                ),
                migrations.RunSQL(
                    "DROP INDEX IF EXISTS invoices_invoiceline_invoice_id_071a8d97",
                    'CREATE INDEX invoices_invoiceline_invoice_id_071a8d97 ON invoices_invoiceline ("invoice_id")',
                ),
            ],
        ),
    ]
