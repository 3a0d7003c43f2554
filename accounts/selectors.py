from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Q, Sum

from accounts.models import Customer, LedgerEntry

ZERO = Decimal("0.00")


def ledger_balance(*, customer: Customer | int) -> Decimal:
    """The prepaid balance: the sum of the customer's ledger entries."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    total = LedgerEntry.objects.filter(customer_id=customer_id).aggregate(total=Sum("amount"))[
        "total"
    ]
    return (total or ZERO).quantize(Decimal("0.01"))


def ledger_balances(*, customer_ids: Iterable[int]) -> dict[int, Decimal]:
    rows = (
        LedgerEntry.objects.filter(customer_id__in=list(customer_ids))
        .values("customer_id")
        .annotate(total=Sum("amount"))
    )
    return {row["customer_id"]: (row["total"] or ZERO).quantize(Decimal("0.01")) for row in rows}


def ledger_balance_after(*, entry: LedgerEntry) -> Decimal:
    """The balance right after an entry: the sum of the customer's entries up to it in ledger
    order (created_at, id). The ledger is append-only, so this never changes."""
    total = LedgerEntry.objects.filter(
        Q(created_at__lt=entry.created_at) | Q(created_at=entry.created_at, id__lte=entry.pk),
        customer_id=entry.customer_id,
    ).aggregate(total=Sum("amount"))["total"]
    return (total or ZERO).quantize(Decimal("0.01"))
