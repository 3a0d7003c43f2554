"""The rating engine: inputs in, priced lines out. Pure: no database, no clock.

Quotes, the month-end run, re-rating and the customer's estimate all call `rate_application`,
so there is exactly one place where a price is computed. Everything is Decimal; each line is
rounded half-up to 0.01 once and a total is the sum of rounded lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field, replace
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
class DiscountSegment:
    """A contracted discount on the days `first_day`..`last_day` of the period: `percent` off
    the charges of those days, or `amount_off` a month (pro rata by those days); exactly one of
    the two is set. A discount never takes more than the charges it reduces."""

    # The same discount on every application of a customer has the same key (customer-wide
    # fixed amounts are shared out between the applications by `rate_account`).
    key: str
    first_day: dt.date
    last_day: dt.date
    percent: Decimal | None = None
    amount_off: Decimal | None = None
    reference: str = ""
    # Agreed for the whole customer rather than for this application.
    customer_wide: bool = False

    @property
    def shared(self) -> bool:
        """A fixed amount for the whole customer: one amount for all its applications."""
        return self.customer_wide and self.amount_off is not None


@dataclass(frozen=True)
class ApplicationInput:
    app_key: str
    app_name: str
    period_start: dt.date
    days_in_month: int
    plan_segments: tuple[PlanSegment, ...]
    addon_segments: tuple[AddOnSegment, ...] = ()
    contracts: tuple[ContractSegment, ...] = ()
    # Contracted discounts in effect in the period: the application's and its customer's.
    discounts: tuple[DiscountSegment, ...] = ()
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


DISCOUNT = "discount"


def _charges_of_days(lines: list[PricedLine], first_day: dt.date, last_day: dt.date) -> Decimal:
    """The part of the charge lines billed for the days `first_day`..`last_day`: each line's
    amount by the share of its days inside them (unrounded; the discount is rounded once)."""
    base = Decimal(0)
    for line in lines:
        overlap = _overlap(line.first_day, line.last_day, first_day, last_day)
        if overlap:
            base += line.amount * _days(*overlap) / line.days
    return base


def _discount_line(
    app: ApplicationInput,
    discount: DiscountSegment,
    plan: PlanTerms,
    *,
    wanted: Decimal,
    left: Decimal,
    parts: list[Message],
) -> PricedLine | None:
    """The discount's line: `wanted` off, limited to the charges `left` (never below zero);
    None when there is nothing to take off."""
    amount = min(wanted, left)
    if amount <= 0:
        return None
    if discount.customer_wide:
        parts.append(Message("discount_customer"))
    if amount < wanted:
        parts.append(Message("discount_limited", {"amount": money_text(amount)}))
    if discount.reference:
        title = Message("discount_title_reference", {"reference": discount.reference})
    else:
        title = Message("discount_title")
    monthly = discount.amount_off if discount.amount_off is not None else amount
    return priced_line(
        app_key=app.app_key,
        app_name=app.app_name,
        code=DISCOUNT,
        category=DISCOUNT,
        plan_code=plan.code,
        plan_name=plan.name,
        title=title,
        line_names=_plan_names(plan),
        quantity=1,
        unit_price=-round_money(monthly),
        amount=-amount,
        first_day=discount.first_day,
        last_day=discount.last_day,
        days=_days(discount.first_day, discount.last_day),
        days_in_month=app.days_in_month,
        explanation_parts=parts,
    )


def _fixed_discount(
    app: ApplicationInput, discount: DiscountSegment
) -> tuple[Decimal, list[Message]]:
    """A fixed discount's amount for its days of the month (pro rata like a fee) and its words."""
    assert discount.amount_off is not None
    days = _days(discount.first_day, discount.last_day)
    wanted = prorate(monthly=discount.amount_off, days=days, days_in_month=app.days_in_month)
    parts = [Message("discount_fixed", {"amount_off": money_text(discount.amount_off)})]
    parts += _proration(discount.amount_off, days, app.days_in_month, wanted)
    return wanted, parts


def _discount_lines(
    app: ApplicationInput,
    charges: list[PricedLine],
    plans: list[PlanTerms],
    segments: list[PlanSegment],
) -> list[PricedLine]:
    """The application's discounts (all but the customer-wide fixed amounts, which
    `rate_account` shares out): percentages first, each of the charges of its days, then fixed
    amounts; each limited to what the charges and the discounts before it leave."""
    left = sum((line.amount for line in charges), ZERO)
    ordered = sorted(
        (d for d in app.discounts if not d.shared),
        key=lambda d: (d.percent is None, d.first_day, d.key),
    )
    lines: list[PricedLine] = []
    for discount in ordered:
        if discount.percent is not None:
            base = _charges_of_days(charges, discount.first_day, discount.last_day)
            wanted = round_money(base * discount.percent / 100)
            # The sign travels in the value: a "%" in a message would read as a printf format.
            percent = {"percent": f"{discount.percent.normalize():f}%"}
            if (discount.first_day, discount.last_day) == (
                app.period_start,
                app.period_start + dt.timedelta(days=app.days_in_month - 1),
            ):
                parts = [
                    Message(
                        "discount_percent", {**percent, "charges": money_text(round_money(base))}
                    )
                ]
            else:
                parts = [
                    Message(
                        "discount_percent_days",
                        {
                            **percent,
                            "first_day": discount.first_day.isoformat(),
                            "last_day": discount.last_day.isoformat(),
                            "charges": money_text(round_money(base)),
                        },
                    )
                ]
        else:
            wanted, parts = _fixed_discount(app, discount)
        plan = _plan_on(discount.first_day, plans, segments)
        line = _discount_line(app, discount, plan, wanted=wanted, left=left, parts=parts)
        if line is not None:
            lines.append(line)
            left += line.amount
    return lines


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
    spans += [(s.first_day, s.last_day) for s in app.discounts]
    for first_day, last_day in spans:
        if first_day > last_day or first_day < app.period_start or last_day > period_end:
            raise RatingError(f"days {first_day}..{last_day} are not inside the period")
    for segment in app.plan_segments:
        if segment.peak_dau is not None and segment.peak_dau < 0:
            raise RatingError("peak DAU cannot be negative")
    for discount in app.discounts:
        if (discount.percent is None) == (discount.amount_off is None):
            raise RatingError("a discount is either a percentage or a fixed amount")
        if discount.percent is not None and not 0 < discount.percent <= 100:
            raise RatingError("a discount percentage is above 0 and at most 100")
        if discount.amount_off is not None and discount.amount_off <= 0:
            raise RatingError("a fixed discount is a positive amount")


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
    if plans:
        lines += _discount_lines(app, lines, plans, segments)
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


def _share_out(
    rated: list[RatedApplication], apps: list[ApplicationInput], book: PriceBook
) -> list[RatedApplication]:
    """Customer-wide fixed discounts: each one's amount for its days, taken from the
    applications in app_key order, each giving at most what its lines still total, so no
    application (and no invoice) goes below zero."""
    shared: dict[str, DiscountSegment] = {}
    for app in apps:
        for discount in app.discounts:
            if discount.shared:
                shared.setdefault(discount.key, discount)
    result = list(rated)
    for discount in sorted(shared.values(), key=lambda d: (d.first_day, d.key)):
        left: Decimal | None = None
        for index, (app, rating) in enumerate(zip(apps, result, strict=True)):
            if not any(d.key == discount.key for d in app.discounts):
                continue
            segments = sorted(app.plan_segments, key=lambda s: s.first_day)
            if not segments:
                continue
            wanted, parts = _fixed_discount(app, discount)
            left = wanted if left is None else left
            if left <= 0:
                break
            if rating.total <= 0:
                continue
            plan = _plan_on(
                discount.first_day, [book.plan(s.plan_code) for s in segments], segments
            )
            if left < wanted:
                parts.append(Message("discount_rest", {"amount": money_text(left)}))
            # Discounts are worked out in price terms, as in `rate_application`: the gross when
            # prices include VAT, else the net, and taxed afterwards like every line.
            priced_total = sum(
                (
                    ln.amount
                    if book.vat.prices_include_vat or ln.net_amount is None
                    else ln.net_amount
                    for ln in rating.lines
                ),
                ZERO,
            )
            line = _discount_line(app, discount, plan, wanted=left, left=priced_total, parts=parts)
            if line is None:
                continue
            left += line.amount
            line = taxed(line, book.vat)
            result[index] = replace(
                rating, lines=(*rating.lines, line), total=rating.total + line.amount
            )
    return result


def rate_account(*, book: PriceBook, applications: list[ApplicationInput]) -> RatedAccount:
    """Each application rated (`rate_application`), then the customer-wide fixed discounts
    shared out between them (`_share_out`)."""
    apps = sorted(applications, key=lambda a: a.app_key)
    rated = [rate_application(book=book, app=app) for app in apps]
    return RatedAccount.of(_share_out(rated, apps, book))
