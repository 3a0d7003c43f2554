"""How the rows of `invoices.documents.issuing` (and the run's reads under lock) reach the database.

Rows are dicts of attname -> value built by `invoices.documents.issuing` (the one place that decides what
an invoice, its lines, history, debit and event hold); these functions only insert them, with
SQL built once per shape from the models' metadata (columns cannot drift from the models).
Building each statement through the ORM costs several times what the database spends on it,
for thousands of accounts a run. Values are plain Python that the PostgreSQL driver adapts, or
that the model fields prepare for SQLite.

On PostgreSQL the run issues a new invoice in two prepared statements: the locks and the number
(`lock_customer_for_issue`), then every row of the invoice (`issue_insert`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from psycopg.types.json import Jsonb

from accounts.locks import customer_lock_sql
from accounts.models import Application, Customer, CustomerEvent, LedgerEntry
from billingsite.postgresql.prepared import fetch_fixed
from invoices.documents.invoiced_months import invoiced_month_upsert_sql
from invoices.documents.numbering import format_number, number_bump_sql
from invoices.models import Invoice, InvoiceLine

if TYPE_CHECKING:
    # (issuing imports this module)
    from invoices.documents.issuing import IssueRows


@functools.cache
def history_model(model: type[Model]) -> type[Model]:
    """simple-history's history model of `model`, looked up once (each `Model.history` access
    builds a new manager class)."""
    # (simple-history adds `history` to the models it records; the stubs cannot know)
    return model.history.model  # type: ignore[attr-defined]


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), f"{name} is not a column"
    return field


def _column(model: type[Model], name: str) -> str:
    column = _field(model, name).column
    assert column is not None, f"{name} is not a column"
    return column


def _columns(model: type[Model], names: tuple[str, ...]) -> str:
    return ", ".join(_quote(_column(model, name)) for name in names)


@functools.cache
def _insert_sql(model: type[Model], names: tuple[str, ...], returning: bool) -> str:
    meta = model._meta
    placeholders = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {_quote(meta.db_table)} ({_columns(model, names)}) VALUES ({placeholders})"
    return f"{sql} RETURNING {_quote(meta.pk.column)}" if returning else sql


def _pg_value(value: object) -> object:
    # A JSON column's value (a dict or list) goes as jsonb; everything else is plain Python
    # (str, int, Decimal, date, aware datetime, None), which the driver adapts as the fields
    # would.
    return Jsonb(value) if isinstance(value, dict | list) else value


def _params(model: type[Model], names: tuple[str, ...], row: dict, db: BaseDatabaseWrapper) -> list:
    if db.vendor == "postgresql":
        return [_pg_value(row[name]) for name in names]
    return [_field(model, name).get_db_prep_save(row[name], db) for name in names]


def insert_one(model: type[Model], row: dict) -> int:
    """INSERT one row; its id."""
    db = connections[DEFAULT_DB_ALIAS]
    names = tuple(row)
    with db.cursor() as cursor:
        cursor.execute(_insert_sql(model, names, True), _params(model, names, row, db))
        return cursor.fetchone()[0]


@functools.cache
def _unnest_insert_sql(model: type[Model], names: tuple[str, ...]) -> str:
    table = _quote(model._meta.db_table)
    fields = [_field(model, name) for name in names]
    # (Field.cast_db_type is missing from django-stubs)
    arrays = ", ".join(
        f"%s::{field.cast_db_type(connection)}[]"  # type: ignore[attr-defined]
        for field in fields
    )
    return f"INSERT INTO {table} ({_columns(model, names)}) SELECT * FROM unnest({arrays})"


def _unnest_params(rows: list[dict], names: tuple[str, ...]) -> list[list]:
    return [[_pg_value(row[name]) for row in rows] for name in names]


def insert_many(model: type[Model], rows: list[dict]) -> None:
    """INSERT rows with the same keys in one round trip. Several rows on PostgreSQL: one array
    per column (unnest), the same short statement whatever the number of rows, which the
    driver parses once."""
    if not rows:
        return
    db = connections[DEFAULT_DB_ALIAS]
    names = tuple(rows[0])
    with db.cursor() as cursor:
        if db.vendor == "postgresql" and len(rows) > 1:
            cursor.execute(_unnest_insert_sql(model, names), _unnest_params(rows, names))
        else:
            cursor.executemany(
                _insert_sql(model, names, False), [_params(model, names, row, db) for row in rows]
            )


def update_one(model: type[Model], row: dict) -> None:
    """UPDATE every column of `row` but its id on the row with that id."""
    db = connections[DEFAULT_DB_ALIAS]
    names = tuple(name for name in row if name != "id")
    sql = _update_sql(model, names)
    with db.cursor() as cursor:
        cursor.execute(sql, [*_params(model, names, row, db), row["id"]])


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...]) -> str:
    meta = model._meta
    assignments = ", ".join(f"{_quote(_column(model, name))} = %s" for name in names)
    return f"UPDATE {_quote(meta.db_table)} SET {assignments} WHERE {_quote(meta.pk.column)} = %s"


@functools.cache
def _insert_ignoring_sql(model: type[Model], names: tuple[str, ...], conflict: str) -> str:
    column = _quote(_column(model, conflict))
    return (
        f"{_insert_sql(model, names, False)} ON CONFLICT ({column}) DO NOTHING "
        f"RETURNING {_quote(model._meta.pk.column)}"
    )


def insert_ignoring_conflict(model: type[Model], row: dict, *, conflict: str) -> int | None:
    """INSERT a row unless one with the same unique `conflict` value exists; its id, or None
    when it was not inserted."""
    db = connections[DEFAULT_DB_ALIAS]
    names = tuple(row)
    with db.cursor() as cursor:
        cursor.execute(_insert_ignoring_sql(model, names, conflict), _params(model, names, row, db))
        inserted = cursor.fetchone()
    return None if inserted is None else inserted[0]


# --- PostgreSQL: a run invoice issued in two statements ------------------------------------------


def _usage_versions_sql(customer: str, *, lock: bool) -> str:
    """The customer's applications (locked FOR SHARE on PostgreSQL: a usage write waits for
    the issuing transaction, and the issue for a usage write under way) as (applications, sum
    of their usage versions). `customer`: SQL giving the customer's id."""
    table = _quote(Application._meta.db_table)
    share = " FOR SHARE" if lock else ""
    return (
        f"SELECT count(*) AS applications, COALESCE(sum(usage_version), 0) AS usage_versions "
        f"FROM (SELECT usage_version FROM {table} WHERE customer_id = {customer}{share}) AS apps"
    )


def lock_usage_versions(customer_id: int) -> tuple[int, int]:
    """After the customer's row lock: its applications' usage versions, under lock."""
    sql = _usage_versions_sql("%s", lock=connection.features.has_select_for_update)
    with connection.cursor() as cursor:
        cursor.execute(sql, [customer_id])
        applications, versions = cursor.fetchone()
    return int(applications), int(versions)


@functools.cache
def _lock_for_issue_sql() -> tuple[str, list[str]]:
    lock_sql, names = customer_lock_sql()
    invoice_table = Invoice._meta.db_table
    # Each step reads the one before it, which fixes the order of the locks: the customer
    # (`accounts.locks.lock_customer`'s own statement), then its applications, then the number
    # sequence (the order of every other writer).
    sql = (
        f"WITH locked AS ({lock_sql}), "
        f"versions AS ({_usage_versions_sql('(SELECT id FROM locked)', lock=True)}), "
        f"next_number AS ({number_bump_sql(rows_from='locked, versions')}) "
        f"SELECT locked.*, nextval(pg_get_serial_sequence('{invoice_table}', 'id')), "
        "next_number.*, versions.* FROM locked, next_number, versions"
    )
    return sql, names


def lock_customer_for_issue(
    customer_id: int, *, series: str, year: int
) -> tuple[Customer, int, str, tuple[int, int]]:
    """PostgreSQL: lock the customer row and its applications, take the next number of
    `series` and reserve the id of the invoice about to be written, in one statement:
    (customer, invoice id, number, (applications, sum of usage versions))."""
    sql, names = _lock_for_issue_sql()
    row = fetch_fixed(connection, sql, [customer_id, series, year], one=True)
    if row is None:
        raise Customer.DoesNotExist(f"customer {customer_id} does not exist")
    customer = Customer.from_db(connection.alias, names, row[: len(names)])
    invoice_id, last_number, applications, versions = row[len(names) :]
    number = format_number(series=series, year=year, number=last_number)
    return customer, invoice_id, number, (int(applications), int(versions))


def _json_value(value: object) -> str:
    # Exact text for what JSON has no type for; PostgreSQL parses it with the column's type.
    if type(value) is Decimal:
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be written as a column value")


# One encoder for every row (json.dumps with options builds a new one per call). UTF-8 as it is
# (the frozen Chinese names): a third of the bytes of \u escapes.
_ENCODER = json.JSONEncoder(default=_json_value, separators=(",", ":"), ensure_ascii=False)


@functools.cache
def _renamed_columns(model: type[Model]) -> dict[str, str] | None:
    """attname -> column where they differ; None when every column is named as its attname
    (the rows then go out as they are)."""
    renamed = {
        field.attname: field.column
        for field in model._meta.concrete_fields
        if field.attname != field.column
    }
    return renamed or None


def _as_json(model: type[Model], rows: list[dict]) -> str:
    """Rows (attname -> value) as a JSON array of column -> value, for jsonb_populate_record."""
    renamed = _renamed_columns(model)
    if renamed is not None:
        rows = [{renamed.get(name, name): value for name, value in row.items()} for row in rows]
    return _ENCODER.encode(rows)


def _insert_from_json_sql(model: type[Model], names: tuple[str, ...], rows: str) -> str:
    # jsonb_populate_recordset types every value by its column, so the statement has one
    # parameter per table whatever the number of columns and rows, and the same text from
    # account to account: it is prepared once.
    table = _quote(model._meta.db_table)
    columns = _columns(model, names)
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "
        f"FROM jsonb_populate_recordset(NULL::{table}, {rows})"
    )


@functools.cache
def _issue_sql(
    invoice_names: tuple[str, ...],
    history_names: tuple[str, ...],
    line_names: tuple[str, ...],
    event_names: tuple[str, ...],
    debit_names: tuple[str, ...] | None,
    promo_use_names: tuple[str, ...] | None,
) -> str:
    invoice_history = history_model(Invoice)
    parts = [
        f"new_invoice AS ({_insert_from_json_sql(Invoice, invoice_names, '%(invoice)s')})",
        f"new_history AS ({_insert_from_json_sql(invoice_history, history_names, '%(history)s')})",
        f"new_lines AS ({_insert_from_json_sql(InvoiceLine, line_names, '%(lines)s')})",
        f"new_event AS ({_insert_from_json_sql(CustomerEvent, event_names, '%(event)s')} "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id)",
        # The invoiced month the frozen-month policy reads (invoices.documents.invoiced_months).
        "invoiced_month AS ("
        + invoiced_month_upsert_sql(
            customer_id="%(customer_id)s",
            period="%(period)s",
            status="%(status)s",
            number="%(number)s",
        )
        + ")",
    ]
    debited = "false"
    if debit_names is not None:
        parts.append(
            f"new_debit AS ({_insert_from_json_sql(LedgerEntry, debit_names, '%(debit)s')} "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)"
        )
        debited = "EXISTS (SELECT FROM new_debit)"
    if promo_use_names is not None:
        # No ON CONFLICT: a use's key is the invoice's customer and period, like the invoice's
        # unique pair; a conflict (or a grant a stale read overdraws: the database's trigger)
        # raises and nothing is written.
        parts.append(
            f"new_promo_uses AS ({_insert_from_json_sql(LedgerEntry, promo_use_names, '%(promo_uses)s')})"
        )
    return "WITH " + ",\n".join(parts) + f"\nSELECT {debited}, (SELECT id FROM new_event)"


def issue_insert(rows: IssueRows) -> tuple[bool, int | None]:
    """PostgreSQL: write every row of an issued invoice (`invoices.documents.issuing.IssueRows`; its id
    and number taken by `lock_customer_for_issue`) in one prepared statement: the invoice, its
    history row, its lines, its invoiced month (`invoiced_month_keep`'s upsert), its event (ON CONFLICT DO NOTHING on the dedupe key), its debit
    (ON CONFLICT DO NOTHING on the idempotency key) and its promotional credit uses. Returns (debited, event id or None).

    The sub-statements do not depend on one another's rows (ids are known), and foreign keys
    are checked at commit. Each table's rows travel as one JSON parameter, so the statement
    text is the same for every account and is prepared once per connection."""
    sql = _issue_sql(
        tuple(rows.invoice),
        tuple(rows.history),
        tuple(rows.lines[0]),
        tuple(rows.event),
        None if rows.debit is None else tuple(rows.debit),
        tuple(rows.promo_uses[0]) if rows.promo_uses else None,
    )
    params = {
        "customer_id": rows.invoice["customer_id"],
        "period": rows.invoice["period"],
        "status": rows.invoice["status"],
        "number": rows.invoice["number"],
        "invoice": _as_json(Invoice, [rows.invoice]),
        "history": _as_json(history_model(Invoice), [rows.history]),
        "lines": _as_json(InvoiceLine, rows.lines),
        "event": _as_json(CustomerEvent, [rows.event]),
    }
    if rows.debit is not None:
        params["debit"] = _as_json(LedgerEntry, [rows.debit])
    if rows.promo_uses:
        params["promo_uses"] = _as_json(LedgerEntry, rows.promo_uses)
    row = fetch_fixed(connection, sql, params, one=True)
    assert row is not None, "the statement returns one row"
    debited, event_id = row
    return debited, event_id
