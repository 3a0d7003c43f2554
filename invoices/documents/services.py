"""Write paths for invoices and credit notes.

Invariants kept here:
- One invoice per customer and period (a unique constraint), rated only by `plans.rating.engine`
  through `plans.selectors.application_inputs` / `price_book_for_period`.
- Every write for a customer runs in one transaction that first locks the customer row; the
  ledger services lock the same row, so a bill, a deposit and a credit note for one customer
  never interleave.
- Issuing gives the number (gapless, inside the same transaction), freezes the invoice and
  debits the ledger once (idempotency key per customer and period). Held invoices are neither
  numbered nor debited.
- Credit notes never give back more than a line billed, counting earlier credit notes.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from moneyed import Money

from accounts.events.records import deliver_after_commit, record_customer_event
from accounts.models import Application, Customer, CustomerEvent, LedgerEntry
from accounts.services import (
    MAX_REASON_LENGTH,
    arrears_started_event,
    ledger_record,
    lock_customer,
    update_arrears,
)
from billingsite.clock import Period, billing_date
from billingsite.money import CURRENCY, as_decimal, format_amount, round_money
from invoices.documents.limits import InvoiceTooLarge, invoice_size_problem
from invoices.documents.numbering import CREDIT_NOTE_SERIES, INVOICE_SERIES, number_allocate
from invoices.models import (
    BillingRun,
    BillingRunError,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
)
from invoices.run import statements
from plans.rating.engine import PriceBook, RatedAccount, RatingError, rate_account
from plans.selectors import application_inputs, price_book_for_period

ZERO = Decimal("0.00")

# Outcomes of billing one account in a run.
ISSUED = "issued"
HELD = "held"
SKIPPED = "skipped"
ALREADY_BILLED = "already_billed"
FAILED = "failed"


class InvoiceError(ValueError):
    """A request about an invoice or credit note was refused; nothing was written.

    `field` names the offending input (for API 400 bodies and admin form errors)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class UsageChangedError(Exception):
    """Usage of the account was written after it was rated: rate it again. Nothing was
    written."""


def _check_usage_unchanged(prepared: PreparedAccount, under_lock: tuple[int, int]) -> None:
    if prepared.usage_version is not None and under_lock != prepared.usage_version:
        raise UsageChangedError(
            f"customer {prepared.customer_id}: usage changed after it was rated "
            f"(applications and usage versions {prepared.usage_version} -> {under_lock})"
        )


# --- Rating (reads only) ----------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedAccount:
    """One account rated for a period from a batched read, ready to be written.

    `error` is set instead of `rated` when the inputs cannot be priced (the account fails, the
    rest of its chunk goes on)."""

    customer_id: int
    rated: RatedAccount | None
    application_ids: dict[str, int]
    error: Exception | None = None
    # (applications, sum of their usage_version) read before the usage that was rated; the
    # write compares it under lock (None: not checked).
    usage_version: tuple[int, int] | None = None

    @property
    def billable(self) -> bool:
        """Something to bill or to review: a paid plan or a contract in the period, or a
        high-volume application that needs finance (even on the free plan)."""
        if self.rated is None:
            return False
        return any(app.has_paid_plan or app.hold_reason for app in self.rated.applications)


def accounts_rate(
    *, customer_ids: Iterable[int], period: Period, book: PriceBook | None = None
) -> dict[int, PreparedAccount]:
    """Rate many customers for a period in a fixed number of queries: the price book (unless
    given), the applications, and `application_inputs` (plans, add-ons, usage, contracts).
    Nothing is written."""
    customer_ids = list(customer_ids)
    if book is None:
        book = price_book_for_period(period=period)
    # The applications (with their usage versions) are read before their usage: usage written
    # after this read bumps a version, which the write then sees under lock.
    applications = list(
        Application.objects.filter(customer_id__in=customer_ids)
        .only("id", "customer_id", "app_key", "name", "usage_version")
        .order_by("id")
    )
    inputs = application_inputs(applications=applications, period=period)
    by_customer: dict[int, list] = defaultdict(list)
    app_ids: dict[int, dict[str, int]] = defaultdict(dict)
    versions: dict[int, tuple[int, int]] = {}
    for app in applications:
        app_ids[app.customer_id][app.app_key] = app.id
        count, total = versions.get(app.customer_id, (0, 0))
        versions[app.customer_id] = (count + 1, total + app.usage_version)
        if app.id in inputs:
            by_customer[app.customer_id].append(inputs[app.id])
    prepared: dict[int, PreparedAccount] = {}
    for customer_id in customer_ids:
        usage_version = versions.get(customer_id, (0, 0))
        try:
            rated = rate_account(book=book, applications=by_customer.get(customer_id, []))
        except RatingError as exc:
            prepared[customer_id] = PreparedAccount(
                customer_id, None, {}, error=exc, usage_version=usage_version
            )
            continue
        too_large = invoice_size_problem(rated=rated)
        if too_large is not None:
            prepared[customer_id] = PreparedAccount(
                customer_id, None, {}, error=InvoiceTooLarge(too_large), usage_version=usage_version
            )
            continue
        prepared[customer_id] = PreparedAccount(
            customer_id, rated, app_ids.get(customer_id, {}), usage_version=usage_version
        )
    return prepared


def account_rate(*, customer: Customer | int, period: Period) -> PreparedAccount:
    customer_id = customer if isinstance(customer, int) else customer.pk
    return accounts_rate(customer_ids=[customer_id], period=period)[customer_id]


# --- Writing invoices -------------------------------------------------------------------------


def _hold_reason(rated: RatedAccount) -> str:
    return "\n".join(rated.hold_reasons)


def _line_rows(invoice_id: int, prepared: PreparedAccount) -> list[dict]:
    return [
        {
            "invoice_id": invoice_id,
            "position": position,
            "application_id": prepared.application_ids.get(line.app_key),
            "app_key": line.app_key,
            "app_name": line.app_name,
            "code": line.code,
            "category": line.category,
            "plan_code": line.plan_code,
            "plan_name": line.plan_name,
            "description": line.description[:300],
            "quantity": line.quantity,
            "unit_price_currency": CURRENCY,
            "unit_price": line.unit_price,
            "amount_currency": CURRENCY,
            "amount": line.amount,
            "first_day": line.first_day,
            "last_day": line.last_day,
            "days": line.days,
            "days_in_month": line.days_in_month,
            "peak_dau": line.peak_dau,
            "peak_day": line.peak_day,
            "explanation": line.explanation,
            "messages": line.messages,
        }
        for position, line in enumerate(prepared.rated.lines, start=1)
    ]


def _invoice_row(
    *,
    customer: Customer,
    period: Period,
    rated: RatedAccount,
    now: dt.datetime,
    billing_run: BillingRun | None,
    number: str | None,
    issued_by,
    usage_version: tuple[int, int] | None,
) -> dict:
    """What an invoice holds (attname -> value): the frozen customer details and the rated
    total; issued when `number` is given, else held (with its reasons) or draft."""
    row = {
        "customer_id": customer.pk,
        "period": period.start,
        "status": (Invoice.Status.HELD if rated.hold_reasons else Invoice.Status.DRAFT).value,
        "number": None,
        "hold_reason": _hold_reason(rated),
        "customer_name": customer.name,
        "customer_address": customer.address,
        "customer_tax_id": customer.tax_id,
        "customer_email": customer.billing_email,
        "total_currency": CURRENCY,
        "total": rated.total,
        "rated_at": now,
        "rated_usage_version": usage_version[1] if usage_version is not None else None,
        "issued_at": None,
        "issue_date": None,
        "issued_by_id": None,
        "billing_run_id": billing_run.pk if billing_run is not None else None,
    }
    if number is not None:
        row.update(
            status=Invoice.Status.ISSUED.value,
            number=number,
            issued_at=now,
            issue_date=billing_date(now),
            issued_by_id=getattr(issued_by, "pk", None),
        )
    return row


def _history_row(tracked: tuple[str, ...], values: dict, *, change: str, at) -> dict:
    """The history row simple-history writes for a row saved by no user: the tracked fields'
    `values`, and `change` "+" (created) or "~" (changed)."""
    history = {name: values[name] for name in tracked}
    history.update(
        history_date=at, history_change_reason=None, history_type=change, history_user_id=None
    )
    return history


def _invoice_write(
    *,
    customer: Customer,
    period: Period,
    prepared: PreparedAccount,
    existing: Invoice | None,
    now: dt.datetime,
    billing_run: BillingRun | None,
    number: str | None = None,
    issued_by=None,
    system: bool = False,
) -> Invoice:
    """Create or replace the draft/held invoice with freshly rated lines. With `number` (the
    run only, `system`) the invoice is issued once its lines are written.

    `system`: written by the run, not by a person: the new invoice and its history row go
    through precompiled inserts. Otherwise the ORM writes them, so the history row records the
    user of the request."""
    rated = prepared.rated
    assert rated is not None
    fields = _invoice_row(
        customer=customer,
        period=period,
        rated=rated,
        now=now,
        billing_run=billing_run,
        number=number,
        issued_by=issued_by,
        usage_version=prepared.usage_version,
    )
    # Lines go in while the invoice is a draft or held: the database takes no line into an
    # issued invoice (only the run's one-statement issue writes both at once).
    if existing is not None:
        # Only drafts and held invoices are replaced; the caller checked under the lock.
        InvoiceLine.objects.filter(invoice=existing).delete()
        statements.insert_many(InvoiceLine, _line_rows(existing.pk, prepared))
        for name, value in fields.items():
            setattr(existing, name, value)
        existing.total = Money(rated.total, CURRENCY)
        existing.save()
        return existing
    if system:
        wall = timezone.now()
        fields.update(created_at=wall, updated_at=wall)
        issued_status = fields["status"] if number is not None else None
        written = {**fields, "status": Invoice.Status.DRAFT.value} if issued_status else fields
        fields["id"] = statements.insert_one(Invoice, written)
        history_model, tracked = statements.invoice_history()
        statements.insert_many(history_model, [_history_row(tracked, fields, change="+", at=wall)])
        statements.insert_many(InvoiceLine, _line_rows(fields["id"], prepared))
        if issued_status:
            Invoice.objects.filter(pk=fields["id"]).update(status=issued_status)
        invoice = Invoice(**fields)
        invoice._state.adding, invoice._state.db = False, connection.alias
        return invoice
    if number is not None:
        raise ValueError("only the run writes an invoice as issued; people use invoice_issue")
    orm_fields = {name: value for name, value in fields.items() if name != "total_currency"}
    orm_fields["total"] = Money(rated.total, CURRENCY)
    invoice = Invoice.objects.create(**orm_fields)
    statements.insert_many(InvoiceLine, _line_rows(invoice.pk, prepared))
    return invoice


def _debit_row(
    *,
    customer_id: int,
    number: str,
    period_start: dt.date,
    amount: Decimal,
    now: dt.datetime,
    created_by,
) -> dict:
    """The ledger entry that debits an issued invoice. One per customer and period, whatever
    retries or re-runs happen: an issued invoice is never deleted, so no second invoice can
    ever exist for the same pair."""
    return {
        "customer_id": customer_id,
        "kind": LedgerEntry.Kind.INVOICE_DEBIT.value,
        "amount_currency": CURRENCY,
        "amount": amount,
        "idempotency_key": f"invoice-debit:{customer_id}:{period_start:%Y-%m}",
        "reference": number,
        "reason": f"Invoice {number} for {period_start:%Y-%m}",
        "created_by_id": getattr(created_by, "pk", None),
        "created_at": now,
    }


def _invoice_debit(
    *, customer: Customer, invoice: Invoice, amount: Decimal, now: dt.datetime, created_by
) -> None:
    """Debit an invoice being issued, once (key per customer and period).

    The same entry as `accounts.services.ledger_record(kind="invoice_debit", ...)`, written in
    the transaction that already holds the customer's row lock with one INSERT ... ON CONFLICT
    DO NOTHING instead of ledger_record's re-lock, key lookup and two savepoints (the month-end
    run issues thousands). Then, as ledger_record does after its insert,
    `accounts.services.update_arrears` (the ledger's own arrears rule), called when the new
    balance changes the arrears state (the only case in which it does anything). When the key
    already exists, ledger_record decides: it returns the first entry or raises
    IdempotencyConflict."""
    row = _debit_row(
        customer_id=customer.pk,
        number=invoice.number,
        period_start=invoice.period,
        amount=amount,
        now=now,
        created_by=created_by,
    )
    if not statements.debit_insert(row):
        ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.INVOICE_DEBIT,
            amount=amount,
            idempotency_key=row["idempotency_key"],
            reference=row["reference"],
            reason=row["reason"],
            now=now,
            created_by=created_by,
        )
        return
    _arrears_follow(customer=customer, balance=statements.ledger_balance_now(customer.pk), now=now)


def _arrears_follow(*, customer: Customer, balance: Decimal, now: dt.datetime) -> None:
    """After a debit: `update_arrears` when the new balance changes the arrears state (the only
    case in which it does anything)."""
    if (balance < 0) != (customer.arrears_since is not None):
        update_arrears(customer=customer, now=now)


def _issued_event(
    *, invoice_id: int, number: str, period_start: dt.date, total: Decimal, issue_date: dt.date
) -> tuple[str, dict]:
    """Dedupe key and payload of the invoice-issued event."""
    return f"invoice_issued:{invoice_id}", {
        "invoice_id": invoice_id,
        "invoice_number": number,
        "period": f"{period_start:%Y-%m}",
        "total": format_amount(total),
        "issue_date": issue_date.isoformat(),
    }


def _after_issue(*, invoice: Invoice, customer: Customer, now: dt.datetime, issued_by) -> None:
    """Debit the ledger (may start arrears) and tell the customer. Inside the issuing
    transaction, under the customer lock."""
    total = as_decimal(invoice.total)
    if total > 0:
        _invoice_debit(
            customer=customer, invoice=invoice, amount=-total, now=now, created_by=issued_by
        )
    dedupe_key, payload = _issued_event(
        invoice_id=invoice.pk,
        number=invoice.number,
        period_start=invoice.period,
        total=total,
        issue_date=invoice.issue_date,
    )
    record_customer_event(
        customer=customer,
        kind=CustomerEvent.Kind.INVOICE_ISSUED,
        dedupe_key=dedupe_key,
        payload=payload,
        now=now,
    )


def _existing_invoice(*, customer: Customer, period: Period) -> Invoice | None:
    return Invoice.objects.filter(customer=customer, period=period.start).first()


def _already_issued_error(invoice: Invoice) -> InvoiceError:
    return InvoiceError(
        f"invoice {invoice.number} is already issued; correct it with a credit note",
        field="invoice",
    )


def _rate_and_write(
    *,
    customer_id: int,
    period: Period,
    now: dt.datetime,
    billing_run: BillingRun | None,
    keep_unbillable: bool,
) -> Invoice | None:
    with transaction.atomic():
        customer = lock_customer(customer=customer_id)
        existing = _existing_invoice(customer=customer, period=period)
        if existing is not None and existing.is_issued:
            raise _already_issued_error(existing)
        prepared = account_rate(customer=customer, period=period)
        if prepared.error is not None:
            raise InvoiceError(f"cannot rate: {prepared.error}", field="invoice")
        if not prepared.billable:
            if keep_unbillable:
                raise InvoiceError(
                    "nothing is billable in this period any more (no paid plan, contract or "
                    "high-volume application); the invoice was left unchanged",
                    field="invoice",
                )
            if existing is not None:
                existing.delete()
            return None
        return _invoice_write(
            customer=customer,
            period=period,
            prepared=prepared,
            existing=existing,
            now=now,
            billing_run=billing_run
            if billing_run is not None
            else getattr(existing, "billing_run", None),
        )


def invoice_rate(
    *, customer: Customer, period: Period, now: dt.datetime, billing_run: BillingRun | None = None
) -> Invoice | None:
    """Create or re-rate the customer's draft/held invoice for the period from today's data.

    Returns None (and removes a stale draft) when nothing is billable: no paid plan, no contract
    and no high-volume application in the period. Refuses an issued invoice."""
    return _rate_and_write(
        customer_id=customer.pk,
        period=period,
        now=now,
        billing_run=billing_run,
        keep_unbillable=False,
    )


def invoice_rerate(*, invoice: Invoice, now: dt.datetime) -> Invoice:
    """Re-rate a draft or held invoice (after finance added a contract or usage was corrected).
    It is held again if a hold reason remains."""
    if invoice.is_issued:
        raise _already_issued_error(invoice)
    rated = _rate_and_write(
        customer_id=invoice.customer_id,
        period=Period.containing(invoice.period),
        now=now,
        billing_run=None,
        keep_unbillable=True,
    )
    assert rated is not None
    return rated


def invoice_issue(*, invoice: Invoice, now: dt.datetime, issued_by=None) -> Invoice:
    """Issue a draft or held invoice as it is: number it, freeze it, debit the balance and tell
    the customer. A held invoice keeps its hold reason as the record of why it was reviewed.
    Refused when usage was written after the invoice was rated (re-rate it first)."""
    with transaction.atomic():
        customer = lock_customer(customer=invoice.customer_id)
        current = Invoice.objects.select_for_update().filter(pk=invoice.pk).first()
        if current is None:
            raise InvoiceError("this invoice no longer exists (it was re-rated away)", "invoice")
        if current.is_issued:
            raise _already_issued_error(current)
        if current.rated_usage_version is not None:
            _, usage_version = statements.lock_usage_versions(customer.pk)
            if usage_version != current.rated_usage_version:
                raise InvoiceError(
                    "usage of this customer's applications changed after this invoice was "
                    "rated: re-rate it, review it and issue it again",
                    field="invoice",
                )
        current.number = number_allocate(series=INVOICE_SERIES, year=billing_date(now).year)
        current.status = Invoice.Status.ISSUED
        current.issued_at = now
        current.issue_date = billing_date(now)
        current.issued_by = issued_by
        current.save()
        _after_issue(invoice=current, customer=customer, now=now, issued_by=issued_by)
    return current


# --- The run's per-account step ---------------------------------------------------------------


def bill_account(
    *,
    customer_id: int,
    period: Period,
    now: dt.datetime,
    prepared: PreparedAccount,
    billing_run: BillingRun | None = None,
    unresolved_error: bool = False,
    invoice_absent: bool = False,
) -> str:
    """Bill one account from an already rated `prepared`, in its own transaction under the
    customer's row lock. Returns the outcome; raises on failure (nothing is written then).

    Nothing counts here: the run derives its counters from the rows it wrote. An account whose
    issued invoice this very run wrote (a redelivered chunk) is "issued", not "already billed".
    `unresolved_error`: this run has an open error row for the account, which a success
    resolves. `invoice_absent`: the caller's batched read found no invoice for the period, so
    it is not read again; if another worker wrote one meanwhile, the unique (customer, period)
    constraint raises IntegrityError and nothing is written. When the customer's applications
    have other usage versions under lock than `prepared` was rated with, UsageChangedError is
    raised and nothing is written (`bill_account_rerating` rates again)."""
    if (
        invoice_absent
        and not unresolved_error
        and connection.vendor == "postgresql"
        and prepared.error is None
        and prepared.billable
        and not prepared.rated.hold_reasons
        and prepared.rated.lines
    ):
        # The common case of a month-end run, in two statements (see _issue_for_run).
        with transaction.atomic():
            _issue_for_run(
                customer_id=customer_id,
                period=period,
                now=now,
                prepared=prepared,
                billing_run=billing_run,
            )
        return ISSUED
    with transaction.atomic():
        customer = statements.lock_customer_row(customer_id)
        existing = None if invoice_absent else _existing_invoice(customer=customer, period=period)
        if existing is None or not existing.is_issued:
            _check_usage_unchanged(prepared, statements.lock_usage_versions(customer_id))
        if existing is not None and existing.is_issued:
            issued_by_this_run = (
                billing_run is not None and existing.billing_run_id == billing_run.pk
            )
            outcome = ISSUED if issued_by_this_run else ALREADY_BILLED
        elif prepared.error is not None:
            raise prepared.error
        elif not prepared.billable:
            if existing is not None:
                existing.delete()
            outcome = SKIPPED
        elif prepared.rated.hold_reasons:
            _invoice_write(
                customer=customer,
                period=period,
                prepared=prepared,
                existing=existing,
                now=now,
                billing_run=billing_run,
                system=True,
            )
            outcome = HELD
        else:
            # Take the number last-but-one: the sequence row stays locked until commit.
            number = number_allocate(series=INVOICE_SERIES, year=billing_date(now).year)
            invoice = _invoice_write(
                customer=customer,
                period=period,
                prepared=prepared,
                existing=existing,
                now=now,
                billing_run=billing_run,
                number=number,
                system=True,
            )
            _after_issue(invoice=invoice, customer=customer, now=now, issued_by=None)
            outcome = ISSUED
        if billing_run is not None and unresolved_error:
            BillingRunError.objects.filter(
                run=billing_run, customer_id=customer_id, resolved_at__isnull=True
            ).update(resolved_at=now)
    return outcome


def _issue_for_run(
    *,
    customer_id: int,
    period: Period,
    now: dt.datetime,
    prepared: PreparedAccount,
    billing_run: BillingRun | None,
) -> None:
    """PostgreSQL: issue a rated account's invoice for the run in two prepared statements
    instead of about a dozen: lock the customer row, take the number and reserve the invoice id
    (`statements.lock_customer_for_issue`), then write the invoice, its history row, lines,
    debit, event and an arrears start (`statements.issue_in_one_statement`).
    The rows are built here by the same functions as on the general path (`_invoice_write` +
    `_after_issue` + `update_arrears`), which SQLite, held invoices and finance's actions use.

    The caller saw no invoice for the period in its batched read; if one appeared since, the
    unique (customer, period) constraint raises IntegrityError and nothing is written. A debit
    key that already exists raises IntegrityError too, and the caller takes the general path,
    where `ledger_record` decides."""
    today = billing_date(now)
    customer, invoice_id, number, usage_version = statements.lock_customer_for_issue(
        customer_id, series=INVOICE_SERIES, year=today.year
    )
    _check_usage_unchanged(prepared, usage_version)
    rated = prepared.rated
    wall = timezone.now()
    invoice = {
        "id": invoice_id,
        **_invoice_row(
            customer=customer,
            period=period,
            rated=rated,
            now=now,
            billing_run=billing_run,
            number=number,
            issued_by=None,
            usage_version=prepared.usage_version,
        ),
        "created_at": wall,
        "updated_at": wall,
    }
    debit = _debit_row(
        customer_id=customer_id,
        number=number,
        period_start=period.start,
        amount=-rated.total,
        now=now,
        created_by=None,
    )
    dedupe_key, payload = _issued_event(
        invoice_id=invoice_id,
        number=number,
        period_start=period.start,
        total=rated.total,
        issue_date=today,
    )
    arrears_key, arrears_payload = arrears_started_event(
        customer_id=customer_id, today=today, balance=None
    )
    written = statements.issue_in_one_statement(
        invoice=invoice,
        history=_history_row(statements.invoice_history()[1], invoice, change="+", at=wall),
        lines=_line_rows(invoice_id, prepared),
        debit=debit,
        event=_event_row(customer_id, CustomerEvent.Kind.INVOICE_ISSUED, dedupe_key, payload, now),
        arrears=statements.ArrearsStart(
            today=today,
            customer_history=_history_row(
                statements.customer_history()[1], vars(customer), change="~", at=wall
            ),
            event=_event_row(
                customer_id, CustomerEvent.Kind.ARREARS_STARTED, arrears_key, arrears_payload, now
            ),
        ),
    )
    if rated.total != 0 and not written.debited:
        raise IntegrityError(f"ledger key {debit['idempotency_key']} is already used")
    for event_id in (written.event_id, written.arrears_event_id):
        if event_id is not None:
            deliver_after_commit(event_id)
    if written.arrears_started:
        customer.arrears_since = today
    # Anything else update_arrears would change (arrears running on a balance at or above
    # zero, which a debit cannot cause) it changes on the general path.
    _arrears_follow(customer=customer, balance=written.balance, now=now)


def _event_row(customer_id: int, kind: str, dedupe_key: str, payload: dict, now) -> dict:
    return {
        "customer_id": customer_id,
        "kind": str(kind),
        "dedupe_key": dedupe_key,
        "payload": payload,
        "created_at": now,
    }


def bill_customer(
    *, customer: Customer, period: Period, now: dt.datetime, billing_run: BillingRun | None = None
) -> str:
    """Bill one customer for a period: "issued" | "held" | "skipped" | "already_billed".

    Skipped: no paid plan, no contract and no high-volume application in the period, so no
    invoice (a free account gets no 0.00 invoice every month)."""
    return bill_account_rerating(
        customer_id=customer.pk,
        period=period,
        now=now,
        prepared=account_rate(customer=customer, period=period),
        billing_run=billing_run,
    )


USAGE_CHANGE_ATTEMPTS = 3


def bill_account_rerating(
    *,
    customer_id: int,
    period: Period,
    now: dt.datetime,
    prepared: PreparedAccount,
    billing_run: BillingRun | None = None,
    unresolved_error: bool = False,
    invoice_absent: bool = False,
) -> str:
    """`bill_account`, rating the account again from what is stored when its usage changed
    after `prepared` was rated (up to USAGE_CHANGE_ATTEMPTS times, then UsageChangedError), and
    looking for the invoice again when the caller's read saw none but one exists now."""
    for _attempt in range(USAGE_CHANGE_ATTEMPTS):
        try:
            return bill_account(
                customer_id=customer_id,
                period=period,
                now=now,
                prepared=prepared,
                billing_run=billing_run,
                unresolved_error=unresolved_error,
                invoice_absent=invoice_absent,
            )
        except IntegrityError:
            if not invoice_absent:
                raise
            # Another worker invoiced the account after the caller's read: look again.
            invoice_absent = False
        except UsageChangedError:
            prepared = account_rate(customer=customer_id, period=period)
    raise UsageChangedError(
        f"customer {customer_id}: usage kept changing while it was billed; retry the account"
    )


# --- Credit notes -----------------------------------------------------------------------------


def _credit_amount(value, line_id) -> Decimal:
    if isinstance(value, Money):
        value = as_decimal(value)
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvoiceError(f"line {line_id}: the amount must be a decimal number", "line_amounts")
    value = Decimal(value)
    if not value.is_finite() or round_money(value) != value:
        raise InvoiceError(
            f"line {line_id}: the amount must have at most two decimal places", "line_amounts"
        )
    if value <= 0:
        raise InvoiceError(f"line {line_id}: the amount must be above zero", "line_amounts")
    return value


def credited_by_line(*, invoice: Invoice) -> dict[int, Decimal]:
    """How much of each line earlier credit notes gave back."""
    rows = (
        CreditNoteLine.objects.filter(invoice_line__invoice=invoice)
        .values("invoice_line_id")
        .annotate(credited=Sum("amount"))
    )
    return {row["invoice_line_id"]: row["credited"] for row in rows}


def _same_credit_note(
    note: CreditNote, *, invoice: Invoice, amounts: dict[int, Decimal] | None
) -> CreditNote:
    same_invoice = note.invoice_id == invoice.pk
    if same_invoice and amounts is not None:
        given = {line.invoice_line_id: as_decimal(line.amount) for line in note.lines.all()}
        same_invoice = given == amounts
    if not same_invoice:
        raise InvoiceError(
            "this idempotency key was already used for a different credit note",
            "idempotency_key",
        )
    return note


def credit_note_create(
    *,
    invoice: Invoice,
    line_amounts: dict[int, Decimal] | None,
    reason: str,
    now: dt.datetime,
    idempotency_key: str,
    created_by=None,
) -> CreditNote:
    """Credit some or all of an issued invoice's lines, credit the ledger and number the note.

    `line_amounts`: InvoiceLine id -> amount to give back; None credits everything not yet
    credited. Refuses more than a line billed minus earlier credit notes. The same idempotency
    key with the same request returns the first note."""
    reason = (reason or "").strip()
    if not reason:
        raise InvoiceError("a credit note needs a reason", "reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvoiceError(f"the reason is longer than {MAX_REASON_LENGTH:,} characters", "reason")
    if not idempotency_key:
        raise InvoiceError("an idempotency key is required", "idempotency_key")
    amounts: dict[int, Decimal] | None = None
    if line_amounts is not None:
        if not line_amounts:
            raise InvoiceError("choose at least one line to credit", "line_amounts")
        amounts = {
            int(line_id): _credit_amount(value, line_id) for line_id, value in line_amounts.items()
        }
    with transaction.atomic():
        customer = lock_customer(customer=invoice.customer_id)
        previous = CreditNote.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            return _same_credit_note(previous, invoice=invoice, amounts=amounts)
        current = Invoice.objects.get(pk=invoice.pk)
        if not current.is_issued:
            raise InvoiceError("only issued invoices can be credited", "invoice")
        lines = {line.pk: line for line in current.lines.all()}
        credited = credited_by_line(invoice=current)
        remaining = {
            line_id: as_decimal(line.amount) - credited.get(line_id, ZERO)
            for line_id, line in lines.items()
        }
        if amounts is None:
            amounts = {line_id: left for line_id, left in remaining.items() if left > 0}
            if not amounts:
                raise InvoiceError(
                    f"invoice {current.number} has nothing left to credit", "line_amounts"
                )
        for line_id, amount in amounts.items():
            if line_id not in lines:
                raise InvoiceError(
                    f"line {line_id} is not a line of invoice {current.number}", "line_amounts"
                )
            if amount > remaining[line_id]:
                line = lines[line_id]
                raise InvoiceError(
                    f"line {line_id} ({line.app_key} {line.description}): at most "
                    f"{remaining[line_id]:.2f} can still be credited "
                    f"(billed {as_decimal(line.amount):.2f}, credited "
                    f"{credited.get(line_id, ZERO):.2f})",
                    "line_amounts",
                )
        total = sum(amounts.values(), ZERO)
        note = CreditNote.objects.create(
            invoice=current,
            customer=customer,
            number=number_allocate(series=CREDIT_NOTE_SERIES, year=billing_date(now).year),
            reason=reason,
            total=Money(total, CURRENCY),
            issued_at=now,
            issue_date=billing_date(now),
            created_by=created_by,
            idempotency_key=idempotency_key,
        )
        CreditNoteLine.objects.bulk_create(
            [
                CreditNoteLine(
                    credit_note=note,
                    invoice_line_id=line_id,
                    description=(f"{lines[line_id].app_key} {lines[line_id].description}")[:300],
                    amount=Money(amount, CURRENCY),
                )
                for line_id, amount in sorted(amounts.items())
            ]
        )
        fully_credited = all(
            remaining[line_id] - amounts.get(line_id, ZERO) <= 0 for line_id in lines
        )
        current.status = (
            Invoice.Status.CREDITED if fully_credited else Invoice.Status.PARTIALLY_CREDITED
        )
        current.save(update_fields=["status", "updated_at"])
        ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT,
            amount=total,
            idempotency_key=f"credit-note-credit:{note.number}",
            reference=note.number,
            reason=f"Credit note {note.number} on invoice {current.number}: {reason}"[:2000],
            now=now,
            created_by=created_by,
        )
        record_customer_event(
            customer=customer,
            kind=CustomerEvent.Kind.CREDIT_NOTE_ISSUED,
            dedupe_key=f"credit_note_issued:{note.pk}",
            payload={
                "credit_note_id": note.pk,
                "credit_note_number": note.number,
                "invoice_number": current.number,
                "total": format_amount(total),
                "issue_date": note.issue_date.isoformat(),
            },
            now=now,
        )
    return note
