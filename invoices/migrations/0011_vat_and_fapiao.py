"""Net, VAT and gross frozen on invoices and credit notes; fapiao requests.

Invoices issued before this migration keep NULL net and VAT: they were issued showing a gross
total only, and an issued document never changes (the database refuses it); inventing a split
now would put on record figures the customer never received. They read "gross only"
everywhere. Drafts and held invoices are not issued yet: their lines are split by the default
terms (prices include 6%: the terms of the price book until then), as a re-rate would.

net + VAT = gross is a CHECK constraint on PostgreSQL; SQLite gets the same rule as triggers
(adding a CHECK constraint rebuilds an SQLite table, which drops the immutability triggers of
these tables).
"""

from decimal import ROUND_HALF_UP, Decimal

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import invoices.models
from billingsite.db_guards import ISSUED, row_guard

# (table, net column, VAT column, gross column)
VAT_SUMS = [
    ("invoices_invoice", "net_total", "vat_total", "total"),
    ("invoices_invoiceline", "net_amount", "vat_amount", "amount"),
    ("invoices_creditnote", "net_total", "vat_total", "total"),
    ("invoices_creditnoteline", "net_amount", "vat_amount", "amount"),
]


def _vat_sum_rule(net, vat, gross, *, tolerance=""):
    both_null = f"({net} IS NULL AND {vat} IS NULL)"
    if tolerance:
        # SQLite sums decimals as floats.
        adds_up = f"abs({net} + {vat} - {gross}) < {tolerance}"
    else:
        adds_up = f"{net} + {vat} = {gross}"
    return f"{both_null} OR ({net} IS NOT NULL AND {vat} IS NOT NULL AND {adds_up})"


def vat_sums_install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, net, vat, gross in VAT_SUMS:
        name = f"{table}_net_plus_vat_is_gross"
        if vendor == "postgresql":
            schema_editor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} "
                f"CHECK ({_vat_sum_rule(net, vat, gross)})"
            )
        elif vendor == "sqlite":
            rule = _vat_sum_rule(f"NEW.{net}", f"NEW.{vat}", f"NEW.{gross}", tolerance="0.005")
            for event in ("insert", "update"):
                schema_editor.execute(
                    f"CREATE TRIGGER {name}_{event} BEFORE {event.upper()} ON {table} "
                    f"FOR EACH ROW WHEN NOT ({rule}) BEGIN "
                    "SELECT RAISE(ABORT, 'net + VAT must equal the gross amount'); END;"
                )


def vat_sums_remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table, _net, _vat, _gross in VAT_SUMS:
        name = f"{table}_net_plus_vat_is_gross"
        if vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        elif vendor == "sqlite":
            for event in ("insert", "update"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}_{event}")


DEFAULT_RATE = Decimal("0.0600")
CENT = Decimal("0.01")


def split_open_invoices(apps, schema_editor):
    """Drafts and held invoices: lines split by the default terms (prices include 6%), the
    rule of plans.rating.tax written out (a migration keeps the rule it ran with)."""
    Invoice = apps.get_model("invoices", "Invoice")
    InvoiceLine = apps.get_model("invoices", "InvoiceLine")
    for invoice in Invoice.objects.filter(status__in=["draft", "held"]):
        net_total = vat_total = Decimal("0.00")
        for line in InvoiceLine.objects.filter(invoice_id=invoice.pk):
            gross = line.amount.amount if hasattr(line.amount, "amount") else line.amount
            vat = (gross * DEFAULT_RATE / (1 + DEFAULT_RATE)).quantize(CENT, ROUND_HALF_UP)
            InvoiceLine.objects.filter(pk=line.pk).update(
                net_amount=gross - vat, vat_amount=vat, vat_rate=DEFAULT_RATE
            )
            net_total += gross - vat
            vat_total += vat
        Invoice.objects.filter(pk=invoice.pk).update(
            net_total=net_total, vat_total=vat_total, vat_rate=DEFAULT_RATE
        )


def resync_roles(apps, schema_editor):
    # Finance handles fapiao requests; managers edit VAT rates (accounts.roles). Imported here:
    # the roles module reads the app registry a migration passes.
    from accounts.roles import sync_roles_migration  # noqa: PLC0415

    sync_roles_migration(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0021_customer_fapiao_details'),
        ('invoices', '0010_invoiceline_discount_category'),
        # The roles' resync below grants the VAT-rate permissions: that model must exist.
        ('plans', '0008_vat_rate'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='creditnote',
            name='net_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='net total'),
        ),
        migrations.AddField(
            model_name='creditnote',
            name='vat_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='VAT total'),
        ),
        migrations.AddField(
            model_name='creditnoteline',
            name='net_amount',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='net amount'),
        ),
        migrations.AddField(
            model_name='creditnoteline',
            name='vat_amount',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='VAT amount'),
        ),
        migrations.AddField(
            model_name='historicalcreditnote',
            name='net_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='net total'),
        ),
        migrations.AddField(
            model_name='historicalcreditnote',
            name='vat_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='VAT total'),
        ),
        migrations.AddField(
            model_name='historicalinvoice',
            name='net_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='net total'),
        ),
        migrations.AddField(
            model_name='historicalinvoice',
            name='vat_rate',
            field=models.DecimalField(blank=True, decimal_places=4, editable=False, max_digits=5, null=True, verbose_name='VAT rate'),
        ),
        migrations.AddField(
            model_name='historicalinvoice',
            name='vat_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='VAT total'),
        ),
        migrations.AddField(
            model_name='invoice',
            name='net_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='net total'),
        ),
        migrations.AddField(
            model_name='invoice',
            name='vat_rate',
            field=models.DecimalField(blank=True, decimal_places=4, editable=False, max_digits=5, null=True, verbose_name='VAT rate'),
        ),
        migrations.AddField(
            model_name='invoice',
            name='vat_total',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='VAT total'),
        ),
        migrations.AddField(
            model_name='invoiceline',
            name='net_amount',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='net amount'),
        ),
        migrations.AddField(
            model_name='invoiceline',
            name='vat_amount',
            field=models.DecimalField(blank=True, decimal_places=2, editable=False, max_digits=14, null=True, verbose_name='VAT amount'),
        ),
        migrations.AddField(
            model_name='invoiceline',
            name='vat_rate',
            field=models.DecimalField(blank=True, decimal_places=4, editable=False, max_digits=5, null=True, verbose_name='VAT rate'),
        ),
        migrations.CreateModel(
            name='FapiaoRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('ordinary', 'Ordinary VAT fapiao'), ('special', 'Special VAT fapiao')], max_length=16, verbose_name='fapiao type')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('issued', 'Issued'), ('rejected', 'Rejected')], default='pending', max_length=16)),
                ('buyer_title', models.CharField(max_length=200, verbose_name='buyer title')),
                ('buyer_tax_id', models.CharField(max_length=18, verbose_name='tax ID')),
                ('buyer_address', models.CharField(blank=True, max_length=300, verbose_name='registered address')),
                ('buyer_phone', models.CharField(blank=True, max_length=40, verbose_name='phone')),
                ('buyer_bank', models.CharField(blank=True, max_length=200, verbose_name='bank')),
                ('buyer_account', models.CharField(blank=True, max_length=64, verbose_name='bank account')),
                ('requested_at', models.DateTimeField()),
                ('fapiao_number', models.CharField(blank=True, max_length=20, verbose_name='fapiao number')),
                ('fapiao_code', models.CharField(blank=True, max_length=20, verbose_name='fapiao code')),
                ('fapiao_date', models.DateField(blank=True, null=True, verbose_name='fapiao date')),
                ('fapiao_amount', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True, verbose_name='fapiao amount')),
                ('file', models.FileField(blank=True, max_length=200, upload_to=invoices.models.fapiao_upload_path)),
                ('rejection_reason', models.TextField(blank=True, verbose_name='rejection reason')),
                ('handled_at', models.DateTimeField(blank=True, null=True)),
                ('red_letter_needed_at', models.DateTimeField(blank=True, null=True)),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='fapiao_requests', to='accounts.customer')),
                ('handled_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('invoice', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='fapiao_requests', to='invoices.invoice')),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'fapiao request',
                'ordering': ['status', 'requested_at', 'id'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'rejected'), _negated=True), fields=('invoice',), name='one_live_fapiao_request_per_invoice'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'issued'), _negated=True), models.Q(models.Q(('fapiao_number', ''), _negated=True), ('fapiao_date__isnull', False), ('fapiao_amount__isnull', False), models.Q(('file', ''), _negated=True)), _connector='OR'), name='issued_fapiao_recorded'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'rejected'), _negated=True), models.Q(('rejection_reason', ''), _negated=True), _connector='OR'), name='rejected_fapiao_has_reason'), models.CheckConstraint(condition=models.Q(models.Q(('kind', 'special'), _negated=True), models.Q(models.Q(('buyer_address', ''), _negated=True), models.Q(('buyer_phone', ''), _negated=True), models.Q(('buyer_bank', ''), _negated=True), models.Q(('buyer_account', ''), _negated=True)), _connector='OR'), name='special_fapiao_has_bank_details')],
            },
        ),
        migrations.RunPython(vat_sums_install, vat_sums_remove),
        migrations.RunPython(split_open_invoices, migrations.RunPython.noop),
        row_guard(
            table="invoices_invoice",
            name="invoices_issued_vat_frozen",
            message="issued invoices never change: issue a credit note",
            update_when=(
                f"OLD.status IN {ISSUED} AND (NEW.net_total IS DISTINCT FROM OLD.net_total "
                "OR NEW.vat_total IS DISTINCT FROM OLD.vat_total "
                "OR NEW.vat_rate IS DISTINCT FROM OLD.vat_rate)"
            ),
        ),
        migrations.RunPython(resync_roles, migrations.RunPython.noop),
    ]
