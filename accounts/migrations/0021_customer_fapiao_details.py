"""The customer's fapiao details (defaults of its fapiao requests)."""

import importlib

from django.db import migrations, models

from billingsite.db_guards import rebuilt_on_sqlite

history_append_only = importlib.import_module(
    "accounts.migrations.0011_ledger_sign_matches_kind"
).Migration.operations[3]  # the row_guard of accounts_historicalcustomer


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0020_bank_transfers_low_balance'),
    ]

    operations = [
        migrations.AddField(
            model_name='customer',
            name='fapiao_bank',
            field=models.CharField(blank=True, db_default='', default='', max_length=200, verbose_name='bank (fapiao)'),
        ),
        migrations.AddField(
            model_name='customer',
            name='fapiao_bank_account',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='bank account (fapiao)'),
        ),
        migrations.AddField(
            model_name='customer',
            name='fapiao_phone',
            field=models.CharField(blank=True, db_default='', default='', max_length=40, verbose_name='registered phone (fapiao)'),
        ),
        # SQLite rebuilds the history table for these columns, dropping its append-only
        # triggers: installed again after them.
        *rebuilt_on_sqlite(
            operations=[
        migrations.AddField(
            model_name='historicalcustomer',
            name='fapiao_bank',
            field=models.CharField(blank=True, db_default='', default='', max_length=200, verbose_name='bank (fapiao)'),
        ),
        migrations.AddField(
            model_name='historicalcustomer',
            name='fapiao_bank_account',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='bank account (fapiao)'),
        ),
        migrations.AddField(
            model_name='historicalcustomer',
            name='fapiao_phone',
            field=models.CharField(blank=True, db_default='', default='', max_length=40, verbose_name='registered phone (fapiao)'),
        ),
            ],
            guards=[history_append_only],
        ),
    ]
