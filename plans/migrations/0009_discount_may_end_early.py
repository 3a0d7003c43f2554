"""A running discount may end early (plans.services.discount_end): its last day may move
earlier (or an open end become a date); every other term stays fixed, and nothing is deleted.
The check constraint `discount_days_ordered` still keeps the last day on or after the first."""

from django.db import migrations

from billingsite.db_guards import row_guard

MESSAGE = "the terms of a discount never change (they may have billed a month)"
FIXED = [
    "id", "customer_id", "application_id", "percent", "amount_off", "amount_off_currency",
    "first_day", "created_at", "created_by_id",
]
CHANGED = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FIXED)
# 0007's condition: every term, the last day included.
KEPT_BEFORE = CHANGED + " OR NEW.last_day IS DISTINCT FROM OLD.last_day"
# The last day may only become earlier; made later or open again, it is refused.
LAST_DAY_LATER = (
    "NEW.last_day IS DISTINCT FROM OLD.last_day AND (NEW.last_day IS NULL "
    "OR (OLD.last_day IS NOT NULL AND NEW.last_day > OLD.last_day))"
)

before = row_guard(
    table="plans_discount", name="plans_discount_terms_kept", message=MESSAGE,
    update_when=KEPT_BEFORE,
)
after = row_guard(
    table="plans_discount", name="plans_discount_terms_kept", message=MESSAGE,
    update_when=f"{CHANGED} OR ({LAST_DAY_LATER})",
)


class Migration(migrations.Migration):

    dependencies = [
        ("plans", "0008_vat_rate"),
    ]

    operations = [
        migrations.RunPython(before.reverse_code, before.code),
        migrations.RunPython(after.code, after.reverse_code),
    ]
