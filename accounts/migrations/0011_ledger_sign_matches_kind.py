"""The ledger's sign matches its kind (a CHECK constraint, both databases); the ledger and the
customer history are never truncated or rewritten."""

import importlib

from django.db import migrations, models

from billingsite.db_guards import rebuilt_on_sqlite, row_guard, truncate_guard

# The rebuild of the table for the new CHECK constraint drops SQLite's triggers: installed again.
ledger_append_only = importlib.import_module(
    "accounts.migrations.0002_ledger_append_only"
).Migration.operations[0]


class Migration(migrations.Migration):
    dependencies = [("accounts", "0010_customer_address_max_length")]

    operations = [
        *rebuilt_on_sqlite(
            operations=[
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("amount__gt", 0), ("kind__in", ["deposit", "credit_note_credit"])
                            ),
                            models.Q(("amount__lt", 0), ("kind__in", ["invoice_debit", "refund"])),
                            ("kind", "adjustment"),
                            _connector="OR",
                        ),
                        name="ledger_sign_matches_kind",
                    ),
                ),
            ],
            guards=[ledger_append_only],
        ),
        row_guard(
            table="accounts_historicalcustomer",
            name="accounts_historicalcustomer_append_only",
            message="history rows are append-only",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
        truncate_guard(
            name="accounts_never_truncated",
            tables=["accounts_ledgerentry", "accounts_historicalcustomer"],
        ),
    ]
