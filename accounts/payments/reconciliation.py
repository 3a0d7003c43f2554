"""Daily reconciliation per online method: what the provider says was paid vs. the ledger
deposits of that method on the same Asia/Shanghai day. The difference must be 0.00; any
difference is listed order by order (a mismatched amount waiting for review, a deposit of the
method that no provider payment explains, ...)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.models import LedgerEntry, TopUp
from billingsite.clock import start_of_day

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class ReconciliationLine:
    order_number: str  # empty: a deposit without a top-up order
    customer: str
    reference: str
    provider_paid: Decimal
    ledger_deposit: Decimal
    status: str

    @property
    def difference(self) -> Decimal:
        return self.provider_paid - self.ledger_deposit


@dataclass(frozen=True)
class MethodReconciliation:
    method: str
    label: str
    provider_paid: Decimal
    ledger_deposits: Decimal
    orders: int
    lines: list[ReconciliationLine] = field(default_factory=list)

    @property
    def difference(self) -> Decimal:
        return self.provider_paid - self.ledger_deposits


def daily_reconciliation(*, day: dt.date) -> list[MethodReconciliation]:
    start, end = start_of_day(day), start_of_day(day + dt.timedelta(days=1))
    report = []
    for method, label in TopUp.Method.choices:
        # settled_at is the moment of the deposit's ledger entry: both sides fall on one day.
        paid = list(
            TopUp.objects.filter(
                method=method, paid_amount__isnull=False, settled_at__gte=start, settled_at__lt=end
            )
            .select_related("customer", "deposit")
            .order_by("settled_at", "id")
        )
        deposits = list(
            LedgerEntry.objects.filter(
                kind=LedgerEntry.Kind.DEPOSIT,
                method=method,
                created_at__gte=start,
                created_at__lt=end,
            )
            .select_related("customer")
            .order_by("created_at", "id")
        )
        by_id = {entry.pk: entry for entry in deposits}
        lines = []
        for top_up in paid:
            entry = by_id.pop(top_up.deposit_id, None)
            ledger = entry.amount.amount if entry is not None else ZERO
            if ledger != top_up.paid_amount:
                lines.append(
                    ReconciliationLine(
                        order_number=top_up.number,
                        customer=top_up.customer.name,
                        reference=top_up.provider_trade_no or "",
                        provider_paid=top_up.paid_amount,
                        ledger_deposit=ledger,
                        status=top_up.get_status_display(),
                    )
                )
        for entry in by_id.values():
            lines.append(
                ReconciliationLine(
                    order_number="",
                    customer=entry.customer.name,
                    reference=entry.reference,
                    provider_paid=ZERO,
                    ledger_deposit=entry.amount.amount,
                    status="deposit without a top-up order",
                )
            )
        report.append(
            MethodReconciliation(
                method=method,
                label=label,
                provider_paid=sum((t.paid_amount for t in paid), ZERO),
                ledger_deposits=sum((e.amount.amount for e in deposits), ZERO),
                orders=len(paid),
                lines=lines,
            )
        )
    return report
