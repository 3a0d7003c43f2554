from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Sum

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
