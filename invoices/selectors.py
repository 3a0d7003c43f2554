"""Reads about what customers owe: estimates from the one rating engine, run-rates, and the
recommended balance. Nothing here writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from django.db.models import Max

from accounts.arrears import suspension_date
from accounts.models import Customer, DailyUsage
from accounts.selectors import ledger_balance
from billingsite.clock import Period
from billingsite.money import round_money
from plans.batch_rating import CustomerRating, customers_rate
from plans.price_book_cache import cached_price_book
from plans.rating.engine import (
    AddOnSegment,
    ApplicationInput,
    ContractSegment,
    PlanSegment,
    PriceBook,
    RatedAccount,
    rate_account,
)
from plans.timeline import covers

RECOMMENDED_MONTHS = 3


def _customer_rating(
    *, customer: Customer, period: Period, book: PriceBook | None = None
) -> CustomerRating:
    """`plans.batch_rating.customers_rate` for one customer; raises its RatingError."""
    rating = customers_rate(customer_ids=[customer.pk], period=period, book=book)[customer.pk]
    if rating.error is not None:
        raise rating.error
    return rating


def rate_customer_period(*, customer: Customer, period: Period) -> RatedAccount:
    """Price a customer's applications for a period from the usage stored now."""
    return _customer_rating(
        customer=customer, period=period, book=cached_price_book(period=period)
    ).rated


def _covers(segment, day: dt.date) -> bool:
    return covers(first_day=segment.first_day, last_day=segment.last_day, day=day)


def whole_month_inputs(
    *, inputs: Iterable[ApplicationInput], today: dt.date
) -> list[ApplicationInput]:
    """Each application as if the plan, add-ons and contract it has `today` covered its whole
    month, at the highest DAU of the month so far: what a month costs at today's
    subscriptions, whatever day of the month they started. Applications without a plan today
    are left out."""
    result = []
    for app in inputs:
        period = Period.containing(app.period_start)
        plan = next((s for s in app.plan_segments if _covers(s, today)), None)
        if plan is None:
            continue
        peaks = [s for s in app.plan_segments if s.peak_dau is not None]
        peak = max(peaks, key=lambda s: s.peak_dau, default=None)
        result.append(
            ApplicationInput(
                app_key=app.app_key,
                app_name=app.app_name,
                period_start=period.start,
                days_in_month=period.days,
                plan_segments=(
                    PlanSegment(
                        plan.plan_code,
                        period.start,
                        period.end,
                        peak.peak_dau if peak else None,
                        peak.peak_day if peak else None,
                    ),
                ),
                addon_segments=tuple(
                    AddOnSegment(s.addon_code, s.quantity, period.start, period.end)
                    for s in app.addon_segments
                    if _covers(s, today)
                ),
                contracts=tuple(
                    ContractSegment(s.monthly_fee, period.start, period.end, s.reference)
                    for s in app.contracts
                    if _covers(s, today)
                ),
                peak_daily_messages=app.peak_daily_messages,
                peak_messages_day=app.peak_messages_day,
            )
        )
    return result


def whole_month_fees(
    *, book: PriceBook, inputs: Iterable[ApplicationInput], today: dt.date
) -> Decimal:
    """A whole month of fees at today's plans, add-ons and contracts (see whole_month_inputs),
    priced by the one rating engine."""
    return rate_account(
        book=book, applications=whole_month_inputs(inputs=inputs, today=today)
    ).total


def recommended_balance(*, monthly_fees: Decimal) -> Decimal:
    """What a customer should keep on the account: RECOMMENDED_MONTHS whole months of fees."""
    return round_money(monthly_fees * RECOMMENDED_MONTHS)


def estimate_current_month(*, customer: Customer, today: dt.date) -> RatedAccount:
    """This month's bill so far: the whole month at today's plans and add-ons, with the peak
    DAU received to date. An estimate; the month-end run bills the real peak."""
    return rate_customer_period(customer=customer, period=Period.containing(today))


def usage_received_through(*, customer: Customer, period: Period) -> dt.date | None:
    """The last day of `period` with usage received for any of the customer's applications;
    None when none has arrived yet (an estimate then prices no DAU at all, which is not a
    forecast of the bill)."""
    return DailyUsage.objects.filter(
        application__customer=customer, day__gte=period.start, day__lte=period.end
    ).aggregate(last=Max("day"))["last"]


@dataclass(frozen=True)
class CustomerFinancials:
    balance: Decimal
    # This month's fees so far (the estimate of this month's bill).
    monthly_run_rate: Decimal
    # A whole month at today's plans and add-ons; the recommended balance is three of them.
    monthly_fees: Decimal
    recommended_balance: Decimal
    # Days the balance lasts at the whole-month fees; None when nothing is being charged.
    days_left: int | None
    arrears_since: dt.date | None
    suspension_date: dt.date | None
    suspended: bool


def financials_from(
    customer: Customer,
    *,
    balance: Decimal,
    run_rate: Decimal,
    monthly_fees: Decimal,
    period: Period,
) -> CustomerFinancials:
    """Balance, run-rate and arrears arithmetic, for one customer or a batch of them."""

    days_left = None
    # What the subscriptions in effect cost a day, not this month's average: an application
    # started yesterday burns the balance at its full rate.
    if monthly_fees > 0:
        per_day = monthly_fees / period.days
        days_left = max(0, int((balance / per_day).to_integral_value(rounding=ROUND_FLOOR)))
    return CustomerFinancials(
        balance=balance,
        monthly_run_rate=run_rate,
        monthly_fees=monthly_fees,
        recommended_balance=recommended_balance(monthly_fees=monthly_fees),
        days_left=days_left,
        arrears_since=customer.arrears_since,
        suspension_date=suspension_date(arrears_since=customer.arrears_since)
        if customer.arrears_since
        else None,
        suspended=customer.suspended_at is not None,
    )


def customer_financials(*, customer: Customer, today: dt.date) -> CustomerFinancials:
    period = Period.containing(today)
    book = cached_price_book(period=period)
    rating = _customer_rating(customer=customer, period=period, book=book)
    return financials_from(
        customer,
        balance=ledger_balance(customer=customer),
        run_rate=rating.rated.total,
        monthly_fees=whole_month_fees(book=book, inputs=rating.inputs, today=today),
        period=period,
    )
