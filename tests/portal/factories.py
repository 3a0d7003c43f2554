"""Issued invoices and credit notes for the portal tests, built with the ORM.

The billing service (`invoices.documents.services`) is written in parallel; these factories freeze the
real rating engine's lines exactly as issuing does (names, unit prices, explanations) and post
the debit with `accounts.services.ledger_record`, so the pages are tested against realistic
documents without depending on that module.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from moneyed import Money

from accounts.models import Customer, LedgerEntry
from accounts.services import ledger_record
from billingsite.clock import BILLING_TZ, Period
from invoices.documents.invoiced_months import invoice_kept
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from invoices.selectors import rate_customer_period
from plans.rating.engine import PricedLine

_numbers = {"INV": 0, "CN": 0}


def next_number(series: str, year: int) -> str:
    _numbers[series] += 1
    return f"{series}-{year}-{_numbers[series]:06d}"


def issue_moment(period: Period) -> dt.datetime:
    """00:00 on the 2nd of the next month, Asia/Shanghai: when the month-end run issues."""
    following = period.next()
    return dt.datetime(following.year, following.month, 2, 0, 5, tzinfo=BILLING_TZ)


def _cny(value: Decimal) -> Money:
    return Money(value, "CNY")


def issued_invoice(
    *,
    customer: Customer,
    period: Period,
    lines: list[PricedLine] | None = None,
    number: str | None = None,
    issued_at: dt.datetime | None = None,
    status: str = Invoice.Status.ISSUED,
    debit: bool = True,
) -> Invoice:
    """An issued invoice for the customer's applications as rated now (or the given lines),
    with its balance debit. `status` draft/held gives an unissued one (no number, no debit)."""
    if lines is None:
        lines = list(rate_customer_period(customer=customer, period=period).lines)
    issued_at = issued_at or issue_moment(period)
    is_issued = status in Invoice.ISSUED_STATES
    total = sum((line.amount for line in lines), Decimal("0.00"))
    # Written as a draft with its lines, then issued: the database adds no line to an issued
    # invoice.
    invoice = Invoice.objects.create(
        customer=customer,
        period=period.start,
        status=Invoice.Status.DRAFT if is_issued else status,
        number=(number or next_number("INV", issued_at.year)) if is_issued else None,
        hold_reason="" if status != Invoice.Status.HELD else "high-volume application",
        customer_name=customer.name,
        customer_address=customer.address,
        customer_tax_id=customer.tax_id,
        customer_email=customer.billing_email,
        total=_cny(total),
        rated_at=issued_at,
        issued_at=issued_at if is_issued else None,
        issue_date=issued_at.astimezone(BILLING_TZ).date() if is_issued else None,
    )
    apps = {app.app_key: app for app in customer.applications.all()}
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=position,
            application=apps.get(line.app_key),
            app_key=line.app_key,
            app_name=line.app_name,
            code=line.code,
            category=line.category,
            plan_code=line.plan_code,
            plan_name=line.plan_name,
            description=line.description,
            quantity=line.quantity,
            unit_price=_cny(line.unit_price),
            amount=_cny(line.amount),
            first_day=line.first_day,
            last_day=line.last_day,
            days=line.days,
            days_in_month=line.days_in_month,
            peak_dau=line.peak_dau,
            peak_day=line.peak_day,
            explanation=line.explanation,
            messages=line.messages,
        )
        for position, line in enumerate(lines, start=1)
    )
    if is_issued:
        Invoice.objects.filter(pk=invoice.pk).update(status=status)
        invoice.status = status
    invoice_kept(invoice)
    if is_issued and debit and total > 0:
        ledger_record(
            customer=customer,
            kind=LedgerEntry.Kind.INVOICE_DEBIT,
            amount=-total,
            idempotency_key=f"invoice_debit:{invoice.pk}",
            reference=invoice.number,
            now=issued_at,
        )
        customer.refresh_from_db()
    return invoice


def credit_note(
    *,
    invoice: Invoice,
    amounts: dict[int, Decimal] | None = None,
    reason: str = "Goodwill credit",
    issued_at: dt.datetime | None = None,
) -> CreditNote:
    """A credit note over some lines (InvoiceLine id -> amount; None: every priced line in
    full), with its ledger credit."""
    issued_at = issued_at or invoice.issued_at + dt.timedelta(days=3)
    if amounts is None:
        amounts = {
            line.pk: line.amount.amount for line in invoice.lines.all() if line.amount.amount > 0
        }
    total = sum(amounts.values(), Decimal("0.00"))
    note = CreditNote.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        number=next_number("CN", issued_at.year),
        reason=reason,
        total=_cny(total),
        issued_at=issued_at,
        issue_date=issued_at.astimezone(BILLING_TZ).date(),
        idempotency_key=f"test-credit-note:{invoice.pk}:{CreditNote.objects.count()}",
    )
    lines = {line.pk: line for line in invoice.lines.all()}
    for line_id, amount in amounts.items():
        CreditNoteLine.objects.create(
            credit_note=note,
            invoice_line=lines[line_id],
            description=lines[line_id].description,
            amount=_cny(amount),
        )
    fully = total == invoice.total.amount
    Invoice.objects.filter(pk=invoice.pk).update(
        status=Invoice.Status.CREDITED if fully else Invoice.Status.PARTIALLY_CREDITED
    )
    invoice.refresh_from_db()
    invoice_kept(invoice)
    ledger_record(
        customer=invoice.customer,
        kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT,
        amount=total,
        idempotency_key=f"credit_note_credit:{note.pk}",
        reference=note.number,
        now=issued_at,
    )
    invoice.refresh_from_db()
    return note
