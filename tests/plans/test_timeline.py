"""plans.timeline: the one rule of "what is in effect on a day", in Python and in SQL.

Each case is a history (live and cancelled plan changes, contracts) and the test asks every
form of the rule about every day and every window of a stretch of days: `in_effect` over the
change rows, `row_on` over the history stretches, `plan_changes_in_effect` (the SQL the run's
candidate selection and the admin use) and `contracts_in_effect`. They must all agree."""

from __future__ import annotations

import datetime as dt

import pytest

from plans.models import DedicatedContract, PlanChange
from plans.timeline import (
    clip,
    contracts_in_effect,
    covers,
    history_rows,
    in_effect,
    live_plan_changes,
    plan_changes_in_effect,
    plan_history,
    row_on,
)
from tests.factories import NOW, ApplicationFactory, contract, plan_change

pytestmark = pytest.mark.django_db

START = dt.date(2026, 9, 28)
DAYS = [START + dt.timedelta(days=n) for n in range(40)]  # 2026-09-28 .. 2026-11-06
# Windows: single days, month-like spans, spans that start or end on a change day.
WINDOWS = [(day, day) for day in DAYS[::3]] + [
    (dt.date(2026, 10, 1), dt.date(2026, 10, 31)),
    (dt.date(2026, 9, 1), dt.date(2026, 9, 30)),
    (dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
    (dt.date(2026, 10, 10), dt.date(2026, 10, 20)),
    (dt.date(2026, 10, 16), dt.date(2026, 10, 16)),
    (dt.date(2026, 10, 15), dt.date(2026, 10, 15)),
]

# (application created on, [(effective date, plan, cancelled?)]) -> the plans by day.
PLAN_CASES = {
    "one plan from creation": (dt.date(2026, 10, 5), [(dt.date(2026, 10, 5), "premium", False)]),
    "upgrade mid-month": (
        dt.date(2026, 9, 1),
        [(dt.date(2026, 9, 1), "free", False), (dt.date(2026, 10, 16), "premium", False)],
    ),
    "downgrade on a 1st, then upgrade": (
        dt.date(2026, 9, 1),
        [
            (dt.date(2026, 9, 1), "ultimate", False),
            (dt.date(2026, 10, 1), "free", False),
            (dt.date(2026, 11, 3), "premium", False),
        ],
    ),
    "a cancelled pending change is not in effect": (
        dt.date(2026, 9, 1),
        [
            (dt.date(2026, 9, 1), "premium", False),
            (dt.date(2026, 10, 10), "free", True),
            (dt.date(2026, 10, 20), "ultimate", False),
        ],
    ),
    "changes on consecutive days": (
        dt.date(2026, 10, 14),
        [
            (dt.date(2026, 10, 14), "free", False),
            (dt.date(2026, 10, 15), "premium", False),
            (dt.date(2026, 10, 16), "ultimate", False),
        ],
    ),
    "a cancelled change and its live replacement on the same day": (
        dt.date(2026, 9, 1),
        [
            (dt.date(2026, 9, 1), "free", False),
            (dt.date(2026, 10, 16), "ultimate", True),
            (dt.date(2026, 10, 16), "premium", False),
        ],
    ),
}


def build(created_on: dt.date, changes: list[tuple[dt.date, str, bool]]):
    app = ApplicationFactory(created_on=created_on, plan=changes[0][1])
    for effective, code, cancelled in changes[1:]:
        row = plan_change(app, code, effective)
        if cancelled:
            PlanChange.objects.filter(pk=row.pk).update(cancelled_at=NOW)
    return app


def expected_on(changes: list[tuple[dt.date, str, bool]], day: dt.date) -> str | None:
    """The plan of a case on `day`, straight from the case: the last live change on or before."""
    effective = [(d, code) for d, code, cancelled in changes if not cancelled and d <= day]
    return max(effective)[1] if effective else None


def test_every_form_of_the_plan_timeline_agrees(price_book):
    apps = {name: build(*case) for name, case in PLAN_CASES.items()}
    for name, app in apps.items():
        changes = PLAN_CASES[name][1]
        live = list(live_plan_changes(application_ids=[app.pk]).select_related("plan"))
        rows = plan_history(application_ids=[app.pk])[app.pk]
        for day in DAYS:
            expected = expected_on(changes, day)
            change = in_effect(live, day)
            row = row_on(rows, day)
            assert (change.plan.code if change else None) == expected, (name, day)
            assert (row.code if row else None) == expected, (name, day)
        for first_day, last_day in WINDOWS:
            window = [
                first_day + dt.timedelta(days=n) for n in range((last_day - first_day).days + 1)
            ]
            expected = sorted({expected_on(changes, day) for day in window} - {None})
            in_python = sorted(
                row.code
                for row in rows
                if clip(
                    first_day=row.first_day, last_day=row.last_day, start=first_day, end=last_day
                )
            )
            assert in_python == expected, (name, first_day, last_day)
    # The SQL form, asked for all the applications at once per day and per window.
    for first_day, last_day in [(day, day) for day in DAYS] + WINDOWS:
        in_sql = sorted(
            plan_changes_in_effect(first_day=first_day, last_day=last_day)
            .filter(application__in=apps.values())
            .values_list("application_id", "plan__code")
        )
        expected = sorted(
            (app.pk, row.code)
            for app in apps.values()
            for row in plan_history(application_ids=[app.pk])[app.pk]
            if clip(first_day=row.first_day, last_day=row.last_day, start=first_day, end=last_day)
        )
        assert in_sql == expected, (first_day, last_day)


def test_history_rows_end_the_day_before_the_next_one():
    rows = history_rows(
        [
            (dt.date(2026, 9, 1), "free", "Free", 1),
            (dt.date(2026, 10, 16), "premium", "Premium", 1),
        ]
    )
    assert [(r.code, r.first_day, r.last_day) for r in rows] == [
        ("free", dt.date(2026, 9, 1), dt.date(2026, 10, 15)),
        ("premium", dt.date(2026, 10, 16), None),
    ]


# (first_day, last_day) of a contract -> compared on every window.
CONTRACT_CASES = [
    (dt.date(2026, 10, 1), None),
    (dt.date(2026, 10, 16), dt.date(2026, 10, 31)),
    (dt.date(2026, 9, 1), dt.date(2026, 9, 30)),
    (dt.date(2026, 10, 15), dt.date(2026, 10, 15)),
    (dt.date(2026, 11, 6), None),
]


def test_contracts_in_effect_in_sql_and_in_python_agree(price_book):
    app = ApplicationFactory(created_on=dt.date(2026, 1, 1), plan="premium")
    contracts = {
        contract(app, "20000.00", first, last).pk: (first, last) for first, last in CONTRACT_CASES
    }
    windows = [*WINDOWS, *((day, day) for day in DAYS), (dt.date(2026, 10, 20), None)]
    for window_first, window_last in windows:
        in_sql = set(
            DedicatedContract.objects.filter(
                contracts_in_effect(first_day=window_first, last_day=window_last), application=app
            ).values_list("pk", flat=True)
        )
        in_python = {
            pk
            for pk, (first, last) in contracts.items()
            if clip(
                first_day=first, last_day=last, start=window_first, end=window_last or dt.date.max
            )
        }
        assert in_sql == in_python, (window_first, window_last)
        if window_first == window_last:
            assert in_python == {
                pk
                for pk, (first, last) in contracts.items()
                if covers(first_day=first, last_day=last, day=window_first)
            }
