"""How invoice lines read on the customer pages and in the PDFs.

Works on frozen `InvoiceLine` rows and on the rating engine's `PricedLine` (the estimate) alike:
both carry `description`, `explanation` (English) and `messages` (the same words as message ids
with parameters, `plans/rating/messages.py`). English shows the frozen English text; another
language renders the frozen messages through gettext, so the Chinese is edited in the `.po`
file like every other text, and names of plans and add-ons come from the price book. Lines
frozen before they carried messages read in English in every language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django import template
from django.utils import formats, translation
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, gettext_lazy

from billingsite.money import as_decimal
from invoices.templatetags.billing_format import cny_html, date_text
from plans.rating.messages import CHINESE, ENGLISH, names, render

register = template.Library()

ZERO = Decimal("0.00")


def _language() -> str:
    return CHINESE if (translation.get_language() or "").lower().startswith("zh") else ENGLISH


def _render(line, key: str, english: str) -> str:
    messages = line.messages
    language = _language()
    if language == ENGLISH or not messages:
        return english
    parts = [messages["title"]] if key == "title" else messages["explanation"]
    # An id this code no longer knows renders as nothing: the frozen English says it instead.
    return render(parts, names=messages["names"], language=language, translate=gettext) or english


def line_title_text(line) -> str:
    """The item name of a line in the active language."""
    return _render(line, "title", line.description)


def line_explanation_text(line) -> str:
    return _render(line, "explanation", line.explanation)


def line_plan_names(line) -> dict[str, str]:
    """The line's plan name in both languages (the English one only for lines frozen before
    lines carried messages)."""
    if line.messages:
        return line.messages["names"]["plan"]
    return names(line.plan_name)


def name_in_language(localized: dict[str, str], language: str | None = None) -> str:
    language = language or _language()
    key = CHINESE if language.lower().startswith("zh") else ENGLISH
    return localized.get(key) or localized[ENGLISH]


# Labels customers read; the models' choice labels are finance's wording and not translated.
INVOICE_STATUS = {
    "draft": gettext_lazy("Draft"),
    "held": gettext_lazy("Held for review"),
    "issued": gettext_lazy("Issued"),
    "partially_credited": gettext_lazy("Partly credited"),
    "credited": gettext_lazy("Credited"),
}
LEDGER_KINDS = {
    "deposit": gettext_lazy("Deposit"),
    "invoice_debit": gettext_lazy("Invoice"),
    "credit_note_credit": gettext_lazy("Credit note"),
    "refund": gettext_lazy("Refund"),
    "adjustment": gettext_lazy("Adjustment"),
    "promo_grant": gettext_lazy("Promotional credit"),
    "promo_use": gettext_lazy("Promotional credit used"),
    "promo_lapse": gettext_lazy("Promotional credit expired"),
}


@register.filter
def invoice_status(status: str) -> str:
    return str(INVOICE_STATUS.get(status, status))


@register.filter
def ledger_kind(kind: str) -> str:
    return str(LEDGER_KINDS.get(kind, kind))


@register.filter
def line_title(line) -> str:
    return line_title_text(line)


@register.filter
def credit_line_title(credit_line) -> str:
    """A credit note line: the credited invoice line's item, in every language. The note's own
    frozen description is "<app key> <item>" (finance's lists have no application column); the
    page and the PDF show the application beside it, so it would name the key twice."""
    return line_title_text(credit_line.invoice_line)


@register.filter
def line_explanation(line) -> str:
    return line_explanation_text(line)


# A line's row of the portal's line tables (`templates/portal/_lines.html`), with the space
# around it that the template's former `{% for line in group.lines %}` loop wrote.
_LINE_ROW = (
    "\n      <tr>\n"
    "        <td>\n"
    "          <div>{title}</div>\n"
    '          <div class="explain">{explanation}</div>\n'
    "        </td>\n"
    '        <td class="hide-narrow nowrap small">{first_day} – {last_day}<br>'
    '<span class="muted">{days}</span></td>\n'
    '        <td class="num hide-narrow">{quantity}</td>\n'
    '        <td class="num hide-narrow">{unit_price}</td>\n'
    '        <td class="num">{amount}</td>\n'
    "      </tr>\n"
    "    "
)


def _text(value) -> str:
    """What `{{ value }}` writes in an autoescaped template (localised, then escaped)."""
    value = formats.localize(value)
    return conditional_escape(value if isinstance(value, str) else str(value))


def _month_day(day, language: str | None) -> str:
    """`{{ day|date:"m-d" }}` (`language`: the active one)."""
    return "" if day is None else conditional_escape(date_text(day, "m-d", language))


@register.filter
def line_rows(lines) -> SafeString:
    """The rows of an application's lines (invoice lines or the estimate's priced lines) in
    the active language. The template loop's ~12 variables, filters and translations per line
    cost the template engine ~450 Python calls a line; this is the same text
    (tests/portal/test_rendering_cost.py compares it with the former loop)."""
    days_message = gettext("%(days)s of %(month)s days")
    language = translation.get_language()
    rows = [
        _LINE_ROW.format(
            title=conditional_escape(line_title_text(line)),
            explanation=conditional_escape(line_explanation_text(line)),
            first_day=_month_day(line.first_day, language),
            last_day=_month_day(line.last_day, language),
            days=days_message % {"days": _text(line.days), "month": _text(line.days_in_month)},
            quantity=_text(line.quantity),
            unit_price=cny_html(line.unit_price),
            amount=cny_html(line.amount),
        )
        for line in lines
    ]
    return SafeString("".join(rows))


@register.simple_tag
def line_title_in(line, language: str) -> str:
    """The item name in a given language (the PDFs print English and Chinese side by side)."""
    with translation.override(language):
        return line_title_text(line)


@register.simple_tag
def line_explanation_in(line, language: str) -> str:
    with translation.override(language):
        return line_explanation_text(line)


@register.simple_tag
def name_in(localized: dict[str, str], language: str) -> str:
    """A plan's name (as `ApplicationGroup.plans` holds it) in a given language."""
    return name_in_language(localized, language)


@dataclass
class ApplicationGroup:
    """The lines of one application on one document, in line order."""

    app_key: str
    app_name: str
    lines: list = field(default_factory=list)
    # The application's plans in line order, each `{"en": name, "zh-hans": name}`.
    plans: list[dict[str, str]] = field(default_factory=list)

    @property
    def subtotal(self) -> Decimal:
        return sum((as_decimal(line.amount) for line in self.lines), ZERO)

    @property
    def plan_names(self) -> str:
        return " → ".join(name_in_language(plan) for plan in self.plans)


@register.filter
def by_application(lines) -> list[ApplicationGroup]:
    """Lines grouped by application, applications in order of their first line."""
    groups: dict[str, ApplicationGroup] = {}
    for line in lines:
        group = groups.get(line.app_key)
        if group is None:
            group = groups[line.app_key] = ApplicationGroup(line.app_key, line.app_name)
        group.lines.append(line)
        plan = line_plan_names(line)
        if line.category == "dau_fee" and plan not in group.plans:
            group.plans.append(plan)
    for group in groups.values():
        if not group.plans and group.lines:
            group.plans.append(line_plan_names(group.lines[0]))
    return list(groups.values())


@register.simple_tag(takes_context=True)
def bi(context, english: str, chinese: str) -> str:
    """A bilingual PDF label: the reader's language first (`first_language` in the context,
    the customer's preferred language), the other one after it in the secondary style."""
    first, second = (
        (chinese, english) if context.get("first_language") == "zh-hans" else (english, chinese)
    )
    return format_html('{} <span class="zh">{}</span>', first, second)
