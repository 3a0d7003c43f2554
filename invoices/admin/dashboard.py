"""Reads for the finance back-office: the month at a glance, customers' financials in batches,
and the audit trail. Nothing here writes, and nothing here prices: run-rates come from the one
rating engine through the same selectors the customer's estimate uses."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Max, Sum
from moneyed import Money

from accounts.arrears import suspension_date
from accounts.models import AdjustmentRequest, Application, Customer, DailyUsage, LedgerEntry
from accounts.selectors import ledger_balances
from billingsite.clock import Period
from billingsite.money import format_cny
from invoices.models import BillingRun, CreditNote, Invoice
from invoices.run.runs import billing_runs_stalled
from invoices.selectors import (
    CustomerFinancials,
    financials_from,
    recommended_balance,
    whole_month_fees,
)
from plans.batch_rating import customers_rate
from plans.models import (
    AddOn,
    AddOnChange,
    AddOnPrice,
    DedicatedContract,
    Discount,
    Plan,
    PlanChange,
    PlanPrice,
)
from plans.rating.engine import RatingError
from plans.selectors import application_inputs, price_book_for_period

ZERO = Decimal("0.00")
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
    `invoices.selectors.customer_financials` gives one customer), batched: a fixed number of
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
            if rating.error is not None:
                rates[customer_id] = rating.error
                continue
            try:
                rates[customer_id] = RunRate(
                    this_month=rating.rated.total,
                    whole_month=whole_month_fees(book=book, inputs=rating.inputs, today=today),
                )
            except RatingError as exc:
                rates[customer_id] = exc
    return rates


def financials_for_customers(
    *, customers: Sequence[Customer], today: dt.date
) -> dict[int, CustomerFinancials | RatingError]:
    """`invoices.selectors.customer_financials` for a page of customers, batched."""
    period = Period.containing(today)
    ids = [customer.pk for customer in customers]
    rates = run_rates(customer_ids=ids, today=today)
    balances = ledger_balances(customer_ids=ids)
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
                period=period,
            )
        )
    return result


# The dashboard rates every account: cached, keyed by a fingerprint of everything the run-rates
# depend on (so any plan, add-on, contract, discount, price or usage change gives a new key). Balances
# and arrears are always read live.
RUN_RATES_CACHE_SECONDS = 600


def _rating_inputs_fingerprint(period: Period) -> str:

    parts: list = [str(period)]
    for model in (PlanChange, AddOnChange):
        parts += model.objects.aggregate(
            n=Count("id"), last=Max("id"), cancelled=Count("cancelled_at")
        ).values()
    for model in (PlanPrice, AddOnPrice, DedicatedContract, Discount):
        parts += model.history.aggregate(n=Count("history_id"), last=Max("history_id")).values()
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
class HeldInvoiceRow:
    invoice: Invoice
    balance: Decimal


@dataclass(frozen=True)
class ArrearsRow:
    customer: Customer
    balance: Decimal
    arrears_since: dt.date
    suspension_date: dt.date
    suspended: bool


@dataclass(frozen=True)
class LowBalanceRow:
    customer: Customer
    balance: Decimal
    recommended_balance: Decimal
    shortfall: Decimal
    days_left: int | None


@dataclass(frozen=True)
class Dashboard:
    today: dt.date
    last_period: Period
    # Issued invoices of the last period (including ones credited since) and their sum.
    invoices_issued: int
    billed_total: Decimal
    credited_total: Decimal
    # Invoices of the last period not issued yet (draft or held).
    invoices_pending: int
    held_count: int
    held: list[HeldInvoiceRow]
    arrears_count: int
    arrears: list[ArrearsRow]
    low_balance_count: int
    low_balance: list[LowBalanceRow]
    latest_run: BillingRun | None
    # Running runs without progress for BILLING_RUN_STALL_AFTER (finance resumes or closes them).
    stalled_runs: list[BillingRun]

    @property
    def net_billed(self) -> Decimal:
        return self.billed_total - self.credited_total


def month_at_a_glance(
    *, today: dt.date, list_limit: int = 10, now: dt.datetime | None = None
) -> Dashboard:
    """The index page's figures. `now` (the wall clock) decides which runs are stalled; without
    it none is shown as stalled."""

    last_period = Period.containing(today).previous()
    issued = Invoice.objects.filter(
        period=last_period.start, status__in=Invoice.ISSUED_STATES
    ).aggregate(count=Count("id"), total=Sum("total"))
    credited = CreditNote.objects.filter(invoice__period=last_period.start).aggregate(
        total=Sum("total")
    )
    pending = Invoice.objects.filter(
        period=last_period.start, status__in=[Invoice.Status.DRAFT, Invoice.Status.HELD]
    ).count()
    held_qs = Invoice.objects.filter(status=Invoice.Status.HELD).select_related("customer")
    held_count = held_qs.count()
    held_invoices = list(held_qs.order_by("period", "customer_name")[:list_limit])
    balances = ledger_balances(customer_ids=[invoice.customer_id for invoice in held_invoices])
    held = [
        HeldInvoiceRow(invoice=invoice, balance=balances.get(invoice.customer_id, ZERO))
        for invoice in held_invoices
    ]
    return Dashboard(
        today=today,
        last_period=last_period,
        invoices_issued=issued["count"] or 0,
        billed_total=(issued["total"] or ZERO).quantize(Decimal("0.01")),
        credited_total=(credited["total"] or ZERO).quantize(Decimal("0.01")),
        invoices_pending=pending,
        held_count=held_count,
        held=held,
        arrears_count=Customer.objects.filter(arrears_since__isnull=False).count(),
        arrears=customers_in_arrears(limit=list_limit),
        **_low_balance(today=today, limit=list_limit),
        latest_run=BillingRun.objects.order_by("-created_at", "-id").first(),
        stalled_runs=list(billing_runs_stalled(now=now).order_by("created_at", "id"))
        if now is not None
        else [],
    )


def customers_in_arrears(*, limit: int | None = None) -> list[ArrearsRow]:

    customers = Customer.objects.filter(arrears_since__isnull=False).order_by(
        "arrears_since", "name"
    )
    if limit is not None:
        customers = customers[:limit]
    customers = list(customers)
    balances = ledger_balances(customer_ids=[customer.pk for customer in customers])
    return [
        ArrearsRow(
            customer=customer,
            balance=balances.get(customer.pk, ZERO),
            arrears_since=customer.arrears_since,
            suspension_date=suspension_date(arrears_since=customer.arrears_since),
            suspended=customer.suspended_at is not None,
        )
        for customer in customers
    ]


def customers_below_recommended(*, today: dt.date) -> list[LowBalanceRow]:
    """Customers whose balance is below three months of their current monthly fees, the
    fewest days of balance left first."""
    period = Period.containing(today)
    rates = current_run_rates(today=today)
    charged = [customer_id for customer_id, rate in rates.items() if rate.whole_month > 0]
    balances = ledger_balances(customer_ids=charged)
    low: dict[int, Decimal] = {}
    for customer_id in charged:
        balance = balances.get(customer_id, ZERO)
        if balance < recommended_balance(monthly_fees=rates[customer_id].whole_month):
            low[customer_id] = balance
    rows = []
    for customer in Customer.objects.filter(pk__in=list(low)):
        rate = rates[customer.pk]
        figures = financials_from(
            customer,
            balance=low[customer.pk],
            run_rate=rate.this_month,
            monthly_fees=rate.whole_month,
            period=period,
        )
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


def _low_balance(*, today: dt.date, limit: int) -> dict:
    rows = customers_below_recommended(today=today)
    return {"low_balance_count": len(rows), "low_balance": rows[:limit]}


# --- audit trail ------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditKind:
    code: str
    label: str
    # The view permission a user needs to see entries of this kind.
    permission: str


AUDIT_KINDS = (
    AuditKind("price", "Price book change", "plans.view_planprice"),
    AuditKind("deposit", "Deposit recorded", "accounts.view_ledgerentry"),
    AuditKind("adjustment", "Manual adjustment", "accounts.view_ledgerentry"),
    # Who proposed an adjustment that needs approval, and who approved or rejected it.
    AuditKind("adjustment_request", "Adjustment approval", "accounts.view_adjustmentrequest"),
    AuditKind("issue", "Invoice issued", "invoices.view_invoice"),
    AuditKind("credit", "Credit note", "invoices.view_creditnote"),
    AuditKind("contract", "Dedicated-service contract", "plans.view_dedicatedcontract"),
    AuditKind("discount", "Contracted discount", "plans.view_discount"),
    AuditKind("run", "Billing run started", "invoices.view_billingrun"),
)
_KIND_LABELS = {kind.code: kind.label for kind in AUDIT_KINDS}


@dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    kind: str
    # Username of the person, or "" for the system (a data load, the scheduled run).
    username: str
    subject: str
    detail: str
    # Admin URL name and id of the object, for a link.
    url_name: str
    object_id: int

    @property
    def kind_label(self) -> str:
        return _KIND_LABELS[self.kind]


def _username(user) -> str:
    return user.get_username() if user is not None else ""


def _audit_value(value) -> str:
    if isinstance(value, Money):
        return format_cny(value)
    return "—" if value in (None, "") else str(value)


_HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


def _history_entries(
    model, *, kind, url_name, username, limit, describe, subject, related=()
) -> list[AuditEntry]:
    records = model.history.select_related("history_user", *related).order_by(
        "-history_date", "-history_id"
    )
    if username:
        records = records.filter(history_user__username=username)
    entries = []
    for record in records[:limit]:
        action = _HISTORY_TYPES.get(record.history_type, record.history_type)
        detail = describe(record)
        if record.history_type == "~":
            # The row's save before this one (by history id: two saves can share a time).
            previous = (
                model.history.filter(id=record.id, history_id__lt=record.history_id)
                .order_by("-history_id")
                .first()
            )
            if previous is not None:
                delta = record.diff_against(previous)
                changes = [
                    f"{change.field}: {_audit_value(change.old)} → {_audit_value(change.new)}"
                    for change in delta.changes
                ]
                detail = "; ".join(changes) or "saved without changes"
        entries.append(
            AuditEntry(
                at=record.history_date,
                kind=kind,
                username=_username(record.history_user),
                subject=f"{subject(record)} ({action})",
                detail=detail,
                url_name=url_name,
                object_id=record.id,
            )
        )
    return entries


def audit_trail(
    *, kinds: Iterable[str], username: str | None = None, limit: int = 200
) -> list[AuditEntry]:
    """The latest `limit` audited actions of the given kinds, newest first."""

    kinds = set(kinds)
    entries: list[AuditEntry] = []
    if "price" in kinds:
        for model, url_name, related, subject, describe in (
            (
                PlanPrice,
                "admin:plans_planprice_change",
                ["plan"],
                lambda r: f"{r.plan.name} price from {r.valid_from}",
                lambda r: (
                    f"base {format_cny(r.dau_base_fee)}, +{format_cny(r.dau_block_price)} per "
                    f"{r.dau_block_size:,} DAU above {r.included_dau:,}, minimum deposit "
                    f"{format_cny(r.minimum_deposit)}"
                ),
            ),
            (
                AddOnPrice,
                "admin:plans_addonprice_change",
                ["addon", "plan"],
                lambda r: f"{r.addon.name} on {r.plan.name} from {r.valid_from}",
                lambda r: f"{r.get_availability_display()} {format_cny(r.unit_price)}",
            ),
            (Plan, "admin:plans_plan_change", [], lambda r: f"Plan {r.name}", lambda r: r.code),
            (AddOn, "admin:plans_addon_change", [], lambda r: f"Add-on {r.name}", lambda r: r.code),
        ):
            entries += _history_entries(
                model,
                kind="price",
                url_name=url_name,
                username=username,
                limit=limit,
                describe=describe,
                subject=subject,
                related=related,
            )
    ledger_kinds = [
        kind
        for code, kind in (
            ("deposit", LedgerEntry.Kind.DEPOSIT),
            ("adjustment", LedgerEntry.Kind.ADJUSTMENT),
        )
        if code in kinds
    ]
    if ledger_kinds:
        ledger = LedgerEntry.objects.filter(kind__in=ledger_kinds).select_related(
            "customer", "created_by"
        )
        if username:
            ledger = ledger.filter(created_by__username=username)
        for entry in ledger.order_by("-created_at", "-id")[:limit]:
            what = entry.reference if entry.kind == LedgerEntry.Kind.DEPOSIT else entry.reason
            entries.append(
                AuditEntry(
                    at=entry.created_at,
                    kind="deposit" if entry.kind == LedgerEntry.Kind.DEPOSIT else "adjustment",
                    username=_username(entry.created_by),
                    subject=f"{entry.customer.name}: {format_cny(entry.amount)}",
                    detail=what,
                    url_name="admin:accounts_ledgerentry_change",
                    object_id=entry.pk,
                )
            )
    if "adjustment_request" in kinds:
        entries += _history_entries(
            AdjustmentRequest,
            kind="adjustment_request",
            url_name="admin:accounts_adjustmentrequest_change",
            username=username,
            limit=limit,
            related=["customer"],
            subject=lambda r: f"{r.customer.name}: {format_cny(r.amount)} adjustment",
            describe=lambda r: f"proposed: {r.reason}",
        )
    if "issue" in kinds:
        invoices = Invoice.objects.filter(issued_at__isnull=False).select_related("issued_by")
        if username:
            invoices = invoices.filter(issued_by__username=username)
        for invoice in invoices.order_by("-issued_at", "-id")[:limit]:
            entries.append(
                AuditEntry(
                    at=invoice.issued_at,
                    kind="issue",
                    username=_username(invoice.issued_by),
                    subject=f"{invoice.number} {invoice.customer_name}",
                    detail=f"{invoice.period:%Y-%m}, total {format_cny(invoice.total)}",
                    url_name="admin:invoices_invoice_change",
                    object_id=invoice.pk,
                )
            )
    if "credit" in kinds:
        notes = CreditNote.objects.select_related("created_by", "invoice")
        if username:
            notes = notes.filter(created_by__username=username)
        for note in notes.order_by("-issued_at", "-id")[:limit]:
            entries.append(
                AuditEntry(
                    at=note.issued_at,
                    kind="credit",
                    username=_username(note.created_by),
                    subject=f"{note.number} for {note.invoice.number}: {format_cny(note.total)}",
                    detail=note.reason,
                    url_name="admin:invoices_creditnote_change",
                    object_id=note.pk,
                )
            )
    if "contract" in kinds:
        entries += _history_entries(
            DedicatedContract,
            kind="contract",
            url_name="admin:plans_dedicatedcontract_change",
            username=username,
            limit=limit,
            related=["application"],
            subject=lambda r: f"Contract {r.reference or r.id} for {r.application.app_key}",
            describe=lambda r: (
                f"{format_cny(r.monthly_fee)} / month from {r.first_day}"
                + (f" to {r.last_day}" if r.last_day else "")
            ),
        )
    if "discount" in kinds:
        entries += _history_entries(
            Discount,
            kind="discount",
            url_name="admin:plans_discount_change",
            username=username,
            limit=limit,
            related=["customer", "application"],
            subject=lambda r: (
                f"Discount {r.reference or r.id} for "
                f"{r.application.app_key if r.application_id else r.customer.name}"
            ),
            describe=lambda r: (
                (
                    f"{r.percent}%"
                    if r.percent is not None
                    else f"{format_cny(r.amount_off)} / month"
                )
                + f" from {r.first_day}"
                + (f" to {r.last_day}" if r.last_day else "")
            ),
        )
    if "run" in kinds:
        runs = BillingRun.objects.select_related("created_by")
        if username:
            runs = runs.filter(created_by__username=username)
        for run in runs.order_by("-created_at", "-id")[:limit]:
            entries.append(
                AuditEntry(
                    at=run.created_at,
                    kind="run",
                    username=_username(run.created_by),
                    subject=f"Billing run {run.period:%Y-%m}",
                    detail=f"{run.get_status_display()}: {run.invoices_issued} issued, "
                    f"{run.invoices_held} held, {run.accounts_failed} failed",
                    url_name="admin:invoices_billingrun_change",
                    object_id=run.pk,
                )
            )
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]


def held_invoices():
    return (
        Invoice.objects.filter(status=Invoice.Status.HELD)
        .select_related("customer")
        .order_by("period", "customer_name")
    )


def applications_needing_contract(*, invoice: Invoice) -> list[Application]:
    """Applications on a held invoice whose hold reason names them (high volume without a
    dedicated-service contract)."""
    applications = Application.objects.filter(customer_id=invoice.customer_id).order_by("app_key")
    return [app for app in applications if app.app_key in (invoice.hold_reason or "")]


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
