"""Reads for the finance back-office: the month at a glance (its run-rates cached) and the
audit trail. Nothing here writes, and nothing here prices: run-rates come from the one
rating engine through the same selectors the customer's estimate uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
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
from accounts.models import AdjustmentRequest, Application, Customer, LedgerEntry
from accounts.selectors import ledger_balances
from billingsite.audit import SYSTEM_PREFIX, SYSTEM_USER, system_reason
from billingsite.charts import Chart
from billingsite.clock import Period, start_of_day
from billingsite.money import format_cny
from invoices.charts import (
    BalancesOverTime,
    balances_over_time,
    billed_revenue_chart,
)
from invoices.models import BillingRun, CreditNote, Invoice
from invoices.run.runs import billing_runs_stalled
from invoices.selectors import (
    LowBalanceRow,
    customers_below_recommended,
)
from plans.models import (
    AddOn,
    AddOnPrice,
    DedicatedContract,
    Discount,
    Plan,
    PlanPrice,
)
from plans.price_book import PRICE_BOOK_LOADER

ZERO = Decimal("0.00")


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
    AuditKind("promo_credit", "Promotional credit granted", "accounts.view_ledgerentry"),
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


DELETED_USER = "deleted user"


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


def run_starter(run: BillingRun) -> tuple[str, str | None]:
    """Who started `run` (a username, the system user, or a deleted user) and, when no
    person's login says it, what started it: the one rule the audit trail, the runs list and a
    run's page word their own way. Runs recorded before their origin was kept (invoices
    migration 0015) were beat's or `manage.py bill`'s, unknown which."""
    if run.created_by is not None:
        return run.created_by.get_username(), None
    if run.origin == BillingRun.Origin.ADMIN:
        # A person started it whose login has been deleted since (created_by SET_NULL).
        return DELETED_USER, run.get_origin_display()
    return SYSTEM_USER, run.get_origin_display() if run.origin else "billing run"


def _run(run: BillingRun):
    starter, started = run_starter(run)
    username, actor = (starter, starter) if started is None else ("", f"{starter}: {started}")
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
    _ledger_source("promo_credit", LedgerEntry.Kind.PROMO_GRANT),
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
    # Contracted discounts: one source per scope, so the customer filter has one lookup each.
    *(
        _Source(
            code=f"discount_{scope}",
            kind="discount",
            rows=lambda scope=scope: Discount.history.filter(**{f"{scope}__isnull": False}),
            at="history_date",
            user="history_user",
            customer=customer,
            related=("customer", "application"),
            url_name="admin:plans_discount_change",
            describe=lambda r: (
                f"Discount {r.reference or r.id} for "
                f"{r.application.app_key if r.application_id else r.customer.name}",
                (
                    f"{r.percent}%"
                    if r.percent is not None
                    else f"{format_cny(r.amount_off)} / month"
                )
                + f" from {r.first_day}"
                + (f" to {r.last_day}" if r.last_day else ""),
            ),
            history=True,
        )
        for scope, customer in (
            ("customer", "customer_id"),
            ("application", "application__customer_id"),
        )
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


@dataclass(frozen=True)
class FinanceCharts:
    billed: Chart
    balances: BalancesOverTime


def finance_charts(*, today: dt.date) -> FinanceCharts:
    """The dashboard's charts: billed revenue by month, customers in arrears and the prepaid
    balance held at each month end (two queries)."""
    return FinanceCharts(
        billed=billed_revenue_chart(today=today), balances=balances_over_time(today=today)
    )
