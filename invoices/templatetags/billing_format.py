"""Template filters for money, shared by the customer pages, the PDFs and the admin.

`{% load billing_format %}` then `{{ invoice.total|cny }}` -> "¥6,000.00". Formatting goes
through `billingsite.money.format_cny`, the one formatting helper, so every screen and PDF
shows the same figure for the same amount. `date_text` is the `|date` filter's text of a date,
kept per process and language for the rows the portal builds in Python.
"""

import datetime as dt
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from django import template
from django.db.models import Sum
from django.utils import formats
from django.utils.html import format_html
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
def cny_html(value) -> str:
    """`cny` in a span that never breaks ('-¥4,096.77' would wrap after its minus sign) for
    HTML text; attributes and plain-text e-mails use `cny`."""
    text = cny(value)
    return format_html('<span class="amount">{}</span>', text) if text else ""


@register.simple_tag
def list_totals(cl) -> dict | None:
    """An admin list's totals row: the sum of the ModelAdmin's `list_total_field` over every
    row the filters select (all pages: one aggregate query), placed under `list_total_column`.
    None when the ModelAdmin names no total."""
    model_admin = cl.model_admin
    field_name = getattr(model_admin, "list_total_field", None)
    column = getattr(model_admin, "list_total_column", None)
    columns = list(cl.list_display)
    if not field_name or column not in columns:
        return None
    total = cl.queryset.order_by().aggregate(total=Sum(field_name))["total"]
    before = columns.index(column)
    return {
        "before": before,
        "after": len(columns) - before - 1,
        "total": total if total is not None else Decimal("0.00"),
        "count": cl.result_count,
    }


@register.filter
def vat_percent(value) -> str:
    """A VAT rate as a percentage: Decimal("0.0600") -> "6%", Decimal("0.0550") -> "5.5%"."""
    if not isinstance(value, Decimal):
        return ""
    percent = (value * 100).normalize()
    return f"{percent:f}%"


@lru_cache(maxsize=512)
def _date_text(value: dt.date, format_name: str, language: str | None) -> str:
    # `language` is part of the key: the same date reads differently in each language.
    return formats.date_format(value, format_name)


def date_text(value: dt.date, format_name: str, language: str | None) -> str:
    """`{{ value|date:format_name }}` in `language`, the active one
    (`translation.get_language()`, read once by a loop that formats many dates: it is a
    thread-local lookup). A month's label is the same on every page: formatted once per
    process and language."""
    return _date_text(value, format_name, language)
