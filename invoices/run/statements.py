"""SQL statements of the billing run's hot path, built once per shape from the models' metadata.

The run writes an invoice, its lines, a history row, a debit and an event per account, for
thousands of accounts. Building each statement through the ORM costs several times what the
database spends on it, so these write the same rows with SQL built from the models' own
metadata (columns cannot drift from the models). Rows are dicts of attname -> value, built by
`invoices.documents.services` (the one place that decides what an invoice, a debit or an event holds);
values are plain Python that the PostgreSQL driver adapts, or that the model fields prepare
for SQLite. Reads and writes made by people (re-rate, issue, credit notes) stay on the ORM.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Model
from psycopg.types.json import Jsonb

from accounts.models import Application, Customer, CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import lock_customer
from invoices.documents.numbering import format_number, number_bump_sql
from invoices.models import Invoice, InvoiceLine


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _columns(model: type[Model], names: tuple[str, ...]) -> str:
    meta = model._meta
    return ", ".join(_quote(meta.get_field(name).column) for name in names)


@functools.cache
def _insert_sql(model: type[Model], names: tuple[str, ...], returning: bool) -> str:
    meta = model._meta
    placeholders = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {_quote(meta.db_table)} ({_columns(model, names)}) VALUES ({placeholders})"
    return f"{sql} RETURNING {_quote(meta.pk.column)}" if returning else sql


def _pg_value(value):
    # A JSON column's value (a dict or list) goes as jsonb; everything else is plain Python
    # (str, int, Decimal, date, aware datetime, None), which the driver adapts as the fields
    # would.
    return Jsonb(value) if isinstance(value, dict | list) else value


def _params(model: type[Model], names: tuple[str, ...], row: dict, db) -> list:
    if db.vendor == "postgresql":
        return [_pg_value(row[name]) for name in names]
    get_field = model._meta.get_field
    return [get_field(name).get_db_prep_save(row[name], db) for name in names]


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
    fields = [model._meta.get_field(name) for name in names]
    arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in fields)
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


@functools.cache
def _history(model: type[Model]) -> tuple[type[Model], tuple[str, ...]]:
    # Looked up once: each `Model.history` access builds a new manager class.
    history_model = model.history.model
    tracked = tuple(
        field.attname
        for field in history_model._meta.concrete_fields
        if not field.name.startswith("history_")
    )
    return history_model, tracked


def invoice_history() -> tuple[type[Model], tuple[str, ...]]:
    """The HistoricalInvoice model and the invoice fields it copies."""
    return _history(Invoice)


def customer_history() -> tuple[type[Model], tuple[str, ...]]:
    """The HistoricalCustomer model and the customer fields it copies."""
    return _history(Customer)


def _customer_columns() -> tuple[str, list[str]]:
    fields = Customer._meta.concrete_fields
    return ", ".join(_quote(field.column) for field in fields), [field.attname for field in fields]


@functools.cache
def _customer_lock_sql() -> tuple[str, list[str]]:
    meta = Customer._meta
    columns, names = _customer_columns()
    sql = (
        f"SELECT {columns} FROM {_quote(meta.db_table)} WHERE {_quote(meta.pk.column)} = %s "
        "FOR UPDATE"
    )
    return sql, names


def lock_customer_row(customer_id: int) -> Customer:
    """`accounts.services.lock_customer`: the same SELECT ... FOR UPDATE of the customer row,
    without the ORM's query building on PostgreSQL (whose driver returns Python values)."""
    if connection.vendor != "postgresql":
        return lock_customer(customer=customer_id)
    sql, names = _customer_lock_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [customer_id])
        row = cursor.fetchone()
    if row is None:
        raise Customer.DoesNotExist(f"customer {customer_id} does not exist")
    return Customer.from_db(connection.alias, names, row)


def ledger_balance_now(customer_id: int) -> Decimal:
    if connection.vendor != "postgresql":
        return ledger_balance(customer=customer_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM {LedgerEntry._meta.db_table} "
            "WHERE customer_id = %s",
            [customer_id],
        )
        return cursor.fetchone()[0].quantize(Decimal("0.01"))


@functools.cache
def _debit_sql(names: tuple[str, ...]) -> str:
    return (
        f"{_insert_sql(LedgerEntry, names, False)} "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
    )


def debit_insert(row: dict) -> bool:
    """INSERT a ledger debit unless its idempotency key exists; whether it was inserted."""
    db = connections[DEFAULT_DB_ALIAS]
    names = tuple(row)
    with db.cursor() as cursor:
        cursor.execute(_debit_sql(names), _params(LedgerEntry, names, row, db))
        return cursor.fetchone() is not None


# --- PostgreSQL: a run invoice issued in two statements ------------------------------------------


class _Preparing:
    # On Django's cursor wrappers (execute wrappers, query log) around a server-side-binding
    # cursor: its statements are prepared, so one run for every account is planned once.
    def _execute(self, sql, params, *ignored_wrapper_args):
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params, prepare=True)


class _PreparingCursorWrapper(_Preparing, CursorWrapper):
    pass


class _PreparingCursorDebugWrapper(_Preparing, CursorDebugWrapper):
    def execute(self, sql, params=None):
        # The query log shows the statement as written: the driver keeps no inlined text of a
        # prepared statement to show instead.
        with self.debug_sql(sql, params):
            return CursorWrapper.execute(self, sql, params)


def _prepared_cursor() -> CursorWrapper:
    """PostgreSQL: a cursor whose statements are sent with their parameters apart and prepared
    on the server once per session (Django's own cursors bind on the client and never prepare,
    see the `prepare_threshold` and `server_side_binding` database options). A plain cursor
    when BILLING_RUN_PREPARED_STATEMENTS is off."""
    if not settings.BILLING_RUN_PREPARED_STATEMENTS:
        return connection.cursor()
    # The PostgreSQL backend is loaded only when the run uses it.
    from django.db.backends.postgresql.base import ServerBindingCursor  # noqa: PLC0415

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns automatic preparing off (for connection poolers), and psycopg then
        # ignores prepare=True too. With a threshold no statement reaches, only the statements
        # of these cursors are prepared.
        raw.prepare_threshold = 2**31
    wrapper = _PreparingCursorDebugWrapper if connection.queries_logged else _PreparingCursorWrapper
    return wrapper(ServerBindingCursor(raw), connection)


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
    meta = Customer._meta
    columns, names = _customer_columns()
    invoice_table = Invoice._meta.db_table
    # Each step reads the one before it, which fixes the order of the locks: the customer,
    # then its applications, then the number sequence (the order of every other writer).
    sql = (
        f"WITH locked AS (SELECT {columns} FROM {_quote(meta.db_table)} "
        f"WHERE {_quote(meta.pk.column)} = %s FOR UPDATE), "
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
    with _prepared_cursor() as cursor:
        cursor.execute(sql, [customer_id, series, year])
        row = cursor.fetchone()
    if row is None:
        raise Customer.DoesNotExist(f"customer {customer_id} does not exist")
    customer = Customer.from_db(connection.alias, names, row[: len(names)])
    invoice_id, last_number, applications, versions = row[len(names) :]
    number = format_number(series=series, year=year, number=last_number)
    return customer, invoice_id, number, (int(applications), int(versions))


def _json_value(value):
    # Exact text for what JSON has no type for; PostgreSQL parses it with the column's type.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be written as a column value")


@functools.cache
def _column_of(model: type[Model]) -> dict[str, str]:
    return {field.attname: field.column for field in model._meta.concrete_fields}


def _as_json(model: type[Model], rows: list[dict]) -> str:
    """Rows (attname -> value) as a JSON array of column -> value, for jsonb_populate_record."""
    column = _column_of(model)
    return json.dumps(
        [{column[name]: value for name, value in row.items()} for row in rows],
        default=_json_value,
        separators=(",", ":"),
        # UTF-8 as it is (the frozen Chinese names): a third of the bytes of \u escapes.
        ensure_ascii=False,
    )


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


@dataclass(frozen=True)
class ArrearsStart:
    """What `accounts.services.update_arrears` writes when a debit takes the balance below zero
    and no arrears are running: the day, the customer's history row and the event (its
    payload's balance is filled in by the statement, which is the one that knows it)."""

    today: dt.date
    customer_history: dict
    event: dict


@dataclass(frozen=True)
class IssueWritten:
    debited: bool  # False: the debit's idempotency key already existed, nothing was debited
    event_id: int | None  # None: the event's dedupe key already existed
    balance: Decimal  # the ledger balance after the debit
    arrears_started: bool
    arrears_event_id: int | None


@functools.cache
def _issue_sql(
    invoice_names: tuple[str, ...],
    history_names: tuple[str, ...],
    line_names: tuple[str, ...],
    debit_names: tuple[str, ...],
    event_names: tuple[str, ...],
    customer_history_names: tuple[str, ...],
) -> str:
    invoice_history_model, _ = invoice_history()
    customer_history_model, _ = customer_history()
    customer_table = _quote(Customer._meta.db_table)
    ledger = _quote(LedgerEntry._meta.db_table)
    balance_after = "(SELECT before FROM balance) + %(debit_amount)s"
    parts = [
        # The statement's snapshot is taken after the caller's lock: it sees every entry.
        f"balance AS (SELECT COALESCE(SUM(amount), 0) AS before FROM {ledger} "
        "WHERE customer_id = %(customer_id)s)",
        f"new_invoice AS ({_insert_from_json_sql(Invoice, invoice_names, '%(invoice)s')})",
        "new_history AS ("
        f"{_insert_from_json_sql(invoice_history_model, history_names, '%(history)s')})",
        f"new_lines AS ({_insert_from_json_sql(InvoiceLine, line_names, '%(lines)s')})",
        f"new_event AS ({_insert_from_json_sql(CustomerEvent, event_names, '%(event)s')} "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id)",
        # debit_amount 0: the invoice is 0.00 and nothing is debited (the row is not written).
        f"new_debit AS ({_insert_from_json_sql(LedgerEntry, debit_names, '%(debit)s')} "
        "WHERE %(debit_amount)s <> 0 "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id)",
        # update_arrears' rule for a debit: below zero and no arrears running -> they start.
        f"arrears AS (UPDATE {customer_table} SET arrears_since = %(today)s "
        f"WHERE id = %(customer_id)s AND arrears_since IS NULL AND {balance_after} < 0 "
        "RETURNING id)",
        "arrears_history AS ("
        + _insert_from_json_sql(
            customer_history_model, customer_history_names, "%(customer_history)s"
        )
        + " WHERE EXISTS (SELECT FROM arrears))",
        "arrears_event AS ("
        + _insert_from_json_sql(
            CustomerEvent,
            event_names,
            "jsonb_set(%(arrears_event)s, '{0,payload,balance}', "
            f"to_jsonb(round({balance_after}, 2)::text))",
        )
        + " WHERE EXISTS (SELECT FROM arrears) "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id)",
    ]
    return (
        "WITH "
        + ",\n".join(parts)
        + "\nSELECT EXISTS (SELECT FROM new_debit), (SELECT id FROM new_event), "
        f"{balance_after}, EXISTS (SELECT FROM arrears), (SELECT id FROM arrears_event)"
    )


def issue_in_one_statement(
    *,
    invoice: dict,
    history: dict,
    lines: list[dict],
    debit: dict,
    event: dict,
    arrears: ArrearsStart,
) -> IssueWritten:
    """PostgreSQL: in one prepared statement, write an issued invoice (its id and number
    already taken by `lock_customer_for_issue`), its history row, its lines, its ledger debit
    (ON CONFLICT DO NOTHING on the key; not written for a 0.00 invoice), its event (ON CONFLICT
    DO NOTHING on the dedupe key), and start arrears if the debit takes the balance below zero
    (the run derives its counters from these rows afterwards). The caller holds the customer's row lock, taken by an
    earlier statement, so this statement's snapshot sees every ledger entry committed before
    the lock was granted. The sub-statements do not depend on one another's rows (ids are
    known), and foreign keys are checked at commit."""
    invoice_history_model, _ = invoice_history()
    customer_history_model, _ = customer_history()
    sql = _issue_sql(
        tuple(invoice),
        tuple(history),
        tuple(lines[0]),
        tuple(debit),
        tuple(event),
        tuple(arrears.customer_history),
    )
    params = {
        "customer_id": invoice["customer_id"],
        "invoice": _as_json(Invoice, [invoice]),
        "history": _as_json(invoice_history_model, [history]),
        "lines": _as_json(InvoiceLine, lines),
        "event": _as_json(CustomerEvent, [event]),
        "debit": _as_json(LedgerEntry, [debit]),
        "debit_amount": debit["amount"],
        "today": arrears.today,
        "customer_history": _as_json(customer_history_model, [arrears.customer_history]),
        "arrears_event": _as_json(CustomerEvent, [arrears.event]),
    }
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        debited, event_id, balance, arrears_started, arrears_event_id = cursor.fetchone()
    return IssueWritten(
        debited=debited,
        event_id=event_id,
        balance=balance.quantize(Decimal("0.01")),
        arrears_started=arrears_started,
        arrears_event_id=arrears_event_id,
    )
