"""Template filters for money, shared by the customer pages, the PDFs and the admin.

`{% load billing_format %}` then `{{ invoice.total|cny }}` -> "¥6,000.00". Formatting goes
through `billingsite.money.format_cny`, the one formatting helper, so every screen and PDF
shows the same figure for the same amount.
"""

from decimal import Decimal, InvalidOperation

from django import template
from moneyed import Money

from billingsite.money import format_amount, format_cny

register = template.Library()


def _as_money_value(value) -> Decimal | Money | None:
    if isinstance(value, Money | Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str) and value.strip():
        # Amounts arrive as strings from JSON payloads ("6000.00"); floats are never accepted.
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


@register.filter
def cny(value) -> str:
    """'¥6,000.00' (negative: '-¥1,250.50'); empty string for None or non-numbers."""
    amount = _as_money_value(value)
    return "" if amount is None else format_cny(amount)


@register.filter
def amount(value) -> str:
    """'6000.00': the plain two-decimal figure (CSV-like cells, inputs)."""
    amount_value = _as_money_value(value)
    return "" if amount_value is None else format_amount(amount_value)


@register.filter
def negate(value):
    """The amount with its sign flipped (a debit of -6,000.00 shown as a charge of 6,000.00)."""
    amount_value = _as_money_value(value)
    return None if amount_value is None else -amount_value


@register.filter
def vat_percent(value) -> str:
    """A VAT rate as a percentage: Decimal("0.0600") -> "6%", Decimal("0.0550") -> "5.5%"."""
    if not isinstance(value, Decimal):
        return ""
    percent = (value * 100).normalize()
    return f"{percent:f}%"
