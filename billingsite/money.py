"""The one place money is rounded and formatted.

Every priced line is computed exactly in Decimal and rounded half-up to 0.01 once; totals are
sums of rounded lines, so a total always equals what the customer can add up on the invoice.
"""

import re
from decimal import ROUND_HALF_UP, Decimal

from moneyed import Money

CURRENCY = "CNY"
CENT = Decimal("0.01")


class CurrencyError(ValueError):
    """Raised for anything but CNY: other settlement currencies need contract pricing."""

    message = "non-RMB settlement: contract pricing. Only CNY is billed here."


def round_money(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, got {type(amount).__name__}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


# What a person may type as an amount: ASCII digits, an optional minus, grouping commas only in
# their places, a decimal point. Exponents ("1e3"), NaN, Infinity and other scripts' digits
# ("１００", which Decimal reads as 100) are refused rather than read as something unintended.
TYPED_AMOUNT = re.compile(r"-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)", re.ASCII)
# Every amount is below this (14 digits, 2 of them decimals): larger input is refused before any
# arithmetic, which would overflow the decimal context when rounding.
AMOUNT_LIMIT = Decimal("1e12")


class AmountTooLarge(ValueError):
    """A typed amount of AMOUNT_LIMIT or more (either way)."""


def parse_amount(text: str) -> Decimal:
    """An amount as finance or a customer types it: "6000", "6,000.00", "¥6,000.00", "-25.5",
    surrounding spaces ignored. ValueError for anything else, or for 1,000,000,000,000 or more
    either way. The number of decimals is the caller's rule (see `round_money`)."""
    value = text.strip().removeprefix("¥").strip()
    if not TYPED_AMOUNT.fullmatch(value):
        raise ValueError(f"not an amount: {text[:40]!r}")
    amount = Decimal(value.replace(",", ""))
    if abs(amount) >= AMOUNT_LIMIT:
        raise AmountTooLarge("the amount is too large")
    return amount


def cny(amount: Decimal | int | str) -> Money:
    return Money(round_money(Decimal(amount)), CURRENCY)


# The vendor's price sheet says RMB: the same currency as CNY, under its everyday name.
CURRENCY_NAMES = (CURRENCY, "RMB")


def ensure_cny(currency: str | None) -> None:
    if currency not in (None, "", *CURRENCY_NAMES):
        raise CurrencyError(CurrencyError.message)


def as_decimal(value: Money | Decimal) -> Decimal:
    """The Decimal of a Money (checking it is CNY) or of a Decimal."""
    if isinstance(value, Money):
        ensure_cny(str(value.currency))
        return value.amount
    return value


def format_amount(amount: Decimal | Money) -> str:
    """'6000.00': the API's fixed two-decimal string."""
    return f"{round_money(as_decimal(amount)):.2f}"


def format_cny(amount: Decimal | Money) -> str:
    """'¥6,000.00': how customers and finance read amounts."""
    value = round_money(as_decimal(amount))
    sign = "-" if value < 0 else ""
    return f"{sign}¥{abs(value):,.2f}"
