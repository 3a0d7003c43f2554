"""The rating engine: inputs in, priced lines out. Pure: no database, no clock.

Quotes, the month-end run, re-rating and the customer's estimate all call `rate_application`,
so there is exactly one place where a price is computed. Everything is Decimal; each line is
rounded half-up to 0.01 once and a total is the sum of rounded lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billingsite.money import round_money
from plans.rating.messages import Message, names, render
from plans.rating.tax import DEFAULT_VAT, VatTerms, vat_split

ZERO = Decimal("0.00")


class RatingError(ValueError):
    """The inputs cannot be priced (unknown code, add-on not available on the plan...)."""


@dataclass(frozen=True)
class PlanTerms:
    code: str
    name: str
    minimum_deposit: Decimal
    dau_base_fee: Decimal
    included_dau: int
    dau_block_size: int
    dau_block_price: Decimal
    daily_message_limit: int
    supports_ultragroups: bool
    rank: int = 0
    name_zh: str = ""

    @property
    def is_paid(self) -> bool:
        """A paid plan: it has a base fee or priced DAU blocks. An account whose applications
        are only on unpaid plans (and have no contract or high volume) is not invoiced."""
        return self.dau_base_fee > 0 or self.dau_block_price > 0


@dataclass(frozen=True)
class AddOnTerms:
    code: str
    name: str
    category: str
    unit_description: str
    name_zh: str = ""
    unit_description_zh: str = ""


PRICED, INCLUDED, UNAVAILABLE = "priced", "included", "unavailable"


@dataclass(frozen=True)
class AddOnPriceTerms:
    availability: str  # priced | included | unavailable
    unit_price: Decimal


@dataclass(frozen=True)
class PriceBook:
    """The prices valid for one period, as plain values."""

    plans: dict[str, PlanTerms]
    addons: dict[str, AddOnTerms]
    addon_prices: dict[tuple[str, str], AddOnPriceTerms]  # (addon_code, plan_code)
    # Whether these prices include VAT, and its rate (plans.VatRate valid in the period).
    vat: VatTerms = DEFAULT_VAT

    def plan(self, code: str) -> PlanTerms:
        try:
            return self.plans[code]
        except KeyError:
            raise RatingError(f"unknown plan {code!r}") from None

    def addon(self, code: str) -> AddOnTerms:
        try:
            return self.addons[code]
        except KeyError:
            raise RatingError(f"unknown add-on {code!r}") from None

    def addon_price(self, addon_code: str, plan_code: str) -> AddOnPriceTerms:
        self.addon(addon_code)
        self.plan(plan_code)
        return self.addon_prices.get((addon_code, plan_code), AddOnPriceTerms(UNAVAILABLE, ZERO))

    def is_available(self, addon_code: str, plan_code: str) -> bool:
        """The one rule of "this plan offers this add-on": both are in this price book and the
        add-on's price on the plan is not `unavailable` (a pair without a price row is not
        offered). Unknown codes are simply not offered; pricing them raises elsewhere."""
        if addon_code not in self.addons or plan_code not in self.plans:
            return False
        price = self.addon_prices.get((addon_code, plan_code))
        return price is not None and price.availability != UNAVAILABLE


@dataclass(frozen=True)
class PlanSegment:
    """Days of the period on one plan, with the peak DAU of those days (None: no usage rows)."""

    plan_code: str
    first_day: dt.date
    last_day: dt.date
    peak_dau: int | None = None
    peak_day: dt.date | None = None


@dataclass(frozen=True)
class AddOnSegment:
    addon_code: str
    quantity: int
    first_day: dt.date
    last_day: dt.date


@dataclass(frozen=True)
class ContractSegment:
    monthly_fee: Decimal
    first_day: dt.date
    last_day: dt.date
    reference: str = ""


@dataclass(frozen=True)
class ApplicationInput:
    app_key: str
    app_name: str
    period_start: dt.date
    days_in_month: int
    plan_segments: tuple[PlanSegment, ...]
    addon_segments: tuple[AddOnSegment, ...] = ()
    contracts: tuple[ContractSegment, ...] = ()
    # Largest daily delivered-message count in the period, and its day (None: not reported).
    peak_daily_messages: int | None = None
    peak_messages_day: dt.date | None = None


@dataclass(frozen=True)
class PricedLine:
    app_key: str
    app_name: str
    code: str
    category: str
    plan_code: str
    plan_name: str
    description: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    first_day: dt.date
    last_day: dt.date
    days: int
    days_in_month: int
    explanation: str
    peak_dau: int | None = None
    peak_day: dt.date | None = None
    # `description` and `explanation` are these messages rendered in English.
    title: Message | None = None
    explanation_parts: tuple[Message, ...] = ()
    # Placeholder -> name in each language ("plan" always; "addon" and "unit" on add-ons).
    names: dict[str, dict[str, str]] | None = None
    # `amount` is the gross (what the customer pays); net + vat = amount (plans.rating.tax).
    # None on a line not priced by `rate_application` (no VAT terms applied).
    net_amount: Decimal | None = None
    vat_amount: Decimal | None = None
    vat_rate: Decimal | None = None

    @property
    def messages(self) -> dict[str, Any] | None:
        """The line's words as data, as `InvoiceLine.messages` freezes them."""
        if self.title is None:
            return None
        return {
            "title": self.title.as_json(),
            "explanation": [part.as_json() for part in self.explanation_parts],
            "names": self.names,
        }


def priced_line(
    *,
    title: Message,
    explanation_parts: list[Message],
    line_names: dict[str, dict[str, str]],
    **fields: Any,
) -> PricedLine:
    """A line whose English `description` and `explanation` are rendered from its messages."""
    return PricedLine(
        description=render((title,), names=line_names),
        explanation=render(explanation_parts, names=line_names),
        title=title,
        explanation_parts=tuple(explanation_parts),
        names=line_names,
        **fields,
    )


@dataclass(frozen=True)
class RatedApplication:
    app_key: str
    lines: tuple[PricedLine, ...]
    total: Decimal
    high_volume: bool
    # Why this application cannot be billed without finance (None: it can).
    hold_reason: str | None = None
    has_paid_plan: bool = False


@dataclass(frozen=True)
class RatedAccount:
    applications: tuple[RatedApplication, ...]
    lines: tuple[PricedLine, ...] = field(default=())
    total: Decimal = ZERO
    hold_reasons: tuple[str, ...] = ()

    @property
    def net_total(self) -> Decimal | None:
        """Sum of the lines' net amounts (None when a line has no VAT split)."""
        return _sum_or_none([line.net_amount for line in self.lines])

    @property
    def vat_total(self) -> Decimal | None:
        """Sum of the lines' VAT (None when a line has no VAT split)."""
        return _sum_or_none([line.vat_amount for line in self.lines])

    @classmethod
    def of(cls, applications: list[RatedApplication]) -> RatedAccount:
        lines = tuple(line for app in applications for line in app.lines)
        return cls(
            applications=tuple(applications),
            lines=lines,
            total=sum((line.amount for line in lines), ZERO),
            hold_reasons=tuple(app.hold_reason for app in applications if app.hold_reason),
        )


def _sum_or_none(amounts: list[Decimal | None]) -> Decimal | None:
    total = ZERO
    for amount in amounts:
        if amount is None:
            return None
        total += amount
    return total


def taxed(line: PricedLine, terms: VatTerms) -> PricedLine:
    """`line` with its net, VAT and gross (its amount) by the one rule of plans.rating.tax."""
    split = vat_split(price=line.amount, terms=terms)
    return dataclasses.replace(
        line,
        amount=split.gross,
        net_amount=split.net,
        vat_amount=split.vat,
        vat_rate=terms.rate,
    )


def money_text(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def dau_blocks(*, peak_dau: int, included_dau: int, block_size: int) -> int:
    """Started blocks above the included DAU: ceil(max(0, peak - included) / block)."""
    if peak_dau < 0:
        raise RatingError("peak DAU cannot be negative")
    above = max(0, peak_dau - included_dau)
    return -(-above // block_size)


def monthly_dau_fee(*, plan: PlanTerms, peak_dau: int) -> Decimal:
    blocks = dau_blocks(
        peak_dau=peak_dau, included_dau=plan.included_dau, block_size=plan.dau_block_size
    )
    return plan.dau_base_fee + blocks * plan.dau_block_price


def prorate(*, monthly: Decimal, days: int, days_in_month: int) -> Decimal:
    """Monthly amount for `days` of a `days_in_month` month, rounded once."""
    if days == days_in_month:
        return round_money(monthly)
    return round_money(monthly * days / days_in_month)


def _days(first_day: dt.date, last_day: dt.date) -> int:
    return (last_day - first_day).days + 1


def _proration(monthly: Decimal, days: int, days_in_month: int, amount: Decimal) -> list[Message]:
    if days == days_in_month:
        return []
    return [
        Message(
            "prorata",
            {
                "days": days,
                "days_in_month": days_in_month,
                "monthly": money_text(monthly),
                "amount": money_text(amount),
            },
        )
    ]


def _plan_names(plan: PlanTerms) -> dict[str, dict[str, str]]:
    return {"plan": names(plan.name, plan.name_zh)}


def _overlap(
    a_first: dt.date, a_last: dt.date, b_first: dt.date, b_last: dt.date
) -> tuple[dt.date, dt.date] | None:
    first, last = max(a_first, b_first), min(a_last, b_last)
    return (first, last) if first <= last else None


def _dau_line(app: ApplicationInput, plan: PlanTerms, segment: PlanSegment) -> PricedLine:
    days = _days(segment.first_day, segment.last_day)
    peak = segment.peak_dau or 0
    blocks = dau_blocks(
        peak_dau=peak, included_dau=plan.included_dau, block_size=plan.dau_block_size
    )
    monthly = monthly_dau_fee(plan=plan, peak_dau=peak)
    amount = prorate(monthly=monthly, days=days, days_in_month=app.days_in_month)
    if segment.peak_dau is None:
        parts = [Message("no_usage")]
    elif segment.peak_day:
        parts = [
            Message(
                "peak_dau_on_day",
                {"peak_dau": f"{segment.peak_dau:,}", "day": segment.peak_day.isoformat()},
            )
        ]
    else:
        parts = [Message("peak_dau", {"peak_dau": f"{segment.peak_dau:,}"})]
    if plan.dau_base_fee == 0 and plan.dau_block_price == 0:
        parts.append(Message("no_monthly_fee"))
    else:
        if blocks == 0:
            parts.append(
                Message(
                    "base_fee_only",
                    {
                        "base_fee": money_text(plan.dau_base_fee),
                        "included_dau": f"{plan.included_dau:,}",
                    },
                )
            )
        else:
            parts.append(
                Message(
                    "base_fee_and_blocks",
                    {
                        "base_fee": money_text(plan.dau_base_fee),
                        "blocks": blocks,
                        "block_price": money_text(plan.dau_block_price),
                        "monthly": money_text(monthly),
                    },
                )
            )
        parts += _proration(monthly, days, app.days_in_month, amount)
    return priced_line(
        app_key=app.app_key,
        app_name=app.app_name,
        code=plan.code,
        category="dau_fee",
        plan_code=plan.code,
        plan_name=plan.name,
        title=Message("plan_fee_title"),
        line_names=_plan_names(plan),
        quantity=1,
        unit_price=round_money(monthly),
        amount=amount,
        first_day=segment.first_day,
        last_day=segment.last_day,
        days=days,
        days_in_month=app.days_in_month,
        explanation_parts=parts,
        peak_dau=segment.peak_dau,
        peak_day=segment.peak_day,
    )


def _addon_line(
    app: ApplicationInput,
    book: PriceBook,
    plan: PlanTerms,
    addon_segment: AddOnSegment,
    first_day: dt.date,
    last_day: dt.date,
) -> PricedLine:
    addon = book.addon(addon_segment.addon_code)
    price = book.addon_price(addon.code, plan.code)
    if not book.is_available(addon.code, plan.code):
        raise RatingError(f"add-on {addon.code!r} is not available on the {plan.name} plan")
    if addon_segment.quantity < 1:
        raise RatingError(f"add-on {addon.code!r} needs a quantity of at least 1")
    days = _days(first_day, last_day)
    quantity = addon_segment.quantity
    if price.availability == INCLUDED:
        unit_price, amount = ZERO, ZERO
        parts = [Message("included")]
    else:
        unit_price = round_money(price.unit_price)
        monthly = price.unit_price * quantity
        amount = prorate(monthly=monthly, days=days, days_in_month=app.days_in_month)
        params: dict[str, Any] = {
            "quantity": quantity,
            "unit_price": money_text(unit_price),
        }
        if quantity > 1:
            parts = [Message("addon_quantity_total", {**params, "monthly": money_text(monthly)})]
        else:
            parts = [Message("addon_quantity", params)]
        parts += _proration(monthly, days, app.days_in_month, amount)
    return priced_line(
        app_key=app.app_key,
        app_name=app.app_name,
        code=addon.code,
        category=addon.category,
        plan_code=plan.code,
        plan_name=plan.name,
        title=Message("addon_title"),
        line_names={
            **_plan_names(plan),
            "addon": names(addon.name, addon.name_zh),
            "unit": names(addon.unit_description, addon.unit_description_zh),
        },
        quantity=quantity,
        unit_price=unit_price,
        amount=amount,
        first_day=first_day,
        last_day=last_day,
        days=days,
        days_in_month=app.days_in_month,
        explanation_parts=parts,
    )


def _contract_line(app: ApplicationInput, contract: ContractSegment, plan: PlanTerms) -> PricedLine:
    days = _days(contract.first_day, contract.last_day)
    amount = prorate(monthly=contract.monthly_fee, days=days, days_in_month=app.days_in_month)
    fee = {"monthly_fee": money_text(contract.monthly_fee)}
    if contract.reference:
        parts = [Message("contract_with_reference", {**fee, "reference": contract.reference})]
    else:
        parts = [Message("contract", fee)]
    if app.peak_daily_messages is not None:
        parts.append(Message("peak_messages", {"messages": f"{app.peak_daily_messages:,}"}))
    parts += _proration(contract.monthly_fee, days, app.days_in_month, amount)
    return priced_line(
        app_key=app.app_key,
        app_name=app.app_name,
        code="dedicated_service",
        category="dedicated_service",
        plan_code=plan.code,
        plan_name=plan.name,
        title=Message("contract_title"),
        line_names=_plan_names(plan),
        quantity=1,
        unit_price=round_money(contract.monthly_fee),
        amount=amount,
        first_day=contract.first_day,
        last_day=contract.last_day,
        days=days,
        days_in_month=app.days_in_month,
        explanation_parts=parts,
    )


def _plan_on(day: dt.date, plans: list[PlanTerms], segments: list[PlanSegment]) -> PlanTerms:
    for plan, segment in zip(plans, segments, strict=True):
        if segment.first_day <= day <= segment.last_day:
            return plan
    return plans[-1]


def _uncovered(
    segment: PlanSegment, contracts: list[ContractSegment]
) -> list[tuple[dt.date, dt.date]]:
    """The day ranges of `segment` that no contract covers."""
    ranges = [(segment.first_day, segment.last_day)]
    for contract in contracts:
        remaining = []
        for first_day, last_day in ranges:
            if contract.last_day < first_day or contract.first_day > last_day:
                remaining.append((first_day, last_day))
                continue
            if first_day < contract.first_day:
                remaining.append((first_day, contract.first_day - dt.timedelta(days=1)))
            if contract.last_day < last_day:
                remaining.append((contract.last_day + dt.timedelta(days=1), last_day))
        ranges = remaining
    return ranges


def _validate(app: ApplicationInput) -> None:
    period_end = app.period_start + dt.timedelta(days=app.days_in_month - 1)
    spans = [(s.first_day, s.last_day) for s in app.plan_segments]
    spans += [(s.first_day, s.last_day) for s in app.addon_segments]
    spans += [(s.first_day, s.last_day) for s in app.contracts]
    for first_day, last_day in spans:
        if first_day > last_day or first_day < app.period_start or last_day > period_end:
            raise RatingError(f"days {first_day}..{last_day} are not inside the period")
    for segment in app.plan_segments:
        if segment.peak_dau is not None and segment.peak_dau < 0:
            raise RatingError("peak DAU cannot be negative")


def rate_application(*, book: PriceBook, app: ApplicationInput) -> RatedApplication:
    """Price one application for one period.

    Plan segments give DAU-fee lines, except on days a dedicated contract covers: those are
    billed by the contract's line instead (a partly covered segment is billed by the table for
    its uncovered days, at the segment's peak DAU); each add-on is priced per plan segment it overlaps, by that
    segment's plan; included add-ons are 0.00 lines. An application whose peak daily messages
    exceed its plan's limit without a contract gets a hold reason.
    """
    _validate(app)
    lines: list[PricedLine] = []
    segments = sorted(app.plan_segments, key=lambda s: s.first_day)
    plans = [book.plan(s.plan_code) for s in segments]
    limit = min((plan.daily_message_limit for plan in plans), default=None)
    high_volume = bool(
        limit is not None
        and app.peak_daily_messages is not None
        and app.peak_daily_messages > limit
    )
    has_paid_plan = any(plan.is_paid for plan in plans)
    hold_reason = None
    contracts = sorted(app.contracts, key=lambda c: c.first_day) if plans else []
    for contract in contracts:
        lines.append(_contract_line(app, contract, _plan_on(contract.first_day, plans, segments)))
    if contracts:
        has_paid_plan = True
    uncovered_days = 0
    for plan, segment in zip(plans, segments, strict=True):
        # A contract replaces the DAU table only on the days it covers; the other days of the
        # segment are priced by the table, so a contract from the 16th never leaves days 1-15
        # unbilled.
        for first_day, last_day in _uncovered(segment, contracts):
            uncovered_days += _days(first_day, last_day)
            piece = PlanSegment(
                segment.plan_code, first_day, last_day, segment.peak_dau, segment.peak_day
            )
            lines.append(_dau_line(app, plan, piece))
    if high_volume and uncovered_days:
        day = f" on {app.peak_messages_day.isoformat()}" if app.peak_messages_day else ""
        cover = "has no dedicated-service contract"
        if contracts:
            cover = f"has {uncovered_days} day(s) not covered by its dedicated-service contract"
        hold_reason = (
            f"{app.app_key}: high-volume application ({app.peak_daily_messages:,} delivered "
            f"messages{day}, limit {limit:,} a day) {cover}"
        )
    for addon_segment in sorted(app.addon_segments, key=lambda a: (a.addon_code, a.first_day)):
        for plan, segment in zip(plans, segments, strict=True):
            overlap = _overlap(
                addon_segment.first_day, addon_segment.last_day, segment.first_day, segment.last_day
            )
            if overlap:
                lines.append(_addon_line(app, book, plan, addon_segment, *overlap))
    lines = [taxed(line, book.vat) for line in lines]
    total = sum((line.amount for line in lines), ZERO)
    return RatedApplication(
        app_key=app.app_key,
        lines=tuple(lines),
        total=total,
        high_volume=high_volume,
        hold_reason=hold_reason,
        has_paid_plan=has_paid_plan,
    )


def rate_account(*, book: PriceBook, applications: list[ApplicationInput]) -> RatedAccount:
    return RatedAccount.of(
        [
            rate_application(book=book, app=app)
            for app in sorted(applications, key=lambda a: a.app_key)
        ]
    )
