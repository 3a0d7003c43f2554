"""Subscription decisions: plan changes, add-ons, dedicated-service contracts and contracted
discounts.

History is append-only. A decision adds a PlanChange / AddOnChange row effective on a day; a
new decision sets `cancelled_at` on the live rows at or after its own effective day (they were
pending, or are overridden). The plan and add-on history the rating engine sees is always the
live rows, so any past month is re-rated exactly as it was decided.

Invariants kept here:
- every decision's date goes through plans.change_policy: nothing before today, before the
  application existed, in a month already invoiced or more than a year ahead; downgrades on
  the 1st after the request, add-on reductions from tomorrow;
- an upgrade (to a higher-ranked plan) needs a ledger balance of at least the new plan's
  minimum deposit in the price book of the month it takes effect; a downgrade takes effect on
  the 1st of a month, so a month is never split to dodge a DAU peak;
- no add-on is ever live on a day whose plan does not offer it: a plan change that would leave
  one active ends it that same day, and reports it.
Every refusal raises SubscriptionError before anything is written.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from moneyed import Money

from accounts.frozen_months import Change
from accounts.locks import lock_customer
from accounts.models import Application, Customer
from accounts.selectors import ledger_balance
from accounts.services import AccountError, LedgerError, _money_amount, application_register
from billingsite.clock import Period
from billingsite.money import CURRENCY, format_amount
from billingsite.refusals import Refusal
from plans.addon_rules import addon_quantity_problem, missing_base_message
from plans.change_policy import change_effective_date, first_possible_day
from plans.models import AddOn, AddOnChange, DedicatedContract, Discount, Plan, PlanChange
from plans.rating.engine import PlanTerms, PriceBook
from plans.selectors import price_book_for_period
from plans.timeline import (
    contracts_overlapping,
    discounts_in_effect,
    in_effect,
    live_addon_changes,
    live_plan_changes,
)

UPGRADE, DOWNGRADE, UNCHANGED = "upgrade", "downgrade", "unchanged"
# Marks the add-on rows a plan change ended, so cancelling that plan change restores them.
AUTO_END_NOTE = "ended by plan change {change_id}: "
# Marks the extension rows that ended because the add-on they extend ended.
BASE_END_PREFIX = "ended with "


class SubscriptionError(Refusal):
    """A subscription decision was refused. `code` names the rule, `field` the input, and
    `details` carries machine-readable values (dates, amounts as strings)."""

    def __init__(
        self, message: str, *, code: str, field: str | None = None, details: dict | None = None
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.details = details or {}


class InsufficientDeposit(SubscriptionError):
    """The balance is below the plan's minimum deposit; details: required, balance (Decimal)."""

    def __init__(self, message: str, *, required: Decimal, balance: Decimal):
        super().__init__(
            message,
            code="insufficient_deposit",
            field="plan",
            details={"required": required, "balance": balance},
        )
        self.required = required
        self.balance = balance
        # The console shows these two figures.
        self.extra = {"required": format_amount(required), "balance": format_amount(balance)}


@dataclass(frozen=True)
class PlanChangeResult:
    # The live row that now decides the plan from `effective_date` (an existing row when the
    # decision only cancelled pending changes or repeated one already recorded).
    change: PlanChange
    effective_date: dt.date
    # Add-on codes ended (or whose pending start was cancelled) because the plan lacks them.
    ended_addons: list[str]
    requested_date: dt.date | None = None
    kind: str = UPGRADE
    created: bool = True
    cancelled_changes: list[PlanChange] = field(default_factory=list)


# --- shared checks -------------------------------------------------------------------------


def _require_date(value: object, *, field: str) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise SubscriptionError(f"{field} must be a date", code="invalid", field=field)
    return value


def _require_positive_amount(value: Decimal | Money, *, field: str, what: str) -> Decimal:
    """A positive CNY amount (contract fees, discounts' amounts off), refused with `what`."""
    try:
        amount = _money_amount(value)
    except LedgerError as exc:
        raise SubscriptionError(str(exc), code="invalid_amount", field=field) from None
    if amount <= 0:
        raise SubscriptionError(f"{what} must be positive", code="invalid_amount", field=field)
    return amount


def _require_days(first_day: object, last_day: object) -> tuple[dt.date, dt.date | None]:
    """`first_day` .. `last_day` (None: open-ended), both dates, in order."""
    first = _require_date(first_day, field="first_day")
    last = None if last_day is None else _require_date(last_day, field="last_day")
    if last is not None and last < first:
        raise SubscriptionError(
            f"last_day {last.isoformat()} is before first_day {first.isoformat()}",
            code="invalid_dates",
            field="last_day",
        )
    return first, last


def _lock_application(application: Application) -> Application:
    # Customer first, then application: the ledger locks the customer and then updates its
    # applications' status, so taking them in the same order cannot deadlock.
    lock_customer(customer=application.customer_id)
    return (
        Application.objects.select_for_update(no_key=True)
        .select_related("customer")
        .get(pk=application.pk)
    )


def _lock_open_application(
    *, application: Application, change: Change, requested: dt.date, now: dt.datetime, field: str
) -> tuple[Application, dt.date]:
    """Lock the application, then ask the change policy when a `change` asked for `requested`
    takes effect (or refuse it) before anything is written."""
    app = _lock_application(application)
    effective = change_effective_date(
        change=change, application=app, requested=requested, now=now, field=field
    )
    return app, effective


def _book(day: dt.date, cache: dict[Period, PriceBook]) -> PriceBook:
    period = Period.containing(day)
    if period not in cache:
        cache[period] = price_book_for_period(period=period)
    return cache[period]


def _live_plan_changes(application: Application) -> list[PlanChange]:
    return list(live_plan_changes(application_ids=[application.pk]).select_related("plan"))


def _live_addon_changes(application: Application, addon: AddOn | None = None) -> list:
    rows = live_addon_changes(
        application_ids=[application.pk], addon_id=addon.pk if addon is not None else None
    )
    return list(rows.select_related("addon"))


def _cancel(rows: list, *, now: dt.datetime) -> None:
    ids = [row.pk for row in rows]
    if ids:
        type(rows[0]).objects.filter(pk__in=ids).update(cancelled_at=now)


def _is_auto_end(row: AddOnChange) -> bool:
    return row.quantity == 0 and row.note.startswith(("ended by plan change ", BASE_END_PREFIX))


def _end_unavailable_addons(
    *,
    application: Application,
    since: dt.date,
    now: dt.datetime,
    created_by: User | None,
    books: dict[Period, PriceBook],
) -> list[str]:
    """Make sure no add-on is live from `since` on where the plan in effect lacks it.

    Walks every day from `since` on where the plan or the add-on changes: a pending add-on
    start on an unavailable day is cancelled; an add-on still active there gets a quantity-0
    row that day, noted with the plan change responsible. Returns the affected add-on codes.
    """
    plan_changes = _live_plan_changes(application)
    by_addon: dict[int, list[AddOnChange]] = defaultdict(list)
    for row in _live_addon_changes(application):
        by_addon[row.addon_id].append(row)
    plan_days = {change.effective_date for change in plan_changes if change.effective_date >= since}
    affected: set[str] = set()
    for rows in by_addon.values():
        addon = rows[0].addon
        days = sorted(
            {since} | plan_days | {r.effective_date for r in rows if r.effective_date >= since}
        )
        for day in days:
            plan_change = in_effect(plan_changes, day)
            if plan_change is None or _book(day, books).is_available(
                addon.code, plan_change.plan.code
            ):
                continue
            rows, changed = _stop_on(
                application=application,
                addon=addon,
                rows=rows,
                day=day,
                note=AUTO_END_NOTE.format(change_id=plan_change.pk)
                + f"not available on the {plan_change.plan.name} plan",
                now=now,
                created_by=created_by,
            )
            if changed:
                affected.add(addon.code)
    return sorted(affected)


def _stop_on(
    *,
    application: Application,
    addon: AddOn,
    rows: list[AddOnChange],
    day: dt.date,
    note: str,
    now: dt.datetime,
    created_by: User | None,
) -> tuple[list[AddOnChange], bool]:
    """The add-on is not live on `day`: a pending start that day is cancelled, an active
    quantity gets a quantity-0 row (with `note`, its cause). Returns the live rows after it
    and whether anything changed."""
    changed = False
    starting = [r for r in rows if r.effective_date == day and r.quantity > 0]
    if starting:
        _cancel(starting, now=now)
        rows = [r for r in rows if r not in starting]
        changed = True
    current = in_effect(rows, day)
    if current is not None and current.quantity > 0:
        ended = AddOnChange.objects.create(
            application=application,
            addon=addon,
            quantity=0,
            effective_date=day,
            created_at=now,
            created_by=created_by,
            note=note,
        )
        rows = sorted([*rows, ended], key=lambda r: (r.effective_date, r.pk))
        changed = True
    return rows, changed


def _check_base_active(app: Application, *, addon: AddOn, day: dt.date) -> None:
    """An extension starts only on a day the add-on it extends is active."""
    base = addon.requires
    assert base is not None, "called for extensions only"
    base_row = in_effect(_live_addon_changes(app, base), day)
    if base_row is None or base_row.quantity == 0:
        raise SubscriptionError(
            missing_base_message(addon=addon, base=base)
            + f" (application {app.app_key} does not have it on {day.isoformat()})",
            code="addon_requires_base",
            field="addon",
            details={"date": day, "requires": base.code},
        )


def _end_extensions_without_base(
    *,
    application: Application,
    base: AddOn,
    since: dt.date,
    now: dt.datetime,
    created_by: User | None,
) -> list[str]:
    """Make sure no extension of `base` is live from `since` on where `base` is not: a pending
    start there is cancelled, an active extension gets a quantity-0 row on the day `base`
    ends. Returns the affected add-on codes."""
    base_rows = _live_addon_changes(application, base)
    affected: list[str] = []
    for extension in AddOn.objects.filter(requires=base).order_by("code"):
        rows = _live_addon_changes(application, extension)
        days = sorted(
            {since} | {r.effective_date for r in [*base_rows, *rows] if r.effective_date >= since}
        )
        for day in days:
            base_row = in_effect(base_rows, day)
            if base_row is not None and base_row.quantity > 0:
                continue
            rows, changed = _stop_on(
                application=application,
                addon=extension,
                rows=rows,
                day=day,
                note=f"{BASE_END_PREFIX}{base.code}",
                now=now,
                created_by=created_by,
            )
            if changed:
                affected.append(extension.code)
    return sorted(set(affected))


# --- plans ---------------------------------------------------------------------------------


def application_create(
    *,
    customer: Customer,
    app_key: str,
    name: str,
    data_center: str,
    now: dt.datetime,
    created_by: User | None = None,
) -> Application:
    """Create an application (`accounts.services.application_register`: checked, created
    today, suspended with its customer) on the Free plan from today's (Asia/Shanghai) date."""
    with transaction.atomic():
        application = application_register(
            customer=customer, app_key=app_key, name=name, data_center=data_center, now=now
        )
        free = Plan.objects.filter(activation=Plan.Activation.AUTOMATIC).order_by("rank").first()
        if free is None:
            raise AccountError(
                "the price book has no automatic (Free) plan: load it first", field=None
            )
        PlanChange.objects.create(
            application=application,
            plan=free,
            effective_date=application.created_on,
            requested_date=application.created_on,
            created_at=now,
            created_by=created_by,
            note="Free plan on creation",
        )
    return application


def plan_change_request(
    *,
    application: Application,
    plan_code: str,
    effective_date: dt.date,
    now: dt.datetime,
    created_by: User | None = None,
) -> PlanChangeResult:
    """Move an application to `plan_code` from `effective_date` (when it takes effect, and
    which dates are refused, is plans.change_policy's).

    Compared with the plan in effect on the first day the change could take effect: an upgrade
    needs balance >= the plan's minimum deposit and takes effect that day; a downgrade on a
    1st, never before the 1st of the month after the request; the plan already in effect
    cancels pending changes after that day. Live changes at or after the real effective date
    are cancelled; add-ons the new plan lacks end that day. Repeating a recorded decision
    changes nothing.
    """
    requested = _require_date(effective_date, field="effective_date")
    plan = Plan.objects.filter(code=plan_code).first() if isinstance(plan_code, str) else None
    if plan is None:
        raise SubscriptionError(f"unknown plan {plan_code!r}", code="unknown_plan", field="plan")
    with transaction.atomic():
        app = _lock_application(application)
        changes = _live_plan_changes(app)
        current = in_effect(changes, first_possible_day(requested=requested, now=now))
        if current is not None and current.plan_id == plan.pk:
            kind, change_kind = UNCHANGED, Change.PLAN_KEEP
        elif current is not None and plan.rank < current.plan.rank:
            kind, change_kind = DOWNGRADE, Change.PLAN_DOWNGRADE
        else:
            kind, change_kind = UPGRADE, Change.PLAN_UPGRADE
        effective = change_effective_date(
            change=change_kind, application=app, requested=requested, now=now
        )
        books: dict[Period, PriceBook] = {}
        book = _book(effective, books)
        if plan.code not in book.plans:
            raise SubscriptionError(
                f"the {plan.name} plan has no price in the price book for "
                f"{Period.containing(effective)}",
                code="plan_not_priced",
                field="plan",
            )

        recorded = next((c for c in changes if c.effective_date == effective), None)
        if recorded is not None and recorded.plan_id == plan.pk:
            # The same decision is already recorded (a retry): only later ones are overridden.
            to_cancel = [c for c in changes if c.effective_date > effective]
            change, created = recorded, False
        else:
            to_cancel = [c for c in changes if c.effective_date >= effective]
            before = in_effect([c for c in changes if c.effective_date < effective], effective)
            if before is not None and before.plan_id == plan.pk:
                change, created = before, False
            else:
                if kind == UPGRADE:
                    _check_deposit(app, plan=book.plans[plan.code], effective=effective)
                change, created = None, True
        _cancel(to_cancel, now=now)
        for cancelled in to_cancel:
            AddOnChange.objects.filter(
                application=app,
                cancelled_at__isnull=True,
                note__startswith=AUTO_END_NOTE.format(change_id=cancelled.pk),
            ).update(cancelled_at=now)
        if change is None:
            change = PlanChange.objects.create(
                application=app,
                plan=plan,
                effective_date=effective,
                requested_date=requested,
                created_at=now,
                created_by=created_by,
                note=f"{kind} requested for {requested.isoformat()}",
            )
        ended = _end_unavailable_addons(
            application=app, since=effective, now=now, created_by=created_by, books=books
        )
        # A cancelled plan change gives back what it had ended; an extension whose base the
        # customer ended meanwhile must not come back without it.
        for base in AddOn.objects.filter(extensions__isnull=False).distinct():
            ended += _end_extensions_without_base(
                application=app, base=base, since=effective, now=now, created_by=created_by
            )
        ended = sorted(set(ended))
    return PlanChangeResult(
        change=change,
        effective_date=effective,
        ended_addons=ended,
        requested_date=requested,
        kind=kind,
        created=created,
        cancelled_changes=to_cancel,
    )


def _check_deposit(app: Application, *, plan: PlanTerms, effective: dt.date) -> None:
    balance = ledger_balance(customer=app.customer_id)
    if balance < plan.minimum_deposit:
        raise InsufficientDeposit(
            f"activating {plan.name} on {effective.isoformat()} needs a balance of at least "
            f"{plan.minimum_deposit:.2f} (minimum deposit); the balance is {balance:.2f}",
            required=plan.minimum_deposit,
            balance=balance,
        )


# --- add-ons -------------------------------------------------------------------------------


def _addon(addon_code: str) -> AddOn:
    addon = AddOn.objects.filter(code=addon_code).first() if isinstance(addon_code, str) else None
    if addon is None:
        raise SubscriptionError(
            f"unknown add-on {addon_code!r}", code="unknown_addon", field="addon"
        )
    return addon


def addon_set(
    *,
    application: Application,
    addon_code: str,
    quantity: int,
    effective_date: dt.date,
    now: dt.datetime,
    created_by: User | None = None,
) -> AddOnChange:
    """Start an add-on or change its quantity from `effective_date` (a reduction from
    tomorrow at the earliest, see plans.change_policy).

    Refused when the plan in effect that day does not offer it. If a later pending plan change
    lacks it, it ends on that change's day. Repeating a recorded decision changes nothing.
    """
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise SubscriptionError(
            "quantity must be a whole number of at least 1",
            code="invalid_quantity",
            field="quantity",
        )
    requested = _require_date(effective_date, field="effective_date")
    addon = _addon(addon_code)
    problem = addon_quantity_problem(addon=addon, quantity=quantity)
    if problem is not None:
        raise SubscriptionError(
            problem.message,
            code=problem.code,
            field="quantity",
            details={"max_quantity": addon.max_quantity},
        )
    with transaction.atomic():
        app = _lock_application(application)
        rows = _live_addon_changes(app, addon)
        current = in_effect(rows, first_possible_day(requested=requested, now=now))
        reducing = current is not None and quantity < current.quantity
        day = change_effective_date(
            change=Change.ADDON_REDUCE if reducing else Change.ADDON_START,
            application=app,
            requested=requested,
            now=now,
        )
        books: dict[Period, PriceBook] = {}
        plan_change = in_effect(_live_plan_changes(app), day)
        if plan_change is None or not _book(day, books).is_available(
            addon.code, plan_change.plan.code
        ):
            plan_name = plan_change.plan.name if plan_change else "no"
            raise SubscriptionError(
                f"{addon.name} ({addon.code}) is not available on the {plan_name} plan, which "
                f"application {app.app_key} has on {day.isoformat()}",
                code="addon_not_available",
                field="addon",
                details={"date": day, "plan": plan_change.plan.code if plan_change else None},
            )
        if addon.requires_id is not None:
            _check_base_active(app, addon=addon, day=day)
        recorded = next((r for r in rows if r.effective_date == day), None)
        later = [r for r in rows if r.effective_date > day]
        if (
            recorded is not None
            and recorded.quantity == quantity
            and all(_is_auto_end(r) for r in later)
        ):
            return recorded
        _cancel([r for r in rows if r.effective_date >= day], now=now)
        before = in_effect([r for r in rows if r.effective_date < day], day)
        if before is not None and before.quantity == quantity:
            change = before
        else:
            change = AddOnChange.objects.create(
                application=app,
                addon=addon,
                quantity=quantity,
                effective_date=day,
                created_at=now,
                created_by=created_by,
            )
        _end_unavailable_addons(
            application=app, since=day, now=now, created_by=created_by, books=books
        )
        # The base is back from `day` on: its extensions' ends that only followed its end go
        # with it (an end the customer asked for has its own note and stays).
        _cancel(
            list(
                AddOnChange.objects.filter(
                    application=app,
                    addon__requires=addon,
                    cancelled_at__isnull=True,
                    quantity=0,
                    effective_date__gte=day,
                    note=f"{BASE_END_PREFIX}{addon.code}",
                )
            ),
            now=now,
        )
        if addon.requires is not None:
            _end_extensions_without_base(
                application=app, base=addon.requires, since=day, now=now, created_by=created_by
            )
    return change


def addon_end(
    *,
    application: Application,
    addon_code: str,
    effective_date: dt.date,
    now: dt.datetime,
    created_by: User | None = None,
) -> AddOnChange:
    """End an add-on: from `effective_date` on it is not billed (the day before is its last);
    never before tomorrow, since today is used (plans.change_policy).

    Pending changes of it at or after that day are cancelled. Refused when it is neither
    active the day before nor pending.
    """
    requested = _require_date(effective_date, field="effective_date")
    addon = _addon(addon_code)
    with transaction.atomic():
        app, day = _lock_open_application(
            application=application,
            change=Change.ADDON_REDUCE,
            requested=requested,
            now=now,
            field="effective_date",
        )
        rows = _live_addon_changes(app, addon)
        earlier = [r for r in rows if r.effective_date < day]
        later = [r for r in rows if r.effective_date >= day]
        active_before = (in_effect(earlier, day) or AddOnChange(quantity=0)).quantity > 0
        if not active_before and not any(r.quantity > 0 for r in later):
            raise SubscriptionError(
                f"{addon.name} ({addon.code}) is not active on application {app.app_key} on "
                f"{day.isoformat()} or later",
                code="addon_not_active",
                field="addon",
                details={"date": day},
            )
        recorded = next((r for r in later if r.effective_date == day), None)
        # The same end asked again changes nothing. An end the system wrote (a plan change, or
        # the add-on this one extends, ending) is not the customer's: it goes with its cause,
        # so the customer's own end is recorded beside it.
        if (
            recorded is not None
            and recorded.quantity == 0
            and len(later) == 1
            and not _is_auto_end(recorded)
        ):
            return recorded
        _cancel(later, now=now)
        ended = AddOnChange.objects.create(
            application=app,
            addon=addon,
            quantity=0,
            effective_date=day,
            created_at=now,
            created_by=created_by,
            note="ended",
        )
        _end_extensions_without_base(
            application=app, base=addon, since=day, now=now, created_by=created_by
        )
        return ended


# --- dedicated-service contracts -----------------------------------------------------------


def contract_add(
    *,
    application: Application,
    monthly_fee: Decimal | Money,
    first_day: dt.date,
    last_day: dt.date | None = None,
    reference: str = "",
    notes: str = "",
    now: dt.datetime,
    created_by: User | None = None,
) -> DedicatedContract:
    """A negotiated monthly fee for a high-volume application from `first_day` to `last_day`
    (both billed; None: open-ended). Contracts of one application never overlap."""
    fee = _require_positive_amount(monthly_fee, field="monthly_fee", what="the monthly fee")
    first, last = _require_days(first_day, last_day)
    with transaction.atomic():
        app, first = _lock_open_application(
            application=application,
            change=Change.CONTRACT,
            requested=first,
            now=now,
            field="first_day",
        )
        overlapping = contracts_overlapping(
            application_ids=[app.pk], first_day=first, last_day=last
        ).first()
        if overlapping is not None:
            span = (
                f"{overlapping.first_day.isoformat()} to "
                f"{overlapping.last_day.isoformat() if overlapping.last_day else 'open end'}"
            )
            raise SubscriptionError(
                f"application {app.app_key} already has a contract from {span}",
                code="contract_overlap",
                field="first_day",
            )
        return DedicatedContract.objects.create(
            application=app,
            # (django-stubs types djmoney's MoneyField as its DecimalField base)
            monthly_fee=Money(fee, CURRENCY),  # type: ignore[misc]
            first_day=first,
            last_day=last,
            reference=reference,
            notes=notes,
            created_by=created_by,
        )


# --- contracted discounts ------------------------------------------------------------------


@dataclass(frozen=True)
class DiscountTerms:
    """A discount's checked values, before it is written."""

    percent: Decimal | None
    amount_off: Decimal | None
    first_day: dt.date
    last_day: dt.date | None


def discount_terms(
    *,
    customer: Customer | None,
    application: Application | None,
    percent: Decimal | None,
    amount_off: Decimal | Money | None,
    first_day: dt.date,
    last_day: dt.date | None,
) -> DiscountTerms:
    """The values of a discount, checked without writing or locking (`discount_add` checks
    them before it takes the customer's lock): one scope, one kind, a percentage above 0 and
    at most 100, a positive fixed amount, ordered days."""
    if (customer is None) == (application is None):
        raise SubscriptionError(
            "a discount is for a customer or for one of its applications",
            code="invalid",
            field="customer",
        )
    if (percent is None) == (amount_off is None):
        raise SubscriptionError(
            "give either a percentage or a fixed amount off", code="invalid", field="percent"
        )
    value = None
    if percent is not None:
        value = Decimal(percent)
        if not value.is_finite() or not Decimal("0") < value <= Decimal("100"):
            raise SubscriptionError(
                "the percentage is above 0 and at most 100", code="invalid_amount", field="percent"
            )
        if value != value.quantize(Decimal("0.01")):
            raise SubscriptionError(
                "the percentage has at most two decimals", code="invalid_amount", field="percent"
            )
    fixed = None
    if amount_off is not None:
        fixed = _require_positive_amount(
            amount_off, field="amount_off", what="the fixed amount off"
        )
    first, last = _require_days(first_day, last_day)
    return DiscountTerms(percent=value, amount_off=fixed, first_day=first, last_day=last)


def _discount_open(
    *,
    customer_id: int,
    application: Application | None,
    terms: DiscountTerms,
    now: dt.datetime,
) -> None:
    """Refuses a discount whose days start in a month an issued invoice froze (409) or that
    overlaps another discount of the same scope."""
    change_effective_date(
        change=Change.DISCOUNT,
        application=application,
        customer_id=customer_id,
        requested=terms.first_day,
        now=now,
        field="first_day",
    )
    _discount_overlap_refuse(customer_id=customer_id, application=application, terms=terms)


def _discount_overlap_refuse(
    *, customer_id: int, application: Application | None, terms: DiscountTerms
) -> None:
    """Refuses a discount whose days overlap another discount of the same scope (the
    customer's customer-wide ones, or the application's). The database holds the same rule
    on PostgreSQL (plans migration 0010's exclusion constraints)."""
    scope = (
        {"application_ids": [application.pk]}
        if application is not None
        else {"customer_ids": [customer_id]}
    )
    overlapping = discounts_in_effect(
        **scope, first_day=terms.first_day, last_day=terms.last_day
    ).first()
    if overlapping is not None:
        end = overlapping.last_day.isoformat() if overlapping.last_day else "open end"
        raise SubscriptionError(
            f"there is already a discount for the same "
            f"{'application' if application is not None else 'customer'} from "
            f"{overlapping.first_day.isoformat()} to {end}",
            code="discount_overlap",
            field="first_day",
        )


def _scope(customer: Customer | None) -> Customer:
    """The customer of a customer-wide discount; `discount_terms` has refused one without."""
    if customer is None:
        raise TypeError("a discount needs a customer or an application")
    return customer


def discount_add(
    *,
    customer: Customer | None = None,
    application: Application | None = None,
    percent: Decimal | None = None,
    amount_off: Decimal | Money | None = None,
    first_day: dt.date,
    last_day: dt.date | None = None,
    reference: str = "",
    notes: str = "",
    now: dt.datetime,
    created_by: User | None = None,
) -> Discount:
    """A contracted discount for a customer (all its applications) or one application, from
    `first_day` to `last_day` (None: open-ended). Written under the customer's lock, so two
    overlapping discounts of one scope cannot both pass the check."""
    terms = discount_terms(
        customer=customer,
        application=application,
        percent=percent,
        amount_off=amount_off,
        first_day=first_day,
        last_day=last_day,
    )
    with transaction.atomic():
        if application is not None:
            application = _lock_application(application)
            customer_id = application.customer_id
        else:
            customer_id = lock_customer(customer=_scope(customer).pk).pk
        _discount_open(customer_id=customer_id, application=application, terms=terms, now=now)
        try:
            with transaction.atomic():
                return Discount.objects.create(
                    customer_id=None if application is not None else customer_id,
                    application=application,
                    percent=terms.percent,
                    amount_off=None
                    if terms.amount_off is None
                    else Money(terms.amount_off, CURRENCY),  # type: ignore[misc]  # django-stubs: MoneyField as a DecimalField
                    first_day=terms.first_day,
                    last_day=terms.last_day,
                    reference=reference,
                    notes=notes,
                    created_by=created_by,
                )
        except IntegrityError:
            # The database refused an overlap the check above did not see (a writer that
            # bypassed the lock): the same refusal, naming the row it now sees.
            _discount_overlap_refuse(customer_id=customer_id, application=application, terms=terms)
            raise


def _discount_end_refusal(
    current: Discount, *, customer_id: int, ends_on: dt.date, now: dt.datetime
) -> None:
    """Refuses an end before the discount's first day, later than it already ends, or whose
    days no longer discounted (from the day after `ends_on`) are in a frozen month."""
    if ends_on < current.first_day:
        raise SubscriptionError(
            f"a discount cannot end before it starts ({current.first_day.isoformat()})",
            code="invalid_dates",
            field="ends_on",
        )
    if current.last_day is not None and ends_on > current.last_day:
        raise SubscriptionError(
            f"the discount already ends on {current.last_day.isoformat()}: it can only end earlier",
            code="invalid_dates",
            field="ends_on",
        )
    change_effective_date(
        change=Change.DISCOUNT,
        application=current.application,
        customer_id=customer_id,
        requested=ends_on + dt.timedelta(days=1),
        now=now,
        field="ends_on",
    )


def _discount_customer_id(discount: Discount) -> int:
    """The customer of a discount of either scope (the database holds exactly one)."""
    if discount.customer_id is not None:
        return discount.customer_id
    application_id = discount.application_id
    if application_id is None:
        raise TypeError("a discount has a customer or an application")
    return Application.objects.values_list("customer_id", flat=True).get(pk=application_id)


def discount_end_check(*, discount: Discount, ends_on: dt.date, now: dt.datetime) -> None:
    """Every refusal `discount_end` would give, without writing or locking: for the admin's
    confirmation page (`discount_end` checks again under the lock)."""
    ends_on = _require_date(ends_on, field="ends_on")
    if discount.last_day == ends_on:
        return
    _discount_end_refusal(
        discount, customer_id=_discount_customer_id(discount), ends_on=ends_on, now=now
    )


def discount_end(
    *,
    discount: Discount,
    ends_on: dt.date,
    now: dt.datetime,
    ended_by: User | None = None,
) -> Discount:
    """End a running discount early: its last day becomes `ends_on` (never before its first
    day, never later than it already ends). The days it no longer covers, from the day after
    `ends_on`, must not be in a month an issued invoice froze (`Change.DISCOUNT`): a billed
    month is corrected by a credit note, not by re-rating. Ending it again on the same day
    changes nothing (a retried form). Written under the customer's lock; the history row
    names who ended it (the audit trail)."""
    ends_on = _require_date(ends_on, field="ends_on")
    with transaction.atomic():
        customer_id = _discount_customer_id(discount)
        lock_customer(customer=customer_id)
        current = Discount.objects.select_related("application").get(pk=discount.pk)
        if current.last_day == ends_on:
            return current
        _discount_end_refusal(current, customer_id=customer_id, ends_on=ends_on, now=now)
        current.last_day = ends_on
        current._history_user = ended_by  # type: ignore[attr-defined]  # simple-history's hook
        current.save(update_fields=["last_day"])
        return current
