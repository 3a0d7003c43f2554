"""The timeline of an application: which plan, add-ons and dedicated contracts are in effect on
a day. The one rule, read by the rating inputs (`plans.selectors.application_inputs`), the
run's candidate selection (as SQL built here), the plan and add-on services, the admin and the
API:

- a plan history is the application's live (not cancelled) PlanChange rows ordered by
  (effective_date, id); each row is in effect from its effective_date to the day before the next
  live row's effective_date (the last one: open-ended). Before the first row: no plan;
- an add-on history is the same, per add-on, over AddOnChange rows; a row of quantity 0 is an
  end: on its days the add-on is not in effect;
- a dedicated contract is in effect from first_day to last_day, both included (None: open);
  so is a contracted discount (of the application, or of its whole customer).

The SQL forms (`plan_changes_in_effect`, `contracts_in_effect`) state the same rule for the
database; `tests/plans/test_timeline.py` compares them with the Python forms on a table of
histories and days.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from django.db.models import Exists, OuterRef, Q, QuerySet

from billingsite.queries import any_of, compiled_read
from plans.models import AddOnChange, DedicatedContract, Discount, PlanChange


@dataclass(frozen=True)
class HistoryRow:
    """A stretch of a history: `code` from `first_day` to `last_day` (None: open)."""

    code: str
    name: str
    first_day: dt.date
    last_day: dt.date | None
    quantity: int = 1


def covers(*, first_day: dt.date, last_day: dt.date | None, day: dt.date) -> bool:
    """Whether the days `first_day`..`last_day` (None: open-ended) include `day`."""
    return first_day <= day and (last_day is None or day <= last_day)


def clip(
    *, first_day: dt.date, last_day: dt.date | None, start: dt.date, end: dt.date
) -> tuple[dt.date, dt.date] | None:
    """The days of `first_day`..`last_day` (None: open) inside `start`..`end`, or None."""
    first, last = max(first_day, start), min(last_day or end, end)
    return (first, last) if first <= last else None


class _Dated(Protocol):
    @property
    def effective_date(self) -> dt.date: ...


Change = TypeVar("Change", bound=_Dated)


def in_effect(changes: Sequence[Change], day: dt.date) -> Change | None:
    """The change row in effect on `day`: the last of the live `changes` (one history, sorted
    by effective_date, id) effective on or before `day`; None before the first."""
    found = None
    for change in changes:
        if change.effective_date <= day:
            found = change
        else:
            break
    return found


def history_rows(changes: Sequence[tuple[dt.date, str, str, int]]) -> list[HistoryRow]:
    """(effective_date, code, name, quantity) of one history's live rows, oldest first -> its
    stretches, each ending the day before the next one starts (`in_effect` as day ranges)."""
    rows: list[HistoryRow] = []
    for index, (effective_date, code, name, quantity) in enumerate(changes):
        following = changes[index + 1][0] if index + 1 < len(changes) else None
        last_day = following - dt.timedelta(days=1) if following else None
        rows.append(HistoryRow(code, name, effective_date, last_day, quantity))
    return rows


def row_on(rows: Iterable[HistoryRow], day: dt.date) -> HistoryRow | None:
    """The stretch of one plan history that covers `day`, or None."""
    return next(
        (row for row in rows if covers(first_day=row.first_day, last_day=row.last_day, day=day)),
        None,
    )


def rows_on(rows: Iterable[HistoryRow], day: dt.date) -> list[HistoryRow]:
    """The stretches that cover `day` (add-ons: one per add-on in effect that day)."""
    return [row for row in rows if covers(first_day=row.first_day, last_day=row.last_day, day=day)]


def live_plan_changes(*, application_ids: Iterable[int]) -> QuerySet[PlanChange]:
    """The live rows of the applications' plan histories, each history in its order."""
    return PlanChange.objects.filter(
        any_of("application_id", application_ids), cancelled_at__isnull=True
    ).order_by("application_id", "effective_date", "id")


def live_addon_changes(
    *, application_ids: Iterable[int], addon_id: int | None = None
) -> QuerySet[AddOnChange]:
    """The live rows of the applications' add-on histories (one per add-on; only `addon_id`'s
    when given), each history in its order."""
    rows = AddOnChange.objects.filter(
        any_of("application_id", application_ids), cancelled_at__isnull=True
    )
    if addon_id is not None:
        rows = rows.filter(addon_id=addon_id)
    return rows.order_by("application_id", "addon_id", "effective_date", "id")


@compiled_read
def _plan_history_rows(*, application_ids: list[int]) -> QuerySet:
    return live_plan_changes(application_ids=application_ids).values_list(
        "application_id", "effective_date", "plan__code", "plan__name"
    )


@compiled_read
def _addon_history_rows(*, application_ids: list[int]) -> QuerySet:
    return live_addon_changes(application_ids=application_ids).values_list(
        "application_id", "addon_id", "effective_date", "addon__code", "addon__name", "quantity"
    )


def plan_history(*, application_ids: Iterable[int]) -> dict[int, list[HistoryRow]]:
    """Each application's plans, oldest first, from its live plan changes (one query)."""
    by_app: dict[int, list[tuple]] = defaultdict(list)
    changes = _plan_history_rows(application_ids=list(application_ids))
    for app_id, effective_date, code, name in changes:
        by_app[app_id].append((effective_date, code, name, 1))
    return {app_id: history_rows(rows) for app_id, rows in by_app.items()}


def addon_history(*, application_ids: Iterable[int]) -> dict[int, list[HistoryRow]]:
    """Each application's add-on stretches with quantity >= 1, per add-on, oldest first (one
    query); the stretches of quantity 0 (ended) are left out."""
    by_app_addon: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    changes = _addon_history_rows(application_ids=list(application_ids))
    for app_id, addon_id, effective_date, code, name, quantity in changes:
        by_app_addon[(app_id, addon_id)].append((effective_date, code, name, quantity))
    result: dict[int, list[HistoryRow]] = defaultdict(list)
    for (app_id, _addon_id), rows in by_app_addon.items():
        result[app_id].extend(row for row in history_rows(rows) if row.quantity > 0)
    return dict(result)


def plan_code_on(*, application_id: int, day: dt.date) -> str | None:
    """The code of the plan the application has on `day` (None: none yet)."""
    row = row_on(plan_history(application_ids=[application_id]).get(application_id, []), day)
    return row.code if row else None


# --- the same rule for the database ----------------------------------------------------------


def plan_changes_in_effect(*, first_day: dt.date, last_day: dt.date) -> QuerySet[PlanChange]:
    """The live plan changes in effect on some day of `first_day`..`last_day`: effective on or
    before `last_day`, and not replaced by a later live change effective on or before
    `first_day` (`history_rows` + `clip`, as one query). With first_day == last_day: at most
    one row per application, the one `in_effect` that day."""
    replaced = PlanChange.objects.filter(
        application_id=OuterRef("application_id"),
        cancelled_at__isnull=True,
        effective_date__gt=OuterRef("effective_date"),
        effective_date__lte=first_day,
    )
    return PlanChange.objects.filter(
        cancelled_at__isnull=True, effective_date__lte=last_day
    ).exclude(Exists(replaced))


def contracts_in_effect(*, first_day: dt.date, last_day: dt.date | None) -> Q:
    """Contracts in effect on some day of `first_day`..`last_day` (None: open-ended), as a
    filter on DedicatedContract or Discount (`clip` of their days, as SQL)."""
    condition = Q(last_day__isnull=True) | Q(last_day__gte=first_day)
    if last_day is not None:
        condition &= Q(first_day__lte=last_day)
    return condition


def contracts_overlapping(
    *, application_ids: Iterable[int], first_day: dt.date, last_day: dt.date | None
) -> QuerySet[DedicatedContract]:
    return DedicatedContract.objects.filter(
        contracts_in_effect(first_day=first_day, last_day=last_day),
        any_of("application_id", application_ids),
    )


def discounts_in_effect(
    *,
    customer_ids: Iterable[int] = (),
    application_ids: Iterable[int] = (),
    first_day: dt.date,
    last_day: dt.date | None,
) -> QuerySet[Discount]:
    """The contracted discounts of these customers (customer-wide) and applications in effect
    on some day of `first_day`..`last_day` (None: open-ended): the contracts' rule, as one
    query."""
    return Discount.objects.filter(
        contracts_in_effect(first_day=first_day, last_day=last_day),
        any_of("customer_id", customer_ids) | any_of("application_id", application_ids),
    )
