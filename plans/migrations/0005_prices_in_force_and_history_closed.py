"""Prices in force, plan and add-on decisions and history rows are never rewritten or
truncated (see billingsite/db_guards.py)."""

from django.db import migrations

from billingsite.db_guards import row_guard, truncate_guard

# A dated price applies from its 1st of the month: from that day on it may have billed.
PRICE_IN_FORCE = "OLD.valid_from <= {billing_today} OR NEW.valid_from <= {billing_today}"


def decision_changed(columns: list[str]) -> str:
    # The one change a decision takes: a pending one overridden by a later decision is
    # cancelled (cancelled_at set once), and stays for the record.
    changed = " OR ".join(f"NEW.{col} IS DISTINCT FROM OLD.{col}" for col in columns)
    return f"OLD.cancelled_at IS NOT NULL OR NEW.cancelled_at IS NULL OR {changed}"


HISTORY_TABLES = [
    "plans_historicalplan",
    "plans_historicalplanprice",
    "plans_historicaladdon",
    "plans_historicaladdonprice",
    "plans_historicaldedicatedcontract",
]


class Migration(migrations.Migration):
    dependencies = [("plans", "0004_addon_max_quantity_and_requires")]

    operations = [
        *(
            row_guard(
                table=table,
                name=f"{table}_in_force_frozen",
                message="a price in force never changes: add a row from a future month",
                update_when=PRICE_IN_FORCE,
                delete_when="OLD.valid_from <= {billing_today}",
            )
            for table in ("plans_planprice", "plans_addonprice")
        ),
        row_guard(
            table="plans_planchange",
            name="plans_planchange_kept",
            message="plan decisions are never edited: a pending one is only cancelled",
            update_when=decision_changed(
                [
                    "id", "application_id", "plan_id", "effective_date", "requested_date",
                    "created_at", "created_by_id", "note",
                ]
            ),
            delete_when="1 = 1",
        ),
        row_guard(
            table="plans_addonchange",
            name="plans_addonchange_kept",
            message="add-on decisions are never edited: a pending one is only cancelled",
            update_when=decision_changed(
                [
                    "id", "application_id", "addon_id", "quantity", "effective_date",
                    "created_at", "created_by_id", "note",
                ]
            ),
            delete_when="1 = 1",
        ),
        *(
            row_guard(
                table=table,
                name=f"{table}_append_only",
                message="history rows are append-only",
                update_when="1 = 1",
                delete_when="1 = 1",
            )
            for table in HISTORY_TABLES
        ),
        truncate_guard(
            name="plans_never_truncated",
            tables=[
                "plans_planprice",
                "plans_addonprice",
                "plans_planchange",
                "plans_addonchange",
                *HISTORY_TABLES,
            ],
        ),
    ]
