"""Adjustment request history rows append-only, as the other history tables' are.

Who proposed a manual adjustment and who approved or rejected it is this history (the audit
trail shows it); the code only ever inserts into it, so the database now refuses an update or
a delete (and TRUNCATE on PostgreSQL), as for customers', invoices' and prices' history."""

from django.db import migrations

from billingsite.db_guards import row_guard, truncate_guard


class Migration(migrations.Migration):
    dependencies = [("accounts", "0025_application_name_visible_text")]

    operations = [
        row_guard(
            table="accounts_historicaladjustmentrequest",
            name="accounts_historicaladjustmentrequest_append_only",
            message="history rows are append-only",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
        truncate_guard(
            name="accounts_adjustment_history_never_truncated",
            tables=["accounts_historicaladjustmentrequest"],
        ),
    ]
