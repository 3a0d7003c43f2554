"""Reads about what customers owe: estimates from the one rating engine, run-rates, and the
recommended balance. Nothing here writes."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Max, Sum

from accounts.arrears import suspension_date
from accounts.low_balance import monthly_run_rates, runway
from accounts.models import Application, Customer, DailyUsage
from accounts.selectors import ledger_balance, ledger_balances
from billingsite.clock import Period
from billingsite.money import round_money
from plans.batch_rating import CustomerRating, customers_rate
from plans.models import (
    AddOnChange,
    AddOnPrice,
    DedicatedContract,
    Discount,
    Plan,
    PlanChange,
    PlanPrice,
)
from plans.price_book_cache import cached_price_book
from plans.rating.engine import (
    AddOnSegment,
    ApplicationInput,
    ContractSegment,
    DiscountSegment,
    PlanSegment,
    PriceBook,
    RatedAccount,
    RatingError,
    rate_account,
)
from plans.selectors import application_inputs, price_book_for_period
from plans.timeline import covers

RECOMMENDED_MONTHS = 3
ZERO = Decimal("0.00")
# Customers rated per batch: bounded memory however many customers there are.
FINANCIALS_BATCH = 500


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
    ).rated_account()


def _covers(
    segment: PlanSegment | AddOnSegment | ContractSegment | DiscountSegment, day: dt.date
) -> bool:
    return covers(first_day=segment.first_day, last_day=segment.last_day, day=day)


def whole_month_inputs(
    *, inputs: Iterable[ApplicationInput], today: dt.date
) -> list[ApplicationInput]:
    """Each application as if the plan, add-ons, contract and discounts it has `today` covered
    its whole month, at the highest DAU of the month so far: what a month costs at today's
    subscriptions, whatever day of the month they started. Applications without a plan today
    are left out."""
    result = []
    for app in inputs:
        period = Period.containing(app.period_start)
        plan = next((s for s in app.plan_segments if _covers(s, today)), None)
        if plan is None:
            continue
        peaks = [s for s in app.plan_segments if s.peak_dau is not None]
        peak = max(peaks, key=lambda s: s.peak_dau or 0, default=None)
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
                discounts=tuple(
                    replace(s, first_day=period.start, last_day=period.end)
                    for s in app.discounts
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
    return month_estimate(customer=customer, today=today).rated


@dataclass(frozen=True)
class MonthEstimate:
    """This month's estimate with what the estimate page and API show beside it, all from the
    one read the rating made (no second usage query, no second price book token)."""

    period: Period
    rated: RatedAccount
    # The last day of the month with usage received for any of the customer's applications;
    # None when none has arrived yet (the estimate then prices no DAU at all, which is not a
    # forecast of the bill).
    usage_through: dt.date | None
    # app_key -> {day: DAU} of the month so far, every application of the customer.
    dau_by_app: dict[str, dict[dt.date, int]]
    # The prices the estimate used (the charts' block thresholds).
    book: PriceBook


def month_estimate(*, customer: Customer, today: dt.date) -> MonthEstimate:
    """`estimate_current_month` plus the usage it read; raises RatingError like it."""
    period = Period.containing(today)
    book = cached_price_book(period=period)
    rating = _customer_rating(customer=customer, period=period, book=book)
    days = [row for peaks in rating.usage.values() for row in peaks.days]
    return MonthEstimate(
        period=period,
        rated=rating.rated_account(),
        usage_through=max((day for day, _dau, _messages in days), default=None),
        dau_by_app={
            app_key: {day: dau for day, dau, _messages in peaks.days}
            for app_key, peaks in rating.usage.items()
        },
        book=book,
    )


@dataclass(frozen=True)
class CustomerFinancials:
    balance: Decimal
    # This month's fees so far (the estimate of this month's bill).
    monthly_run_rate: Decimal
    # A whole month at today's plans and add-ons; the recommended balance is three of them.
    monthly_fees: Decimal
    recommended_balance: Decimal
    # What a month costs for `days_left`: the last invoice's debit; None before the first.
    last_invoice_debit: Decimal | None
    # Days the balance lasts at the last invoice's debit a month of 30 days (the one rule,
    # `accounts.low_balance.runway`, which the low-balance alert also uses); None without an
    # invoice yet.
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
    last_invoice_debit: Decimal | None,
) -> CustomerFinancials:
    """Balance, run-rate and arrears arithmetic, for one customer or a batch of them."""
    return CustomerFinancials(
        balance=balance,
        monthly_run_rate=run_rate,
        monthly_fees=monthly_fees,
        recommended_balance=recommended_balance(monthly_fees=monthly_fees),
        last_invoice_debit=last_invoice_debit,
        days_left=runway(balance=balance, monthly_run_rate=last_invoice_debit).days_left,
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
        run_rate=rating.rated_account().total,
        monthly_fees=whole_month_fees(book=book, inputs=rating.inputs, today=today),
        last_invoice_debit=monthly_run_rates(customer_ids=[customer.pk]).get(customer.pk),
    )


# --- many customers at once -------------------------------------------------------------

# Customers rated per batch: bounded memory however many customers there are.
FINANCIALS_BATCH = 500


@dataclass(frozen=True)
class RunRate:
    """One customer's fees: this month so far (the estimate) and a whole month at today's
    plans and add-ons (what the recommended balance is made of)."""

    this_month: Decimal
    whole_month: Decimal


def run_rates(*, customer_ids: Sequence[int], today: dt.date) -> dict[int, RunRate | RatingError]:
    """Each customer's fees for the month of `today` from the usage stored now (what
    `customer_financials` gives one customer), batched: a fixed number of
    queries per FINANCIALS_BATCH customers. A customer whose applications cannot be rated gets
    the RatingError instead of failing the page."""
    period = Period.containing(today)
    book = price_book_for_period(period=period)
    rates: dict[int, RunRate | RatingError] = {}
    for start in range(0, len(customer_ids), FINANCIALS_BATCH):
        ids = list(customer_ids[start : start + FINANCIALS_BATCH])
        for customer_id, rating in customers_rate(
            customer_ids=ids, period=period, book=book
        ).items():
            try:
                rates[customer_id] = RunRate(
                    this_month=rating.rated_account().total,
                    whole_month=whole_month_fees(book=book, inputs=rating.inputs, today=today),
                )
            except RatingError as exc:
                rates[customer_id] = exc
    return rates


def financials_for_customers(
    *, customers: Sequence[Customer], today: dt.date
) -> dict[int, CustomerFinancials | RatingError]:
    """`customer_financials` for a page of customers, batched."""
    ids = [customer.pk for customer in customers]
    rates = run_rates(customer_ids=ids, today=today)
    balances = ledger_balances(customer_ids=ids)
    debits = monthly_run_rates(customer_ids=ids)
    result: dict[int, CustomerFinancials | RatingError] = {}
    for customer in customers:
        rate = rates[customer.pk]
        result[customer.pk] = (
            rate
            if isinstance(rate, RatingError)
            else financials_from(
                customer,
                balance=balances.get(customer.pk, ZERO),
                run_rate=rate.this_month,
                monthly_fees=rate.whole_month,
                last_invoice_debit=debits.get(customer.pk),
            )
        )
    return result


# --- usage of one application in a month ------------------------------------------------


@dataclass(frozen=True)
class UsageDay:
    day: dt.date
    dau: int | None
    delivered_messages: int | None
    # The day whose DAU the invoice bills for its plan segment.
    is_billed_peak: bool
    over_message_limit: bool


@dataclass(frozen=True)
class UsageSegment:
    plan_code: str
    plan_name: str
    first_day: dt.date
    last_day: dt.date
    peak_dau: int | None
    peak_day: dt.date | None


@dataclass(frozen=True)
class UsageMonth:
    period: Period
    days: list[UsageDay]
    segments: list[UsageSegment]
    days_reported: int
    peak_messages: int | None
    peak_messages_day: dt.date | None
    message_limit: int | None

    @property
    def high_volume(self) -> bool:
        return bool(
            self.message_limit is not None
            and self.peak_messages is not None
            and self.peak_messages > self.message_limit
        )


def usage_month(*, application: Application, period: Period) -> UsageMonth:
    """Every day of the month with its usage; the peak DAU day of each plan segment (what the
    invoice bills) and days above the plan's daily message limit flagged."""

    stored = {
        row.day: row
        for row in DailyUsage.objects.filter(
            application=application, day__gte=period.start, day__lte=period.end
        )
    }
    app_input = application_inputs(applications=[application], period=period).get(application.pk)
    plans = {plan.code: plan for plan in Plan.objects.all()}
    segments = []
    if app_input is not None:
        segments = [
            UsageSegment(
                plan_code=segment.plan_code,
                plan_name=plans[segment.plan_code].name
                if segment.plan_code in plans
                else segment.plan_code,
                first_day=segment.first_day,
                last_day=segment.last_day,
                peak_dau=segment.peak_dau,
                peak_day=segment.peak_day,
            )
            for segment in app_input.plan_segments
        ]
    limits = [plans[s.plan_code].daily_message_limit for s in segments if s.plan_code in plans]
    limit = min(limits) if limits else None
    peak_days = {segment.peak_day for segment in segments if segment.peak_day}
    days = []
    for offset in range(period.days):
        day = period.start + dt.timedelta(days=offset)
        row = stored.get(day)
        days.append(
            UsageDay(
                day=day,
                dau=row.dau if row else None,
                delivered_messages=row.delivered_messages if row else None,
                is_billed_peak=day in peak_days,
                over_message_limit=bool(
                    row and limit is not None and row.delivered_messages > limit
                ),
            )
        )
    peak_messages, peak_messages_day = None, None
    for row in stored.values():
        if peak_messages is None or row.delivered_messages > peak_messages:
            peak_messages, peak_messages_day = row.delivered_messages, row.day
    return UsageMonth(
        period=period,
        days=days,
        segments=segments,
        days_reported=len(stored),
        peak_messages=peak_messages,
        peak_messages_day=peak_messages_day,
        message_limit=limit,
    )


# --- every account's run-rates and figures (dashboard, customers list) ------------------

# The dashboard and the customers list rate every account: cached, keyed by a fingerprint of everything the run-rates
# depend on (so any plan, add-on, contract, discount, price or usage change gives a new key). Balances
# and arrears are always read live.
RUN_RATES_CACHE_SECONDS = 600


def _rating_inputs_fingerprint(period: Period) -> str:

    parts: list = [str(period)]
    for model in (PlanChange, AddOnChange):
        parts += model.objects.aggregate(
            n=Count("id"), last=Max("id"), cancelled=Count("cancelled_at")
        ).values()
    for dated_model in (PlanPrice, AddOnPrice, DedicatedContract, Discount):
        parts += dated_model.history.aggregate(
            n=Count("history_id"), last=Max("history_id")
        ).values()
    parts += Application.objects.aggregate(n=Count("id"), last=Max("id")).values()
    parts += (
        DailyUsage.objects.filter(day__gte=period.start, day__lte=period.end)
        .aggregate(
            n=Count("id"),
            last=Max("updated_at"),
            dau=Sum("dau"),
            messages=Sum("delivered_messages"),
        )
        .values()
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def current_run_rates(*, today: dt.date) -> dict[int, RunRate]:
    """Every account's fees this month (accounts that cannot be rated left out)."""
    period = Period.containing(today)
    # Whole-month fees depend on the day (what is in effect today), so the day is in the key.
    key = f"billing:dashboard:run-rates:{today.isoformat()}:{_rating_inputs_fingerprint(period)}"
    rates = cache.get(key)
    if rates is None:
        customer_ids = list(
            Application.objects.order_by("customer_id")
            .values_list("customer_id", flat=True)
            .distinct()
        )
        rates = {
            customer_id: rate
            for customer_id, rate in run_rates(customer_ids=customer_ids, today=today).items()
            if not isinstance(rate, RatingError)
        }
        cache.set(key, rates, RUN_RATES_CACHE_SECONDS)
    return rates


@dataclass(frozen=True)
class LowBalanceRow:
    customer: Customer
    balance: Decimal
    recommended_balance: Decimal
    shortfall: Decimal
    days_left: int | None


def rated_financials(*, today: dt.date) -> dict[int, CustomerFinancials]:
    """Every rated account's balance, recommended balance and days left (accounts that cannot
    be rated left out): the dashboard's cached run-rates, a fixed number of queries however
    many customers there are. What the customers list sorts, filters and exports by."""
    return {customer.pk: figures for customer, figures in _rated_customers(today=today)}


def customers_below_recommended(*, today: dt.date) -> list[LowBalanceRow]:
    """Customers whose balance is below three months of their current monthly fees, the
    fewest days of balance left first."""
    rows = []
    for customer, figures in _rated_customers(today=today):
        if figures.monthly_fees > 0 and figures.balance < figures.recommended_balance:
            rows.append(
                LowBalanceRow(
                    customer=customer,
                    balance=figures.balance,
                    recommended_balance=figures.recommended_balance,
                    shortfall=figures.recommended_balance - figures.balance,
                    days_left=figures.days_left,
                )
            )
    rows.sort(
        key=lambda row: (
            row.days_left if row.days_left is not None else 10**9,
            row.customer.name,
        )
    )
    return rows


def _rated_customers(*, today: dt.date) -> list[tuple[Customer, CustomerFinancials]]:
    rates = current_run_rates(today=today)
    balances = ledger_balances(customer_ids=list(rates))
    debits = monthly_run_rates(customer_ids=list(rates))
    return [
        (
            customer,
            financials_from(
                customer,
                balance=balances.get(customer.pk, ZERO),
                run_rate=rates[customer.pk].this_month,
                monthly_fees=rates[customer.pk].whole_month,
                last_invoice_debit=debits.get(customer.pk),
            ),
        )
        for customer in Customer.objects.filter(pk__in=list(rates))
    ]
