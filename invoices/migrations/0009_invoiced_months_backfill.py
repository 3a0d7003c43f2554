"""Backfill accounts.InvoicedMonth from the invoices: one row per invoice with its period,
status and number (from now on invoices.documents.invoiced_months keeps it in every invoice write)."""

from django.db import migrations


def backfill(apps, schema_editor):
    Invoice = apps.get_model("invoices", "Invoice")
    InvoicedMonth = apps.get_model("accounts", "InvoicedMonth")
    rows = Invoice.objects.values_list("customer_id", "period", "status", "number").iterator(
        chunk_size=5000
    )
    batch = []
    for customer_id, period, status, number in rows:
        batch.append(
            InvoicedMonth(customer_id=customer_id, period=period, status=status, number=number)
        )
        if len(batch) == 5000:
            InvoicedMonth.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    InvoicedMonth.objects.bulk_create(batch, ignore_conflicts=True)


def forget(apps, schema_editor):
    apps.get_model("accounts", "InvoicedMonth").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0008_issued_documents_closed"),
        ("accounts", "0014_invoiced_month"),
    ]

    operations = [migrations.RunPython(backfill, forget)]
