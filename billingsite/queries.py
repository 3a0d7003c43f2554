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

import datetime as dt
import functools
from collections.abc import Callable, Iterable

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F, Lookup, QuerySet
from django.db.models.lookups import In
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)

from billingsite.postgresql.prepared import fetch_fixed


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


# --- reads compiled once per process ---------------------------------------------------------

# Turned off, every read runs through the ORM as written (tests compare both paths).
COMPILED_READS = True
# Statements kept per read (one per input types and page).
MAX_STATEMENTS = 32


class _Unset:
    pass


class _Compiled:
    """One read as one database's compiler wrote it: the statement, where each input goes."""

    def __init__(
        self, kind, compiler, sql: str, params: list, slots: dict[int, tuple[str, Callable]]
    ):
        self.kind = kind  # the queryset's iterable class: what a row becomes
        self.compiler = compiler
        self.sql = sql
        self.params = params
        self.slots = slots  # parameter position -> (input name, how the input is sent)
        # What `compiler.results_iter` works out again on every call (the columns and their
        # converters: a third of the Python work of a compiled read's call), once.
        self.columns = [column[0] for column in compiler.select[0 : compiler.col_count]]
        self.converters = compiler.get_converters(self.columns)
        self.composite = compiler.has_composite_fields(self.columns)
        if kind is ModelIterable:
            # What ModelIterable works out from the compiler on every call, once: which columns
            # make the model's fields (by attname), and the select_related populators (which
            # keep no state between rows).
            klass_info, select = compiler.klass_info, compiler.select
            select_fields = klass_info["select_fields"]
            self.model = klass_info["model"]
            self.start, self.end = select_fields[0], select_fields[-1] + 1
            self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
            self.related_populators = get_related_populators(klass_info, select, compiler.using)
            self.annotation_col_map = compiler.annotation_col_map


def _sentinel(value, n: int):
    """A value of `value`'s type that no real input takes, to find where the input goes."""
    kind = type(value)
    if isinstance(value, int) and kind is not bool:  # choices enums too
        # Within the range of a 32-bit integer column (auth_user's id): Django turns a lookup
        # beyond its field's range into "no rows", with no parameter to find.
        return 2**31 - 1 - n
    if isinstance(value, str):
        return f"\x1fcompiled-read-input-{n}\x1f"
    if kind is dt.datetime:
        return dt.datetime(1, 1, 1, 0, 0, n + 1, tzinfo=dt.UTC)
    if kind is dt.date:
        return dt.date(1, 1, n + 1)
    if kind in (list, tuple, set, frozenset):
        # Only an id list sent as one parameter (`any_of` on PostgreSQL) is found: a list
        # spread over one placeholder per value (`__in`, any_of elsewhere) is not.
        return [-(2**61) - n]
    return _Unset


def _senders(connection, sentinel) -> list[tuple[object, Callable]]:
    """The forms a backend may have sent `sentinel` in, each with the same conversion."""
    same = (sentinel, lambda value: value)
    if isinstance(sentinel, list):
        return [(sentinel, lambda values: [int(value) for value in values])]
    if isinstance(sentinel, dt.datetime):
        adapt = connection.ops.adapt_datetimefield_value
        return [same, (adapt(sentinel), adapt)]
    if isinstance(sentinel, dt.date):
        adapt = connection.ops.adapt_datefield_value
        return [same, (adapt(sentinel), adapt)]
    return [same]


class CompiledRead:
    """A read written once as a queryset (`build(**inputs)`, built from the selector that holds
    its rule) whose SQL is compiled once per process and database, then sent with each call's
    inputs: same statement, same rows, same model instances as iterating the queryset, without
    building and compiling it again on every request. On the portal pages building the ORM
    queries (filters, joins, djmoney's wrapper, the compiler) was about a third of the CPU for
    one round trip each; the rows still go through the fields' converters and `from_db`.

    The inputs are found in the compiled parameters by sentinel values (whole numbers, texts,
    dates, aware datetimes, id lists sent as one array). A read whose inputs cannot all be found (another type, a value
    transformed on its way to the database), or a queryset this does not rebuild (prefetches,
    `values()` dicts, known related objects), keeps running through the ORM on every call, as
    does every read when `COMPILED_READS` is off: the portable path, never a different answer.
    """

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: dict[str, _Compiled | None] = {}
        functools.update_wrapper(self, build, updated=())

    def first(self, **inputs):
        rows = self(**inputs)
        return rows[0] if rows else None

    def slice(self, start: int, stop: int, **inputs) -> list:
        """`build(**inputs)[start:stop]` (a page): one statement per distinct page."""
        if stop <= start:
            return []
        window = (start, stop)
        compiled = self._compile(inputs, window) if COMPILED_READS else None
        if compiled is None:
            return list(self.build(**inputs)[start:stop])
        return self._run(compiled, inputs)

    def __call__(self, **inputs) -> list:
        """The rows (model instances, or tuples / values for `values_list`)."""
        compiled = self._compile(inputs) if COMPILED_READS else None
        if compiled is None:
            return list(self.build(**inputs))
        return self._run(compiled, inputs)

    def _run(self, compiled: _Compiled, inputs: dict) -> list:
        params = list(compiled.params)
        for position, (name, send) in compiled.slots.items():
            params[position] = send(inputs[name])
        # This thread's connection: the compiler's is the one of the thread that compiled it.
        # A fixed statement: on PostgreSQL planned once per connection, not once per request.
        rows = fetch_fixed(connections[compiled.compiler.using], compiled.sql, params)
        return _instances(compiled, rows)

    def _compile(self, inputs: dict, window: tuple[int, int] | None = None) -> _Compiled | None:
        alias = DEFAULT_DB_ALIAS
        shape = ",".join(f"{name}:{type(value).__name__}" for name, value in sorted(inputs.items()))
        key = f"{alias}:{connections[alias].vendor}:{shape}:{window}"
        try:
            return self._compiled[key]
        except KeyError:
            pass
        if len(self._compiled) >= MAX_STATEMENTS:
            self._compiled.clear()  # pages of long lists: keep a bounded few
        compiled = self._compile_for(connections[alias], inputs, window)
        self._compiled[key] = compiled
        return compiled

    def _compile_for(
        self, connection, inputs: dict, window: tuple[int, int] | None
    ) -> _Compiled | None:
        sentinels = {}
        for n, (name, value) in enumerate(sorted(inputs.items())):
            sentinel = _sentinel(value, n)
            if sentinel is _Unset:
                return None
            sentinels[name] = sentinel
        queryset = self.build(**sentinels)
        if window is not None:
            queryset = queryset[window[0] : window[1]]
        kind = queryset._iterable_class
        if (
            queryset._prefetch_related_lookups
            or queryset._known_related_objects
            or kind not in (ModelIterable, ValuesListIterable, FlatValuesListIterable)
            or queryset.db != connection.alias
        ):
            return None
        query = queryset.query
        if kind is ValuesListIterable and queryset._fields:
            # ValuesListIterable would reorder these columns: not rebuilt here.
            names = [*query.extra_select, *query.values_select, *query.annotation_select]
            fields = [
                *queryset._fields,
                *(f for f in query.annotation_select if f not in queryset._fields),
            ]
            if fields != names:
                return None
        compiler = queryset.query.get_compiler(using=connection.alias)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None
        params = list(params)
        slots: dict[int, tuple[str, Callable]] = {}
        for name, sentinel in sentinels.items():
            found = False
            for sent, send in _senders(connection, sentinel):
                for position, param in enumerate(params):
                    if type(param) is type(sent) and param == sent:
                        slots[position] = (name, send)
                        found = True
            if not found:
                return None
        return _Compiled(kind, compiler, sql, params, slots)


def _results(compiled: _Compiled, rows: list):
    """`compiled.compiler.results_iter([rows], tuple_expected=True)` with the converters it
    would work out again taken from `compiled`."""
    compiler = compiled.compiler
    results = iter(rows)
    if compiled.converters:
        results = compiler.apply_converters(results, compiled.converters)
    if compiled.composite:
        results = compiler.composite_fields_to_tuples(results, compiled.columns)
    return map(tuple, results)


def _instances(compiled: _Compiled, rows: list) -> list:
    """What the queryset's iterable class makes of `rows` (ModelIterable's loop, for one
    statement's rows)."""
    compiler = compiled.compiler
    results = _results(compiled, rows)
    if compiled.kind is FlatValuesListIterable:
        return [row[0] for row in results]
    if compiled.kind is ValuesListIterable:
        return list(results)
    db = compiler.using
    model_cls, init_list = compiled.model, compiled.init_list
    start, end = compiled.start, compiled.end
    related_populators = compiled.related_populators
    annotation_col_map = compiled.annotation_col_map
    instances = []
    for row in results:
        obj = model_cls.from_db(db, init_list, row[start:end])
        for populator in related_populators:
            populator.populate(row, obj)
        if annotation_col_map:
            for attr_name, position in annotation_col_map.items():
                setattr(obj, attr_name, row[position])
        instances.append(obj)
    return instances


def compiled_read(build: Callable[..., QuerySet]) -> CompiledRead:
    """Decorator: `build(**inputs)` returns the queryset; calling the result runs it compiled."""
    return CompiledRead(build)
