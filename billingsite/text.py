"""What typed text may hold: visible characters only.

Names, fapiao buyer details, addresses and the like are reproduced on invoices, fapiao, the
tax software's import and finance's exports. An invisible character typed or pasted into them
changes what those documents show without showing itself: a right-to-left override (U+202E)
makes "gnp.exe" read as "exe.png", a zero-width space makes two equal names differ, a NUL is
refused by PostgreSQL (a server error), a control character breaks the CSV a tax tool reads.
So they are refused, with the field named, wherever such text is typed: Unicode categories Cc
(controls; tab, line feed and carriage return are allowed in a text box of several lines),
Cf (format: the bidirectional embeddings, overrides, isolates and marks, zero-width space and
joiners, the byte-order mark, soft hyphen, ...), Cs (a lone surrogate, which JSON's "\\ud800"
can carry) and Zl/Zp (line and paragraph separators). Visible spaces of other scripts (the
ideographic space, the no-break space) are text and stay.

`invisible_character_message` is the rule; `VisibleText` is the same rule as a Django
validator (model fields, hence model forms and the admin); services call the function and
raise their own refusal with the field.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# A text box of several lines (a textarea) types these itself.
TEXTAREA_CONTROLS = frozenset("\t\n\r")


def invisible_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character of `text` the rule refuses, or None."""
    if text.isprintable():  # the common case, checked at C speed
        return None
    for character in text:
        if multiline and character in TEXTAREA_CONTROLS:
            continue
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            return character
    return None


def character_name(character: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE', or 'U+0000' for one without a name."""
    name = unicodedata.name(character, "")
    return f"U+{ord(character):04X}" + (f" {name}" if name else "")


def invisible_character_message(text: str, *, label: Any, multiline: bool = False) -> str | None:
    """Why `text`, typed into the field `label`, is refused; None when it is not."""
    character = invisible_character(text, multiline=multiline)
    if character is None:
        return None
    return gettext(
        "The %(field)s contains an invisible control character (%(character)s); delete it "
        "and type the text again."
    ) % {"field": label, "character": character_name(character)}


@deconstructible(path="billingsite.text.VisibleText")
class VisibleText:
    """The rule as a field validator: `VisibleText(_("buyer title"), multiline=False)`."""

    code = "invisible_character"

    def __init__(self, label: Any, *, multiline: bool = False) -> None:
        self.label = label
        self.multiline = multiline

    def __call__(self, value: object) -> None:
        if not isinstance(value, str):
            return
        message = invisible_character_message(value, label=self.label, multiline=self.multiline)
        if message is not None:
            raise ValidationError(message, code=self.code)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, VisibleText)
            and str(self.label) == str(other.label)
            and self.multiline == other.multiline
        )

    def __hash__(self) -> int:
        return hash((str(self.label), self.multiline))
