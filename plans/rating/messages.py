"""The words of the rating engine's lines: message ids with parameters, not prose.

Pure (no Django), like the engine. A line's title and explanation are `Message`s: an id from
`CATALOGUE` and its parameters, already formatted (figures, dates, money) since they read the
same in every language; names of plans, add-ons and units are the line's `names`,
`{"en": ..., "zh-hans": ...}` from the price book. The engine renders the English here (it is frozen on the invoice for exports and
PDFs); the pages render the same frozen ids in the reader's language through gettext
(`invoices/templatetags/invoice_text.py`), whose catalogue is the `.po` file: a wording change
is one edit here and one in the `.po`, never a parser to keep in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

ENGLISH = "en"
CHINESE = "zh-hans"


def gettext_noop(message: str) -> str:
    """Marks a message for `manage.py makemessages` (it extracts this name) without Django."""
    return message


# The text that joins a part to the one before it.
COLON, SEMICOLON = "colon", "semicolon"
SEPARATORS: dict[str, str] = {
    COLON: gettext_noop(": "),
    SEMICOLON: gettext_noop("; "),
}

# Message id -> (the separator before it when it is not the first part, its English text).
# The ids are frozen on invoices: never reuse one for another meaning; add a new id instead.
CATALOGUE: dict[str, tuple[str, str]] = {
    # Titles
    "plan_fee_title": (COLON, gettext_noop("{plan} plan, monthly fee by peak DAU")),
    "contract_title": (COLON, gettext_noop("Dedicated service (high-volume contract)")),
    # An add-on's own name, from the price book in both languages.
    "addon_title": (COLON, "{addon}"),
    # The DAU fee
    "no_usage": (COLON, gettext_noop("no usage reported: billed at peak DAU 0")),
    "peak_dau": (COLON, gettext_noop("peak DAU {peak_dau}")),
    "peak_dau_on_day": (COLON, gettext_noop("peak DAU {peak_dau} on {day}")),
    "no_monthly_fee": (COLON, gettext_noop("{plan} plan has no monthly fee")),
    "base_fee_only": (COLON, gettext_noop("{base_fee} (up to {included_dau} DAU)")),
    "base_fee_and_blocks": (
        COLON,
        gettext_noop("{base_fee} + {blocks} x {block_price} = {monthly}"),
    ),
    # Add-ons
    "included": (COLON, gettext_noop("included in the {plan} plan")),
    "addon_quantity": (COLON, gettext_noop("{quantity} x {unit_price} ({unit})")),
    "addon_quantity_total": (
        COLON,
        gettext_noop("{quantity} x {unit_price} ({unit}) = {monthly}"),
    ),
    # Dedicated-service contracts
    "contract": (COLON, gettext_noop("dedicated-service contract: {monthly_fee} / month")),
    "contract_with_reference": (
        COLON,
        gettext_noop("dedicated-service contract {reference}: {monthly_fee} / month"),
    ),
    "peak_messages": (SEMICOLON, gettext_noop("peak {messages} delivered messages in a day")),
    # Contracted discounts (plans.models.Discount); amounts read positive, the line is negative.
    "discount_title": (COLON, gettext_noop("Contracted discount")),
    "discount_title_reference": (COLON, gettext_noop("Contracted discount {reference}")),
    "discount_percent": (COLON, gettext_noop("{percent} of the month's charges of {charges}")),
    "discount_percent_days": (
        COLON,
        gettext_noop("{percent} of the charges of {first_day} to {last_day} ({charges})"),
    ),
    "discount_fixed": (COLON, gettext_noop("{amount_off} off a month")),
    "discount_rest": (
        SEMICOLON,
        gettext_noop("{amount} left after the customer's other applications"),
    ),
    "discount_customer": (SEMICOLON, gettext_noop("agreed for all the customer's applications")),
    "discount_limited": (
        SEMICOLON,
        gettext_noop("limited to the charges left, {amount}: never below zero"),
    ),
    # Any line billed for part of the month
    "prorata": (
        SEMICOLON,
        gettext_noop(
            "pro rata {days} of {days_in_month} days: {monthly} x {days}/{days_in_month} = {amount}"
        ),
    ),
}


class Message(NamedTuple):
    id: str
    # Language-neutral values (figures, dates, money as text); names come from the line's
    # `names` (`render`), so a plan name is frozen once per line, not once per message.
    params: dict[str, Any] = {}

    def as_json(self) -> list[Any]:
        return [self.id, self.params] if self.params else [self.id]


def names(english: str, chinese: str = "") -> dict[str, str]:
    """A price-book name in both languages (Chinese falls back to the English when unset)."""
    return {ENGLISH: english, CHINESE: chinese or english}


def render(
    parts: Iterable[Message | list[Any]],
    *,
    names: Mapping[str, Mapping[str, str]] | None = None,
    language: str = ENGLISH,
    translate: Callable[[str], str] | None = None,
) -> str:
    """Parts joined by their separators in `language`; `translate` is gettext on the pages.

    `parts` are `Message`s (the engine) or their JSON (frozen on an invoice line); `names`
    maps a placeholder (plan, addon, unit) to its name in each language. An id this code no
    longer knows renders as nothing rather than failing a customer's page.
    """
    values: dict[str, Any] = {
        key: localized.get(language) or localized[ENGLISH]
        for key, localized in (names or {}).items()
    }
    pieces: list[str] = []
    for part in parts:
        entry = CATALOGUE.get(part[0])
        if entry is None:
            continue
        separator, template = entry
        if translate is not None:
            template = translate(template)
        if pieces:
            pieces.append(
                SEPARATORS[separator] if translate is None else translate(SEPARATORS[separator])
            )
        pieces.append(
            template.format_map({**values, **part[1]})
            if len(part) > 1
            else template.format_map(values)
        )
    return "".join(pieces)
