"""How invoice lines read on the customer pages and in the PDFs.

Works on frozen `InvoiceLine` rows and on the rating engine's `PricedLine` (the estimate) alike:
both carry the same attribute names. English shows the frozen description and explanation as
they were written at rating time. Chinese shows a translation of that same frozen text: item
names by their stable code, explanations phrase by phrase; anything it does not recognise
stays in the original English, so a figure is never lost in translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from django import template
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billingsite.money import as_decimal

register = template.Library()

ZERO = Decimal("0.00")

PLAN_NAMES = {
    "free": gettext_lazy("Free"),
    "premium": gettext_lazy("Premium"),
    "ultimate": gettext_lazy("Ultimate"),
}

# Stable add-on codes of the price book (PRICING.md); names in the book are data and may be
# edited, so Chinese names hang off the code, never off the English text.
ADDON_NAMES = {
    "chatroom_keepalive": gettext_lazy("Chat room keep-alive"),
    "chatroom_global_mute": gettext_lazy("Chat room global mute"),
    "chatroom_message_priority": gettext_lazy(
        "Chat room message priority (up to 20 low-priority message types)"
    ),
    "chatroom_whitelist": gettext_lazy("Chat room user and message whitelist"),
    "chatroom_broadcast": gettext_lazy("Chat room broadcast messages"),
    "message_callback": gettext_lazy("Message callback"),
    "push_template": gettext_lazy("Push content template setting"),
    "desktop_pc": gettext_lazy("Desktop (PC) client"),
    "private_storage": gettext_lazy("1-to-1 and group message cloud storage, 6 months"),
    "private_storage_extension": gettext_lazy("Extend 1-to-1 and group message cloud storage"),
    "chatroom_storage": gettext_lazy("Chat room message cloud storage, 2 months"),
    "chatroom_storage_extension": gettext_lazy("Extend chat room message cloud storage"),
    "ultragroup_storage_extension": gettext_lazy("Extend ultragroup message cloud storage"),
    "sensitive_words": gettext_lazy("Extra sensitive words (50 included)"),
}

_ZH_PLAN = {"Free": "免费版", "Premium": "尊享版", "Ultimate": "至尊版"}

_ZH_UNITS = [
    (re.compile(r"^enabled$"), "已开通"),
    (re.compile(r"^half-years? extended$"), "每延长半年"),
    (re.compile(r"^months? extended$"), "每延长 1 个月"),
    (re.compile(r"^pack of ([\d,]+) words$"), r"每包 \1 个词"),
    (re.compile(r"^\+([\d,]+)/s on (\S+)$"), r"\2 每秒 +\1 次"),
    (re.compile(r"^\+([\d,]+)/min on (\S+)$"), r"\2 每分钟 +\1 次"),
    (re.compile(r"^\+([\d,]+)/day on (\S+)$"), r"\2 每天 +\1 次"),
]

_NUM = r"[\d,]+(?:\.\d+)?"
_DATE = r"\d{4}-\d{2}-\d{2}"

# Phrases of invoices/rating.py's explanations, in the order they must be replaced.
_ZH_PHRASES = [
    (re.compile(r"no usage reported: billed at peak DAU 0"), "未上报用量，按峰值日活 0 计费"),
    (re.compile(rf"peak DAU ({_NUM}) on ({_DATE})"), r"峰值日活 \1（\2）"),
    (re.compile(rf"peak DAU ({_NUM})"), r"峰值日活 \1"),
    (re.compile(r"(\w+) plan has no monthly fee"), lambda m: f"{_zh_plan(m[1])}无月费"),
    (re.compile(rf" ?\(up to ({_NUM}) DAU\)"), r"（\1 日活以内）"),
    (re.compile(r"; pro rata (\d+) of (\d+) days: "), r"；按天折算 \1/\2 天："),
    (re.compile(r"included in the (\w+) plan"), lambda m: f"{_zh_plan(m[1])}已包含"),
    (re.compile(r"dedicated-service contract"), "专属服务合同"),
    (re.compile(r" / month"), " / 月"),
    (re.compile(rf"; peak ({_NUM}) delivered messages in a day"), r"；单日最高下发消息 \1 条"),
    (re.compile(r" \(([^()]+)\)"), lambda m: f"（{_zh_unit(m[1])}）"),
    (re.compile(r": "), "："),
    (re.compile(r"） = "), "）= "),
]


def _zh_plan(name: str) -> str:
    return _ZH_PLAN.get(name, name)


def _zh_unit(text: str) -> str:
    for pattern, replacement in _ZH_UNITS:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


def explanation_in_chinese(text: str) -> str:
    """The rating engine's English explanation, phrase by phrase in Chinese; figures, dates
    and anything unrecognised are kept exactly."""
    for pattern, replacement in _ZH_PHRASES:
        text = pattern.sub(replacement, text)
    return text


def _is_chinese(language: str | None) -> bool:
    return (language or "").lower().startswith("zh")


def plan_name(code: str, frozen_name: str) -> str:
    if _is_chinese(translation.get_language()) and code in PLAN_NAMES:
        return str(PLAN_NAMES[code])
    return frozen_name


def line_title_text(line) -> str:
    """The item name of a line in the active language."""
    if not _is_chinese(translation.get_language()):
        return line.description
    if line.category == "dau_fee":
        return _("%(plan)s plan, monthly fee by peak DAU") % {
            "plan": plan_name(line.plan_code, line.plan_name)
        }
    if line.category == "dedicated_service":
        return _("Dedicated service (high-volume contract)")
    if line.code in ADDON_NAMES:
        return str(ADDON_NAMES[line.code])
    if line.code.startswith("api_") and " /" in line.description:
        return _("API rate limit %(endpoint)s") % {
            "endpoint": line.description[line.description.index(" /") + 1 :]
        }
    return line.description


def line_explanation_text(line) -> str:
    if not _is_chinese(translation.get_language()):
        return line.explanation
    return explanation_in_chinese(line.explanation)


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
    """A credit note line: its own frozen description, or the credited item in Chinese."""
    if not _is_chinese(translation.get_language()):
        return credit_line.description
    return line_title_text(credit_line.invoice_line)


@register.filter
def line_explanation(line) -> str:
    return line_explanation_text(line)


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
def plan_name_in(code: str, frozen_name: str, language: str) -> str:
    with translation.override(language):
        return plan_name(code, frozen_name)


@dataclass
class ApplicationGroup:
    """The lines of one application on one document, in line order."""

    app_key: str
    app_name: str
    lines: list = field(default_factory=list)
    plan_codes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def subtotal(self) -> Decimal:
        return sum((as_decimal(line.amount) for line in self.lines), ZERO)

    @property
    def plan_names(self) -> str:
        return " → ".join(plan_name(code, name) for code, name in self.plan_codes)


@register.filter
def by_application(lines) -> list[ApplicationGroup]:
    """Lines grouped by application, applications in order of their first line."""
    groups: dict[str, ApplicationGroup] = {}
    for line in lines:
        group = groups.get(line.app_key)
        if group is None:
            group = groups[line.app_key] = ApplicationGroup(line.app_key, line.app_name)
        group.lines.append(line)
        if line.category == "dau_fee" and (line.plan_code, line.plan_name) not in group.plan_codes:
            group.plan_codes.append((line.plan_code, line.plan_name))
    for group in groups.values():
        if not group.plan_codes and group.lines:
            first = group.lines[0]
            group.plan_codes.append((first.plan_code, first.plan_name))
    return list(groups.values())
