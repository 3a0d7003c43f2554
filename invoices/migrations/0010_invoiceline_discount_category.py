"""Contracted discounts (plans.models.Discount) reach invoices as negative lines of their own
category. The charge lines of a discounted invoice add up to more than it billed, so what
credit notes may give back, and when they make the invoice credited, is measured against the
invoice's total (the rule of invoices.documents.services.credit_note_create), no longer line by
line only: the status trigger of 0008 is replaced, and a credit note beyond what is left of
the invoice's total is refused."""

import importlib

from django.db import migrations, models

from billingsite.db_guards import ISSUED, row_guard

closed = importlib.import_module("invoices.migrations.0008_issued_documents_closed")

# What the invoice's credit notes make it: credited once their totals reach the invoice's.
# The 0.005 absorbs SQLite's float sums.
STATUS_BY_CREDIT_NOTES = """CASE
  WHEN NOT EXISTS (SELECT 1 FROM invoices_creditnote WHERE invoice_id = NEW.id) THEN 'issued'
  WHEN (SELECT COALESCE(SUM(note.total), 0) FROM invoices_creditnote note
        WHERE note.invoice_id = NEW.id) < NEW.total - 0.005 THEN 'partially_credited'
  ELSE 'credited' END"""


def status_guard(status_rule: str):
    return row_guard(
        table="invoices_invoice",
        name="invoices_status_by_credit_notes",
        message="an invoice is issued as issued; only its credit notes move its status",
        insert_when=f"NEW.status IN {closed.CREDITED}",
        update_when=(
            f"(OLD.status NOT IN {ISSUED} AND NEW.status IN {closed.CREDITED}) "
            f"OR (OLD.status IN {ISSUED} AND ({closed.invoice_changed} "
            f"OR (NEW.status <> OLD.status AND NEW.status <> {status_rule})))"
        ),
    )


old_guard = status_guard(closed.STATUS_BY_CREDIT_NOTES)
new_guard = status_guard(STATUS_BY_CREDIT_NOTES)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0009_invoiced_months_backfill")]

    operations = [
        migrations.AlterField(
            model_name="invoiceline",
            name="category",
            field=models.CharField(
                choices=[
                    ("dau_fee", "DAU fee"),
                    ("value_added", "Value-added services"),
                    ("storage", "Storage"),
                    ("sensitive_words", "Sensitive words"),
                    ("api_rate_limit", "API rate limits"),
                    ("desktop", "Desktop client"),
                    ("dedicated_service", "Dedicated service"),
                    ("discount", "Contracted discount"),
                ],
                max_length=24,
            ),
        ),
        migrations.RunPython(old_guard.reverse_code, old_guard.code),
        new_guard,
        row_guard(
            table="invoices_creditnote",
            name="invoices_credit_notes_within_total",
            message="credit notes never give back more than the invoice billed",
            insert_when=(
                "(SELECT COALESCE(SUM(note.total), 0) FROM invoices_creditnote note "
                "WHERE note.invoice_id = NEW.invoice_id) + NEW.total "
                "> (SELECT total FROM invoices_invoice WHERE id = NEW.invoice_id) + 0.005"
            ),
        ),
    ]
