"""VAT in the price book: dated rows saying whether prices include VAT and at which rate.

The default is recorded as data (prices include 6%, from 2000-01-01: before any invoice), so
finance changes it by adding a dated row like a price. Rows in force are frozen and the history
is append-only, as for prices (plans/0005); every write replaces the price book's version token
(plans/0006), so a cached price book never keeps an old VAT rate.
"""

import django.core.validators
import django.db.models.deletion
import plans.models
import simple_history.models
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

from billingsite.db_guards import row_guard, truncate_guard

TOKEN_FUNCTION = "plans_price_book_changed"  # plans/0006


def seed_default(apps, schema_editor):
    VatRate = apps.get_model("plans", "VatRate")
    VatRate.objects.get_or_create(
        valid_from="2000-01-01",
        defaults={
            "rate": Decimal("0.0600"),
            "prices_include_vat": True,
            "note": "Default: prices include 6% VAT (the rate for these services).",
        },
    )


def token_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            f"CREATE TRIGGER {TOKEN_FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON plans_vatrate FOR EACH STATEMENT EXECUTE FUNCTION {TOKEN_FUNCTION}();"
        )
    elif vendor == "sqlite":
        for event in ("INSERT", "UPDATE", "DELETE"):
            schema_editor.execute(
                f"CREATE TRIGGER IF NOT EXISTS {TOKEN_FUNCTION}_plans_vatrate_{event.lower()} "
                f"AFTER {event} ON plans_vatrate BEGIN INSERT OR REPLACE INTO "
                "plans_price_book_version (id, token) VALUES (1, lower(hex(randomblob(16)))); END;"
            )


def token_triggers_drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {TOKEN_FUNCTION} ON plans_vatrate;")
    elif vendor == "sqlite":
        for event in ("insert", "update", "delete"):
            schema_editor.execute(
                f"DROP TRIGGER IF EXISTS {TOKEN_FUNCTION}_plans_vatrate_{event};"
            )


class Migration(migrations.Migration):

    dependencies = [
        ('plans', '0007_discount'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='HistoricalVatRate',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('valid_from', models.DateField(db_index=True, validators=[plans.models.validate_first_of_month])),
                ('rate', models.DecimalField(decimal_places=4, help_text='VAT rate as a fraction: 0.0600 = 6%.', max_digits=5, validators=[django.core.validators.MinValueValidator(Decimal('0')), django.core.validators.MaxValueValidator(Decimal('0.9999'))])),
                ('prices_include_vat', models.BooleanField(default=True, help_text="The price book's prices are gross (VAT included).")),
                ('note', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(blank=True, editable=False)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField(db_index=True)),
                ('history_change_reason', models.CharField(max_length=100, null=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'historical VAT rate',
                'verbose_name_plural': 'historical VAT rates',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name='VatRate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('valid_from', models.DateField(unique=True, validators=[plans.models.validate_first_of_month])),
                ('rate', models.DecimalField(decimal_places=4, help_text='VAT rate as a fraction: 0.0600 = 6%.', max_digits=5, validators=[django.core.validators.MinValueValidator(Decimal('0')), django.core.validators.MaxValueValidator(Decimal('0.9999'))])),
                ('prices_include_vat', models.BooleanField(default=True, help_text="The price book's prices are gross (VAT included).")),
                ('note', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'verbose_name': 'VAT rate',
                'ordering': ['-valid_from'],
                'constraints': [models.CheckConstraint(condition=models.Q(('rate__gte', 0), ('rate__lt', 1)), name='vat_rate_from_zero_below_one')],
            },
        ),
        migrations.RunPython(token_triggers, token_triggers_drop),
        migrations.RunPython(seed_default, migrations.RunPython.noop),
        row_guard(
            table="plans_vatrate",
            name="plans_vatrate_in_force_frozen",
            message="a VAT rate in force never changes: add a row from a future month",
            update_when="OLD.valid_from <= {billing_today} OR NEW.valid_from <= {billing_today}",
            delete_when="OLD.valid_from <= {billing_today}",
        ),
        row_guard(
            table="plans_historicalvatrate",
            name="plans_historicalvatrate_append_only",
            message="history rows are append-only",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
        truncate_guard(
            name="plans_vat_never_truncated",
            tables=["plans_vatrate", "plans_historicalvatrate"],
        ),
    ]
