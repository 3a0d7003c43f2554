"""Usage metering: the IM platform's daily rows, ingested all-or-nothing and idempotently.

One DailyUsage row per application and Asia/Shanghai day. Resending a row with the same
values changes nothing; a different value for a month that is not invoiced replaces the row
and leaves a UsageRevision (who, when, old, new); any change in an invoiced month is refused,
because billed months are corrected by credit notes, never by rewriting usage (which months
are frozen is accounts.frozen_months': an issued invoice's; a held one is only made stale).

Speed matters (the platform pushes every application every day): a request of 10,000 rows is
validated in plain Python and written with a fixed number of statements, whatever its size:
one query reads (and locks) the applications, one reads the stored rows, one reads the
invoiced months, and one statement each inserts, updates, records revisions and bumps usage
versions. What is read and written is decided once, as named rows (`UsageRow`, `UsageInsert`,
`UsageUpdate`, `RevisionInsert`); only the statements differ per database
(`PostgresStatements`: single `unnest()` statements; `OrmStatements`: the ORM's bulk
operations).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from django.db import connection, transaction
from django.db.models import F

from accounts.frozen_months import Change, frozen_months
from accounts.models import Application, DailyUsage, UsageRevision
from accounts.services import IDENTIFIER_PATTERN
from billingsite.clock import billing_date
from billingsite.refusals import Refusal

MAX_ROWS_PER_REQUEST = 10_000
# An admin CSV import may carry a month of data for many applications at once.
MAX_ROWS_PER_CSV = 100_000
MAX_DAU = 2_147_483_647  # PositiveIntegerField
MAX_MESSAGES = 9_223_372_036_854_775_807  # PositiveBigIntegerField
CSV_HEADER = ("app_key", "date", "dau", "delivered_messages")
FIELDS = CSV_HEADER


def astuple_shallow(columns) -> tuple[list, ...]:
    """The column lists of a columns dataclass, in field order (not copied)."""
    return tuple(getattr(columns, f.name) for f in fields(columns))


# A request carries up to 10,000 rows (an admin CSV 100,000). They are held as columns: one
# list per named field, row i across them, read back by unpacking `rows()` into named locals.
# An object per row (a NamedTuple or dataclass) would cost more than the SQL: tens of thousands
# of objects that the garbage collector keeps scanning for the length of the request (plain
# tuples of numbers it stops tracking; objects it cannot).


@dataclass
class ParsedRows:
    """Request rows whose shape is valid, not yet checked against the database."""

    index: list[int] = field(default_factory=list)
    app_key: list[str] = field(default_factory=list)
    day: list[dt.date] = field(default_factory=list)
    dau: list[int] = field(default_factory=list)
    delivered_messages: list[int] = field(default_factory=list)

    def rows(self) -> Iterator[tuple[int, str, dt.date, int, int]]:
        return zip(
            self.index, self.app_key, self.day, self.dau, self.delivered_messages, strict=True
        )


@dataclass
class UsageRows:
    """Valid rows of the request with their application (and its customer)."""

    index: list[int] = field(default_factory=list)
    app_key: list[str] = field(default_factory=list)
    application_id: list[int] = field(default_factory=list)
    customer_id: list[int] = field(default_factory=list)
    day: list[dt.date] = field(default_factory=list)
    dau: list[int] = field(default_factory=list)
    delivered_messages: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.index)

    def rows(self) -> Iterator[tuple[int, str, int, int, dt.date, int, int]]:
        return zip(
            self.index,
            self.app_key,
            self.application_id,
            self.customer_id,
            self.day,
            self.dau,
            self.delivered_messages,
            strict=True,
        )

    def select(self, positions: list[int]) -> UsageRows:
        """The rows at `positions` (all of them: this object itself)."""
        if len(positions) == len(self.index):
            return self
        return UsageRows(*([column[i] for i in positions] for column in astuple_shallow(self)))

    def append(
        self,
        index: int,
        app_key: str,
        application_id: int,
        customer_id: int,
        day: dt.date,
        dau: int,
        delivered_messages: int,
    ) -> None:
        self.index.append(index)
        self.app_key.append(app_key)
        self.application_id.append(application_id)
        self.customer_id.append(customer_id)
        self.day.append(day)
        self.dau.append(dau)
        self.delivered_messages.append(delivered_messages)


@dataclass
class LockedApplications:
    """The applications a request names, by app key (locked until commit)."""

    id: dict[str, int] = field(default_factory=dict)
    created_on: dict[str, dt.date] = field(default_factory=dict)
    customer_id: dict[str, int] = field(default_factory=dict)

    def add(self, app_key: str, id: int, created_on: dt.date, customer_id: int) -> None:
        self.id[app_key] = id
        self.created_on[app_key] = created_on
        self.customer_id[app_key] = customer_id


@dataclass
class StoredUsage:
    """The DailyUsage rows stored for (application id, day) pairs."""

    usage_id: dict[tuple[int, dt.date], int] = field(default_factory=dict)
    dau: dict[tuple[int, dt.date], int] = field(default_factory=dict)
    delivered_messages: dict[tuple[int, dt.date], int] = field(default_factory=dict)

    def add(self, key: tuple[int, dt.date], usage_id: int, dau: int, messages: int) -> None:
        self.usage_id[key] = usage_id
        self.dau[key] = dau
        self.delivered_messages[key] = messages


@dataclass
class UsageChanges:
    """Stored rows that get new values: the update, and the revision it leaves."""

    usage_id: list[int] = field(default_factory=list)
    old_dau: list[int] = field(default_factory=list)
    old_delivered_messages: list[int] = field(default_factory=list)
    new_dau: list[int] = field(default_factory=list)
    new_delivered_messages: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.usage_id)

    def rows(self) -> Iterator[tuple[int, int, int, int, int]]:
        return zip(
            self.usage_id,
            self.old_dau,
            self.old_delivered_messages,
            self.new_dau,
            self.new_delivered_messages,
            strict=True,
        )


@dataclass(frozen=True)
class IngestResult:
    created: int
    updated: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        # Not dataclasses.asdict, which deep-copies every value: this is the API's answer.
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


class UsageValidationError(Refusal):
    """Bad rows (400): `errors` is a list of {"index", "field", "message"}, one per problem,
    ordered by row; index None means the request as a whole."""

    code = "invalid_rows"

    def __init__(self, errors: list[dict]):
        self.errors = errors
        super().__init__(f"{len(errors)} usage row error(s): " + "; ".join(_describe(errors[:3])))
        # The API's answer lists every row; its message only counts them.
        self.message = f"{len(errors)} row error(s); nothing was stored"
        self.extra = {"errors": errors}


class UsageBilledMonthError(Refusal):
    """Rows that would change an invoiced month (409): `conflicts` is a list of
    {"index", "app_key", "date", "invoice"}."""

    code = "month_invoiced"

    def __init__(self, conflicts: list[dict]):
        self.conflicts = conflicts
        first = conflicts[0]
        super().__init__(
            f"{len(conflicts)} row(s) would change usage of an invoiced month (first: row "
            f"{first['index']}, {first['app_key']} on {first['date']}, invoice {first['invoice']}); "
            "billed months are corrected by credit notes",
            conflicts=conflicts,
        )


def _describe(errors: list[dict]) -> list[str]:
    return [
        f"row {e['index']}: {e['message']}" if e["index"] is not None else e["message"]
        for e in errors
    ]


def _error_order(error: dict) -> tuple[int, int]:
    index = -1 if error["index"] is None else error["index"]
    return index, (None, *FIELDS).index(error["field"])


def _whole_number(value, *, field: str, maximum: int) -> str | None:
    """The problem with a count, or None. JSON floats (even 5.0), strings and booleans are
    refused: the platform reports whole counts."""
    if type(value) is not int:
        if value is None:
            return f"{field} is required"
        return f"{field} must be a whole number, got {value!r}"
    if value < 0:
        return f"{field} cannot be negative, got {value}"
    if value > maximum:
        return f"{field} is larger than {maximum:,}"
    return None


def _check_rows(rows, *, today: dt.date, max_rows: int):
    """Shape checks that need no database. Returns (parsed, unparsed_keys, errors): the rows
    whose shape is valid; unparsed_keys are the (index, app_key) of rows that failed but still
    name an app key."""
    if not isinstance(rows, list):
        return (
            ParsedRows(),
            [],
            [{"index": None, "field": None, "message": "expected a JSON list of usage rows"}],
        )
    if len(rows) > max_rows:
        return (
            ParsedRows(),
            [],
            [
                {
                    "index": None,
                    "field": None,
                    "message": f"at most {max_rows:,} rows per request, got {len(rows):,}",
                }
            ],
        )
    parsed = ParsedRows()
    unparsed_keys = []
    errors = []
    fromisoformat = dt.date.fromisoformat
    for index, row in enumerate(rows):
        if type(row) is not dict:
            errors.append(
                {
                    "index": index,
                    "field": None,
                    "message": "each row must be an object with app_key, date, dau and "
                    "delivered_messages",
                }
            )
            continue
        app_key = row.get("app_key")
        day_text = row.get("date")
        dau = row.get("dau")
        messages = row.get("delivered_messages")
        ok = True
        if type(app_key) is not str or not app_key:
            errors.append({"index": index, "field": "app_key", "message": "app_key is required"})
            ok = False
        elif not IDENTIFIER_PATTERN.match(app_key):
            # No application has such a key; it is not looked up (a NUL would break the query).
            errors.append(
                {"index": index, "field": "app_key", "message": f"unknown app_key {app_key!r}"}
            )
            ok = False
            app_key = None
        day = None
        if type(day_text) is not str or len(day_text) != 10:
            day_ok = False
        else:
            try:
                day = fromisoformat(day_text)
                day_ok = True
            except ValueError:
                day_ok = False
        if not day_ok:
            errors.append(
                {
                    "index": index,
                    "field": "date",
                    "message": f"date must be a day like 2026-10-31, got {day_text!r}",
                }
            )
            ok = False
        elif day > today:
            errors.append(
                {
                    "index": index,
                    "field": "date",
                    "message": f"date {day_text} is in the future (today is {today.isoformat()} "
                    "in Asia/Shanghai)",
                }
            )
            ok = False
        if type(dau) is not int or dau < 0 or dau > MAX_DAU:
            errors.append(
                {
                    "index": index,
                    "field": "dau",
                    "message": _whole_number(dau, field="dau", maximum=MAX_DAU),
                }
            )
            ok = False
        if type(messages) is not int or messages < 0 or messages > MAX_MESSAGES:
            errors.append(
                {
                    "index": index,
                    "field": "delivered_messages",
                    "message": _whole_number(
                        messages, field="delivered_messages", maximum=MAX_MESSAGES
                    ),
                }
            )
            ok = False
        if ok:
            parsed.index.append(index)
            parsed.app_key.append(app_key)
            parsed.day.append(day)
            parsed.dau.append(dau)
            parsed.delivered_messages.append(messages)
        elif type(app_key) is str and app_key:
            # Still checked against the database, so the answer names every problem at once.
            unparsed_keys.append((index, app_key))
    return parsed, unparsed_keys, errors


# --- statements: the same reads and writes, per database ---------------------------------------

# PostgreSQL arrays travel as one comma-joined text parameter: the driver then quotes one
# string instead of adapting 10,000 values one by one (a third of the request time).
ARRAY = "string_to_array(%s, ',')"


def _joined(values) -> str:
    """Comma-joined ints, dates (ISO) or identifier strings, none of which contain a comma."""
    return ",".join(map(str, values))


class OrmStatements:
    """The ingest's reads and writes through the ORM (SQLite, and keys PostgreSQL's text
    arrays cannot carry)."""

    @staticmethod
    def lock_applications(app_keys: set[str]) -> LockedApplications:
        locked = LockedApplications()
        for row in (
            Application.objects.filter(app_key__in=app_keys)
            .order_by("id")
            .select_for_update(no_key=True)
            .values_list("app_key", "id", "created_on", "customer_id")
        ):
            locked.add(*row)
        return locked

    @staticmethod
    def stored_rows(pairs: list[tuple[int, dt.date]]) -> StoredUsage:
        wanted = set(pairs)
        days = [day for _, day in pairs]
        stored = StoredUsage()
        for app_id, day, usage_id, dau, messages in DailyUsage.objects.filter(
            application_id__in={app_id for app_id, _ in pairs},
            day__gte=min(days),
            day__lte=max(days),
        ).values_list("application_id", "day", "id", "dau", "delivered_messages"):
            if (app_id, day) in wanted:
                stored.add((app_id, day), usage_id, dau, messages)
        return stored

    @staticmethod
    def lock_and_read(
        app_keys: set[str], pairs: list[tuple[str, dt.date]]
    ) -> tuple[LockedApplications, StoredUsage]:
        """Locks the applications named by `app_keys`, then reads the usage stored for the
        (app key, day) `pairs` of known applications (the read after the lock: it sees what
        a request that held the lock before has committed)."""
        apps = OrmStatements.lock_applications(app_keys)
        known = [(apps.id[key], day) for key, day in pairs if key in apps.id]
        return apps, OrmStatements.stored_rows(known) if known else StoredUsage()

    @staticmethod
    def insert_usage(rows: UsageRows, *, now: dt.datetime) -> None:
        DailyUsage.objects.bulk_create(
            [
                DailyUsage(
                    application_id=app_id,
                    day=day,
                    dau=dau,
                    delivered_messages=messages,
                    updated_at=now,
                )
                for _, _, app_id, _, day, dau, messages in rows.rows()
            ],
            batch_size=500,
        )

    @staticmethod
    def replace_usage(
        changes: UsageChanges, *, now: dt.datetime, user_id: int | None, source: str
    ) -> None:
        """Stores the new values and records one revision per changed row."""
        DailyUsage.objects.bulk_update(
            [
                DailyUsage(id=usage_id, dau=dau, delivered_messages=messages, updated_at=now)
                for usage_id, _, _, dau, messages in changes.rows()
            ],
            ["dau", "delivered_messages", "updated_at"],
            batch_size=500,
        )
        UsageRevision.objects.bulk_create(
            [
                UsageRevision(
                    usage_id=usage_id,
                    old_dau=old_dau,
                    old_delivered_messages=old_messages,
                    new_dau=new_dau,
                    new_delivered_messages=new_messages,
                    changed_by_id=user_id,
                    changed_at=now,
                    source=source,
                )
                for usage_id, old_dau, old_messages, new_dau, new_messages in changes.rows()
            ],
            batch_size=500,
        )

    @staticmethod
    def bump_usage_versions(application_ids: list[int]) -> None:
        Application.objects.filter(id__in=application_ids).update(
            usage_version=F("usage_version") + 1
        )


class PostgresStatements(OrmStatements):
    """The same reads and writes on PostgreSQL, each one statement over `unnest()`ed text
    arrays (one joined text per column): several times faster than the ORM's for 10,000
    rows."""

    @staticmethod
    def lock_and_read(
        app_keys: set[str], pairs: list[tuple[str, dt.date]]
    ) -> tuple[LockedApplications, StoredUsage]:
        if not all(IDENTIFIER_PATTERN.match(key) for key in app_keys) or (
            connection.settings_dict["OPTIONS"].get("server_side_binding")
        ):
            # Keys with other characters (which the API never creates) cannot travel in a
            # comma-joined array; a server-side binding cursor sends one statement at a time.
            return OrmStatements.lock_and_read(app_keys, pairs)
        # Two statements sent in one round trip (client-side binding). Not one statement: a
        # statement's snapshot is taken before it waits for a lock, so a single statement
        # would miss the rows committed by the request it waited for; the second statement
        # takes its own snapshot once the first holds the locks
        # (tests/accounts/test_usage_statements.py races two requests). The pairs come back
        # as their position: no per-row date objects cross the driver.
        locked = LockedApplications()
        stored = StoredUsage()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT app_key, id, created_on, customer_id FROM {Application._meta.db_table} "
                f"WHERE app_key = ANY({ARRAY}) ORDER BY id FOR NO KEY UPDATE; "
                f"SELECT k.n, a.id, u.id, u.dau, u.delivered_messages FROM unnest({ARRAY}, "
                f"{ARRAY}::date[]) WITH ORDINALITY AS k(app_key, day, n) "
                f"JOIN {Application._meta.db_table} a ON a.app_key = k.app_key "
                f"JOIN {DailyUsage._meta.db_table} u ON u.application_id = a.id "
                f"AND u.day = k.day",
                [_joined(app_keys), _joined(p[0] for p in pairs), _joined(p[1] for p in pairs)],
            )
            for row in cursor.fetchall():
                locked.add(*row)
            cursor.nextset()
            for n, app_id, usage_id, dau, messages in cursor.fetchall():
                stored.add((app_id, pairs[n - 1][1]), usage_id, dau, messages)
        return locked, stored

    @staticmethod
    def insert_usage(rows: UsageRows, *, now: dt.datetime) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {DailyUsage._meta.db_table} (application_id, day, dau, "
                f"delivered_messages, updated_at) SELECT t.app_id, t.day, t.dau, t.messages, %s "
                f"FROM unnest({ARRAY}::bigint[], {ARRAY}::date[], {ARRAY}::integer[], "
                f"{ARRAY}::bigint[]) AS t(app_id, day, dau, messages)",
                [
                    now,
                    _joined(rows.application_id),
                    _joined(rows.day),
                    _joined(rows.dau),
                    _joined(rows.delivered_messages),
                ],
            )

    @staticmethod
    def replace_usage(
        changes: UsageChanges, *, now: dt.datetime, user_id: int | None, source: str
    ) -> None:
        # One statement for both writes (a data-modifying WITH runs to completion whether or
        # not the outer statement reads it): a changed row costs one round trip, not two.
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH t AS (SELECT * FROM unnest({ARRAY}::bigint[], {ARRAY}::integer[], "
                f"{ARRAY}::bigint[], {ARRAY}::integer[], {ARRAY}::bigint[]) WITH ORDINALITY "
                f"AS t(usage_id, old_dau, old_messages, new_dau, new_messages, n)), "
                f"updated AS (UPDATE {DailyUsage._meta.db_table} AS u SET dau = t.new_dau, "
                f"delivered_messages = t.new_messages, updated_at = %s FROM t "
                f"WHERE u.id = t.usage_id) "
                f"INSERT INTO {UsageRevision._meta.db_table} (usage_id, old_dau, "
                f"old_delivered_messages, new_dau, new_delivered_messages, changed_by_id, "
                f"changed_at, source) SELECT t.usage_id, t.old_dau, t.old_messages, t.new_dau, "
                f"t.new_messages, %s, %s, %s FROM t ORDER BY t.n",
                [
                    _joined(changes.usage_id),
                    _joined(changes.old_dau),
                    _joined(changes.old_delivered_messages),
                    _joined(changes.new_dau),
                    _joined(changes.new_delivered_messages),
                    now,
                    user_id,
                    now,
                    source,
                ],
            )

    @staticmethod
    def bump_usage_versions(application_ids: list[int]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Application._meta.db_table} "
                f"SET usage_version = usage_version + 1 WHERE id = ANY({ARRAY}::bigint[])",
                [_joined(application_ids)],
            )


def _statements() -> type[OrmStatements]:
    return PostgresStatements if connection.vendor == "postgresql" else OrmStatements


# --- the ingest ---------------------------------------------------------------------------------


def _unknown_key(index: int, app_key: str) -> dict:
    return {"index": index, "field": "app_key", "message": f"unknown app_key {app_key!r}"}


def usage_ingest(
    *,
    rows: list[dict],
    now: dt.datetime,
    changed_by=None,
    source: str = "api",
    max_rows: int = MAX_ROWS_PER_REQUEST,
) -> IngestResult:
    """Store daily usage rows, all or nothing.

    Raises UsageValidationError listing every bad row (unknown app key, bad or negative
    numbers, a future date or one before the application existed, the same app and day twice)
    and UsageBilledMonthError when a new or different value falls in an invoiced month.
    """
    today = billing_date(now)
    parsed, unparsed_keys, errors = _check_rows(rows, today=today, max_rows=max_rows)
    if errors and not parsed.index and not unparsed_keys:
        raise UsageValidationError(errors)
    statements = _statements()
    with transaction.atomic():
        keys = set(parsed.app_key) | {key for _, key in unparsed_keys}
        apps, stored = (
            statements.lock_and_read(keys, list(zip(parsed.app_key, parsed.day, strict=True)))
            if keys
            else (LockedApplications(), StoredUsage())
        )
        for index, app_key in unparsed_keys:
            if app_key not in apps.id:
                errors.append(_unknown_key(index, app_key))
        seen: dict[tuple[int, dt.date], int] = {}
        valid = UsageRows()
        for index, app_key, day, dau, messages in parsed.rows():
            app_id = apps.id.get(app_key)
            if app_id is None:
                errors.append(_unknown_key(index, app_key))
                continue
            created_on = apps.created_on[app_key]
            if day < created_on:
                errors.append(
                    {
                        "index": index,
                        "field": "date",
                        "message": f"date {day.isoformat()} is before application {app_key} "
                        f"existed (created {created_on.isoformat()})",
                    }
                )
                continue
            key = (app_id, day)
            first = seen.get(key)
            if first is not None:
                errors.append(
                    {
                        "index": index,
                        "field": "date",
                        "message": f"{app_key} on {day.isoformat()} is also in row {first}: "
                        "one row per application and day",
                    }
                )
                continue
            seen[key] = index
            valid.append(index, app_key, app_id, apps.customer_id[app_key], day, dau, messages)
        if errors:
            errors.sort(key=_error_order)
            raise UsageValidationError(errors)

        new_at: list[int] = []  # positions in `valid`
        changed_at: list[int] = []
        changes = UsageChanges()
        unchanged = 0
        for position, (app_id, day, dau, messages) in enumerate(
            zip(valid.application_id, valid.day, valid.dau, valid.delivered_messages, strict=True)
        ):
            key = (app_id, day)
            usage_id = stored.usage_id.get(key)
            if usage_id is None:
                new_at.append(position)
                continue
            old_dau, old_messages = stored.dau[key], stored.delivered_messages[key]
            if old_dau == dau and old_messages == messages:
                unchanged += 1
                continue
            changed_at.append(position)
            changes.usage_id.append(usage_id)
            changes.old_dau.append(old_dau)
            changes.old_delivered_messages.append(old_messages)
            changes.new_dau.append(dau)
            changes.new_delivered_messages.append(messages)
        if not new_at and not changes:
            return IngestResult(created=0, updated=0, unchanged=unchanged)
        new_rows, changed_rows = valid.select(new_at), valid.select(changed_at)

        _refuse_frozen_months(new_rows, changed_rows)

        if new_rows:
            statements.insert_usage(new_rows, now=now)
        if changes:
            statements.replace_usage(
                changes, now=now, user_id=getattr(changed_by, "pk", None), source=source
            )
        # Only a month that is over can be billed while this request runs, so only writes to
        # one bump the version the month-end run checks (the daily pushes of the current
        # month, nearly all of the traffic, leave it alone).
        month_start = today.replace(day=1)
        touched_apps = sorted(
            {
                app_id
                for rows_of in (new_rows, changed_rows)
                for app_id, day in zip(rows_of.application_id, rows_of.day, strict=True)
                if day < month_start
            }
        )
        if touched_apps:
            statements.bump_usage_versions(touched_apps)
    return IngestResult(created=len(new_rows), updated=len(changes), unchanged=unchanged)


def _refuse_frozen_months(*touched: UsageRows) -> None:
    """UsageBilledMonthError naming every row that would change a month frozen for usage."""
    months = {
        (customer_id, day.replace(day=1))
        for rows in touched
        for customer_id, day in zip(rows.customer_id, rows.day, strict=True)
    }
    frozen = frozen_months(change=Change.USAGE, customer_months=months)
    if frozen:
        conflicts = [
            {
                "index": index,
                "app_key": app_key,
                "date": day.isoformat(),
                "invoice": frozen[(customer_id, day.replace(day=1))].number,
            }
            for rows in touched
            for index, app_key, _app_id, customer_id, day, _dau, _messages in rows.rows()
            if (customer_id, day.replace(day=1)) in frozen
        ]
        raise UsageBilledMonthError(sorted(conflicts, key=lambda conflict: conflict["index"]))


# ASCII digits only: int() also reads other scripts' digits ("１０" is 10).
_INTEGER = re.compile(r"^\s*-?\d+\s*$", re.ASCII)


def _csv_count(text: str):
    # Whole numbers become ints (negative ones too, so the ingest names the rule); anything
    # else stays text and is refused as "not a whole number".
    return int(text) if text is not None and _INTEGER.match(text) else text


def usage_import_csv(*, file_obj, now: dt.datetime, changed_by=None) -> IngestResult:
    """Import usage from a CSV file (header `app_key,date,dau,delivered_messages`) with the
    same rules as the API. Errors carry the row index and the file's line number."""
    raw = file_obj.read()
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageValidationError(
                [{"index": None, "field": None, "line": None, "message": "the file is not UTF-8"}]
            ) from None
    else:
        text = raw.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        # (record, its line number) read up front: a malformed file (a field above the csv
        # module's 128 KiB limit) is the file's error, not a server error halfway through.
        records = [(record, reader.line_num) for record in reader]
    except csv.Error as error:
        raise UsageValidationError(
            [
                {
                    "index": None,
                    "field": None,
                    "line": reader.line_num,
                    "message": f"the CSV file could not be read: {error}",
                }
            ]
        ) from None
    if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
        raise UsageValidationError(
            [
                {
                    "index": None,
                    "field": None,
                    "line": 1,
                    "message": f"the first line must be the header {','.join(CSV_HEADER)}",
                }
            ]
        )
    rows = []
    lines = []
    errors = []
    for record, line in records:
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(CSV_HEADER):
            errors.append(
                {
                    "index": len(rows),
                    "field": None,
                    "line": line,
                    "message": f"expected {len(CSV_HEADER)} columns, got {len(record)}",
                }
            )
        app_key, day, dau, messages = (list(record) + [""] * 4)[:4]
        rows.append(
            {
                "app_key": app_key.strip(),
                "date": day.strip(),
                "dau": _csv_count(dau),
                "delivered_messages": _csv_count(messages),
            }
        )
        lines.append(line)
    try:
        if errors:
            raise UsageValidationError(errors)
        return usage_ingest(
            rows=rows, now=now, changed_by=changed_by, source="csv", max_rows=MAX_ROWS_PER_CSV
        )
    except UsageValidationError as exc:
        for error in exc.errors:
            if "line" not in error:
                error["line"] = lines[error["index"]] if error["index"] is not None else None
        raise
    except UsageBilledMonthError as exc:
        for conflict in exc.conflicts:
            conflict["line"] = lines[conflict["index"]]
        raise
