"""Accounting reads: the issued documents accounting exports, the revenue summary of a billing
period and the double-entry journal of a posting month. Nothing here writes.

Only issued documents are ever exported: invoices in `Invoice.ISSUED_STATES` (never drafts or
held invoices) and credit notes (issued when created).

Two period bases, on purpose:
- Revenue summary: the *billing period* (`Invoice.period`, the month of service). A credit note
  belongs to the billing period of the invoice it credits, so the summary of a period is always
  "its invoices minus the credit notes against them" and reconciles with the invoice and
  credit-note exports filtered by the same `period`.
- Journal, two bases (`JournalBasis`):
  - `service_month` (the default, accrual): an invoice's revenue is recognised in its service
    month, posted on the month's last day (October's invoice, issued on 2 November, is posted
    on 31 October), against the prepayment liability. Credit notes reverse revenue in the
    month they are issued (a correction never reopens a closed month) and each row names the
    service month it corrects (`billing_period`). Deposits, refunds and adjustments are posted
    on their day. A month's journal is complete once its invoices are issued (the run on the
    2nd of the next month); after that it never changes.
  - `issue_date` (the journal before issue 17): every document on its own Asia/Shanghai date
    (invoice and credit-note issue date, day of a deposit, refund or adjustment). A month's
    journal never changes once the month is over.
  Either way a credit note issued in December against an October invoice is posted in
  December, and each row carries the document's billing period.

Chart of accounts (codes are suggestions an accounting package can map; names are stable):

| code | account                        | used for                                          |
|------|--------------------------------|---------------------------------------------------|
| 1100 | Bank                           | bank-transfer deposits (debit) and refunds (credit) |
| 1121 | Alipay clearing                | Alipay top-up deposits (debit)                    |
| 1122 | WeChat Pay clearing            | WeChat Pay top-up deposits (debit)                |
| 2200 | Customer prepaid balance       | liability: money customers prepaid                |
| 2221 | Output VAT payable             | liability: the VAT of invoices (应交税费-销项税额) |
| 4010 | Revenue: DAU fees              | invoice lines of category `dau_fee`               |
| 4020 | Revenue: Value-added services  | `value_added`                                     |
| 4030 | Revenue: Storage               | `storage`                                         |
| 4040 | Revenue: Sensitive words       | `sensitive_words`                                 |
| 4050 | Revenue: API rate limits       | `api_rate_limit`                                  |
| 4060 | Revenue: Desktop client        | `desktop`                                         |
| 4070 | Revenue: Dedicated service     | `dedicated_service`                               |
| 4090 | Revenue: Contracted discounts  | `discount` (contra-revenue: its lines are negative, so debited) |
| 6610 | Promotion expense              | promotional credit an invoice consumed (less what credit notes return) |
| 6900 | Balance adjustments            | manual adjustments of a prepaid balance           |

Postings (each document balances: its debits equal its credits):
- invoice: debit 2200 with the total (gross); credit 4010-4070 with the net of its lines per
  category and 2221 with their VAT; debit 4090 with the net of its contracted discounts
  (negative lines). Invoices issued before VAT was recorded (no split) credit revenue with the
  gross and post no VAT.
- promotional credit an invoice consumed (`Invoice.promo_credit_applied`, its `promo_use`
  ledger entries): part of the invoice's document, on its date: debit 6610 / credit 2200. The
  invoice debits 2200 with its whole total, so 2200 moves by what the paid balance paid (the
  invoice's `invoice_debit`) and the promotion is an expense, never cash. A grant and a lapse
  post nothing: promotional credit is no money the customer paid, so no liability until used
  (`docs/accounting.md`).
- credit note: the reverse: debit 4010-4070 per category with the net of the credited lines and
  2221 with the VAT they give back; credit 2200. The part it gives back as promotional credit
  (`CreditNote.promo_credit_returned`, promotional credit first) reverses that expense in the
  same document: debit 2200 / credit 6610, so 2200 moves by the `credit_note_credit` to the
  paid balance and the promotion expense is what was used minus what was returned.
- deposit: debit the clearing account of its method (`LedgerEntry.method`: bank transfer 1100,
  Alipay 1121, WeChat Pay 1122; deposits recorded before methods existed were bank transfers) /
  credit 2200. Deposit rows carry `payment_method` and `payment_reference` (the bank reference
  or the provider's trade number); other rows leave them empty.
- refund: debit 2200 / credit 1100 (money out of the bank).
- adjustment: debit 6900 / credit 2200 when it raises the balance, the reverse when it lowers it.
- The ledger's own `invoice_debit` and `credit_note_credit` entries are the same events as the
  invoice and credit-note documents, so they are not posted twice.
Zero amounts (included services billed at 0.00) post nothing.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from accounts.models import Customer, LedgerEntry
from accounts.selectors import with_ledger_balance
from billingsite.clock import Period, billing_date, start_of_day
from billingsite.money import CURRENCY
from invoices.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine

ZERO = Decimal("0.00")
# Rows fetched per round trip when streaming; PostgreSQL uses a server-side cursor.
CHUNK_SIZE = 2000
_MONEY = DecimalField(max_digits=14, decimal_places=2)


# --- Issued documents ---------------------------------------------------------------------


def export_invoices() -> QuerySet[Invoice]:
    """Issued invoices (issued, partially or fully credited), with the amount credited so far."""
    credited = (
        CreditNote.objects.filter(invoice=OuterRef("pk"))
        .values("invoice")
        .annotate(total=Sum("total"))
        .values("total")
    )
    return (
        Invoice.objects.filter(status__in=Invoice.ISSUED_STATES)
        .select_related("customer")
        .annotate(credited_total=Coalesce(Subquery(credited, output_field=_MONEY), ZERO))
    )


def _paid_balance_returned(prefix: str = "") -> ExpressionWrapper:
    """What a credit note credited to the paid balance: its total less the promotional credit
    it gave back (`CreditNote.promo_credit_returned`, split by
    `accounts.promo_credit.credit_note_promo_split` when the note was made)."""
    return ExpressionWrapper(
        F(f"{prefix}total") - F(f"{prefix}promo_credit_returned"), output_field=_MONEY
    )


def export_credit_notes() -> QuerySet[CreditNote]:
    """Credit notes (all issued) against issued invoices, with the part each credited to the
    paid balance."""
    return (
        CreditNote.objects.filter(invoice__status__in=Invoice.ISSUED_STATES)
        .select_related("invoice", "customer")
        .annotate(paid_balance_returned=_paid_balance_returned())
    )


def export_credit_note_lines(credit_notes: QuerySet[CreditNote]) -> QuerySet[CreditNoteLine]:
    """The lines of `credit_notes` in document order (the CSV's rows), each with its note's
    paid part under the CSV's source name."""
    return (
        CreditNoteLine.objects.filter(credit_note__in=credit_notes.values("pk"))
        .annotate(credit_note_paid_balance_returned=_paid_balance_returned("credit_note__"))
        .order_by("credit_note_id", "id")
    )


def export_ledger_entries() -> QuerySet[LedgerEntry]:
    """With each deposit's method (legacy NULL deposits were bank transfers) and the top-up
    order that produced it."""
    return LedgerEntry.objects.select_related("customer").annotate(
        export_payment_method=Case(
            When(
                kind=LedgerEntry.Kind.DEPOSIT,
                then=Coalesce(F("method"), Value(LedgerEntry.Method.BANK_TRANSFER)),
            ),
            default=Value(""),
        ),
        export_top_up_number=Coalesce(F("top_up__number"), Value("")),
    )


CUSTOMER_STATUSES = [
    ("active", "Active"),
    ("in_arrears", "In arrears: balance below zero, not yet suspended"),
    ("suspended", "Suspended for arrears"),
]


def export_customers() -> QuerySet[Customer]:
    """Customers with their ledger balance and the time their details last changed (the
    latest history record; bulk-loaded rows without history fall back to `created_at`)."""
    history_model = Customer.history.model
    last_change = (
        history_model.objects.filter(id=OuterRef("pk"))
        .order_by("-history_date")
        .values("history_date")[:1]
    )
    return with_ledger_balance(Customer.objects.all(), name="balance").annotate(
        updated_at=Coalesce(Subquery(last_change), F("created_at")),
        status=Case(
            When(suspended_at__isnull=False, then=Value("suspended")),
            When(arrears_since__isnull=False, then=Value("in_arrears")),
            default=Value("active"),
        ),
    )


def period_bounds(period: Period) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month in Asia/Shanghai as aware datetimes."""
    return start_of_day(period.start), start_of_day(period.next().start)


# --- Revenue summary ----------------------------------------------------------------------


@dataclass(frozen=True)
class RevenueLine:
    """Billed and credited amounts of one category or plan in a period."""

    key: str
    label: str
    billed: Decimal
    credited: Decimal

    @property
    def net(self) -> Decimal:
        return self.billed - self.credited


@dataclass(frozen=True)
class RevenueSummary:
    period: Period
    invoice_count: int
    credit_note_count: int
    # From the document totals: what the invoices and credit notes of the period say.
    billed: Decimal
    credited: Decimal
    # From the lines; each list adds up to billed/credited (totals are sums of rounded lines).
    by_category: list[RevenueLine]
    by_plan: list[RevenueLine]
    currency: str = CURRENCY

    @property
    def net(self) -> Decimal:
        return self.billed - self.credited


def revenue_summary(*, period: Period) -> RevenueSummary:
    """Billed, credited and net amounts of a billing period, by category and by plan.

    Invoices of the period are the issued invoices with `period` = the month; credit notes of
    the period are those against them (whenever they were issued). Every category appears, in
    the order of `InvoiceLine.Category`, even at 0.00, except contracted discounts, which
    appear (negative) in a period that has some; plans appear when they have a line.
    """
    invoices = Invoice.objects.filter(status__in=Invoice.ISSUED_STATES, period=period.start)
    credit_notes = CreditNote.objects.filter(invoice__in=invoices)
    invoice_totals = invoices.aggregate(count=Count("id"), total=Sum("total"))
    credit_totals = credit_notes.aggregate(count=Count("id"), total=Sum("total"))

    lines = InvoiceLine.objects.filter(invoice__in=invoices)
    credit_lines = CreditNoteLine.objects.filter(credit_note__in=credit_notes)

    billed_by_category = _sums(lines, "category")
    credited_by_category = _sums(credit_lines, "invoice_line__category")
    by_category = [
        RevenueLine(
            key=category.value,
            label=str(category.label),
            billed=billed_by_category.get(category.value, ZERO),
            credited=credited_by_category.get(category.value, ZERO),
        )
        for category in InvoiceLine.Category
        if category != InvoiceLine.Category.DISCOUNT or category.value in billed_by_category
    ]

    billed_by_plan = _sums(lines, "plan_code")
    credited_by_plan = _sums(credit_lines, "invoice_line__plan_code")
    # A plan renamed between periods keeps its code; the latest frozen name labels it.
    plan_names = dict(
        lines.values("plan_code").annotate(name=Max("plan_name")).values_list("plan_code", "name")
    )
    by_plan = [
        RevenueLine(
            key=code,
            label=plan_names.get(code, code),
            billed=billed_by_plan.get(code, ZERO),
            credited=credited_by_plan.get(code, ZERO),
        )
        for code in sorted(set(billed_by_plan) | set(credited_by_plan))
    ]
    return RevenueSummary(
        period=period,
        invoice_count=invoice_totals["count"],
        credit_note_count=credit_totals["count"],
        billed=_money(invoice_totals["total"]),
        credited=_money(credit_totals["total"]),
        by_category=by_category,
        by_plan=by_plan,
    )


def _sums(queryset: QuerySet, field: str) -> dict[str, Decimal]:
    rows = queryset.values(field).annotate(total=Sum("amount")).values_list(field, "total")
    return {key: _money(total) for key, total in rows}


def _money(value: Decimal | None) -> Decimal:
    return (value or ZERO).quantize(Decimal("0.01"))


# --- Journal ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    code: str
    name: str


BANK = Account("1100", "Bank")
# Where each method's money waits until it reaches the bank: a bank transfer is already there.
CLEARING_ACCOUNTS: dict[str, Account] = {
    LedgerEntry.Method.BANK_TRANSFER: BANK,
    LedgerEntry.Method.ALIPAY: Account("1121", "Alipay clearing"),
    LedgerEntry.Method.WECHAT_PAY: Account("1122", "WeChat Pay clearing"),
}
PREPAID_BALANCE = Account("2200", "Customer prepaid balance")
OUTPUT_VAT = Account("2221", "Output VAT payable")
PROMOTION_EXPENSE = Account("6610", "Promotion expense")
BALANCE_ADJUSTMENTS = Account("6900", "Balance adjustments")
REVENUE_ACCOUNTS: dict[str, Account] = {
    InvoiceLine.Category.DAU_FEE: Account("4010", "Revenue: DAU fees"),
    InvoiceLine.Category.VALUE_ADDED: Account("4020", "Revenue: Value-added services"),
    InvoiceLine.Category.STORAGE: Account("4030", "Revenue: Storage"),
    InvoiceLine.Category.SENSITIVE_WORDS: Account("4040", "Revenue: Sensitive words"),
    InvoiceLine.Category.API_RATE_LIMIT: Account("4050", "Revenue: API rate limits"),
    InvoiceLine.Category.DESKTOP: Account("4060", "Revenue: Desktop client"),
    InvoiceLine.Category.DEDICATED_SERVICE: Account("4070", "Revenue: Dedicated service"),
    # Contra-revenue: discount lines are negative, so `_split_rows` debits it.
    InvoiceLine.Category.DISCOUNT: Account("4090", "Revenue: Contracted discounts"),
}
CATEGORY_ORDER = {category.value: index for index, category in enumerate(InvoiceLine.Category)}


class JournalBasis:
    """When an invoice is posted (see the module docstring); credit notes and ledger documents
    are posted on their own day on both bases."""

    SERVICE_MONTH = "service_month"
    ISSUE_DATE = "issue_date"
    CHOICES = (SERVICE_MONTH, ISSUE_DATE)
    DEFAULT = SERVICE_MONTH


class DocumentType:
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    DEPOSIT = "deposit"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True)
class JournalRow:
    """One side of one posting. Exactly one of debit and credit is non-zero; both >= 0."""

    date: dt.date
    document_type: str
    document_number: str
    # Billing period of an invoice or credit note ("" for ledger documents).
    billing_period: str
    customer_external_id: str
    account: Account
    debit: Decimal
    credit: Decimal
    description: str
    currency: str = CURRENCY
    # Deposits only: how the money arrived (`LedgerEntry.Method`) and its bank or provider
    # reference; empty on every other row.
    payment_method: str = ""
    payment_reference: str = ""


def journal_entries(*, period: Period, basis: str = JournalBasis.DEFAULT) -> Iterator[JournalRow]:
    """The double-entry journal of a posting month on `basis` (`JournalBasis`), in date order:
    on each day invoices (by number), then credit notes (by number), then ledger documents (by
    time). Streams from the database in chunks; a document's rows are consecutive and
    balance."""
    if basis not in JournalBasis.CHOICES:
        raise ValueError(f"unknown journal basis {basis!r}")
    streams = [
        _invoice_postings(period, basis),
        _credit_note_postings(period),
        _ledger_postings(period),
    ]
    # heapq.merge is stable across streams: on equal dates the earlier stream comes first, and
    # within one stream the database order is kept, so documents are never interleaved.
    return heapq.merge(*streams, key=lambda row: row.date)


def _posting(
    *,
    debit_account: Account,
    credit_account: Account,
    amount: Decimal,
    **document,
) -> list[JournalRow]:
    """Two rows moving `amount` from credit_account to debit_account (swapped if negative)."""
    if amount == 0:
        return []
    if amount < 0:
        debit_account, credit_account, amount = credit_account, debit_account, -amount
    return [
        JournalRow(account=debit_account, debit=amount, credit=ZERO, **document),
        JournalRow(account=credit_account, debit=ZERO, credit=amount, **document),
    ]


def _opposite(side: str) -> str:
    return "credit" if side == "debit" else "debit"


def _row(account: Account, amount: Decimal, side: str, document: dict) -> JournalRow:
    """A row for `amount` on `side`; a negative amount is the same value on the other side."""
    if amount < 0:
        side, amount = _opposite(side), -amount
    return JournalRow(
        account=account,
        debit=amount if side == "debit" else ZERO,
        credit=amount if side == "credit" else ZERO,
        **document,
    )


def _split_rows(
    *, total_account: Account, total_side: str, parts: list[tuple[Account, Decimal]], **document
) -> list[JournalRow]:
    """The total on `total_side` of `total_account`, balanced by one row per part on the other
    side. Zero parts post nothing; a negative part (contracted discounts) moves to the other
    side and the document still balances."""
    rows = [
        _row(account, amount, _opposite(total_side), document)
        for account, amount in parts
        if amount
    ]
    total = sum((amount for _, amount in parts), ZERO)
    if total:
        head = _row(total_account, total, total_side, document)
        # Debits first, as journals are read.
        rows = [head, *rows] if head.debit else [*rows, head]
    return rows


def _revenue_by_document(
    rows: Iterable[dict], *, document_key: str
) -> Iterator[tuple[dict, list[tuple[Account, Decimal]]]]:
    """Per document, from per-category rows ordered by `document_key`: its first row (for the
    document's own fields) and its revenue accounts and amounts in the journal's category
    order. Invoices and credit notes split into revenue the same way, on opposite sides."""
    for _, group in itertools.groupby(rows, key=lambda row: row[document_key]):
        parts = sorted(group, key=lambda row: CATEGORY_ORDER.get(row["category"], 99))
        # Revenue is the net; the VAT is owed to the tax office (NULL: issued before VAT).
        vat = sum((p["vat"] or ZERO for p in parts), ZERO)
        revenue = [
            (REVENUE_ACCOUNTS[p["category"]], p["amount"] - (p["vat"] or ZERO)) for p in parts
        ]
        yield parts[0], revenue + ([(OUTPUT_VAT, vat)] if vat else [])


def _invoice_postings(period: Period, basis: str) -> Iterator[JournalRow]:
    lines = InvoiceLine.objects.filter(invoice__status__in=Invoice.ISSUED_STATES)
    if basis == JournalBasis.SERVICE_MONTH:
        # Every invoice of the service month is posted on its last day (then by number).
        lines = lines.filter(invoice__period=period.start)
    else:
        lines = lines.filter(
            invoice__issue_date__gte=period.start, invoice__issue_date__lte=period.end
        )
    rows = (
        lines.values(
            "invoice_id",
            "invoice__number",
            "invoice__issue_date",
            "invoice__period",
            "invoice__customer__external_id",
            "invoice__promo_credit_applied",
            "category",
        )
        .annotate(amount=Sum("amount"), vat=Sum("vat_amount"))
        .order_by("invoice__issue_date", "invoice__number", "invoice_id", "category")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for first, parts in _revenue_by_document(rows, document_key="invoice_id"):
        number, service_month = first["invoice__number"], f"{first['invoice__period']:%Y-%m}"
        document = {
            "date": (
                period.end if basis == JournalBasis.SERVICE_MONTH else first["invoice__issue_date"]
            ),
            "document_type": DocumentType.INVOICE,
            "document_number": number,
            "billing_period": service_month,
            "customer_external_id": first["invoice__customer__external_id"],
        }
        yield from _split_rows(
            total_account=PREPAID_BALANCE,
            total_side="debit",
            parts=parts,
            description=f"Invoice {number} for {service_month}",
            **document,
        )
        yield from _posting(
            debit_account=PROMOTION_EXPENSE,
            credit_account=PREPAID_BALANCE,
            amount=first["invoice__promo_credit_applied"] or ZERO,
            description=f"Promotional credit used by invoice {number}",
            **document,
        )


def _credit_note_postings(period: Period) -> Iterator[JournalRow]:
    rows = (
        CreditNoteLine.objects.filter(
            credit_note__invoice__status__in=Invoice.ISSUED_STATES,
            credit_note__issue_date__gte=period.start,
            credit_note__issue_date__lte=period.end,
        )
        .values(
            "credit_note_id",
            "credit_note__number",
            "credit_note__issue_date",
            "credit_note__invoice__number",
            "credit_note__invoice__period",
            "credit_note__customer__external_id",
            "credit_note__promo_credit_returned",
            category=F("invoice_line__category"),
        )
        .annotate(amount=Sum("amount"), vat=Sum("vat_amount"))
        .order_by("credit_note__issue_date", "credit_note__number", "credit_note_id", "category")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for first, parts in _revenue_by_document(rows, document_key="credit_note_id"):
        number = first["credit_note__number"]
        document = {
            "date": first["credit_note__issue_date"],
            "document_type": DocumentType.CREDIT_NOTE,
            "document_number": number,
            "billing_period": f"{first['credit_note__invoice__period']:%Y-%m}",
            "customer_external_id": first["credit_note__customer__external_id"],
        }
        yield from _split_rows(
            total_account=PREPAID_BALANCE,
            total_side="credit",
            parts=parts,
            description=f"Credit note {number} on invoice {first['credit_note__invoice__number']}",
            **document,
        )
        yield from _posting(
            debit_account=PREPAID_BALANCE,
            credit_account=PROMOTION_EXPENSE,
            amount=first["credit_note__promo_credit_returned"] or ZERO,
            description=f"Promotional credit returned by credit note {number}",
            **document,
        )


LEDGER_DOCUMENT_KINDS = {
    LedgerEntry.Kind.DEPOSIT: DocumentType.DEPOSIT,
    LedgerEntry.Kind.REFUND: DocumentType.REFUND,
    LedgerEntry.Kind.ADJUSTMENT: DocumentType.ADJUSTMENT,
}


def ledger_document_number(entry_id: int) -> str:
    """Ledger entries have no document series; their id makes a stable, unique number."""
    return f"LE-{entry_id:08d}"


def _ledger_postings(period: Period) -> Iterator[JournalRow]:
    start, end = period_bounds(period)
    rows = (
        LedgerEntry.objects.filter(
            kind__in=list(LEDGER_DOCUMENT_KINDS), created_at__gte=start, created_at__lt=end
        )
        .order_by("created_at", "id")
        .values_list(
            "id",
            "kind",
            "amount",
            "reference",
            "reason",
            "created_at",
            "customer__external_id",
            "method",
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for entry_id, kind, amount, reference, reason, created_at, external_id, method in rows:
        document_type = LEDGER_DOCUMENT_KINDS[kind]
        payment = {}
        if kind == LedgerEntry.Kind.DEPOSIT:
            method = LedgerEntry.Method.of_deposit(method)
            debit_account, credit_account = CLEARING_ACCOUNTS[method], PREPAID_BALANCE
            payment = {"payment_method": method, "payment_reference": reference}
        elif kind == LedgerEntry.Kind.ADJUSTMENT:
            # A positive adjustment raises what we owe the customer: an expense to us.
            debit_account, credit_account = BALANCE_ADJUSTMENTS, PREPAID_BALANCE
        else:
            # A refund: money out (negative) of the bank.
            debit_account, credit_account = BANK, PREPAID_BALANCE
        label = LedgerEntry.Kind(kind).label
        details = reference or reason
        yield from _posting(
            debit_account=debit_account,
            credit_account=credit_account,
            amount=amount,
            date=billing_date(created_at),
            document_type=document_type,
            document_number=ledger_document_number(entry_id),
            billing_period="",
            customer_external_id=external_id,
            description=f"{label}: {details}" if details else str(label),
            **payment,
        )


def journal_is_balanced(rows: Iterable[JournalRow]) -> bool:
    """True when every document's debits equal its credits (used by tests and the bench)."""
    totals: dict[tuple[str, str], Decimal] = {}
    for row in rows:
        key = (row.document_type, row.document_number)
        totals[key] = totals.get(key, ZERO) + row.debit - row.credit
    return all(value == 0 for value in totals.values())
