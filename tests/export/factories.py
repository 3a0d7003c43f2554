"""Issued documents built directly with the ORM, so the export tests depend only on the models
(not on the billing service's timing). Every amount is a Decimal string; numbers are explicit or
come from a per-series counter."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from moneyed import Money
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Customer, LedgerEntry
from billingsite.clock import BILLING_TZ, Period
from invoices.documents.invoiced_months import invoice_kept
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from plans.rating.tax import VatTerms, credited_vat, vat_split
from tests.factories import CustomerFactory

# The October 2026 run: 00:00 on 2 November, Asia/Shanghai.
ISSUED_AT = dt.datetime(2026, 11, 2, 0, 0, tzinfo=BILLING_TZ)
OCTOBER = Period(2026, 10)

_counters: dict[str, itertools.count] = {}
_users = itertools.count(1)


def next_number(series: str, year: int) -> str:
    counter = _counters.setdefault(f"{series}-{year}", itertools.count(1))
    return f"{series}-{year}-{next(counter):06d}"


def cny(amount: str | Decimal) -> Money:
    return Money(Decimal(amount), "CNY")


@dataclass(frozen=True)
class Line:
    category: str
    amount: str
    plan_code: str = "premium"
    code: str = ""
    app_key: str = "app-one"
    quantity: int = 1
    peak_dau: int | None = None


PLAN_NAMES = {"free": "Free", "premium": "Premium", "ultimate": "Ultimate"}


def customer_created(*, at: dt.datetime, **fields) -> Customer:
    """A customer created at `at` (its created_at and its history row). History rows are
    append-only, so their date is given when they are written."""
    customer = CustomerFactory.build(**fields)
    customer._history_date = at
    customer.save()
    Customer.objects.filter(pk=customer.pk).update(created_at=at)
    customer.refresh_from_db()
    return customer


def issued_invoice(
    *,
    customer: Customer | None = None,
    period: Period = OCTOBER,
    lines: list[Line] | tuple[Line, ...] = (Line("dau_fee", "6000.00"),),
    issued_at: dt.datetime = ISSUED_AT,
    number: str | None = None,
    status: str = Invoice.Status.ISSUED,
    vat: VatTerms | None = None,
    promo_credit_applied: str | None = None,
) -> Invoice:
    """An invoice in an issued state (or draft/held: then it has no number), with its lines.
    Its total is the sum of the lines, as the billing service makes it; each line's net and
    VAT split by `vat` (None: an invoice issued before VAT, gross only)."""
    customer = customer or CustomerFactory()
    issued = status in Invoice.ISSUED_STATES
    total = sum((Decimal(line.amount) for line in lines), Decimal("0.00"))
    splits = [
        None if vat is None else vat_split(price=Decimal(line.amount), terms=vat) for line in lines
    ]
    vat_total = None if vat is None else sum((split.vat for split in splits), Decimal("0.00"))
    # Written as a draft with its lines, then issued: the database adds no line to an issued
    # invoice.
    invoice = Invoice.objects.create(
        customer=customer,
        period=period.start,
        status=Invoice.Status.DRAFT if issued else status,
        number=(number or next_number("INV", issued_at.year)) if issued else None,
        hold_reason="high volume without a contract" if status == Invoice.Status.HELD else "",
        customer_name=customer.name,
        customer_address=customer.address,
        customer_tax_id=customer.tax_id,
        customer_email=customer.billing_email,
        total=cny(total),
        net_total=None if vat_total is None else total - vat_total,
        vat_total=vat_total,
        vat_rate=None if vat is None else vat.rate,
        rated_at=issued_at,
        issued_at=issued_at if issued else None,
        issue_date=issued_at.astimezone(BILLING_TZ).date() if issued else None,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=position,
            app_key=line.app_key,
            app_name=f"App {line.app_key}",
            code=line.code or line.category,
            category=line.category,
            plan_code=line.plan_code,
            plan_name=PLAN_NAMES.get(line.plan_code, line.plan_code.title()),
            description=f"{line.category} on {line.plan_code}",
            quantity=line.quantity,
            unit_price=cny(Decimal(line.amount) / line.quantity),
            amount=cny(line.amount),
            first_day=period.start,
            last_day=period.end,
            days=period.days,
            days_in_month=period.days,
            peak_dau=line.peak_dau,
            peak_day=period.start if line.peak_dau is not None else None,
            explanation=f"{line.category}: {line.amount}",
            net_amount=None if split is None else split.net,
            vat_amount=None if split is None else split.vat,
            vat_rate=None if vat is None else vat.rate,
        )
        for position, (line, split) in enumerate(zip(lines, splits, strict=True), start=1)
    )
    # Stamp updated_at (auto_now) with the issue time so outputs are reproducible.
    Invoice.objects.filter(pk=invoice.pk).update(
        status=status,
        updated_at=issued_at,
        promo_credit_applied=None
        if promo_credit_applied is None
        else Decimal(promo_credit_applied),
    )
    invoice.refresh_from_db()
    invoice_kept(invoice)
    return invoice


def credit_note(
    *,
    invoice: Invoice,
    amounts: dict[int, str] | None = None,
    issued_at: dt.datetime = ISSUED_AT + dt.timedelta(days=10),
    number: str | None = None,
    reason: str = "Goodwill credit",
) -> CreditNote:
    """Credits `amounts` ({line position: amount}) of an issued invoice, or every line in full;
    (0.00 lines have nothing to credit); moves the invoice to partially_credited or credited, as the billing service does."""
    lines = {line.position: line for line in invoice.lines.all()}
    wanted = amounts or {
        position: str(line.amount.amount) for position, line in lines.items() if line.amount
    }
    total = sum((Decimal(amount) for amount in wanted.values()), Decimal("0.00"))
    # VAT given back as the credit-note service does (plans.rating.tax.credited_vat).
    before = {
        position: sum(
            (c.amount.amount for c in CreditNoteLine.objects.filter(invoice_line=line)),
            Decimal("0.00"),
        )
        for position, line in lines.items()
    }
    vats = (
        None
        if invoice.vat_total is None
        else {
            position: credited_vat(
                line_gross=lines[position].amount.amount,
                line_vat=lines[position].vat_amount,
                credited_before=before[position],
                credited_now=Decimal(amount),
            )
            for position, amount in wanted.items()
        }
    )
    vat_total = None if vats is None else sum(vats.values(), Decimal("0.00"))
    note = CreditNote.objects.create(
        invoice=invoice,
        customer=invoice.customer,
        number=number or next_number("CN", issued_at.year),
        reason=reason,
        total=cny(total),
        net_total=None if vat_total is None else total - vat_total,
        vat_total=vat_total,
        issued_at=issued_at,
        issue_date=issued_at.astimezone(BILLING_TZ).date(),
        idempotency_key=f"test-credit:{invoice.pk}:{CreditNote.objects.count()}",
    )
    CreditNoteLine.objects.bulk_create(
        CreditNoteLine(
            credit_note=note,
            invoice_line=lines[position],
            description=lines[position].description,
            amount=cny(amount),
            net_amount=None if vats is None else Decimal(amount) - vats[position],
            vat_amount=None if vats is None else vats[position],
        )
        for position, amount in wanted.items()
    )
    credited = sum(
        (cn.total.amount for cn in CreditNote.objects.filter(invoice=invoice)), Decimal("0")
    )
    status = (
        Invoice.Status.CREDITED
        if credited >= invoice.total.amount
        else Invoice.Status.PARTIALLY_CREDITED
    )
    Invoice.objects.filter(pk=invoice.pk).update(status=status, updated_at=issued_at)
    return note


def ledger_entry(
    *,
    customer: Customer,
    kind: str,
    amount: str,
    created_at: dt.datetime,
    reference: str = "",
    reason: str = "",
    method: str | None = None,
    expires_on: dt.date | None = None,
    promo_grant: LedgerEntry | None = None,
) -> LedgerEntry:
    return LedgerEntry.objects.create(
        method=method,
        expires_on=expires_on,
        promo_grant=promo_grant,
        customer=customer,
        kind=kind,
        amount=cny(amount),
        idempotency_key=f"test-ledger:{customer.pk}:{LedgerEntry.objects.count()}",
        reference=reference,
        reason=reason,
        created_at=created_at,
    )


def token_client(*, groups: tuple[str, ...] = (), **user_fields) -> APIClient:
    """An API client authenticated by the token of a new user in `groups`. The user has no
    password (API users never log in), which also keeps the tests fast."""
    user = get_user_model().objects.create(
        username=f"api-user-{next(_users)}", email="api@example.com", **user_fields
    )
    user.set_unusable_password()
    user.save(update_fields=["password"])
    user.groups.set(Group.objects.filter(name__in=groups))
    assert user.groups.count() == len(groups), f"unknown role in {groups}"
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client
