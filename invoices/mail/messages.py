"""The document e-mails: invoice issued, credit note, monthly statement. Each attaches its PDF
(first language: the customer's) and links to the document on the invoice page."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.low_balance import monthly_run_rates, runway
from accounts.mail.content import Attachment, Message, day, message_builder, money
from accounts.models import CustomerEvent
from accounts.selectors import ledger_balance_in_statement
from billingsite.clock import Period
from billingsite.issuer import portal_url
from billingsite.money import as_decimal
from invoices.documents.pdf import (
    credit_note_pdf_filename,
    invoice_ledger_entry,
    invoice_pdf_filename,
    render_credit_note_pdf,
    render_invoice_pdf,
)
from invoices.mail.account_statement import (
    account_statement,
    render_statement_pdf,
    statement_pdf_filename,
)
from invoices.models import CreditNote, Invoice

logger = logging.getLogger(__name__)

Kind = CustomerEvent.Kind


def _attach(render, filename: str) -> list[Attachment]:
    if not settings.BILLING_EMAIL_ATTACH_PDF:
        return []
    return [Attachment(filename=filename, content=render(language=translation.get_language()))]


def days_lasting(*, event: CustomerEvent, balance: Decimal) -> int | None:
    """How many days `balance` lasts: the one rule of days left (`accounts.low_balance.runway`,
    at the last invoice's debit), as the balance page, the customers list and the low-balance
    alert say it."""
    rate = monthly_run_rates(customer_ids=[event.customer_id]).get(event.customer_id)
    return runway(balance=balance, monthly_run_rate=rate).days_left


@message_builder(Kind.INVOICE_ISSUED)
def invoice_issued_message(event: CustomerEvent) -> Message:
    data = event.payload
    invoice = Invoice.objects.select_related("customer").get(pk=data.get("invoice_id"))
    number, period, total = (
        data.get("invoice_number"),
        data.get("period"),
        Decimal(data.get("total")),
    )
    debit = invoice_ledger_entry(invoice=invoice)
    promo = invoice.promo_credit_used
    facts = [
        (_("Invoice number"), number),
        (_("Billing period"), period),
        (_("Issue date"), day(data.get("issue_date"))),
    ]
    if promo:
        facts.append((_("Paid by promotional credit"), money(promo)))
    facts.append((_("Amount deducted"), money(total - promo)))
    steps = []
    if debit is not None:
        balance_after = ledger_balance_in_statement(entry=debit)
        facts.append((_("Balance after this invoice"), money(balance_after)))
        days = days_lasting(event=event, balance=balance_after)
        if balance_after < 0:
            steps.append(
                _(
                    "Your balance is negative after this invoice: top up at least %(owed)s "
                    "to keep your applications running (see “How to pay” below)."
                )
                % {"owed": money(-balance_after)}
            )
        elif days is not None:
            facts.append((_("Days the balance lasts"), str(days)))
            steps.append(
                _(
                    "At your current plans the balance lasts about %(days)s days. Top up "
                    "before it runs out to keep your applications running."
                )
                % {"days": days}
            )
    if not steps:
        steps.append(_("Nothing to do: the amount is already deducted from your balance."))
    return Message(
        subject=_("Invoice %(number)s for %(period)s: %(total)s")
        % {"number": number, "period": period, "total": money(total)},
        heading=_("Your invoice for %(period)s") % {"period": period},
        paragraphs=[
            (
                _(
                    "Invoice %(number)s for %(period)s was issued on %(date)s. Promotional "
                    "credit paid %(promo)s of its %(total)s; %(rest)s was deducted from your "
                    "prepaid balance."
                )
                if promo
                else _(
                    "Invoice %(number)s for %(period)s was issued on %(date)s. %(total)s was "
                    "deducted from your prepaid balance."
                )
            )
            % {
                "number": number,
                "period": period,
                "date": day(data.get("issue_date")),
                "total": money(total),
                "promo": money(promo),
                "rest": money(total - promo),
            }
        ],
        facts=facts,
        next_steps=steps,
        action=(_("View the invoice"), portal_url(f"/invoices/{number}/")),
        attachments=_attach(
            lambda language: render_invoice_pdf(invoice=invoice, language=language),
            invoice_pdf_filename(invoice),
        ),
    )


@message_builder(Kind.CREDIT_NOTE_ISSUED)
def credit_note_message(event: CustomerEvent) -> Message:
    data = event.payload
    note = CreditNote.objects.select_related("customer", "invoice").get(
        pk=data.get("credit_note_id")
    )
    number, invoice_number, total = (
        data.get("credit_note_number"),
        data.get("invoice_number"),
        Decimal(data.get("total")),
    )
    return Message(
        subject=_("Credit note %(number)s on invoice %(invoice)s: %(total)s")
        % {"number": number, "invoice": invoice_number, "total": money(total)},
        heading=_("Credit note %(number)s") % {"number": number},
        paragraphs=[
            _(
                "Credit note %(number)s credits %(total)s of invoice %(invoice)s back to your "
                "prepaid balance."
            )
            % {"number": number, "invoice": invoice_number, "total": money(total)},
        ],
        facts=[
            (_("Credit note number"), number),
            (_("Credits invoice"), invoice_number),
            (_("Issue date"), day(data.get("issue_date"))),
            (_("Amount credited"), money(total)),
        ],
        next_steps=[_("Nothing to do: the amount is already back on your balance.")],
        action=(_("View the credit note"), portal_url(f"/credit-notes/{number}/")),
        attachments=_attach(
            lambda language: render_credit_note_pdf(credit_note=note, language=language),
            credit_note_pdf_filename(note),
        ),
    )


@message_builder(Kind.MONTHLY_STATEMENT)
def monthly_statement_message(event: CustomerEvent) -> Message:
    period = Period.parse(event.payload["period"])
    statement = account_statement(customer=event.customer, period=period)
    facts = [
        (_("Opening balance"), money(statement.opening_balance)),
        (_("Deposits"), money(statement.deposits)),
        (_("Credits"), money(statement.credits)),
        (_("Debits"), money(statement.debits)),
        (_("Closing balance"), money(statement.closing_balance)),
    ]
    if statement.invoice is not None:
        facts.append(
            (
                _("Invoice for this month"),
                f"{statement.invoice.number} {money(as_decimal(statement.invoice.total))}",
            )
        )
        if statement.balance_after_invoice is not None:
            facts.append((_("Balance after this invoice"), money(statement.balance_after_invoice)))
    latest = (
        statement.balance_after_invoice
        if statement.balance_after_invoice is not None
        else statement.closing_balance
    )
    steps = (
        [
            _("Your balance is negative: top up at least %(owed)s (see “How to pay” below).")
            % {"owed": money(-latest)}
        ]
        if latest < 0
        else [_("Nothing to do: keep this statement for your records.")]
    )
    return Message(
        subject=_("Your statement for %(period)s") % {"period": str(period)},
        heading=_("Your statement for %(period)s") % {"period": str(period)},
        paragraphs=[
            _(
                "Your account statement for %(period)s is attached: the month's deposits, "
                "credit notes and invoice, and the balance."
            )
            % {"period": str(period)}
        ],
        facts=facts,
        next_steps=steps,
        action=(_("See your balance"), portal_url("/balance/")),
        attachments=_attach(
            lambda language: render_statement_pdf(statement=statement, language=language),
            statement_pdf_filename(statement),
        ),
    )


@message_builder(Kind.FAPIAO_ISSUED)
def fapiao_issued_message(event: CustomerEvent) -> Message:
    data = event.payload
    invoice, number = data.get("invoice_number"), data.get("fapiao_number")
    return Message(
        subject=_("Fapiao %(number)s issued for invoice %(invoice)s")
        % {"number": number, "invoice": invoice},
        heading=_("Your fapiao is issued"),
        paragraphs=[
            _(
                "The fapiao you requested for invoice %(invoice)s is issued: number %(number)s "
                "of %(date)s for %(amount)s."
            )
            % {
                "invoice": invoice,
                "number": number,
                "date": day(data.get("fapiao_date")),
                "amount": money(data.get("fapiao_amount")),
            }
        ],
        facts=[
            (_("Invoice number"), invoice),
            (_("Fapiao number"), number),
            (_("Fapiao date"), day(data.get("fapiao_date"))),
            (_("Fapiao amount"), money(data.get("fapiao_amount"))),
        ],
        next_steps=[_("Download the fapiao's file from the invoice page.")],
        # The file is on the customer's own invoice page (behind the login), never attached.
        action=(_("Download the fapiao"), portal_url(f"/invoices/{invoice}/")),
    )


@message_builder(Kind.FAPIAO_REJECTED)
def fapiao_rejected_message(event: CustomerEvent) -> Message:
    data = event.payload
    invoice = data.get("invoice_number")
    return Message(
        subject=_("Your fapiao request for invoice %(invoice)s was rejected")
        % {"invoice": invoice},
        heading=_("Your fapiao request was rejected"),
        paragraphs=[
            _("We could not issue the fapiao you requested for invoice %(invoice)s.")
            % {"invoice": invoice}
        ],
        facts=[(_("Invoice number"), invoice), (_("Reason"), data.get("reason") or "—")],
        next_steps=[_("Correct what the reason says and request the fapiao again.")],
        action=(_("Request the fapiao again"), portal_url(f"/invoices/{invoice}/fapiao/")),
        tone="warning",
    )
