"""Write paths for invoices and credit notes.

Invariants kept here:
- One invoice per customer and period (a unique constraint), rated only by `plans.rating.engine`
  through `plans.batch_rating.customers_rate`.
- Every write for a customer runs in one transaction that first locks the customer row; the
  ledger services lock the same row, so a bill, a deposit and a credit note for one customer
  never interleave.
- Issuing gives the number (gapless, inside the same transaction), freezes the invoice and
  debits the ledger once (idempotency key per customer and period). Held invoices are neither
  numbered nor debited.
- Credit notes never give back more than a line billed, counting earlier credit notes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Sum
from moneyed import Money

from accounts.events.records import record_customer_event
from accounts.locks import lock_customer
from accounts.models import Customer, CustomerEvent, LedgerEntry
from accounts.promo_credit import (
    PromoGrantAvailable,
    credit_note_promo_split,
    promo_credits_available,
)
from accounts.services import MAX_REASON_LENGTH, ledger_record
from billingsite.clock import Period, billing_date
from billingsite.money import CURRENCY, as_decimal, format_amount, round_money
from invoices.documents.fapiao import fapiao_red_letter_flag
from invoices.documents.invoiced_months import invoice_kept, invoiced_month_forget
from invoices.documents.issuing import invoice_issue_write, invoice_rows, stored_invoice_row
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
from plans.batch_rating import customers_rate
from plans.rating.engine import PriceBook, RatedAccount
from plans.rating.tax import credited_vat

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
    # The customer's promotional credit available at the issue moment, read with the chunk
    # (`accounts.promo_credit.promo_credits_available`); None: not read (the issue path reads
    # it under the lock). The run's one-statement issue needs it.
    promo_grants: tuple[PromoGrantAvailable, ...] | None = None

    @property
    def billable(self) -> bool:
        """Something to bill or to review: a paid plan or a contract in the period, or a
        high-volume application that needs finance (even on the free plan)."""
        if self.rated is None:
            return False
        return any(app.has_paid_plan or app.hold_reason for app in self.rated.applications)


def accounts_rate(
    *,
    customer_ids: Iterable[int],
    period: Period,
    book: PriceBook | None = None,
    issue_at: dt.datetime | None = None,
) -> dict[int, PreparedAccount]:
    """Rate many customers for a period (`plans.batch_rating.customers_rate`, a fixed number
    of queries) and check each invoice fits its columns. With `issue_at` (the run's billing
    moment) also the promotional credit available then, in one more query. Nothing is
    written."""
    customer_ids = list(customer_ids)
    prepared = _accounts_rated(customer_ids=customer_ids, period=period, book=book)
    if issue_at is not None:
        available = promo_credits_available(customer_ids=customer_ids, now=issue_at)
        prepared = {
            customer_id: dataclasses.replace(
                account, promo_grants=tuple(available.get(customer_id, ()))
            )
            for customer_id, account in prepared.items()
        }
    return prepared


def _accounts_rated(
    *, customer_ids: list[int], period: Period, book: PriceBook | None
) -> dict[int, PreparedAccount]:
    prepared: dict[int, PreparedAccount] = {}
    for customer_id, rating in customers_rate(
        customer_ids=customer_ids, period=period, book=book
    ).items():
        usage_version = rating.usage_version
        if rating.error is not None:
            prepared[customer_id] = PreparedAccount(
                customer_id, None, {}, error=rating.error, usage_version=usage_version
            )
            continue
        assert rating.rated is not None, "rated exactly when there is no error"
        too_large = invoice_size_problem(rated=rating.rated)
        if too_large is not None:
            prepared[customer_id] = PreparedAccount(
                customer_id, None, {}, error=InvoiceTooLarge(too_large), usage_version=usage_version
            )
            continue
        prepared[customer_id] = PreparedAccount(
            customer_id, rating.rated, rating.application_ids, usage_version=usage_version
        )
    return prepared


def account_rate(*, customer: Customer | int, period: Period) -> PreparedAccount:
    customer_id = customer if isinstance(customer, int) else customer.pk
    return accounts_rate(customer_ids=[customer_id], period=period)[customer_id]


# --- Writing invoices -------------------------------------------------------------------------


def _invoice_write(
    *,
    customer: Customer,
    period: Period,
    prepared: PreparedAccount,
    existing: Invoice | None,
    now: dt.datetime,
    billing_run: BillingRun | None,
) -> Invoice:
    """Create or replace the draft/held invoice with freshly rated lines (the ORM writes the
    invoice, so its history row records the user of the request)."""
    rated = prepared.rated
    assert rated is not None
    fields, lines = invoice_rows(
        customer=customer,
        period=period,
        rated=rated,
        application_ids=prepared.application_ids,
        now=now,
        billing_run=billing_run,
        usage_version=prepared.usage_version,
    )
    fields["total"] = Money(fields.pop("total"), fields.pop("total_currency"))
    if existing is not None:
        # Only drafts and held invoices are replaced; the caller checked under the lock.
        InvoiceLine.objects.filter(invoice=existing).delete()
        for name, value in fields.items():
            setattr(existing, name, value)
        existing.save()
        invoice = existing
    else:
        invoice = Invoice.objects.create(**fields)
    statements.insert_many(InvoiceLine, [{"invoice_id": invoice.pk, **line} for line in lines])
    invoice_kept(invoice)
    return invoice


def _issue_rated(
    *,
    customer: Customer,
    period: Period,
    prepared: PreparedAccount,
    existing: Invoice | None,
    now: dt.datetime,
    billing_run: BillingRun | None,
    number: str,
    invoice_id: int | None = None,
    arrears_deferred: set[int] | None = None,
) -> int:
    """Issue a freshly rated account's invoice (new, or replacing a draft/held one) through
    the one issue path. `invoice_id`: reserved by the run's first statement (PostgreSQL): the
    rows go in one statement."""
    assert prepared.rated is not None
    fields, lines = invoice_rows(
        customer=customer,
        period=period,
        rated=prepared.rated,
        application_ids=prepared.application_ids,
        now=now,
        billing_run=billing_run,
        usage_version=prepared.usage_version,
    )
    if existing is not None:
        fields = {"id": existing.pk, **fields, "created_at": existing.created_at}
    elif invoice_id is not None:
        fields = {"id": invoice_id, **fields}
    return invoice_issue_write(
        customer=customer,
        invoice=fields,
        lines=lines,
        number=number,
        now=now,
        in_one_statement=invoice_id is not None,
        arrears_deferred=arrears_deferred,
        # The run's statement takes the chunk's read; the general path reads under the lock.
        promo_grants=prepared.promo_grants if invoice_id is not None else None,
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
                invoiced_month_forget(customer_id=customer.pk, period=existing.period)
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


def invoice_issue(*, invoice: Invoice, now: dt.datetime, issued_by: User | None = None) -> Invoice:
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
        number = number_allocate(series=INVOICE_SERIES, year=billing_date(now).year)
        invoice_issue_write(
            customer=customer,
            invoice=stored_invoice_row(current),
            lines=None,
            number=number,
            now=now,
            issued_by=issued_by,
        )
    current.refresh_from_db()
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
    arrears_deferred: set[int] | None = None,
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
    raised and nothing is written (`bill_account_rerating` rates again).
    `arrears_deferred`: see `invoices.documents.issuing.invoice_issue_write` (the run's chunks)."""
    if (
        invoice_absent
        and not unresolved_error
        and connection.vendor == "postgresql"
        and prepared.error is None
        and prepared.billable
        and prepared.rated is not None
        and not prepared.rated.hold_reasons
        and prepared.rated.lines
        and prepared.promo_grants is not None
    ):
        # The common case of a month-end run: the locks, the number and the invoice's id in
        # one statement, then the same rows as below in one more.
        with transaction.atomic():
            customer, invoice_id, number, usage_version = statements.lock_customer_for_issue(
                customer_id, series=INVOICE_SERIES, year=billing_date(now).year
            )
            _check_usage_unchanged(prepared, usage_version)
            _issue_rated(
                customer=customer,
                period=period,
                prepared=prepared,
                existing=None,
                now=now,
                billing_run=billing_run,
                number=number,
                invoice_id=invoice_id,
                arrears_deferred=arrears_deferred,
            )
        return ISSUED
    with transaction.atomic():
        customer = lock_customer(customer=customer_id)
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
                invoiced_month_forget(customer_id=customer.pk, period=existing.period)
            outcome = SKIPPED
        elif prepared.rated is not None and prepared.rated.hold_reasons:
            _invoice_write(
                customer=customer,
                period=period,
                prepared=prepared,
                existing=existing,
                now=now,
                billing_run=billing_run,
            )
            outcome = HELD
        else:
            # Take the number last-but-one: the sequence row stays locked until commit.
            _issue_rated(
                customer=customer,
                period=period,
                prepared=prepared,
                existing=existing,
                now=now,
                billing_run=billing_run,
                number=number_allocate(series=INVOICE_SERIES, year=billing_date(now).year),
                arrears_deferred=arrears_deferred,
            )
            outcome = ISSUED
        if billing_run is not None and unresolved_error:
            BillingRunError.objects.filter(
                run=billing_run, customer_id=customer_id, resolved_at__isnull=True
            ).update(resolved_at=now)
    return outcome


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
    arrears_deferred: set[int] | None = None,
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
                arrears_deferred=arrears_deferred,
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


def _credit_amount(value: object, line_id: int) -> Decimal:
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


def _credited_vat_by_line(
    *,
    lines: dict[int, InvoiceLine],
    credited: dict[int, Decimal],
    amounts: dict[int, Decimal],
    invoice: Invoice,
) -> dict[int, Decimal] | None:
    """The VAT each credited line gives back, in proportion to the gross
    (`plans.rating.tax.credited_vat`: cumulative rounding, so a line credited in full gives
    back exactly its VAT). None when the invoice was issued without a VAT split (before VAT
    was recorded): its credit notes are gross only too."""
    if invoice.vat_total is None:
        return None
    return {
        line_id: credited_vat(
            line_gross=as_decimal(lines[line_id].amount),
            line_vat=lines[line_id].vat_amount,
            credited_before=credited.get(line_id, ZERO),
            credited_now=amount,
        )
        for line_id, amount in amounts.items()
    }


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


def _credit_note_promo_restore(
    *,
    customer: Customer,
    invoice: Invoice,
    note: CreditNote,
    amount: Decimal,
    now: dt.datetime,
    created_by: User | None,
) -> None:
    """Give back as promotional credit (a `promo_grant`, never paid balance) the part of a
    credit note that promotional credit had paid. It expires with the latest grant the invoice
    drew on; if that day is over, at the end of today, so the lapse job lapses it tomorrow
    (an expiry in the past would date the lapse before the grant)."""
    latest_expiry = LedgerEntry.objects.filter(
        customer_id=customer.pk, kind=LedgerEntry.Kind.PROMO_USE, reference=invoice.number
    ).aggregate(latest=Max("promo_grant__expires_on"))["latest"]
    today = billing_date(now)
    ledger_record(
        customer=customer,
        kind=LedgerEntry.Kind.PROMO_GRANT,
        amount=amount,
        idempotency_key=f"credit-note-promo:{note.number}",
        reference=note.number,
        reason=f"Restored by credit note {note.number} on invoice {invoice.number}",
        expires_on=max(latest_expiry or today, today),
        now=now,
        created_by=created_by,
    )


def credit_note_returns(*, invoice: Invoice, credit_total: Decimal) -> tuple[Decimal, Decimal]:
    """(promotional credit returned, paid balance returned) by a credit note of `credit_total`
    on `invoice` after its notes so far: `credit_note_promo_split` on the invoice's figures.
    `credit_note_create` writes it; the admin's confirmation page shows it before."""
    return credit_note_promo_split(
        invoice_total=as_decimal(invoice.total),
        promo_credit_applied=invoice.promo_credit_used,
        already_given_back_promo=(
            invoice.credit_notes.aggregate(total=Sum("promo_credit_returned"))["total"] or ZERO
        ),
        credit_total=credit_total,
    )


def credit_note_create(
    *,
    invoice: Invoice,
    line_amounts: dict[int, Decimal] | None,
    reason: str,
    now: dt.datetime,
    idempotency_key: str,
    created_by: User | None = None,
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
        # A discount line is negative, so the charge lines add up to more than the invoice:
        # what can still be given back is bounded by the invoice's total too.
        invoice_left = as_decimal(current.total) - sum(credited.values(), ZERO)
        if amounts is None:
            amounts = {}
            to_give = invoice_left
            for line_id, left in sorted(
                remaining.items(), key=lambda item: lines[item[0]].position
            ):
                if left > 0 and to_give > 0:
                    amounts[line_id] = min(left, to_give)
                    to_give -= amounts[line_id]
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
        if total > invoice_left:
            raise InvoiceError(
                f"invoice {current.number}: at most {invoice_left:.2f} can still be credited "
                f"(total {as_decimal(current.total):.2f} after its discounts, credited "
                f"{sum(credited.values(), ZERO):.2f})",
                "line_amounts",
            )
        vat_by_line = _credited_vat_by_line(
            lines=lines, credited=credited, amounts=amounts, invoice=current
        )
        vat_total = None if vat_by_line is None else sum(vat_by_line.values(), ZERO)
        promo_part, paid_part = credit_note_returns(invoice=current, credit_total=total)
        note = CreditNote.objects.create(
            invoice=current,
            customer=customer,
            number=number_allocate(series=CREDIT_NOTE_SERIES, year=billing_date(now).year),
            reason=reason,
            # (django-stubs types djmoney's MoneyField as its DecimalField base)
            total=Money(total, CURRENCY),  # type: ignore[misc]
            net_total=None if vat_total is None else total - vat_total,
            vat_total=vat_total,
            promo_credit_returned=promo_part,
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
                    amount=Money(amount, CURRENCY),  # type: ignore[misc]  # (as above)
                    net_amount=None if vat_by_line is None else amount - vat_by_line[line_id],
                    vat_amount=None if vat_by_line is None else vat_by_line[line_id],
                )
                for line_id, amount in sorted(amounts.items())
            ]
        )
        fully_credited = total >= invoice_left
        current.status = (
            Invoice.Status.CREDITED if fully_credited else Invoice.Status.PARTIALLY_CREDITED
        )
        current.save(update_fields=["status", "updated_at"])
        invoice_kept(current)
        fapiao_red_letter_flag(invoice=current, now=now)
        if promo_part > 0:
            _credit_note_promo_restore(
                customer=customer,
                invoice=current,
                note=note,
                amount=promo_part,
                now=now,
                created_by=created_by,
            )
        if paid_part > 0:
            ledger_record(
                customer=customer,
                kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT,
                amount=paid_part,
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
