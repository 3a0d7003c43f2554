from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Sum

from accounts.models import Customer, LedgerEntry

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def ledger_balance(*, customer: Customer | int, through: LedgerEntry | None = None) -> Decimal:
    """The prepaid balance: the sum of the customer's ledger entries. `through`: the balance
    right after that entry, in the order the entries were written (a customer's entries are
    written under its row lock, so ids follow commit order: the balance after an entry never
    changes once it is written)."""
    customer_id = customer if isinstance(customer, int) else customer.pk
    entries = LedgerEntry.objects.filter(customer_id=customer_id)
    if through is not None:
        entries = entries.filter(id__lte=through.pk)
    total = entries.aggregate(total=Sum("amount"))["total"]
    return (total or ZERO).quantize(CENT)


def ledger_balances(*, customer_ids: Iterable[int]) -> dict[int, Decimal]:
    """`ledger_balance` of many customers in one query (customers without entries: absent)."""
    rows = (
        LedgerEntry.objects.filter(customer_id__in=list(customer_ids))
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["customer_id"]: (row["total"] or ZERO).quantize(CENT) for row in rows}
