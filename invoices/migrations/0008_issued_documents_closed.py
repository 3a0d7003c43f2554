"""Issued documents are closed: no line is added to them or moved into them, their status moves
only as their credit notes say, numbers move by one, history is never rewritten, and none of
it is truncated (see billingsite/db_guards.py and the README's immutability section)."""

from django.db import migrations

from billingsite.db_guards import ISSUED, row_guard, truncate_guard

CREDITED = "('partially_credited', 'credited')"

# Every column of an issued invoice but the two a credit note writes (status, updated_at).
INVOICE_FROZEN = [
    "id", "customer_id", "period", "number", "hold_reason", "customer_name", "customer_address",
    "customer_tax_id", "customer_email", "total", "total_currency", "rated_at",
    "rated_usage_version", "issued_at", "issue_date", "issued_by_id", "billing_run_id",
    "created_at",
]
invoice_changed = " OR ".join(f"NEW.{col} IS DISTINCT FROM OLD.{col}" for col in INVOICE_FROZEN)

# What the invoice's credit notes make it (the rule of invoices.services.credit_note_create):
# credited when every line is credited in full. The 0.005 absorbs SQLite's float sums.
STATUS_BY_CREDIT_NOTES = """CASE
  WHEN NOT EXISTS (SELECT 1 FROM invoices_creditnote WHERE invoice_id = NEW.id) THEN 'issued'
  WHEN EXISTS (
    SELECT 1 FROM invoices_invoiceline line WHERE line.invoice_id = NEW.id
    AND line.amount - (SELECT COALESCE(SUM(credited.amount), 0) FROM invoices_creditnoteline
                       credited WHERE credited.invoice_line_id = line.id) > 0.005
  ) THEN 'partially_credited'
  ELSE 'credited' END"""

LINE_INVOICE_STATUS = "(SELECT status FROM invoices_invoice WHERE id = NEW.invoice_id)"

# PostgreSQL: the month-end run writes an issued invoice and its lines in one statement
# (invoices.statements.issue_in_one_statement); every other writer adds lines while the invoice
# is a draft. So lines may join an issued invoice only when the command inserting them wrote
# the invoice and every line it has: all carry that command's xmin and cmin (transaction and
# command id), which no later statement can give an invoice issued before. (An UPDATE of the
# invoice in the same statement would give the invoice row that xmin and cmin, but not its
# earlier lines; an issued invoice always has lines.) Checked once per statement over its new
# rows, after the statement: its sub-statements run in no fixed order, and one check per
# statement costs less than one per line.
PG_LINES_CLOSED = f"""
CREATE OR REPLACE FUNCTION invoices_issued_lines_closed() RETURNS trigger AS $$
BEGIN
  IF EXISTS (
    WITH written AS (
      SELECT line.xmin AS xid, line.cmin AS cid FROM invoices_invoiceline line
      WHERE line.id = (SELECT id FROM new_lines LIMIT 1)
    )
    SELECT FROM (SELECT DISTINCT invoice_id FROM new_lines) added
    JOIN invoices_invoice invoice ON invoice.id = added.invoice_id
    CROSS JOIN written
    WHERE invoice.status IN {ISSUED}
      AND (NOT (invoice.xmin = written.xid AND invoice.cmin = written.cid)
           OR EXISTS (SELECT FROM invoices_invoiceline line WHERE line.invoice_id = invoice.id
                      AND NOT (line.xmin = written.xid AND line.cmin = written.cid)))
  ) THEN
    RAISE EXCEPTION 'issued invoices get no new lines: issue a credit note'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER invoices_issued_lines_closed AFTER INSERT ON invoices_invoiceline
  REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT
  EXECUTE FUNCTION invoices_issued_lines_closed();
"""

SQLITE_LINES_CLOSED = f"""
CREATE TRIGGER invoices_issued_lines_closed BEFORE INSERT ON invoices_invoiceline FOR EACH ROW
WHEN {LINE_INVOICE_STATUS} IN {ISSUED}
BEGIN SELECT RAISE(ABORT, 'issued invoices get no new lines: issue a credit note'); END;
"""


def lines_closed(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_LINES_CLOSED)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_LINES_CLOSED)


def lines_open(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "DROP TRIGGER IF EXISTS invoices_issued_lines_closed ON invoices_invoiceline;"
        )
        schema_editor.execute("DROP FUNCTION IF EXISTS invoices_issued_lines_closed();")
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS invoices_issued_lines_closed;")


class Migration(migrations.Migration):
    dependencies = [("invoices", "0007_billing_run_chunks_and_progress")]

    operations = [
        row_guard(
            table="invoices_invoice",
            name="invoices_status_by_credit_notes",
            message="an invoice is issued as issued; only its credit notes move its status",
            insert_when=f"NEW.status IN {CREDITED}",
            update_when=(
                f"(OLD.status NOT IN {ISSUED} AND NEW.status IN {CREDITED}) "
                f"OR (OLD.status IN {ISSUED} AND ({invoice_changed} "
                f"OR (NEW.status <> OLD.status AND NEW.status <> {STATUS_BY_CREDIT_NOTES})))"
            ),
        ),
        migrations.RunPython(lines_closed, lines_open),
        row_guard(
            table="invoices_invoiceline",
            name="invoices_line_stays",
            message="lines are never moved into an issued invoice",
            update_when=(
                "NEW.invoice_id IS DISTINCT FROM OLD.invoice_id "
                f"AND {LINE_INVOICE_STATUS} IN {ISSUED}"
            ),
        ),
        row_guard(
            table="invoices_creditnoteline",
            name="invoices_credit_note_closed",
            message="a credit note gets no lines beyond its total, nor lines of another invoice",
            insert_when=(
                "(SELECT COALESCE(SUM(amount), 0) FROM invoices_creditnoteline "
                "WHERE credit_note_id = NEW.credit_note_id) + NEW.amount "
                "> (SELECT total FROM invoices_creditnote WHERE id = NEW.credit_note_id) + 0.005 "
                "OR (SELECT invoice_id FROM invoices_invoiceline WHERE id = NEW.invoice_line_id) "
                "IS DISTINCT FROM "
                "(SELECT invoice_id FROM invoices_creditnote WHERE id = NEW.credit_note_id)"
            ),
        ),
        row_guard(
            table="invoices_numbersequence",
            name="invoices_number_sequence_steps",
            message="a number sequence only moves up by one",
            update_when=(
                "NEW.last_number <> OLD.last_number + 1 "
                "OR NEW.series <> OLD.series OR NEW.year <> OLD.year"
            ),
            delete_when="1 = 1",
        ),
        row_guard(
            table="invoices_historicalinvoice",
            name="invoices_historicalinvoice_append_only",
            message="history rows are append-only",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
        row_guard(
            table="invoices_historicalcreditnote",
            name="invoices_historicalcreditnote_append_only",
            message="history rows are append-only",
            update_when="1 = 1",
            delete_when="1 = 1",
        ),
        truncate_guard(
            name="invoices_never_truncated",
            tables=[
                "invoices_invoice",
                "invoices_invoiceline",
                "invoices_creditnote",
                "invoices_creditnoteline",
                "invoices_numbersequence",
                "invoices_historicalinvoice",
                "invoices_historicalcreditnote",
            ],
        ),
    ]
