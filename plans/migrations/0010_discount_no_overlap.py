"""The database refuses overlapping contracted discounts of one scope, as
`plans.services.discount_add` does (`_discount_overlap_refuse`): two customer-wide discounts
of one customer, or two discounts of one application, never share a day. Days are inclusive
(`last_day` is the last day discounted; NULL: open-ended), so a discount ending on the 31st
and the next starting on the 1st are adjacent, not overlapping. A customer-wide discount and
an application's may overlap: both apply (the code's rule).

PostgreSQL only: exclusion constraints over a GiST index (`btree_gist` for the id's equality).
SQLite, the embedded default, has no exclusion constraints: there the service's check under
the customer's lock is the rule. The constraints are not in the model's Meta: Django would
validate them in every ModelForm (`validate_constraints`, which SQLite cannot run) and write
them into SQLite's table rebuilds."""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateRangeField, RangeOperators
from django.contrib.postgres.operations import BtreeGistExtension
from django.db import migrations
from django.db.models import Func, Q, Value


class DateRange(Func):
    function = "DATERANGE"
    output_field = DateRangeField()


DAYS = DateRange("first_day", "last_day", Value("[]"))
CONSTRAINTS = [
    ExclusionConstraint(
        name="discount_no_overlap_per_customer",
        expressions=[("customer", RangeOperators.EQUAL), (DAYS, RangeOperators.OVERLAPS)],
        condition=Q(customer__isnull=False),
    ),
    ExclusionConstraint(
        name="discount_no_overlap_per_application",
        expressions=[("application", RangeOperators.EQUAL), (DAYS, RangeOperators.OVERLAPS)],
        condition=Q(application__isnull=False),
    ),
]


class BtreeGistKept(BtreeGistExtension):
    """Created on PostgreSQL (a no-op elsewhere); reversing keeps it: Django's reverse would
    query pg_extension on SQLite too, and the extension may serve other objects or have been
    there before."""

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        return


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    discount = apps.get_model("plans", "Discount")
    for constraint in CONSTRAINTS:
        schema_editor.add_constraint(discount, constraint)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    discount = apps.get_model("plans", "Discount")
    for constraint in CONSTRAINTS:
        schema_editor.remove_constraint(discount, constraint)


class Migration(migrations.Migration):
    dependencies = [
        ("plans", "0009_discount_may_end_early"),
    ]

    operations = [
        BtreeGistKept(),
        migrations.RunPython(install, remove),
    ]
