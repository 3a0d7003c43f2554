"""`{% translate %}` and `{% blocktranslate %}` that translate each message once per process
and language: `{% load i18n i18n_cached %}` (after Django's `i18n`, whose two tags these
replace in that template; `trans` and `blocktrans` too).

A portal page holds 20 to 40 fixed messages. Django's `{% translate "Invoices" %}` makes a
lazy translation object on every render, casts it, looks the message up through the catalogue's
fallbacks, then localises and escapes it: about 60 Python calls for a text that is the same on
every page in one language (a tenth of a page's CPU). Here the translated text is kept per
(language, message) after Django's own node rendered it once, and `{% blocktranslate %}` keeps
its message's translation the same way (its variables are still rendered on every call).

Django parses every tag (same syntax, same errors, same `makemessages` extraction); what this
does not speed up (a variable or filtered message, `noop`, a message context, plural forms, a
translation that does not fit the variables) is rendered by Django's node itself. Catalogues do
not change in a running process; tests that change the language settings clear the kept texts.
"""

from __future__ import annotations

from django import template
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.base import render_value_in_context
from django.templatetags import i18n
from django.utils import translation
from django.utils.safestring import SafeString

register = template.Library()

# (language, message) -> its text: a {% translate %}'s output, a {% blocktranslate %}'s gettext.
_translated: dict[tuple[str | None, str, str], str] = {}

_LANGUAGE_SETTINGS = {"LANGUAGES", "LANGUAGE_CODE", "LOCALE_PATHS", "INSTALLED_APPS", "USE_I18N"}


@receiver(setting_changed)
def _translations_changed(*, setting, **kwargs):
    if setting in _LANGUAGE_SETTINGS:
        _translated.clear()


class CachedTranslateNode(i18n.TranslateNode):
    """`{% translate "literal" %}` (with or without `as var`): Django's output, kept."""

    def render(self, context):
        key = ("t", translation.get_language(), self.filter_expression.var.literal)
        try:
            value = _translated[key]
        except KeyError:
            value = super().render(context)
            if self.asvar:
                value = context[self.asvar]
            _translated[key] = value
        if self.asvar:
            context[self.asvar] = value
            return ""
        return value


class CachedBlockTranslateNode(i18n.BlockTranslateNode):
    """`{% blocktranslate [with ...] %}...{% endblocktranslate %}` without plural or context:
    the message and its variables' names worked out once, its translation kept per language,
    the variables rendered as Django renders them."""

    message: str
    names: list[str]

    def render(self, context, nested=False):
        key = ("b", translation.get_language(), self.message)
        try:
            result = _translated[key]
        except KeyError:
            result = _translated[key] = translation.gettext(self.message)
        extra = {name: value.resolve(context) for name, value in self.extra_context.items()}
        data = {}
        for name in self.names:
            if name in extra:
                value = extra[name]
            elif name in context:
                value = context[name]
            else:  # string_if_invalid: Django's way
                return super().render(context, nested)
            data[name] = render_value_in_context(value, context)
        try:
            result %= data
        except (KeyError, ValueError):  # a translation that does not fit: Django's way
            return super().render(context, nested)
        if self.asvar:
            context[self.asvar] = SafeString(result)
            return ""
        return result


@register.tag("translate")
@register.tag("trans")
def do_translate(parser, token):
    node = i18n.do_translate(parser, token)
    expression = node.filter_expression
    if (
        not node.noop
        and node.message_context is None
        and not expression.filters
        and expression.var.lookups is None
        and isinstance(expression.var.literal, str)
    ):
        node.__class__ = CachedTranslateNode
    return node


@register.tag("blocktranslate")
@register.tag("blocktrans")
def do_block_translate(parser, token):
    node = i18n.do_block_translate(parser, token)
    if not node.plural and node.message_context is None:
        node.__class__ = CachedBlockTranslateNode
        node.message, node.names = node.render_token_list(node.singular)
    return node
