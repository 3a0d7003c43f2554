"""Promotional credit: its own ledger kinds (grant +, use -, lapse -), a grant's expiry date and
the grant a use or a lapse draws on. The database refuses a draw on a grant of another
customer, on an entry that is no grant, or one that takes the grant below zero (a trigger that
reads the grant's rows; every writer also holds the customer's row lock, so two draws never
race past it), a second lapse of a grant and a second use of a grant by one invoice (unique)."""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from billingsite.db_guards import rebuilt_on_sqlite

# SQLite rebuilds the table for the new CHECK constraints, which drops its triggers.
ledger_append_only = importlib.import_module(
    "accounts.migrations.0002_ledger_append_only"
).Migration.operations[0]

DRAW_REFUSED = (
    "a promotional credit use or lapse draws on a grant of the same customer "
    "and never takes it below zero"
)
# A draw's grant is a grant of the same customer, and what the grant has left after the draw
# is not below zero (the 0.005 absorbs SQLite's float sums).
DRAW_WRONG = """(
  NOT EXISTS (SELECT 1 FROM accounts_ledgerentry grant_row
              WHERE grant_row.id = NEW.promo_grant_id AND grant_row.kind = 'promo_grant'
              AND grant_row.customer_id = NEW.customer_id)
  OR (SELECT SUM(entry.amount) FROM accounts_ledgerentry entry
      WHERE entry.id = NEW.promo_grant_id OR entry.promo_grant_id = NEW.promo_grant_id)
     + NEW.amount < -0.005
)"""
IS_DRAW = "NEW.kind IN ('promo_use', 'promo_lapse')"


def draws_guard_install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # WHEN: the function runs for uses and lapses only, not for every ledger write.
        schema_editor.execute(
            "CREATE OR REPLACE FUNCTION accounts_promo_draw_guard() RETURNS trigger AS $$ "
            f"BEGIN IF {DRAW_WRONG} THEN RAISE EXCEPTION '{DRAW_REFUSED}' "
            "USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql;"
        )
        schema_editor.execute(
            "CREATE TRIGGER accounts_promo_draw_guard BEFORE INSERT ON accounts_ledgerentry "
            f"FOR EACH ROW WHEN ({IS_DRAW}) EXECUTE FUNCTION accounts_promo_draw_guard();"
        )
    elif vendor == "sqlite":
        schema_editor.execute(
            "CREATE TRIGGER accounts_promo_draw_guard BEFORE INSERT ON accounts_ledgerentry "
            f"FOR EACH ROW WHEN {IS_DRAW} AND {DRAW_WRONG} "
            f"BEGIN SELECT RAISE(ABORT, '{DRAW_REFUSED}'); END;"
        )


def draws_guard_remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "DROP TRIGGER IF EXISTS accounts_promo_draw_guard ON accounts_ledgerentry;"
        )
        schema_editor.execute("DROP FUNCTION IF EXISTS accounts_promo_draw_guard();")
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS accounts_promo_draw_guard;")


promo_draws_guard = migrations.RunPython(draws_guard_install, draws_guard_remove)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0021_customer_fapiao_details"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        *rebuilt_on_sqlite(
            operations=[
                migrations.RemoveConstraint(
                    model_name="ledgerentry",
                    name="ledger_sign_matches_kind",
                ),
                migrations.AddField(
                    model_name="ledgerentry",
                    name="expires_on",
                    field=models.DateField(blank=True, null=True),
                ),
                migrations.AddField(
                    model_name="ledgerentry",
                    name="promo_grant",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="promo_draws",
                        to="accounts.ledgerentry",
                    ),
                ),
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="kind",
                    field=models.CharField(
                        choices=[
                            ("deposit", "Deposit"),
                            ("invoice_debit", "Invoice debit"),
                            ("credit_note_credit", "Credit note credit"),
                            ("refund", "Refund"),
                            ("adjustment", "Manual adjustment"),
                            ("promo_grant", "Promotional credit granted"),
                            ("promo_use", "Promotional credit used"),
                            ("promo_lapse", "Promotional credit lapsed"),
                        ],
                        max_length=24,
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("amount__gt", 0),
                                ("kind__in", ["deposit", "credit_note_credit", "promo_grant"]),
                            ),
                            models.Q(
                                ("amount__lt", 0),
                                (
                                    "kind__in",
                                    ["invoice_debit", "refund", "promo_use", "promo_lapse"],
                                ),
                            ),
                            ("kind", "adjustment"),
                            _connector="OR",
                        ),
                        name="ledger_sign_matches_kind",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("expires_on__isnull", False), ("kind", "promo_grant")),
                            models.Q(
                                models.Q(("kind", "promo_grant"), _negated=True),
                                ("expires_on__isnull", True),
                            ),
                            _connector="OR",
                        ),
                        name="ledger_expiry_only_on_promo_grants",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("kind", "promo_grant"), _negated=True),
                            models.Q(("reason", ""), _negated=True),
                            _connector="OR",
                        ),
                        name="ledger_promo_grant_has_reason",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("kind__in", ["promo_use", "promo_lapse"]),
                                ("promo_grant__isnull", False),
                            ),
                            models.Q(
                                models.Q(("kind__in", ["promo_use", "promo_lapse"]), _negated=True),
                                ("promo_grant__isnull", True),
                            ),
                            _connector="OR",
                        ),
                        name="ledger_promo_draw_has_grant",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("kind", "promo_use")),
                        fields=("promo_grant", "reference"),
                        name="ledger_one_promo_use_per_grant_and_invoice",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="ledgerentry",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("kind", "promo_lapse")),
                        fields=("promo_grant",),
                        name="ledger_one_lapse_per_promo_grant",
                    ),
                ),
            ],
            guards=[ledger_append_only],
        ),
        promo_draws_guard,
    ]
