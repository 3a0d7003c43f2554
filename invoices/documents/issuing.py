"""What an invoice's rows are, and the one path that issues an invoice.

Every writer of invoices builds its rows here: the invoice (frozen customer details, rated
total, status), its lines (`invoice_rows`), and for an issue the history row, the promotional
credit it consumes (`promo_use_rows`), the ledger debit of the rest and the invoice-issued
event (`issue_rows`). `invoice_issue_write` is the one issue path: the
month-end run (new invoices), `bill --inline` and re-runs (new, or replacing a draft/held one
with freshly rated lines) and finance's issue of a draft or held invoice (its stored lines)
all go through it. It writes the rows one of two ways, the same rows either way:

- PostgreSQL, a new invoice of the run: one prepared statement (`statements.issue_insert`);
- otherwise: the invoice as a draft, its lines, then the issued row, its history row, the
  debit and the event (`statements.insert_*`; the database takes lines only into an invoice
  that is not issued, or in the statement that writes both).

Then the ledger's arrears rule (`accounts.arrears`), at once or, for the run, once per chunk.

Rows are dicts of attname -> value.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError
from django.db.models import Model
from django.utils import timezone

from accounts.arrears import update_arrears
from accounts.events.records import customer_event_row, deliver_after_commit
from accounts.low_balance import low_balance_check
from accounts.models import Customer, CustomerEvent, LedgerEntry
from accounts.promo_credit import (
    ZERO,
    PromoGrantAvailable,
    promo_credit_available,
    promo_credit_consumption,
)
from accounts.services import ledger_record
from billingsite.clock import Period, billing_date
from billingsite.money import CURRENCY, as_decimal, format_amount
from invoices.documents.invoiced_months import invoiced_month_keep
from invoices.models import BillingRun, Invoice, InvoiceLine
from invoices.run import statements
from plans.rating.engine import RatedAccount

# --- The rows -----------------------------------------------------------------------------------


def invoice_rows(
    *,
    customer: Customer,
    period: Period,
    rated: RatedAccount,
    application_ids: dict[str, int],
    now: dt.datetime,
    billing_run: BillingRun | None,
    usage_version: tuple[int, int] | None,
) -> tuple[dict, list[dict]]:
    """What a rated invoice holds before it is issued: the invoice row (the frozen customer
    details and the rated total; held with its reasons, else draft) and its line rows (without
    their invoice id)."""
    invoice = {
        "customer_id": customer.pk,
        "period": period.start,
        "status": (Invoice.Status.HELD if rated.hold_reasons else Invoice.Status.DRAFT).value,
        "number": None,
        "hold_reason": "\n".join(rated.hold_reasons),
        "customer_name": customer.name,
        "customer_address": customer.address,
        "customer_tax_id": customer.tax_id,
        "customer_email": customer.billing_email,
        "total_currency": CURRENCY,
        "total": rated.total,
        # Sums of the lines' splits (plans.rating.tax, applied by the engine); the database
        # checks net_total + vat_total = total.
        "net_total": rated.net_total,
        "vat_total": rated.vat_total,
        "vat_rate": _one_rate(rated),
        # Decided at issue (`issue_rows`): drafts and held invoices have consumed nothing.
        "promo_credit_applied": None,
        "rated_at": now,
        "rated_usage_version": usage_version[1] if usage_version is not None else None,
        "issued_at": None,
        "issue_date": None,
        "issued_by_id": None,
        "billing_run_id": billing_run.pk if billing_run is not None else None,
    }
    lines = [
        {
            "position": position,
            "application_id": application_ids.get(line.app_key),
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
            "net_amount": line.net_amount,
            "vat_amount": line.vat_amount,
            "vat_rate": line.vat_rate,
            "first_day": line.first_day,
            "last_day": line.last_day,
            "days": line.days,
            "days_in_month": line.days_in_month,
            "peak_dau": line.peak_dau,
            "peak_day": line.peak_day,
            "explanation": line.explanation,
            "messages": line.messages,
        }
        for position, line in enumerate(rated.lines, start=1)
    ]
    return invoice, lines


def _one_rate(rated: RatedAccount) -> Decimal | None:
    """The VAT rate of the invoice: one price book rates a period, so every line has the
    same; None for an invoice without lines or without a split."""
    rates = {line.vat_rate for line in rated.lines}
    return rates.pop() if len(rates) == 1 else None


def stored_invoice_row(invoice: Invoice) -> dict:
    """The row of an invoice as stored (Money as its amount), for issuing it as it is."""
    row = {
        field.attname: getattr(invoice, field.attname) for field in Invoice._meta.concrete_fields
    }
    row["total"] = as_decimal(invoice.total)
    return row


def debit_row(
    *,
    customer_id: int,
    number: str,
    period_start: dt.date,
    amount: Decimal,
    now: dt.datetime,
    created_by_id: int | None,
) -> dict:
    """The ledger entry that debits an issued invoice. One per customer and period, whatever
    retries or re-runs happen (its idempotency key): an issued invoice is never deleted, so no
    second invoice can ever exist for the same pair."""
    return {
        "customer_id": customer_id,
        "kind": LedgerEntry.Kind.INVOICE_DEBIT.value,
        "amount_currency": CURRENCY,
        "amount": amount,
        "idempotency_key": f"invoice-debit:{customer_id}:{period_start:%Y-%m}",
        "reference": number,
        "reason": f"Invoice {number} for {period_start:%Y-%m}",
        "created_by_id": created_by_id,
        "created_at": now,
    }


def promo_use_rows(
    *,
    customer_id: int,
    number: str,
    period_start: dt.date,
    consumed: list[tuple[PromoGrantAvailable, Decimal]],
    now: dt.datetime,
    created_by_id: int | None,
) -> list[dict]:
    """The ledger entries of the promotional credit an issued invoice consumes: one per grant
    it draws on (`accounts.promo_credit.promo_credit_consumption` decided the amounts). Their
    keys, like the debit's, are one per customer, period and grant: a retried issue never
    consumes twice (and the database takes one use per grant and invoice number)."""
    return [
        {
            "customer_id": customer_id,
            "kind": LedgerEntry.Kind.PROMO_USE.value,
            "amount_currency": CURRENCY,
            "amount": -amount,
            "idempotency_key": (f"promo-use:{customer_id}:{period_start:%Y-%m}:{grant.grant_id}"),
            "reference": number,
            "reason": f"Invoice {number} for {period_start:%Y-%m}",
            "promo_grant_id": grant.grant_id,
            "created_by_id": created_by_id,
            "created_at": now,
        }
        for grant, amount in consumed
    ]


@functools.cache
def _history_tracked(model: type[Model]) -> tuple[str, ...]:
    """The attnames of `model` its history rows copy."""
    return tuple(
        field.attname
        for field in statements.history_model(model)._meta.concrete_fields
        if not field.name.startswith("history_")
    )


@dataclass(frozen=True)
class IssueRows:
    """Everything issuing one invoice writes."""

    invoice: dict  # the invoice as issued, with its id
    lines: list[dict]  # lines written with it (with the invoice id); [] keeps the stored ones
    history: dict  # its history row (simple-history's, written by hand: "+" new, "~" changed)
    # The ledger debit of what promotional credit left: None when nothing is left to debit
    # (a 0.00 invoice, or one the credit paid in full).
    debit: dict | None
    promo_uses: list[dict]  # the promotional credit it consumes (`promo_use_rows`)
    event: dict  # the invoice-issued customer event


def issue_rows(
    *,
    invoice: dict,
    lines: list[dict],
    number: str,
    now: dt.datetime,
    issued_by: User | None,
    new: bool,
    wall: dt.datetime,
    promo_grants: Sequence[PromoGrantAvailable],
) -> IssueRows:
    """The rows of `invoice` (a draft or held row with its id) issued under `number` at `now`
    by `issued_by` (None: the run): numbered, dated, frozen; its history row; the promotional
    credit it consumes from `promo_grants` (the customer's grants available at `now`, earliest
    expiry first) and the debit of the rest of its total; the event that tells the customer. A
    held invoice keeps its hold reason as the record of why it was reviewed. `wall`: the
    wall-clock time of the write."""
    issued_by_id = getattr(issued_by, "pk", None)
    today = billing_date(now)
    total = invoice["total"]
    consumed = promo_credit_consumption(total=total, grants=promo_grants)
    promo_applied = sum((amount for _, amount in consumed), ZERO)
    issued = {
        **invoice,
        "status": Invoice.Status.ISSUED.value,
        "number": number,
        "issued_at": now,
        "issue_date": today,
        "issued_by_id": issued_by_id,
        "promo_credit_applied": promo_applied,
        "updated_at": wall,
    }
    if new:
        issued.setdefault("created_at", wall)
    invoice_id = issued["id"]
    history = {name: issued[name] for name in _history_tracked(Invoice)}
    history.update(
        history_date=wall,
        history_change_reason=None,
        history_type="+" if new else "~",
        history_user_id=issued_by_id,
    )
    from_balance = total - promo_applied
    debit = None
    if from_balance > 0:
        debit = debit_row(
            customer_id=issued["customer_id"],
            number=number,
            period_start=issued["period"],
            amount=-from_balance,
            now=now,
            created_by_id=issued_by_id,
        )
    promo_uses = promo_use_rows(
        customer_id=issued["customer_id"],
        number=number,
        period_start=issued["period"],
        consumed=consumed,
        now=now,
        created_by_id=issued_by_id,
    )
    event = customer_event_row(
        customer_id=issued["customer_id"],
        kind=CustomerEvent.Kind.INVOICE_ISSUED,
        dedupe_key=f"invoice_issued:{invoice_id}",
        payload={
            "invoice_id": invoice_id,
            "invoice_number": number,
            "period": f"{issued['period']:%Y-%m}",
            "total": format_amount(total),
            "issue_date": today.isoformat(),
        },
        now=now,
    )
    return IssueRows(
        invoice=issued,
        lines=[{"invoice_id": invoice_id, **line} for line in lines],
        history=history,
        debit=debit,
        promo_uses=promo_uses,
        event=event,
    )


# --- The one issue path -------------------------------------------------------------------------


def invoice_issue_write(
    *,
    customer: Customer,
    invoice: dict,
    lines: list[dict] | None,
    number: str,
    now: dt.datetime,
    issued_by: User | None = None,
    in_one_statement: bool = False,
    arrears_deferred: set[int] | None = None,
    promo_grants: Sequence[PromoGrantAvailable] | None = None,
) -> int:
    """Issue an invoice under the customer's row lock, which the caller holds, with `number`
    (taken in the same transaction). Returns the invoice's id.

    `invoice`: its row (`invoice_rows` or `stored_invoice_row`); with an "id" it is stored
    already (a draft or held invoice), else it is new. `lines`: its line rows, written with it
    (replacing a stored invoice's lines); None keeps the stored lines (finance issues what it
    reviewed). `in_one_statement` (PostgreSQL, a new invoice whose id the caller reserved):
    the run's prepared statement; a debit key that exists already then raises IntegrityError
    and nothing is written (the caller goes the general way, where `ledger_record` decides).
    `arrears_deferred`: the caller applies the arrears and low-balance rules itself later (the
    run, once per chunk with `accounts.arrears.arrears_follow` and
    `accounts.low_balance.low_balance_follow`): the customer is added to it.
    `promo_grants`: the customer's promotional credit available at `now`, read by the caller
    (the run: once per chunk); None: read here, under the lock. The run's statement needs it.
    A stale read that would take a grant below zero is refused by the database
    (IntegrityError, nothing written): the run then bills the account the general way."""
    new = "id" not in invoice or in_one_statement
    wall = timezone.now()
    if promo_grants is None:
        assert not in_one_statement, "the run's statement is given the chunk's credit"
        promo_grants = promo_credit_available(customer=customer, now=now)
    if in_one_statement:
        rows = issue_rows(
            invoice=invoice,
            lines=lines or [],
            number=number,
            now=now,
            issued_by=issued_by,
            new=True,
            wall=wall,
            promo_grants=promo_grants,
        )
        debited, event_id = statements.issue_insert(rows)
        if rows.debit is not None and not debited:
            raise IntegrityError(f"ledger key {rows.debit['idempotency_key']} is already used")
    else:
        if new:
            invoice_id = statements.insert_one(
                Invoice,
                {
                    **invoice,
                    "status": Invoice.Status.DRAFT.value,
                    "created_at": wall,
                    "updated_at": wall,
                },
            )
            invoice = {"id": invoice_id, **invoice, "created_at": wall}
        elif lines is not None:
            InvoiceLine.objects.filter(invoice_id=invoice["id"]).delete()
        rows = issue_rows(
            invoice=invoice,
            lines=lines or [],
            number=number,
            now=now,
            issued_by=issued_by,
            new=new,
            wall=wall,
            promo_grants=promo_grants,
        )
        # Lines go in while the invoice is not issued yet: the database takes no line into an
        # issued invoice (but in the statement that writes both).
        statements.insert_many(InvoiceLine, rows.lines)
        statements.update_one(Invoice, rows.invoice)
        statements.insert_many(statements.history_model(Invoice), [rows.history])
        # The statement path writes the same upsert inside its one statement.
        invoiced_month_keep(
            customer_id=rows.invoice["customer_id"],
            period=rows.invoice["period"],
            status=rows.invoice["status"],
            number=rows.invoice["number"],
        )
        # A use whose key exists raises IntegrityError and rolls the issue back: its key is
        # the invoice's customer and period, which no second invoice can have.
        statements.insert_many(LedgerEntry, rows.promo_uses)
        debited = (
            rows.debit is not None
            and statements.insert_ignoring_conflict(
                LedgerEntry, rows.debit, conflict="idempotency_key"
            )
            is not None
        )
        if rows.debit is not None and not debited:
            # The key exists: ledger_record returns the same entry or raises
            # IdempotencyConflict (another amount or customer), which rolls the issue back.
            ledger_record(
                customer=customer,
                kind=LedgerEntry.Kind.INVOICE_DEBIT,
                amount=rows.debit["amount"],
                idempotency_key=rows.debit["idempotency_key"],
                reference=rows.debit["reference"],
                reason=rows.debit["reason"],
                now=now,
                created_by=issued_by,
            )
        event_id = statements.insert_ignoring_conflict(
            CustomerEvent, rows.event, conflict="dedupe_key"
        )
    if event_id is not None:
        deliver_after_commit(event_id)
    if rows.debit is not None or rows.promo_uses:
        if arrears_deferred is not None:
            arrears_deferred.add(customer.pk)
        else:
            update_arrears(customer=customer, now=now)
            low_balance_check(customer=customer, now=now)
    return rows.invoice["id"]
