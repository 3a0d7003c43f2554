"""Reads for the finance back-office: the month at a glance, customers' financials in batches,
and the audit trail. Nothing here writes, and nothing here prices: run-rates come from the one
rating engine through the same selectors the customer's estimate uses."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache
from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.lookups import IsNull
from moneyed import Money

from accounts.arrears import suspension_date
from accounts.models import AdjustmentRequest, Application, Customer, DailyUsage, LedgerEntry
from accounts.selectors import ledger_balances
from billingsite.audit import SYSTEM_PREFIX, system_reason
from billingsite.clock import Period, start_of_day
from billingsite.money import format_cny
from invoices.models import BillingRun, CreditNote, Invoice
from invoices.run.runs import billing_runs_stalled
from invoices.selectors import (
    CustomerFinancials,
    financials_from,
    whole_month_fees,
)
from plans.batch_rating import customers_rate
from plans.models import (
    AddOn,
    AddOnChange,
    AddOnPrice,
    DedicatedContract,
    Plan,
    PlanChange,
    PlanPrice,
)
from plans.price_book import PRICE_BOOK_LOADER
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
# depend on (so any plan, add-on, contract, price or usage change gives a new key). Balances
# and arrears are always read live.
RUN_RATES_CACHE_SECONDS = 600


def _rating_inputs_fingerprint(period: Period) -> str:

    parts: list = [str(period)]
    for model in (PlanChange, AddOnChange):
        parts += model.objects.aggregate(
            n=Count("id"), last=Max("id"), cancelled=Count("cancelled_at")
        ).values()
    for model in (PlanPrice, AddOnPrice, DedicatedContract):
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
    period = Period.containing(today)
    rates = current_run_rates(today=today)
    balances = ledger_balances(customer_ids=list(rates))
    return [
        (
            customer,
            financials_from(
                customer,
                balance=balances.get(customer.pk, ZERO),
                run_rate=rates[customer.pk].this_month,
                monthly_fees=rates[customer.pk].whole_month,
                period=period,
            ),
        )
        for customer in Customer.objects.filter(pk__in=list(rates))
    ]


def _low_balance(*, today: dt.date, limit: int) -> dict:
    rows = customers_below_recommended(today=today)
    return {"low_balance_count": len(rows), "low_balance": rows[:limit]}


# --- audit trail ------------------------------------------------------------------------
#
# One time-ordered list over several tables: each source (price history, ledger, invoices,
# credit notes, runs, ...) gives (time, source, id) keys, the database merges them with a UNION
# and pages it, and only the page's rows are then read, per source in one query. So a page
# costs the same number of queries whatever the page size and however deep it is.


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
    AuditKind("run", "Billing run started", "invoices.view_billingrun"),
)
_KIND_LABELS = {kind.code: kind.label for kind in AUDIT_KINDS}
# The `user` filter's value for writes no person made.
SYSTEM_USER = "system"


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
    # Who, as shown: the username, or the process for system writes ("system: billing run
    # 2026-10"; plain "system" where nothing names it).
    actor: str = SYSTEM_USER

    @property
    def kind_label(self) -> str:
        return _KIND_LABELS[self.kind]


@dataclass(frozen=True)
class AuditFilters:
    kinds: frozenset[str]
    # A username, or SYSTEM_USER for writes without a person.
    username: str = ""
    # A customer's external id, or part of its name.
    customer: str = ""
    # Billing-clock days, both included.
    since: dt.date | None = None
    until: dt.date | None = None


def _audit_value(value) -> str:
    if isinstance(value, Money):
        return format_cny(value)
    return "—" if value in (None, "") else str(value)


_HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


def _history_actor(record) -> str:
    if record.history_user is not None:
        return record.history_user.get_username()
    reason = record.history_change_reason or ""
    return reason if reason.startswith(SYSTEM_PREFIX) else SYSTEM_USER


def _person_or(user, system: str = SYSTEM_USER) -> tuple[str, str]:
    """(username, actor) of a row's author column; `system` names the process otherwise."""
    if user is not None:
        return user.get_username(), user.get_username()
    return "", system


def _compared_fields(history_model) -> list[str]:
    """The tracked columns whose change is a change (timestamps the save itself sets are not)."""
    return [
        field.attname
        for field in history_model.tracked_fields
        if not (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))
    ]


def _previous_record(history_model):
    """The id of the same row's save before this one (by history id: two saves can share a
    time), as a subquery of a history queryset."""
    return Subquery(
        history_model.objects.filter(id=OuterRef("id"), history_id__lt=OuterRef("history_id"))
        .order_by("-history_id")
        .values("history_id")[:1]
    )


def _changes_only(records):
    """Leaves out saves that changed nothing (a history row equal to the save before it)."""
    history_model = records.model
    same = history_model.objects.filter(history_id=OuterRef("audit_prev"))
    for name in _compared_fields(history_model):
        same = same.filter(
            Q(**{name: OuterRef(name)})
            | (Q(**{f"{name}__isnull": True}) & Q(IsNull(OuterRef(name), True)))
        )
    return records.annotate(audit_prev=_previous_record(history_model)).exclude(
        Exists(same), history_type="~"
    )


@dataclass(frozen=True)
class _Source:
    code: str
    kind: str
    # The rows: a model's queryset, or its history's.
    rows: Callable[[], QuerySet]
    at: str
    # Lookup of the author (a user).
    user: str
    # Lookup of the customer's id; None: the row is not about one customer.
    customer: str | None
    related: tuple[str, ...]
    url_name: str
    # (row) -> (username, actor, subject, detail); history sources get the actor and the
    # action from the record, and a "changed" record's detail is its diff.
    describe: Callable
    history: bool = False


def _price_source(model, code, url_name, related, subject, describe) -> _Source:
    return _Source(
        code=code,
        kind="price",
        # The price-book loader's creations are the initial book, not changes someone made
        # (rows from before the loader named itself have no user and no reason either); what
        # it resets with --force is a change and is listed, attributed to it.
        rows=lambda: model.history.exclude(
            Q(history_change_reason__isnull=True)
            | Q(history_change_reason=system_reason(PRICE_BOOK_LOADER)),
            history_type="+",
            history_user__isnull=True,
        ),
        at="history_date",
        user="history_user",
        customer=None,
        related=related,
        url_name=url_name,
        describe=lambda r: (subject(r), describe(r)),
        history=True,
    )


def _deposit_actor(entry: LedgerEntry) -> str:
    if entry.method in (LedgerEntry.Method.ALIPAY, LedgerEntry.Method.WECHAT_PAY):
        return f"{SYSTEM_PREFIX}online top-up ({entry.get_method_display()})"
    return SYSTEM_USER


def _ledger_source(kind: str, ledger_kind: str) -> _Source:
    def describe(entry):
        username, actor = _person_or(
            entry.created_by,
            _deposit_actor(entry) if ledger_kind == LedgerEntry.Kind.DEPOSIT else SYSTEM_USER,
        )
        what = entry.reference if ledger_kind == LedgerEntry.Kind.DEPOSIT else entry.reason
        return username, actor, f"{entry.customer.name}: {format_cny(entry.amount)}", what

    return _Source(
        code=kind,
        kind=kind,
        rows=lambda: LedgerEntry.objects.filter(kind=ledger_kind),
        at="created_at",
        user="created_by",
        customer="customer_id",
        related=("customer", "created_by"),
        url_name="admin:accounts_ledgerentry_change",
        describe=describe,
    )


def _issue(invoice: Invoice):
    username, actor = _person_or(
        invoice.issued_by,
        f"{SYSTEM_PREFIX}billing run {invoice.period:%Y-%m}"
        if invoice.billing_run_id
        else SYSTEM_USER,
    )
    return (
        username,
        actor,
        f"{invoice.number} {invoice.customer_name}",
        f"{invoice.period:%Y-%m}, total {format_cny(invoice.total)}",
    )


def _credit(note: CreditNote):
    username, actor = _person_or(note.created_by)
    return (
        username,
        actor,
        f"{note.number} for {note.invoice.number}: {format_cny(note.total)}",
        note.reason,
    )


def _run(run: BillingRun):
    username, actor = _person_or(run.created_by, f"{SYSTEM_PREFIX}scheduled billing run")
    return (
        username,
        actor,
        f"Billing run {run.period:%Y-%m}",
        f"{run.get_status_display()}: {run.invoices_issued} issued, "
        f"{run.invoices_held} held, {run.accounts_failed} failed",
    )


_SOURCES = (
    _price_source(
        PlanPrice,
        "planprice",
        "admin:plans_planprice_change",
        ("plan",),
        lambda r: f"{r.plan.name} price from {r.valid_from}",
        lambda r: (
            f"base {format_cny(r.dau_base_fee)}, +{format_cny(r.dau_block_price)} per "
            f"{r.dau_block_size:,} DAU above {r.included_dau:,}, minimum deposit "
            f"{format_cny(r.minimum_deposit)}"
        ),
    ),
    _price_source(
        AddOnPrice,
        "addonprice",
        "admin:plans_addonprice_change",
        ("addon", "plan"),
        lambda r: f"{r.addon.name} on {r.plan.name} from {r.valid_from}",
        lambda r: f"{r.get_availability_display()} {format_cny(r.unit_price)}",
    ),
    _price_source(
        Plan, "plan", "admin:plans_plan_change", (), lambda r: f"Plan {r.name}", lambda r: r.code
    ),
    _price_source(
        AddOn,
        "addon",
        "admin:plans_addon_change",
        (),
        lambda r: f"Add-on {r.name}",
        lambda r: r.code,
    ),
    _ledger_source("deposit", LedgerEntry.Kind.DEPOSIT),
    _ledger_source("adjustment", LedgerEntry.Kind.ADJUSTMENT),
    _Source(
        code="adjustment_request",
        kind="adjustment_request",
        rows=lambda: AdjustmentRequest.history.all(),
        at="history_date",
        user="history_user",
        customer="customer_id",
        related=("customer",),
        url_name="admin:accounts_adjustmentrequest_change",
        describe=lambda r: (
            f"{r.customer.name}: {format_cny(r.amount)} adjustment",
            f"proposed: {r.reason}",
        ),
        history=True,
    ),
    _Source(
        code="issue",
        kind="issue",
        rows=lambda: Invoice.objects.filter(issued_at__isnull=False),
        at="issued_at",
        user="issued_by",
        customer="customer_id",
        related=("issued_by",),
        url_name="admin:invoices_invoice_change",
        describe=_issue,
    ),
    _Source(
        code="credit",
        kind="credit",
        rows=lambda: CreditNote.objects.all(),
        at="issued_at",
        user="created_by",
        customer="customer_id",
        related=("created_by", "invoice"),
        url_name="admin:invoices_creditnote_change",
        describe=_credit,
    ),
    _Source(
        code="contract",
        kind="contract",
        rows=lambda: DedicatedContract.history.all(),
        at="history_date",
        user="history_user",
        customer="application__customer_id",
        related=("application",),
        url_name="admin:plans_dedicatedcontract_change",
        describe=lambda r: (
            f"Contract {r.reference or r.id} for {r.application.app_key}",
            f"{format_cny(r.monthly_fee)} / month from {r.first_day}"
            + (f" to {r.last_day}" if r.last_day else ""),
        ),
        history=True,
    ),
    _Source(
        code="run",
        kind="run",
        rows=lambda: BillingRun.objects.all(),
        at="created_at",
        user="created_by",
        customer=None,
        related=("created_by",),
        url_name="admin:invoices_billingrun_change",
        describe=_run,
    ),
)
_SOURCES_BY_CODE = {source.code: source for source in _SOURCES}


def _filtered(source: _Source, filters: AuditFilters) -> QuerySet | None:
    """The source's rows the filters keep; None when the source cannot match them."""
    rows = source.rows()
    if filters.username == SYSTEM_USER:
        rows = rows.filter(**{f"{source.user}__isnull": True})
    elif filters.username:
        rows = rows.filter(**{f"{source.user}__username": filters.username})
    if filters.customer:
        if source.customer is None:
            return None
        rows = rows.filter(
            **{
                f"{source.customer}__in": Customer.objects.filter(
                    Q(external_id=filters.customer) | Q(name__icontains=filters.customer)
                ).values("id")
            }
        )
    if filters.since is not None:
        rows = rows.filter(**{f"{source.at}__gte": start_of_day(filters.since)})
    if filters.until is not None:
        rows = rows.filter(
            **{f"{source.at}__lt": start_of_day(filters.until + dt.timedelta(days=1))}
        )
    if source.history:
        rows = _changes_only(rows)
    return rows


class AuditTrail:
    """The audit entries the filters keep, newest first, as a sequence a Paginator pages:
    `count()` is one query, a slice a fixed number (the UNION of keys, then one per source on
    the page, and one more per history source for the previous saves of changed rows)."""

    def __init__(self, filters: AuditFilters):
        parts = []
        for source in _SOURCES:
            if source.kind not in filters.kinds:
                continue
            rows = _filtered(source, filters)
            if rows is None:
                continue
            parts.append(
                rows.order_by()
                .annotate(
                    audit_at=F(source.at),
                    audit_source=Value(source.code, output_field=CharField()),
                    audit_pk=F("pk"),
                )
                .values_list("audit_at", "audit_source", "audit_pk")
            )
        self._keys = parts[0].union(*parts[1:], all=True) if parts else None

    def count(self) -> int:
        return self._keys.count() if self._keys is not None else 0

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[AuditEntry]:
        if self._keys is None:
            return []
        keys = list(self._keys.order_by("-audit_at", "-audit_source", "-audit_pk")[index])
        wanted: dict[str, list[int]] = {}
        for _at, code, pk in keys:
            wanted.setdefault(code, []).append(pk)
        entries = {}
        for code, pks in wanted.items():
            source = _SOURCES_BY_CODE[code]
            for pk, entry in _entries(source, pks).items():
                entries[(code, pk)] = entry
        return [entries[(code, pk)] for _at, code, pk in keys]


def _entries(source: _Source, pks: list[int]) -> dict[int, AuditEntry]:
    if not source.history:
        rows = source.rows().model.objects.filter(pk__in=pks).select_related(*source.related)
        result = {}
        for row in rows:
            username, actor, subject, detail = source.describe(row)
            result[row.pk] = AuditEntry(
                at=getattr(row, source.at),
                kind=source.kind,
                username=username,
                actor=actor,
                subject=subject,
                detail=detail,
                url_name=source.url_name,
                object_id=row.pk,
            )
        return result
    history_model = source.rows().model
    records = list(
        history_model.objects.filter(history_id__in=pks)
        .select_related("history_user", *source.related)
        .annotate(audit_prev=_previous_record(history_model))
    )
    previous = {
        record.history_id: record
        for record in history_model.objects.filter(
            history_id__in=[r.audit_prev for r in records if r.history_type == "~" and r.audit_prev]
        )
    }
    compared = set(_compared_fields(history_model))
    excluded = [
        field.name for field in history_model.tracked_fields if field.attname not in compared
    ]
    result = {}
    for record in records:
        subject, detail = source.describe(record)
        before = previous.get(record.audit_prev) if record.history_type == "~" else None
        if before is not None:
            delta = record.diff_against(before, excluded_fields=excluded)
            detail = "; ".join(
                f"{change.field}: {_audit_value(change.old)} → {_audit_value(change.new)}"
                for change in delta.changes
            )
        action = _HISTORY_TYPES.get(record.history_type, record.history_type)
        result[record.history_id] = AuditEntry(
            at=record.history_date,
            kind=source.kind,
            username=_person_or(record.history_user)[0],
            actor=_history_actor(record),
            subject=f"{subject} ({action})",
            detail=detail,
            url_name=source.url_name,
            object_id=record.id,
        )
    return result


def audit_trail(
    *, kinds: Iterable[str], username: str | None = None, limit: int = 200
) -> list[AuditEntry]:
    """The latest `limit` audited actions of the given kinds, newest first."""
    trail = AuditTrail(AuditFilters(kinds=frozenset(kinds), username=username or ""))
    return trail[:limit]


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
