from django.db import migrations

from billingsite.db_guards import guard


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        guard(
            table="accounts_ledgerentry",
            name="accounts_ledger_append_only",
            message="ledger entries are append-only",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
    ]
