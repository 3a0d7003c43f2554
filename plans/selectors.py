"""Reads of the price book, and the rating inputs built from the applications' timeline
(`plans.timeline`: which plan, add-ons and contracts are in effect on a day) and usage.

Everything here is batched per list of applications so the month-end run reads a chunk of
accounts in a fixed number of queries, however many applications, add-ons or days they have.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from accounts.models import DailyUsage
from billingsite.clock import Period
from billingsite.money import as_decimal
from billingsite.queries import any_of, compiled_read
from plans.models import AddOn, AddOnPrice, Discount, Plan, PlanPrice, VatRate
from plans.rating.engine import (
    AddOnPriceTerms,
    AddOnSegment,
    AddOnTerms,
    ApplicationInput,
    ContractSegment,
    DiscountSegment,
    PlanSegment,
    PlanTerms,
    PriceBook,
)
from plans.rating.tax import DEFAULT_VAT, VatTerms
from plans.timeline import (
    addon_history,
    clip,
    contracts_overlapping,
    discounts_in_effect,
    plan_history,
)


def price_in_force(*, price: PlanPrice | AddOnPrice | VatRate | None, today: dt.date) -> bool:
    """A saved dated price whose month has started (valid_from <= today) may have billed a
    month: it is never changed (the database refuses it too); a new price is a new row."""
    return price is not None and price.pk is not None and price.valid_from <= today


def price_book_for_period(*, period: Period) -> PriceBook:
    """The prices valid on the period's first day; they bill the whole period."""
    plans = {plan.id: plan for plan in Plan.objects.all()}
    plan_terms: dict[str, PlanTerms] = {}
    for price in PlanPrice.objects.filter(valid_from__lte=period.start).order_by(
        "plan_id", "-valid_from"
    ):
        plan = plans[price.plan_id]
        if plan.code in plan_terms:
            continue
        plan_terms[plan.code] = PlanTerms(
            code=plan.code,
            name=plan.name,
            minimum_deposit=as_decimal(price.minimum_deposit),
            dau_base_fee=as_decimal(price.dau_base_fee),
            included_dau=price.included_dau,
            dau_block_size=price.dau_block_size,
            dau_block_price=as_decimal(price.dau_block_price),
            daily_message_limit=plan.daily_message_limit,
            supports_ultragroups=plan.supports_ultragroups,
            rank=plan.rank,
            name_zh=plan.name_zh,
        )
    addons = {addon.id: addon for addon in AddOn.objects.all()}
    addon_terms = {
        addon.code: AddOnTerms(
            addon.code,
            addon.name,
            addon.category,
            addon.unit_description,
            name_zh=addon.name_zh,
            unit_description_zh=addon.unit_description_zh,
        )
        for addon in addons.values()
    }
    addon_prices: dict[tuple[str, str], AddOnPriceTerms] = {}
    for addon_price in AddOnPrice.objects.filter(valid_from__lte=period.start).order_by(
        "addon_id", "plan_id", "-valid_from"
    ):
        key = (addons[addon_price.addon_id].code, plans[addon_price.plan_id].code)
        if key not in addon_prices:
            addon_prices[key] = AddOnPriceTerms(
                addon_price.availability, as_decimal(addon_price.unit_price)
            )
    return PriceBook(
        plans=plan_terms,
        addons=addon_terms,
        addon_prices=addon_prices,
        vat=vat_terms_for_period(period=period),
    )


def vat_terms_for_period(*, period: Period) -> VatTerms:
    """The VAT terms valid on the period's first day (DEFAULT_VAT before any VatRate row)."""
    row = VatRate.objects.filter(valid_from__lte=period.start).order_by("-valid_from").first()
    if row is None:
        return DEFAULT_VAT
    return VatTerms(rate=row.rate, prices_include_vat=row.prices_include_vat)


@dataclass(frozen=True)
class UsagePeaks:
    """Per-day usage of one application in a period, as (day, dau, delivered_messages)."""

    days: list[tuple[dt.date, int, int]]

    def peak_dau(self, first_day: dt.date, last_day: dt.date) -> tuple[int | None, dt.date | None]:
        best: tuple[int | None, dt.date | None] = (None, None)
        for day, dau, _messages in self.days:
            if first_day <= day <= last_day and (best[0] is None or dau > best[0]):
                best = (dau, day)
        return best

    def peak_messages(self) -> tuple[int | None, dt.date | None]:
        best: tuple[int | None, dt.date | None] = (None, None)
        for day, _dau, messages in self.days:
            if best[0] is None or messages > best[0]:
                best = (messages, day)
        return best


@compiled_read
def _usage_rows(*, application_ids: list[int], first_day: dt.date, last_day: dt.date) -> QuerySet:
    return DailyUsage.objects.filter(
        any_of("application_id", application_ids), day__gte=first_day, day__lte=last_day
    ).values_list("application_id", "day", "dau", "delivered_messages")


@compiled_read
def _contracts_of_period(
    *, application_ids: list[int], first_day: dt.date, last_day: dt.date
) -> QuerySet:
    return contracts_overlapping(
        application_ids=application_ids, first_day=first_day, last_day=last_day
    ).order_by("first_day")


@compiled_read
def _discounts_of_period(
    *, customer_ids: list[int], application_ids: list[int], first_day: dt.date, last_day: dt.date
) -> QuerySet:
    return discounts_in_effect(
        customer_ids=customer_ids,
        application_ids=application_ids,
        first_day=first_day,
        last_day=last_day,
    ).order_by("first_day", "id")


def usage_by_application(
    *, application_ids: Iterable[int], first_day: dt.date, last_day: dt.date
) -> dict[int, UsagePeaks]:

    days: dict[int, list[tuple[dt.date, int, int]]] = defaultdict(list)
    rows = _usage_rows(
        application_ids=list(application_ids), first_day=first_day, last_day=last_day
    )
    for app_id, day, dau, messages in rows:
        days[app_id].append((day, dau, messages))
    return {app_id: UsagePeaks(values) for app_id, values in days.items()}


def _discount_segments(
    discounts: list[Discount], *, start: dt.date, end: dt.date
) -> tuple[DiscountSegment, ...]:
    segments = []
    for discount in discounts:
        clipped = clip(
            first_day=discount.first_day, last_day=discount.last_day, start=start, end=end
        )
        if clipped:
            segments.append(
                DiscountSegment(
                    key=f"discount-{discount.pk}",
                    first_day=clipped[0],
                    last_day=clipped[1],
                    percent=discount.percent,
                    amount_off=None
                    if discount.amount_off is None
                    else as_decimal(discount.amount_off),
                    reference=discount.reference,
                    customer_wide=discount.customer_id is not None,
                )
            )
    return tuple(segments)


def application_inputs(
    *, applications: list, period: Period, usage: dict[int, UsagePeaks] | None = None
) -> dict[int, ApplicationInput]:
    """Rating inputs for many applications in one period, in a fixed number of queries
    (plans, add-ons, usage, contracts, discounts). `usage`: the applications' usage of the
    period when the caller has read it already (`usage_by_application`), else read here.

    `applications` are Application instances (id, customer_id, app_key, name). An application
    with no plan row in the period is left out (it did not exist yet). Its discounts are its
    own and its customer's (customer-wide), read in the same query for all applications.
    """
    app_ids = [app.id for app in applications]
    plans = plan_history(application_ids=app_ids)
    addons = addon_history(application_ids=app_ids)
    if usage is None:
        usage = usage_by_application(
            application_ids=app_ids, first_day=period.start, last_day=period.end
        )
    contracts: dict[int, list] = defaultdict(list)
    for contract in _contracts_of_period(
        application_ids=app_ids, first_day=period.start, last_day=period.end
    ):
        contracts[contract.application_id].append(contract)
    app_discounts: dict[int, list[Discount]] = defaultdict(list)
    customer_discounts: dict[int, list[Discount]] = defaultdict(list)
    for discount in _discounts_of_period(
        customer_ids=sorted({app.customer_id for app in applications}),
        application_ids=app_ids,
        first_day=period.start,
        last_day=period.end,
    ):
        if discount.application_id is not None:
            app_discounts[discount.application_id].append(discount)
        elif discount.customer_id is not None:  # a CHECK gives every discount one scope
            customer_discounts[discount.customer_id].append(discount)
    inputs: dict[int, ApplicationInput] = {}
    for app in applications:
        app_usage = usage.get(app.id, UsagePeaks([]))
        segments = []
        for row in plans.get(app.id, []):
            clipped = clip(
                first_day=row.first_day, last_day=row.last_day, start=period.start, end=period.end
            )
            if clipped:
                peak, peak_day = app_usage.peak_dau(*clipped)
                segments.append(PlanSegment(row.code, clipped[0], clipped[1], peak, peak_day))
        if not segments:
            continue
        addon_segments = []
        for row in addons.get(app.id, []):
            clipped = clip(
                first_day=row.first_day,
                last_day=row.last_day,
                start=segments[0].first_day,
                end=period.end,
            )
            if clipped:
                addon_segments.append(AddOnSegment(row.code, row.quantity, *clipped))
        contract_segments = []
        for contract in contracts.get(app.id, []):
            clipped = clip(
                first_day=contract.first_day,
                last_day=contract.last_day,
                start=segments[0].first_day,
                end=period.end,
            )
            if clipped:
                contract_segments.append(
                    ContractSegment(
                        as_decimal(contract.monthly_fee), *clipped, reference=contract.reference
                    )
                )
        discount_segments = _discount_segments(
            app_discounts.get(app.id, []) + customer_discounts.get(app.customer_id, []),
            start=segments[0].first_day,
            end=period.end,
        )
        peak_messages, peak_messages_day = app_usage.peak_messages()
        inputs[app.id] = ApplicationInput(
            app_key=app.app_key,
            app_name=app.name,
            period_start=period.start,
            days_in_month=period.days,
            plan_segments=tuple(segments),
            addon_segments=tuple(addon_segments),
            contracts=tuple(contract_segments),
            discounts=discount_segments,
            peak_daily_messages=peak_messages,
            peak_messages_day=peak_messages_day,
        )
    return inputs
