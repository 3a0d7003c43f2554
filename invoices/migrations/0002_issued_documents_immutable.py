from django.db import migrations

from billingsite.db_guards import ISSUED, guard

FROZEN = [
    "number", "period", "customer_id", "customer_name", "customer_address", "customer_tax_id",
    "customer_email", "total", "total_currency", "issued_at", "issue_date", "rated_at",
]
invoice_changed = " OR ".join(f"NEW.{col} IS DISTINCT FROM OLD.{col}" for col in FROZEN)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    operations = [
        guard(
            table="invoices_invoice",
            name="invoices_issued_invoice_frozen",
            message="issued invoices never change: issue a credit note",
            update_when=f"OLD.status IN {ISSUED} AND (NEW.status NOT IN {ISSUED} OR {invoice_changed})",
            delete_when=f"OLD.status IN {ISSUED}",
        ),
        guard(
            table="invoices_invoiceline",
            name="invoices_issued_lines_frozen",
            message="lines of issued invoices never change",
            update_when=f"(SELECT status FROM invoices_invoice WHERE id = OLD.invoice_id) IN {ISSUED}",
            delete_when=f"(SELECT status FROM invoices_invoice WHERE id = OLD.invoice_id) IN {ISSUED}",
        ),
        guard(
            table="invoices_creditnote",
            name="invoices_credit_note_frozen",
            message="credit notes never change",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
        guard(
            table="invoices_creditnoteline",
            name="invoices_credit_note_line_frozen",
            message="credit notes never change",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
    ]
