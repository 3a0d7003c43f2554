"""Usage metering: the IM platform's daily rows, ingested all-or-nothing and idempotently.

One DailyUsage row per application and Asia/Shanghai day. Resending a row with the same
values changes nothing; a different value for a month that is not invoiced replaces the row
and leaves a UsageRevision (who, when, old, new); any change in an invoiced month is refused,
because billed months are corrected by credit notes, never by rewriting usage (which months
are frozen is plans.change_policy's: an issued invoice's; a held one is only made stale).

Speed matters (the platform pushes every application every day): a request of 10,000 rows is
validated in plain Python and written with a fixed number of statements, whatever its size:
one query reads (and locks) the applications, one reads the stored rows, one reads the
invoiced months, and one statement each inserts, updates and records revisions. On PostgreSQL
the writes are single `unnest()` statements; elsewhere the ORM's bulk operations.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import asdict, dataclass

from django.db import connection, transaction
from django.db.models import F

from accounts.models import Application, DailyUsage, UsageRevision
from accounts.services import IDENTIFIER_PATTERN
from billingsite.clock import billing_date
from billingsite.refusals import Refusal
from plans.change_policy import frozen_usage_months

MAX_ROWS_PER_REQUEST = 10_000
# An admin CSV import may carry a month of data for many applications at once.
MAX_ROWS_PER_CSV = 100_000
MAX_DAU = 2_147_483_647  # PositiveIntegerField
MAX_MESSAGES = 9_223_372_036_854_775_807  # PositiveBigIntegerField
CSV_HEADER = ("app_key", "date", "dau", "delivered_messages")
FIELDS = CSV_HEADER


@dataclass(frozen=True)
class IngestResult:
    created: int
    updated: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


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
    """Shape checks that need no database. Returns (parsed, unparsed_keys, errors): parsed
    rows are tuples (index, app_key, day, dau, delivered_messages); unparsed_keys are the
    (index, app_key) of rows that failed but still name an app key."""
    if not isinstance(rows, list):
        return (
            [],
            [],
            [{"index": None, "field": None, "message": "expected a JSON list of usage rows"}],
        )
    if len(rows) > max_rows:
        return (
            [],
            [],
            [
                {
                    "index": None,
                    "field": None,
                    "message": f"at most {max_rows:,} rows per request, got {len(rows):,}",
                }
            ],
        )
    parsed = []
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
            parsed.append((index, app_key, day, dau, messages))
        elif type(app_key) is str and app_key:
            # Still checked against the database, so the answer names every problem at once.
            unparsed_keys.append((index, app_key))
    return parsed, unparsed_keys, errors


# PostgreSQL arrays travel as one comma-joined text parameter: the driver then quotes one
# string instead of adapting 10,000 values one by one (a third of the request time).
ARRAY = "string_to_array(%s, ',')"


def _joined(values) -> str:
    """Comma-joined ints, dates (ISO) or identifier strings, none of which contain a comma."""
    return ",".join(map(str, values))


def _lock_applications(app_keys: set[str]) -> dict[str, tuple[int, dt.date, int]]:
    """app_key -> (id, created_on, customer_id), locking those rows until commit.

    The lock (FOR NO KEY UPDATE, in id order so two requests cannot deadlock) serializes
    ingests touching the same application: the second one reads the rows the first wrote, so
    no revision is lost. It does not block inserts referencing the application.
    """
    if not app_keys:
        return {}
    plain = [key for key in app_keys if IDENTIFIER_PATTERN.match(key)]
    if connection.vendor == "postgresql" and len(plain) == len(app_keys):
        # One text parameter instead of 10,000 placeholders: several times faster. (Keys with
        # other characters, which the API never creates, take the ORM path below.)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT app_key, id, created_on, customer_id FROM {Application._meta.db_table} "
                f"WHERE app_key = ANY({ARRAY}) ORDER BY id FOR NO KEY UPDATE",
                [_joined(plain)],
            )
            rows = cursor.fetchall()
    else:
        rows = (
            Application.objects.filter(app_key__in=app_keys)
            .order_by("id")
            .select_for_update(no_key=True)
            .values_list("app_key", "id", "created_on", "customer_id")
        )
    return {key: (app_id, created_on, customer_id) for key, app_id, created_on, customer_id in rows}


def _stored_rows(pairs: list[tuple[int, dt.date]]) -> dict[tuple[int, dt.date], tuple]:
    """(application_id, day) -> (usage id, dau, delivered_messages) for the pairs given."""
    if not pairs:
        return {}
    if connection.vendor == "postgresql":
        # The pairs come back as their position: no per-row date objects cross the driver.
        table = DailyUsage._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT k.n, u.id, u.dau, u.delivered_messages FROM unnest({ARRAY}::bigint[], "
                f"{ARRAY}::date[]) WITH ORDINALITY AS k(app_id, day, n) JOIN {table} u "
                f"ON u.application_id = k.app_id AND u.day = k.day",
                [_joined(p[0] for p in pairs), _joined(p[1] for p in pairs)],
            )
            return {pairs[n - 1]: (i, u, m) for n, i, u, m in cursor.fetchall()}
    wanted = set(pairs)
    app_ids = {p[0] for p in pairs}
    days = [p[1] for p in pairs]
    found = {}
    for app_id, day, usage_id, dau, messages in DailyUsage.objects.filter(
        application_id__in=app_ids, day__gte=min(days), day__lte=max(days)
    ).values_list("application_id", "day", "id", "dau", "delivered_messages"):
        if (app_id, day) in wanted:
            found[(app_id, day)] = (usage_id, dau, messages)
    return found


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
    if errors and not parsed and not unparsed_keys:
        raise UsageValidationError(errors)
    with transaction.atomic():
        apps = _lock_applications({row[1] for row in parsed} | {k for _, k in unparsed_keys})
        for index, app_key in unparsed_keys:
            if app_key not in apps:
                errors.append(
                    {"index": index, "field": "app_key", "message": f"unknown app_key {app_key!r}"}
                )
        seen: dict[tuple[int, dt.date], int] = {}
        valid = []
        for index, app_key, day, dau, messages in parsed:
            app = apps.get(app_key)
            if app is None:
                errors.append(
                    {"index": index, "field": "app_key", "message": f"unknown app_key {app_key!r}"}
                )
                continue
            app_id, created_on, customer_id = app
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
            valid.append((index, app_key, app_id, customer_id, day, dau, messages))
        if errors:
            errors.sort(key=_error_order)
            raise UsageValidationError(errors)

        stored = _stored_rows(list(seen))
        new_rows = []
        changed = []  # (valid row, usage id, old dau, old messages)
        unchanged = 0
        for row in valid:
            previous = stored.get((row[2], row[4]))
            if previous is None:
                new_rows.append(row)
            elif previous[1] == row[5] and previous[2] == row[6]:
                unchanged += 1
            else:
                changed.append((row, *previous))
        if not new_rows and not changed:
            return IngestResult(created=0, updated=0, unchanged=unchanged)

        touched = [r for r in new_rows] + [c[0] for c in changed]
        invoiced = frozen_usage_months(
            customer_months={(r[3], r[4].replace(day=1)) for r in touched}
        )
        if invoiced:
            conflicts = [
                {
                    "index": r[0],
                    "app_key": r[1],
                    "date": r[4].isoformat(),
                    "invoice": invoiced[(r[3], r[4].replace(day=1))],
                }
                for r in sorted(touched)
                if (r[3], r[4].replace(day=1)) in invoiced
            ]
            raise UsageBilledMonthError(conflicts)

        user_id = getattr(changed_by, "pk", None)
        # Only a month that is over can be billed while this request runs, so only writes to
        # one bump the version the month-end run checks (the daily pushes of the current
        # month, nearly all of the traffic, leave it alone).
        month_start = today.replace(day=1)
        touched_apps = sorted({r[2] for r in touched if r[4] < month_start})
        if connection.vendor == "postgresql":
            _write_postgresql(new_rows, changed, now=now, user_id=user_id, source=source)
            if touched_apps:
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {Application._meta.db_table} "
                        f"SET usage_version = usage_version + 1 WHERE id = ANY({ARRAY}::bigint[])",
                        [_joined(touched_apps)],
                    )
        else:
            _write_orm(new_rows, changed, now=now, user_id=user_id, source=source)
            if touched_apps:
                Application.objects.filter(id__in=touched_apps).update(
                    usage_version=F("usage_version") + 1
                )
    return IngestResult(created=len(new_rows), updated=len(changed), unchanged=unchanged)


def _write_postgresql(new_rows, changed, *, now, user_id, source) -> None:
    usage_table = DailyUsage._meta.db_table
    revision_table = UsageRevision._meta.db_table
    with connection.cursor() as cursor:
        if new_rows:
            cursor.execute(
                f"INSERT INTO {usage_table} (application_id, day, dau, delivered_messages, "
                f"updated_at) SELECT t.app_id, t.day, t.dau, t.messages, %s FROM unnest("
                f"{ARRAY}::bigint[], {ARRAY}::date[], {ARRAY}::integer[], {ARRAY}::bigint[]) "
                f"AS t(app_id, day, dau, messages)",
                [
                    now,
                    _joined(r[2] for r in new_rows),
                    _joined(r[4] for r in new_rows),
                    _joined(r[5] for r in new_rows),
                    _joined(r[6] for r in new_rows),
                ],
            )
        if changed:
            ids = _joined(c[1] for c in changed)
            new_dau = _joined(c[0][5] for c in changed)
            new_messages = _joined(c[0][6] for c in changed)
            cursor.execute(
                f"UPDATE {usage_table} AS u SET dau = t.dau, delivered_messages = t.messages, "
                f"updated_at = %s FROM unnest({ARRAY}::bigint[], {ARRAY}::integer[], "
                f"{ARRAY}::bigint[]) AS t(id, dau, messages) WHERE u.id = t.id",
                [now, ids, new_dau, new_messages],
            )
            cursor.execute(
                f"INSERT INTO {revision_table} (usage_id, old_dau, old_delivered_messages, "
                f"new_dau, new_delivered_messages, changed_by_id, changed_at, source) "
                f"SELECT t.usage_id, t.old_dau, t.old_messages, t.new_dau, t.new_messages, "
                f"%s, %s, %s FROM unnest({ARRAY}::bigint[], {ARRAY}::integer[], "
                f"{ARRAY}::bigint[], {ARRAY}::integer[], {ARRAY}::bigint[]) "
                f"AS t(usage_id, old_dau, old_messages, new_dau, new_messages)",
                [
                    user_id,
                    now,
                    source,
                    ids,
                    _joined(c[2] for c in changed),
                    _joined(c[3] for c in changed),
                    new_dau,
                    new_messages,
                ],
            )


def _write_orm(new_rows, changed, *, now, user_id, source) -> None:
    DailyUsage.objects.bulk_create(
        [
            DailyUsage(
                application_id=r[2], day=r[4], dau=r[5], delivered_messages=r[6], updated_at=now
            )
            for r in new_rows
        ],
        batch_size=500,
    )
    if changed:
        DailyUsage.objects.bulk_update(
            [
                DailyUsage(id=c[1], dau=c[0][5], delivered_messages=c[0][6], updated_at=now)
                for c in changed
            ],
            ["dau", "delivered_messages", "updated_at"],
            batch_size=500,
        )
        UsageRevision.objects.bulk_create(
            [
                UsageRevision(
                    usage_id=c[1],
                    old_dau=c[2],
                    old_delivered_messages=c[3],
                    new_dau=c[0][5],
                    new_delivered_messages=c[0][6],
                    changed_by_id=user_id,
                    changed_at=now,
                    source=source,
                )
                for c in changed
            ],
            batch_size=500,
        )


_INTEGER = re.compile(r"^\s*-?\d+\s*$")


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
    header = next(reader, None)
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
    for record in reader:
        if not record or all(not cell.strip() for cell in record):
            continue
        line = reader.line_num
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
