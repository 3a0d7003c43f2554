"""How large an invoice can be, and the check that an account's invoice fits before it is
written.

Every money column of an invoice, its lines, the ledger and credit notes is numeric(14, 2):
up to 999,999,999,999.99. The largest legal invoice of one application for one month, with the
default price book and every quantity at its maximum (plans/price_book.json), is:

  DAU fee, Ultimate at the largest storable peak DAU (2,147,483,647):
    8,000 + 4,500 x ceil((2,147,483,647 - 10,000) / 10,000) = 8,000 + 4,500 x 214,748
                                                              = 966,374,000.00
  add-ons at their maxima (each at the dearer of Premium / Ultimate):
    7 value-added services x 2,000             =     14,000
    desktop client                             =      5,000
    private storage extension 20 x 1,200       =     24,000
    chat room storage                          =      1,000
    chat room storage extension 120 x 1,000    =    120,000
    ultragroup storage extension 120 x 1,000   =    120,000
    sensitive words 1,000 x 1,200              =  1,200,000
    17 API rate limits x 1,000 x 400           =  6,800,000
    3 API rate limits x 1,000 x 1,200          =  3,600,000
                                                 11,884,000.00
  one application, one month:                   978,258,000.00

So one line is below 10^9 and an invoice holds over a thousand such applications: the columns
need no widening (tests/invoices/test_limits.py rates this case). Finance can still make an
invoice too large (an add-on maximum raised to ADDON_QUANTITY_CEILING with a huge unit price, a
contract fee of billions, thousands of applications at a billion DAU): `invoice_size_problem`
finds it before anything is written, and the run records the account as failed with a message
finance can act on instead of a database overflow.
"""

from __future__ import annotations

from decimal import Decimal

from billingsite.money import format_cny
from invoices.models import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from plans.rating.engine import RatedAccount

LARGEST_AMOUNT = Decimal(10) ** (MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES) - Decimal("0.01")
# InvoiceLine.quantity and peak_dau are PositiveIntegerField.
LARGEST_QUANTITY = 2**31 - 1


class InvoiceTooLarge(ValueError):
    """An account's invoice does not fit the money columns. The message is written for finance:
    it is recorded on the billing run as it is."""

    finance_message = True


def invoice_size_problem(*, rated: RatedAccount) -> str | None:
    """Why `rated` cannot be stored as an invoice (too large), or None when it fits."""
    oversize = [
        line
        for line in rated.lines
        if abs(line.amount) > LARGEST_AMOUNT
        or abs(line.unit_price) > LARGEST_AMOUNT
        or line.quantity > LARGEST_QUANTITY
    ]
    if not oversize and abs(rated.total) <= LARGEST_AMOUNT:
        return None
    shown = oversize or sorted(rated.lines, key=lambda line: line.amount, reverse=True)[:3]
    causes = "; ".join(
        f"{line.app_key} {line.code} x {line.quantity:,} = {format_cny(line.amount)}"
        for line in shown
    )
    return (
        f"the invoice would total {format_cny(rated.total)}, more than an invoice can hold "
        f"({format_cny(LARGEST_AMOUNT)}); largest lines: {causes}. Correct the quantities "
        "or prices, then retry the account."
    )
