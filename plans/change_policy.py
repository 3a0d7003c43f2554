"""When a change to what an application is billed may take effect: the one policy, per kind of
change, that the API, the admin, the services and the usage ingest all go through.

A month's bill is decided by the plan, add-on and contract history and the usage of its days.
Whoever may still rewrite a month after it has been used (or rated, or reviewed) can make its
fee disappear, so:

- nothing the console decides takes effect before today (Asia/Shanghai): a date in the past
  of the current month is moved forward, not refused, because the console only means "as soon
  as possible";
- a downgrade takes effect on the 1st of the month after the request, so the month that is
  running keeps the plan whose DAU peak it may already have reached;
- ending or reducing an add-on takes effect tomorrow at the earliest: today has been used and
  is billed; starting or increasing one may be today;
- a date in a month frozen for the kind of change is refused (409): which months are frozen
  (an invoice in any state freezes its month and the ones before for plans and add-ons, an
  issued one for contracts, only its own month for usage) is `accounts.frozen_months`'s;
- a date more than a year ahead is a typo, not a plan (400).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from accounts.frozen_months import Change, frozen_by
from accounts.models import Application
from billingsite.clock import Period, billing_date

# A change dated further ahead than this is refused: nobody schedules billing that far out,
# and the dates near 9999-12-31 have no "1st of the next month".
HORIZON_DAYS = 366


def _today(today: dt.date) -> dt.date:
    return today


def _tomorrow(today: dt.date) -> dt.date:
    return today + dt.timedelta(days=1)


def _first_of_next_month(today: dt.date) -> dt.date:
    return Period.containing(today).next().start


@dataclass(frozen=True)
class Rule:
    # The first day the change may take effect, given today; None: any day (finance's
    # contracts are dated by the signed contract, usage by the day it happened).
    earliest: Callable[[dt.date], dt.date] | None = None
    # Takes effect on a 1st only (a downgrade never splits a month to dodge a DAU peak).
    on_a_first: bool = False


# When each kind of change may take effect (which months are frozen for it:
# accounts.frozen_months.FREEZE). Usage is dated by the day it happened: it has no rule here.
POLICY: dict[Change, Rule] = {
    Change.PLAN_UPGRADE: Rule(earliest=_today),
    Change.PLAN_KEEP: Rule(earliest=_today),
    Change.PLAN_DOWNGRADE: Rule(earliest=_first_of_next_month, on_a_first=True),
    Change.ADDON_START: Rule(earliest=_today),
    Change.ADDON_REDUCE: Rule(earliest=_tomorrow),
    Change.CONTRACT: Rule(),
    Change.DISCOUNT: Rule(),
}


def first_possible_day(*, requested: dt.date, now: dt.datetime) -> dt.date:
    """The first day a plan or add-on change asked for `requested` could take effect. Whether
    it is a downgrade or a reduction is judged against what is in effect that day, not on a
    past day the request named."""
    return max(requested, billing_date(now))


def change_effective_date(
    *,
    change: Change,
    application: Application | None = None,
    customer_id: int | None = None,
    requested: dt.date,
    now: dt.datetime,
    field: str = "effective_date",
) -> dt.date:
    """The day a change asked for `requested` really takes effect, or SubscriptionError.

    Refuses (before anything is written): a date more than HORIZON_DAYS ahead
    (`date_too_far`, 400), before the application existed (`before_application_created`),
    in or before a month frozen for this kind of change (`month_invoiced`, 409). A change for
    a whole customer (a customer-wide discount) gives `customer_id` instead of `application`.
    """
    # plans.services calls this policy and owns the refusal type the callers already catch.
    # Circular at import time: plans.services imports this module.
    from plans.services import SubscriptionError  # noqa: PLC0415

    rule = POLICY[change]
    today = billing_date(now)
    horizon = today + dt.timedelta(days=HORIZON_DAYS)
    if requested > horizon:
        raise SubscriptionError(
            f"{requested.isoformat()} is more than {HORIZON_DAYS} days ahead (the last day "
            f"that can be scheduled today is {horizon.isoformat()})",
            code="date_too_far",
            field=field,
            details={"date": requested, "latest": horizon},
        )
    if application is not None:
        customer_id = application.customer_id
    if customer_id is None:
        raise ValueError("change_effective_date needs an application or a customer_id")
    if application is not None and requested < application.created_on:
        raise SubscriptionError(
            f"{requested.isoformat()} is before application {application.app_key} existed "
            f"(created {application.created_on.isoformat()})",
            code="before_application_created",
            field=field,
            details={"date": requested, "created_on": application.created_on},
        )
    frozen = frozen_by(change=change, customer_id=customer_id, day=requested)
    if frozen is not None:
        has = (
            f"is already invoiced ({frozen.number})"
            if frozen.number
            else f"already has a {frozen.status} invoice"
        )
        raise SubscriptionError(
            f"{requested.isoformat()} falls in or before {frozen.period:%Y-%m}, which {has}; "
            "changes must start after the last invoiced month",
            code="month_invoiced",
            field=field,
            details={"date": requested, "invoice": frozen.number, "status": frozen.status},
        )
    effective = requested
    if rule.earliest is not None:
        effective = max(effective, rule.earliest(today))
    if rule.on_a_first and effective.day != 1:
        effective = Period.containing(effective).next().start
    return effective
