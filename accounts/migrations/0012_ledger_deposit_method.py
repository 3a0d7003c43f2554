"""How a deposit's money arrived (bank transfer, Alipay, WeChat Pay), for the per-method clearing
accounts and the reconciliation report. Existing deposits stay NULL (all were bank transfers typed
in by finance; ledger rows are never rewritten); only deposits may carry a method."""

import importlib

from django.db import migrations, models

from billingsite.db_guards import rebuilt_on_sqlite

# SQLite rebuilds the table for the new CHECK constraint, which drops its triggers.
ledger_append_only = importlib.import_module(
    "accounts.migrations.0002_ledger_append_only"
).Migration.operations[0]


class Migration(migrations.Migration):
    dependencies = [("accounts", "0011_ledger_sign_matches_kind")]

    operations = rebuilt_on_sqlite(
        operations=[
            migrations.AddField(
                model_name="ledgerentry",
                name="method",
                field=models.CharField(
                    blank=True,
                    choices=[
                        ("bank_transfer", "Bank transfer"),
                        ("alipay", "Alipay"),
                        ("wechat_pay", "WeChat Pay"),
                    ],
                    max_length=16,
                    null=True,
                ),
            ),
            migrations.AddConstraint(
                model_name="ledgerentry",
                constraint=models.CheckConstraint(
                    condition=models.Q(("kind", "deposit"), ("method__isnull", True), _connector="OR"),
                    name="ledger_method_only_on_deposits",
                ),
            ),
        ],
        guards=[ledger_append_only],
    )
