"""The customer's transfer reference: what a customer writes in a bank transfer's remark so
the statement line finds its account by itself.

Format: `IM` + 7 random characters + 1 check character, from Crockford's base-32 alphabet
(digits and capitals without I, L, O, U, which are read or typed as 1, 1, 0, V). The check
character is Luhn mod N over that alphabet (`stdnum.luhn` with `alphabet=`): it catches every
single mistyped character and every swap of two neighbouring ones but "0Z" <-> "Z0" (the
usual mistakes of a reference typed into a banking app), and python-stdnum is the well-kept
library of such check digits. Random rather than derived from the id: a reference says nothing about how many
customers there are and is fixed before the row exists; 32^7 (34 billion) bodies make a
collision negligible and the unique constraint refuses one anyway.
"""

from __future__ import annotations

import re
import secrets

from stdnum import luhn
from stdnum.exceptions import ValidationError

PREFIX = "IM"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BODY_LENGTH = 7
LENGTH = len(PREFIX) + BODY_LENGTH + 1
# Characters that banks and customers put between the parts of a reference.
_SEPARATORS = re.compile(r"[\s\-_./]+")
_CANDIDATE = re.compile(rf"{PREFIX}[{ALPHABET}]{{{BODY_LENGTH + 1}}}")


def transfer_reference_new() -> str:
    """A fresh reference (the model's default: every customer gets one when created)."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return f"{PREFIX}{body}{luhn.calc_check_digit(body, alphabet=ALPHABET)}"


def transfer_reference_normalize(text: str) -> str:
    """Upper case without separators: `im 7k3q-9xp a` reads as `IM7K3Q9XPA`."""
    return _SEPARATORS.sub("", text or "").upper()


def transfer_reference_valid(reference: str) -> bool:
    """A well-formed reference whose check character is right (after normalizing)."""
    value = transfer_reference_normalize(reference)
    if len(value) != LENGTH or not value.startswith(PREFIX):
        return False
    body = value[len(PREFIX) :]
    if any(character not in ALPHABET for character in body):
        return False
    try:
        luhn.validate(body, alphabet=ALPHABET)
    except ValidationError:
        return False
    return True


def transfer_references_in(text: str) -> list[str]:
    """The valid references found in a remark, in order, without repeats. Tolerant of spaces,
    dashes and case; a candidate whose check character is wrong is not a reference (a typo
    must not credit another customer)."""
    normalized = transfer_reference_normalize(text)
    found: list[str] = []
    start = 0
    while (match := _CANDIDATE.search(normalized, start)) is not None:
        candidate = match.group(0)
        if transfer_reference_valid(candidate) and candidate not in found:
            found.append(candidate)
        # Overlapping candidates: "CLAIM7K3Q..." must still find the "IM..." inside.
        start = match.start() + 1
    return found
