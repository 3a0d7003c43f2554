"""`{% load i18n i18n_cached %}` renders exactly what Django's `{% load i18n %}` renders: each
form of the two tags, in both languages, escaped or not, kept texts reused (every template is
rendered twice, the languages in turn), and the tags Django still renders (plural forms, a
message context, filters, a variable message, a missing variable)."""

import pytest
from django.template import Context, Engine
from django.utils import translation

from invoices.templatetags import i18n_cached

HOSTILE = '<b>Tom & "Jerry\'s"</b> 100%'

BODIES = [
    '{% translate "Invoices" %}|{% trans "Invoices" %}|{% translate \'Download\' %}',
    '{% translate "Invoices" as label %}[{{ label }}]{{ label|upper }}',
    '{% translate "50% off <b>now</b> %(x)s %%" %}',
    '{% translate "Questions: %(email)s" %}',
    "{% blocktranslate with email=email %}Questions: {{ email }}{% endblocktranslate %}",
    "{% blocktrans with email=email %}Questions: {{ email }}{% endblocktrans %}",
    "{% blocktranslate with rate=rate %}VAT ({{ rate }}){% endblocktranslate %}",
    "{% blocktranslate %}Questions: {{ email }}{% endblocktranslate %}",
    "{% blocktranslate with email=email|upper %}Questions: {{ email }}{% endblocktranslate %}",
    "{% blocktranslate with number=number pages=pages %}Page {{ number }} of {{ pages }}"
    "{% endblocktranslate %}",
    "{% blocktranslate asvar said with email=email %}Questions: {{ email }}"
    "{% endblocktranslate %}<{{ said }}>",
    "{% blocktranslate trimmed with email=email %}\n  Questions:\n  {{ email }}\n"
    "{% endblocktranslate %}",
    "{% blocktranslate %}100% <i>sure</i> {{ email }}{% endblocktranslate %}",
    "{% blocktranslate %}Questions: {{ missing }}{% endblocktranslate %}",
    "{% blocktranslate with email=email %}Questions: {{ email }} and {{ number }}"
    "{% endblocktranslate %}",
    "{% with email=number %}{% blocktranslate %}Questions: {{ email }}{% endblocktranslate %}"
    "{% endwith %}",
    # Rendered by Django's own nodes:
    "{% blocktranslate count counter=number %}Total of {{ counter }} invoice{% plural %}"
    "Total of {{ counter }} invoices{% endblocktranslate %}",
    '{% translate "May" context "month name" %}',
    '{% blocktranslate context "month name" %}May{% endblocktranslate %}',
    '{% translate "Invoices"|upper %}',
    "{% translate message %}",
    '{% translate "Invoices" noop %}',
]

CONTEXT = {"email": HOSTILE, "rate": "13%", "number": 3, "pages": 7, "message": "Invoices"}


def render(library: str, body: str, autoescape: bool) -> str:
    template = Engine.get_default().from_string(f"{{% load {library} %}}{body}")
    return template.render(Context(CONTEXT, autoescape=autoescape))


@pytest.mark.parametrize("autoescape", [True, False])
@pytest.mark.parametrize("body", BODIES)
def test_the_same_text_as_djangos_tags(body, autoescape):
    i18n_cached._translated.clear()
    for language in ("zh-hans", "en", "zh-hans", "en"):
        with translation.override(language):
            want = render("i18n", body, autoescape)
            assert render("i18n i18n_cached", body, autoescape) == want, language


def test_the_kept_texts_are_per_language_and_used():
    i18n_cached._translated.clear()
    template = Engine.get_default().from_string(
        '{% load i18n i18n_cached %}{% translate "Invoices" %}'
        "{% blocktranslate with email=email %}Questions: {{ email }}{% endblocktranslate %}"
    )
    translate, block = template.nodelist[1:]
    assert type(translate) is i18n_cached.CachedTranslateNode
    assert type(block) is i18n_cached.CachedBlockTranslateNode
    seen = {}
    for language in ("en", "zh-hans"):
        with translation.override(language):
            seen[language] = template.render(Context({"email": "a@b.cn"}))
    assert seen == {"en": "InvoicesQuestions: a@b.cn", "zh-hans": "账单如有疑问：a@b.cn"}
    assert set(i18n_cached._translated) == {
        ("t", "en", "Invoices"),
        ("t", "zh-hans", "Invoices"),
        ("b", "en", "Questions: %(email)s"),
        ("b", "zh-hans", "Questions: %(email)s"),
    }
    # A kept text is what the next render says (not translated again).
    i18n_cached._translated[("t", "en", "Invoices")] = "kept"
    with translation.override("en"):
        assert template.render(Context({"email": "a@b.cn"})).startswith("keptQuestions")
    i18n_cached._translated.clear()


def test_a_language_setting_changed_drops_the_kept_texts(settings):
    with translation.override("en"):
        Engine.get_default().from_string(
            '{% load i18n i18n_cached %}{% translate "Invoices" %}'
        ).render(Context())
    assert i18n_cached._translated
    settings.LANGUAGE_CODE = "en"
    assert not i18n_cached._translated
