"""The prepayment roll-forward of a month: how the customers' prepaid balance (the liability
2200 of the journal) moved, per customer and in total. Nothing here writes.

Everything comes from the ledger, by the entries' dates (`created_at`, months in
Asia/Shanghai): the opening balance is the ledger sum before the month, each movement the sum
of the month's entries of its kind (signed as they move the balance: deposits and credit notes
positive, invoice debits and refunds negative, adjustments either), the closing balance the
ledger sum at the month's end. So opening + movements = closing = `ledger_balance(before=<the
1st of the next month>)`, to the cent, for every customer, and the total row is the sum of the
customer rows.

Promotional credit moves the ledger sum too (granted +, used by invoices -, lapsed -), in its
own columns; the closing balance is also split into the paid balance (every other kind: what
the journal's 2200 holds, grants and lapses posting nothing there) and the promotional credit
held. An invoice's `invoice_debits` is what the paid balance paid of it, its `promo_used` the
rest.

Invoice debits are the ledger's: an invoice reaches the roll-forward in the month it was
issued (October's invoices, issued on 2 November, are November debits), as on the journal's
`issue_date` basis. On the default `service_month` basis the journal posts them on 31 October,
so at a month end the journal's 2200 differs from this closing balance by the invoices of that
month issued after it (`docs/accounting.md`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import LedgerEntry
from billingsite.clock import Period
from billingsite.money import CURRENCY
from invoices.exports.reports import ZERO, period_bounds

_MONEY = DecimalField(max_digits=16, decimal_places=2)


def _deposits_by(method: str) -> Q:
    deposits = Q(kind=LedgerEntry.Kind.DEPOSIT, method=method)
    if LedgerEntry.Method.of_deposit(None) == method:
        # Deposits recorded before methods existed count as this method.
        deposits |= Q(kind=LedgerEntry.Kind.DEPOSIT, method__isnull=True)
    return deposits


# Each movement column and the month's entries it sums: every ledger kind is in exactly one
# (tests/export/test_rollforward.py checks it), so the movements add up to the closing balance.
MOVEMENTS: dict[str, Q] = {
    "deposits_bank_transfer": _deposits_by(LedgerEntry.Method.BANK_TRANSFER),
    "deposits_alipay": _deposits_by(LedgerEntry.Method.ALIPAY),
    "deposits_wechat_pay": _deposits_by(LedgerEntry.Method.WECHAT_PAY),
    "invoice_debits": Q(kind=LedgerEntry.Kind.INVOICE_DEBIT),
    "credit_notes": Q(kind=LedgerEntry.Kind.CREDIT_NOTE_CREDIT),
    "adjustments": Q(kind=LedgerEntry.Kind.ADJUSTMENT),
    "refunds": Q(kind=LedgerEntry.Kind.REFUND),
    # Promotional credit (accounts.promo_credit): in the ledger sum, apart from paid money.
    "promo_granted": Q(kind=LedgerEntry.Kind.PROMO_GRANT),
    "promo_used": Q(kind=LedgerEntry.Kind.PROMO_USE),
    "promo_lapsed": Q(kind=LedgerEntry.Kind.PROMO_LAPSE),
}
PROMO = Q(kind__in=LedgerEntry.PROMO_KINDS)


@dataclass(frozen=True)
class RollForwardRow:
    """One customer's month (or the total: no customer). Movements are signed."""

    customer_external_id: str | None
    customer_name: str | None
    opening_balance: Decimal
    deposits_bank_transfer: Decimal
    deposits_alipay: Decimal
    deposits_wechat_pay: Decimal
    invoice_debits: Decimal
    credit_notes: Decimal
    adjustments: Decimal
    refunds: Decimal
    closing_balance: Decimal
    # Added after the columns of the first version (kept in their place): promotional credit
    # granted, used by invoices and lapsed in the month, and the closing balance split into
    # what customers paid (the journal's 2200) and promotional credit held.
    promo_granted: Decimal
    promo_used: Decimal
    promo_lapsed: Decimal
    closing_paid_balance: Decimal
    closing_promo_credit: Decimal

    @property
    def deposits(self) -> Decimal:
        return self.deposits_bank_transfer + self.deposits_alipay + self.deposits_wechat_pay

    @property
    def movements(self) -> Decimal:
        return sum((getattr(self, column) for column in MOVEMENTS), ZERO)


AMOUNT_COLUMNS = [f.name for f in fields(RollForwardRow) if f.type in ("Decimal", Decimal)]


@dataclass(frozen=True)
class RollForward:
    period: Period
    customers: list[RollForwardRow]
    total: RollForwardRow
    currency: str = CURRENCY


def _total(condition: Q | None = None) -> Coalesce:
    return Coalesce(Sum("amount", filter=condition), Value(ZERO), output_field=_MONEY)


def prepayment_rollforward(*, period: Period) -> RollForward:
    """The roll-forward of `period`: a row per customer with a balance at its start or an entry
    in it (by external id), and their total. One query."""
    start, end = period_bounds(period)
    in_month = Q(created_at__gte=start)
    rows = (
        LedgerEntry.objects.filter(created_at__lt=end)
        .values("customer_id", "customer__external_id", "customer__name")
        .annotate(
            opening_balance=_total(Q(created_at__lt=start)),
            **{column: _total(in_month & condition) for column, condition in MOVEMENTS.items()},
            closing_balance=_total(),
            closing_paid_balance=_total(~PROMO),
            closing_promo_credit=_total(PROMO),
            entries_in_month=Count("id", filter=in_month),
        )
        .filter(Q(entries_in_month__gt=0) | ~Q(opening_balance=ZERO))
        .values(
            "customer__external_id",
            "customer__name",
            "opening_balance",
            *MOVEMENTS,
            "closing_balance",
            "closing_paid_balance",
            "closing_promo_credit",
        )
        .order_by("customer__external_id")
    )
    customers = [
        RollForwardRow(
            customer_external_id=row.pop("customer__external_id"),
            customer_name=row.pop("customer__name"),
            **{column: _cents(value) for column, value in row.items()},
        )
        for row in rows
    ]
    total = RollForwardRow(
        customer_external_id=None,
        customer_name=None,
        **{
            column: sum((getattr(row, column) for row in customers), ZERO)
            for column in AMOUNT_COLUMNS
        },
    )
    return RollForward(period=period, customers=customers, total=total)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))
