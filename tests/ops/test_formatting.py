"""Amounts and dates read the same everywhere: format_cny is the one money format, and a stock
admin page's str(Money) (django-money, MONEY_FORMAT) gives the same text; dates are ISO in both
languages (billingsite/formats)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation
from djmoney.money import Money
from hypothesis import given
from hypothesis import strategies as st

from billingsite.money import format_cny
from invoices.templatetags.billing_format import cny, cny_html

LANGUAGES = ("en", "zh-hans")
amounts = st.decimals(min_value=Decimal("-99999999.99"), max_value=Decimal("99999999.99"), places=2)


@given(amount=amounts)
def test_django_money_prints_what_format_cny_prints(amount):
    for language in LANGUAGES:
        with translation.override(language):
            assert str(Money(amount, "CNY")) == format_cny(amount)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("6000", "¥6,000.00"),
        ("-4096.77", "-¥4,096.77"),
        ("0", "¥0.00"),
        ("1234567.5", "¥1,234,567.50"),
    ],
)
def test_the_one_format(amount, text):
    assert format_cny(Decimal(amount)) == text
    assert cny(Money(amount, "CNY")) == text
    with translation.override("en"):
        assert "CN¥" not in str(Money(amount, "CNY"))


def test_html_amounts_never_break_after_the_minus_sign():
    assert cny_html(Decimal("-4096.77")) == '<span class="amount">-¥4,096.77</span>'
    assert cny_html(None) == ""


@pytest.mark.parametrize("language", LANGUAGES)
def test_dates_are_iso_in_every_language(language):
    moment = dt.datetime(2026, 11, 30, 14, 5, tzinfo=dt.UTC)
    template = Template("{{ day|date }}|{{ day|date:'SHORT_DATE_FORMAT' }}|{{ moment }}")
    with translation.override(language), translation.override(language):
        text = template.render(Context({"day": dt.date(2026, 11, 30), "moment": moment}))
    assert text == "2026-11-30|2026-11-30|2026-11-30 22:05"
