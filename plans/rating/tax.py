"""VAT of a priced line: the one rounding rule of net, VAT and gross. Pure: no Django.

The rule (README "VAT"): per line, the VAT is rounded half-up to 0.01 once
(`billingsite.money.round_money`) and the other amount is the difference, so net + VAT = gross
on every line to the cent; an invoice's net, VAT and gross totals are sums of its lines, never
computed from the total.

- prices include VAT (the default, 6%): gross = the line's price, VAT = gross x rate / (1 + rate),
  net = gross - VAT;
- prices exclude VAT: net = the line's price, VAT = net x rate, gross = net + VAT (the customer
  pays the gross: it is the line's amount).

A credit note gives VAT back in proportion to the gross it gives back, by cumulative rounding
(`credited_vat`): after each credit note the VAT credited on a line is round(line VAT x gross
credited so far / line gross), so a line credited in full in any number of notes has given back
exactly its VAT, to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billingsite.money import round_money

ZERO = Decimal("0.00")
ONE = Decimal(1)


@dataclass(frozen=True)
class VatTerms:
    """Whether the price book's prices include VAT, and at which rate (0.06 = 6%)."""

    rate: Decimal
    prices_include_vat: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Decimal) or not ZERO <= self.rate < ONE:
            raise ValueError(f"a VAT rate is a Decimal from 0 up to 1, got {self.rate!r}")


# The terms of a price book without a dated VAT row (plans.VatRate): the default, and
# what every price book said before VAT rows existed.
DEFAULT_VAT = VatTerms(rate=Decimal("0.06"), prices_include_vat=True)


@dataclass(frozen=True)
class VatSplit:
    net: Decimal
    vat: Decimal
    gross: Decimal


def vat_split(*, price: Decimal, terms: VatTerms) -> VatSplit:
    """Net, VAT and gross of one line priced at `price` (already rounded to the cent)."""
    if terms.prices_include_vat:
        gross = price
        vat = round_money(gross * terms.rate / (ONE + terms.rate))
        return VatSplit(net=gross - vat, vat=vat, gross=gross)
    vat = round_money(price * terms.rate)
    return VatSplit(net=price, vat=vat, gross=price + vat)


def credited_vat(
    *, line_gross: Decimal, line_vat: Decimal, credited_before: Decimal, credited_now: Decimal
) -> Decimal:
    """The VAT a credit of `credited_now` (gross) gives back on a line of `line_gross` with
    `line_vat`, after earlier notes credited `credited_before` of it: cumulative rounding, so
    the VAT of every note on the line sums to the line's VAT once it is credited in full."""
    if line_gross == 0:
        return ZERO
    after = round_money(line_vat * (credited_before + credited_now) / line_gross)
    before = round_money(line_vat * credited_before / line_gross)
    return after - before
