"""Query pieces the ORM lacks.

`any_of("customer_id", ids)` is `customer_id IN (...)` for a batch of ids, written on PostgreSQL
as `customer_id = ANY(%s::bigint[])` with the whole list as ONE parameter. The ORM's `__in`
prepares every value on its own (a field lookup per id) and sends one placeholder per id, which
psycopg then splits and quotes one by one, without its statement cache (the text is too long to
cache): for the month-end run's chunk reads of 200 customers or 400 applications that was about
a tenth of the worker's CPU per account (bench/README.md). Same rows, same index use; other
databases get the ORM's `IN`.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F, Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):
    lookup_name = "any_of"
    # The values are whole numbers (ids): no per-value preparation, the list is the parameter.
    prepare_rhs = False

    def get_prep_lookup(self):
        return [int(value) for value in self.rhs]

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql":
            return In(self.lhs, self.rhs).as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        array_type = self.lhs.output_field.cast_db_type(connection)
        return f"{lhs} = ANY(%s::{array_type}[])", (*lhs_params, self.rhs)


def any_of(field: str, ids: Iterable[int]) -> AnyOf:
    """A filter: `field` is one of `ids` (integer columns: ids and foreign keys).
    `Model.objects.filter(any_of("customer_id", ids), period=...)`."""
    return AnyOf(F(field), list(ids))
