"""The monthly account statement: one period's ledger movements, its invoice and the balances,
as a PDF (WeasyPrint, like the invoices) e-mailed to customers who opted in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.template.loader import render_to_string
from django.utils import translation

from accounts.events.records import record_customer_event
from accounts.models import Customer, CustomerEvent, LedgerEntry
from accounts.selectors import ledger_balance, ledger_balance_in_statement
from billingsite.clock import Period, start_of_day
from billingsite.issuer import issuer
from billingsite.money import as_decimal
from invoices.documents.pdf import invoice_ledger_entry, pdf_first_language, write_pdf
from invoices.models import BillingRun, CreditNote, Invoice

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class AccountStatement:
    customer: Customer
    period: Period
    opening_balance: Decimal
    # The month's ledger movements (Asia/Shanghai), oldest first.
    entries: list[LedgerEntry]
    closing_balance: Decimal
    deposits: Decimal
    credits: Decimal
    debits: Decimal
    # The invoice of the period (issued after the month ends) and the balance after its debit.
    invoice: Invoice | None
    balance_after_invoice: Decimal | None
    credit_notes: list[CreditNote]


def account_statement(*, customer: Customer, period: Period) -> AccountStatement:
    start = start_of_day(period.start)
    end = start_of_day(period.next().start)
    ledger = LedgerEntry.objects.filter(customer=customer)
    opening = ledger_balance(customer=customer, before=start)
    entries = list(
        ledger.filter(created_at__gte=start, created_at__lt=end).order_by("created_at", "id")
    )
    amounts = [(entry.kind, as_decimal(entry.amount)) for entry in entries]
    invoice = (
        Invoice.objects.filter(customer=customer, period=period.start, number__isnull=False)
        .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.HELD])
        .first()
    )
    balance_after = None
    if invoice is not None:
        debit = invoice_ledger_entry(invoice=invoice)
        balance_after = ledger_balance_in_statement(entry=debit) if debit is not None else None
    return AccountStatement(
        customer=customer,
        period=period,
        opening_balance=opening,
        entries=entries,
        closing_balance=opening + sum((a for _k, a in amounts), ZERO),
        deposits=sum((a for k, a in amounts if k == LedgerEntry.Kind.DEPOSIT), ZERO),
        credits=sum((a for k, a in amounts if k != LedgerEntry.Kind.DEPOSIT and a > 0), ZERO),
        debits=sum((a for _k, a in amounts if a < 0), ZERO),
        invoice=invoice,
        balance_after_invoice=balance_after,
        credit_notes=list(
            CreditNote.objects.filter(
                customer=customer, issue_date__gte=period.start, issue_date__lte=period.end
            )
            .select_related("invoice")
            .order_by("issue_date", "id")
        ),
    )


def statement_pdf_filename(statement: AccountStatement) -> str:
    return f"statement-{statement.customer.external_id}-{statement.period}.pdf"


def render_statement_pdf(*, statement: AccountStatement, language: str | None = None) -> bytes:
    with translation.override("en"):
        html = render_to_string(
            "pdf/statement.html",
            {
                "statement": statement,
                "period_end": statement.period.end,
                "issuer": issuer(),
                "account_id": statement.customer.external_id,
                "first_language": pdf_first_language(
                    customer=statement.customer, language=language
                ),
            },
        )
    return write_pdf(html)


def monthly_statements_record(*, period: Period, now: dt.datetime) -> int | None:
    """Record the statement event of every customer who opted in, once the period's billing
    run has finished (so its invoice is in the statement); once per customer and period, so
    beat may call it every hour of the 2nd. Returns how many were recorded now (None: the
    run has not finished)."""
    if not BillingRun.objects.filter(
        period=period.start, status=BillingRun.Status.FINISHED
    ).exists():
        return None
    created = 0
    for customer in Customer.objects.filter(monthly_statement=True).order_by("id"):
        _event, was_created = record_customer_event(
            customer=customer,
            kind=CustomerEvent.Kind.MONTHLY_STATEMENT,
            dedupe_key=f"monthly_statement:{customer.pk}:{period}",
            payload={"period": str(period)},
            now=now,
        )
        created += was_created
    return created
