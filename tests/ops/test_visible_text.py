"""The typed-text rule (`billingsite.text`): invisible format and control characters refused
with the field named; visible text of any script kept. The screens' tests (portal, admin,
API) post the same values end to end."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from billingsite.text import VisibleText, invisible_character, invisible_character_message
from tests.portal.test_hostile_input import INVISIBLE_TEXT

VISIBLE = [
    "Acme Chat Ltd",
    "上海万坦科技有限公司",
    "名称 🏢",
    "Müller & Söhne GmbH",
    "上海\u3000万坦",  # an ideographic space: visible, typed by Chinese input methods
    "1\u00a0Century Avenue",  # a no-break space
    "",
]


@pytest.mark.parametrize("text", INVISIBLE_TEXT)
def test_invisible_characters_are_found_on_one_line(text):
    assert invisible_character(text) is not None


@pytest.mark.parametrize("text", VISIBLE)
def test_visible_text_of_any_script_is_kept(text):
    assert invisible_character(text) is None
    assert invisible_character(text, multiline=True) is None


def test_a_text_box_of_several_lines_keeps_its_own_controls_only():
    assert invisible_character("1 Century Avenue\r\nPudong\tShanghai", multiline=True) is None
    assert invisible_character("1 Century Avenue\nPudong") == "\n"
    assert invisible_character("Pudong\n\u202eiahgnahS", multiline=True) == "\u202e"
    assert invisible_character("Pudong\x0bShanghai", multiline=True) == "\x0b"


def test_the_message_names_the_field_and_the_character():
    assert invisible_character_message("gnp\u202e.exe", label="buyer title") == (
        "The buyer title contains an invisible control character "
        "(U+202E RIGHT-TO-LEFT OVERRIDE); delete it and type the text again."
    )
    assert invisible_character_message("a\x00b", label="name") == (
        "The name contains an invisible control character (U+0000); delete it and type the "
        "text again."
    )
    assert invisible_character_message("Acme", label="name") is None
    with translation.override("zh-hans"):
        assert invisible_character_message("A\u200bB", label="名称") == (
            "名称含有不可见的控制字符（U+200B ZERO WIDTH SPACE），请删除后重新输入。"
        )


def test_the_validator_raises_with_its_code_and_deconstructs_for_migrations():
    validator = VisibleText("address", multiline=True)
    validator("1 Century Avenue\nPudong")
    with pytest.raises(ValidationError) as refused:
        validator("1 Century Avenue\ufeff")
    assert refused.value.code == "invisible_character"
    assert refused.value.messages == [
        "The address contains an invisible control character (U+FEFF ZERO WIDTH NO-BREAK "
        "SPACE); delete it and type the text again."
    ]
    assert validator.deconstruct() == (
        "billingsite.text.VisibleText",
        ("address",),
        {"multiline": True},
    )
    assert validator == VisibleText("address", multiline=True) != VisibleText("address")
