"""Quotes: "what would this application cost?" priced by the one rating engine.

`quote_build` turns a hypothetical application (one plan for some days of a period, a peak DAU,
add-ons for the same days) into rating inputs, reads the prices valid for that period and calls
`plans.rating.engine.rate_application`. It prices nothing itself, so a quote always equals what the
month-end run would bill for the same inputs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from billingsite.clock import Period, billing_date
from billingsite.money import CURRENCY, CurrencyError, ensure_cny
from billingsite.refusals import Refusal
from plans.addon_rules import addon_quantity_problem, missing_base_message
from plans.models import AddOn, Plan
from plans.price_book_cache import cached_price_book_and_addons
from plans.rating.engine import (
    AddOnSegment,
    ApplicationInput,
    PlanSegment,
    PlanTerms,
    PriceBook,
    RatedApplication,
    RatingError,
    rate_application,
)

QUOTE_APP_KEY = "quote"


class QuoteError(Refusal):
    """The request cannot be quoted. `errors` maps a request field to its messages; for
    `addons` the value maps each offending add-on code to its messages. The API answers it as
    any invalid input (code `invalid`, `errors` per field)."""

    def __init__(self, errors: dict):
        super().__init__(
            "the request has invalid fields", field=next(iter(errors), None), errors=errors
        )
        self.errors = errors


@dataclass(frozen=True)
class Quote:
    period: Period
    plan: PlanTerms
    active_from: dt.date
    active_to: dt.date
    peak_dau: int
    peak_daily_messages: int | None
    rated: RatedApplication
    # Set when the application is high-volume: the DAU table does not apply to it.
    message: str | None

    @property
    def days(self) -> int:
        return (self.active_to - self.active_from).days + 1


def _plan_terms(*, book: PriceBook, plan_code: str, period: Period) -> PlanTerms:
    if plan_code in book.plans:
        return book.plans[plan_code]
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is not None:
        raise QuoteError({"plan": [f"the {plan.name} plan has no price valid in {period}"]})
    known = ", ".join(Plan.objects.order_by("rank").values_list("code", flat=True))
    raise QuoteError({"plan": [f"unknown plan code {plan_code!r} (known: {known})"]})


def _addon_errors(
    *, book: PriceBook, known: dict[str, AddOn], plan: PlanTerms, addons: dict[str, int]
) -> dict:
    errors: dict[str, list[str]] = {}
    for code, quantity in addons.items():
        addon = known.get(code)
        if code not in book.addons or addon is None:
            errors[code] = [f"unknown add-on code {code!r}"]
        elif not book.is_available(code, plan.code):
            name = book.addons[code].name
            errors[code] = [f"{name} ({code}) is not available on the {plan.name} plan"]
        elif problem := addon_quantity_problem(addon=addon, quantity=quantity):
            errors[code] = [problem.message]
        elif addon.requires is not None and addon.requires.code not in addons:
            errors[code] = [missing_base_message(addon=addon, base=addon.requires)]
    return errors


def _day_errors(
    *, period: Period, active_from: dt.date, active_to: dt.date
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    inside = f"inside the period {period} ({period.start.isoformat()}..{period.end.isoformat()})"
    for name, day in (("active_from", active_from), ("active_to", active_to)):
        if not period.start <= day <= period.end:
            errors[name] = [f"{day.isoformat()} is not {inside}"]
    if not errors and active_from > active_to:
        errors["active_to"] = [
            f"{active_to.isoformat()} is before active_from {active_from.isoformat()}"
        ]
    return errors


def high_volume_message(*, plan: PlanTerms, peak_daily_messages: int) -> str:
    return (
        f"peak daily messages {peak_daily_messages:,} exceed the {plan.name} plan's limit of "
        f"{plan.daily_message_limit:,} delivered messages a day: the application is high-volume "
        "and needs a dedicated-service contract with a negotiated monthly fee; the DAU-table "
        "price of this quote does not apply to it"
    )


def quote_build(
    *,
    plan_code: str,
    peak_dau: int,
    addons: dict[str, int] | None = None,
    currency: str | None = None,
    period: Period | None = None,
    active_from: dt.date | None = None,
    active_to: dt.date | None = None,
    peak_daily_messages: int | None = None,
    now: dt.datetime,
) -> Quote:
    """Price one hypothetical application for `period` (default: the Asia/Shanghai month of
    `now`), on `plan_code` from `active_from` to `active_to` (default: the whole period), with
    every add-on of `addons` (code -> quantity) active on the same days.

    Raises QuoteError with every problem found, keyed by request field.
    """
    addons = dict(addons or {})
    errors: dict = {}
    try:
        ensure_cny(currency)
    except CurrencyError:
        errors["currency"] = [f"non-RMB settlement: contract pricing (quotes are in {CURRENCY})"]
    period = period or Period.containing(billing_date(now))
    active_from = active_from or period.start
    active_to = active_to or period.end
    errors.update(_day_errors(period=period, active_from=active_from, active_to=active_to))
    for name, value in (("peak_dau", peak_dau), ("peak_daily_messages", peak_daily_messages)):
        if value is not None and (isinstance(value, bool) or value < 0):
            errors[name] = ["must be a whole number of at least 0"]

    book, known_addons = cached_price_book_and_addons(period=period)
    try:
        plan = _plan_terms(book=book, plan_code=plan_code, period=period)
    except QuoteError as exc:
        errors.update(exc.errors)
        raise QuoteError(errors) from None
    addon_errors = _addon_errors(book=book, known=known_addons, plan=plan, addons=addons)
    if addon_errors:
        errors["addons"] = addon_errors
    if errors:
        raise QuoteError(errors)

    app = ApplicationInput(
        app_key=QUOTE_APP_KEY,
        app_name="Quote",
        period_start=period.start,
        days_in_month=period.days,
        plan_segments=(PlanSegment(plan.code, active_from, active_to, peak_dau),),
        addon_segments=tuple(
            AddOnSegment(code, quantity, active_from, active_to)
            for code, quantity in addons.items()
        ),
        peak_daily_messages=peak_daily_messages,
    )
    try:
        rated = rate_application(book=book, app=app)
    except RatingError as exc:  # every known cause is checked above; never answer a 500
        raise QuoteError({"non_field_errors": [str(exc)]}) from exc
    message = None
    if rated.high_volume:
        message = high_volume_message(plan=plan, peak_daily_messages=peak_daily_messages)
    return Quote(
        period=period,
        plan=plan,
        active_from=active_from,
        active_to=active_to,
        peak_dau=peak_dau,
        peak_daily_messages=peak_daily_messages,
        rated=rated,
        message=message,
    )
