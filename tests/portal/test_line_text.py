"""How lines read in Chinese, the money filter, and grouping by application."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation
from django.utils.translation import gettext
from moneyed import Money

from billingsite.money import CurrencyError
from invoices.templatetags.invoice_text import (
    by_application,
    line_explanation_text,
    line_plan_names,
    line_title_text,
)
from plans.rating.engine import (
    AddOnSegment,
    ApplicationInput,
    ContractSegment,
    PlanSegment,
    rate_application,
)
from plans.rating.messages import CATALOGUE, Message, render
from plans.selectors import price_book_for_period
from tests.portal.conftest import OCTOBER

PREMIUM = {"plan": {"en": "Premium", "zh-hans": "尊享版"}}


@pytest.mark.parametrize(
    ("parts", "names", "english", "chinese"),
    [
        (
            [
                Message("peak_dau_on_day", {"peak_dau": "8,000", "day": "2026-10-05"}),
                Message("base_fee_only", {"base_fee": "6,000.00", "included_dau": "10,000"}),
            ],
            PREMIUM,
            "peak DAU 8,000 on 2026-10-05: 6,000.00 (up to 10,000 DAU)",
            "峰值日活 8,000（2026-10-05）：6,000.00（10,000 日活以内）",
        ),
        (
            [
                Message("discount_fixed", {"amount_off": "3,000.00"}),
                Message(
                    "prorata",
                    {"days": 16, "days_in_month": 31, "monthly": "3,000.00", "amount": "1,548.39"},
                ),
                Message("discount_customer"),
                Message("discount_limited", {"amount": "1,000.00"}),
            ],
            PREMIUM,
            "3,000.00 off a month; pro rata 16 of 31 days: 3,000.00 x 16/31 = 1,548.39; agreed "
            "for all the customer's applications; limited to the charges left, 1,000.00: never "
            "below zero",
            "每月减免 3,000.00；按天折算 16/31 天：3,000.00 x 16/31 = 1,548.39；适用于该客户的全部应用；"
            "以剩余费用 1,000.00 为限，金额不低于零",
        ),
        (
            [
                Message("peak_dau", {"peak_dau": "25,000"}),
                Message(
                    "base_fee_and_blocks",
                    {
                        "base_fee": "8,000.00",
                        "blocks": 2,
                        "block_price": "4,500.00",
                        "monthly": "17,000.00",
                    },
                ),
            ],
            PREMIUM,
            "peak DAU 25,000: 8,000.00 + 2 x 4,500.00 = 17,000.00",
            "峰值日活 25,000：8,000.00 + 2 x 4,500.00 = 17,000.00",
        ),
        (
            [
                Message("no_usage"),
                Message("base_fee_only", {"base_fee": "6,000.00", "included_dau": "10,000"}),
                Message(
                    "prorata",
                    {"days": 15, "days_in_month": 30, "monthly": "6,000.00", "amount": "3,000.00"},
                ),
            ],
            PREMIUM,
            "no usage reported: billed at peak DAU 0: 6,000.00 (up to 10,000 DAU); pro rata "
            "15 of 30 days: 6,000.00 x 15/30 = 3,000.00",
            "未上报用量，按峰值日活 0 计费：6,000.00（10,000 日活以内）；按天折算 15/30 天："
            "6,000.00 x 15/30 = 3,000.00",
        ),
        (
            [
                Message("peak_dau_on_day", {"peak_dau": "1,200", "day": "2026-10-01"}),
                Message("no_monthly_fee"),
            ],
            {"plan": {"en": "Free", "zh-hans": "免费版"}},
            "peak DAU 1,200 on 2026-10-01: Free plan has no monthly fee",
            "峰值日活 1,200（2026-10-01）：免费版无月费",
        ),
        (
            [Message("included")],
            {"plan": {"en": "Ultimate", "zh-hans": "至尊版"}},
            "included in the Ultimate plan",
            "至尊版已包含",
        ),
        (
            [
                Message(
                    "addon_quantity_total",
                    {
                        "quantity": 2,
                        "unit_price": "1,200.00",
                        "monthly": "2,400.00",
                    },
                )
            ],
            {"unit": {"en": "pack of 1,000 words", "zh-hans": "每包 1,000 个词"}},
            "2 x 1,200.00 (pack of 1,000 words) = 2,400.00",
            "2 x 1,200.00（每包 1,000 个词）= 2,400.00",
        ),
        (
            [
                Message(
                    "contract_with_reference", {"reference": "DS-7", "monthly_fee": "50,000.00"}
                ),
                Message("peak_messages", {"messages": "2,500,000"}),
            ],
            PREMIUM,
            "dedicated-service contract DS-7: 50,000.00 / month; peak 2,500,000 delivered "
            "messages in a day",
            "专属服务合同 DS-7：50,000.00 / 月；单日最高下发消息 2,500,000 条",
        ),
        (
            [Message("contract", {"monthly_fee": "50,000.00"})],
            PREMIUM,
            "dedicated-service contract: 50,000.00 / month",
            "专属服务合同：50,000.00 / 月",
        ),
        (
            [Message("plan_fee_title")],
            PREMIUM,
            "Premium plan, monthly fee by peak DAU",
            "尊享版套餐，按峰值日活计算的月费",
        ),
        # A name without its Chinese reads in English; an id this code no longer knows, as
        # nothing (a page never fails on an old line).
        (
            [Message("included")],
            {"plan": {"en": "Gold", "zh-hans": ""}},
            "included in the Gold plan",
            "Gold已包含",
        ),
        ([Message("retired_message_id", {"x": 1})], PREMIUM, "", ""),
    ],
)
def test_messages_render_in_english_and_chinese(parts, names, english, chinese):
    assert render(parts, names=names) == english
    # As frozen on a line: through JSON and back.
    frozen = json.loads(json.dumps([part.as_json() for part in parts]))
    with translation.override("zh-hans"):
        assert render(frozen, names=names, language="zh-hans", translate=gettext) == chinese


def test_every_message_has_its_chinese_in_the_catalogue():
    """A message added to the engine without its translation would show English to Chinese
    readers: the compiled catalogue must hold each one, with the same placeholders."""
    with translation.override("zh-hans"):
        for message_id, (_separator, english) in CATALOGUE.items():
            if english == "{addon}":
                continue
            chinese = gettext(english)
            assert chinese != english or "+" in english, message_id
            assert sorted(re.findall(r"{(\w+)}", chinese)) == sorted(
                re.findall(r"{(\w+)}", english)
            ), message_id


@pytest.mark.django_db
def test_a_line_frozen_before_messages_reads_in_english(acme_invoice):
    line = acme_invoice.lines.order_by("position").first()
    # As loaded from a row written before the column existed (issued lines cannot be updated).
    line.messages = None
    with translation.override("zh-hans"):
        assert line_title_text(line) == line.description
        assert line_explanation_text(line) == line.explanation
        assert line_plan_names(line) == {"en": line.plan_name, "zh-hans": line.plan_name}


@pytest.mark.django_db
def test_every_engine_explanation_reads_in_chinese(price_book):
    """Every kind of line the rating engine writes translates to Chinese with its figures."""
    book = price_book_for_period(period=OCTOBER)
    start = OCTOBER.start
    app = ApplicationInput(
        app_key="k",
        app_name="K",
        period_start=start,
        days_in_month=31,
        plan_segments=(
            PlanSegment("premium", start, dt.date(2026, 10, 15), 25_000, dt.date(2026, 10, 9)),
            PlanSegment("ultimate", dt.date(2026, 10, 16), OCTOBER.end, None, None),
        ),
        addon_segments=(
            AddOnSegment("chatroom_keepalive", 1, start, OCTOBER.end),
            AddOnSegment("sensitive_words", 2, start, OCTOBER.end),
            AddOnSegment("api_push", 1, start, OCTOBER.end),
            AddOnSegment("private_storage_extension", 2, start, OCTOBER.end),
            AddOnSegment("chatroom_storage_extension", 3, start, OCTOBER.end),
        ),
    )
    rated = rate_application(book=book, app=app)
    with translation.override("zh-hans"):
        for line in rated.lines:
            explanation = line_explanation_text(line)
            title = line_title_text(line)
            # Nothing of the English wording is left, only figures, dates, codes and paths.
            for word in ("peak", "plan", "included", "pro rata", "enabled", "extended", "pack"):
                assert word not in explanation, (line.code, explanation)
            assert any("\u4e00" <= ch <= "\u9fff" for ch in title), title
            for figure in (f"{line.amount:,.2f}",):
                if line.amount and line.days != line.days_in_month:
                    assert figure in explanation
    with translation.override("en"):
        assert [line_explanation_text(line) for line in rated.lines] == [
            line.explanation for line in rated.lines
        ]


@pytest.mark.django_db
def test_contract_and_api_titles_in_chinese(price_book):
    book = price_book_for_period(period=OCTOBER)
    app = ApplicationInput(
        app_key="k",
        app_name="K",
        period_start=OCTOBER.start,
        days_in_month=31,
        plan_segments=(PlanSegment("premium", OCTOBER.start, OCTOBER.end, 100, OCTOBER.start),),
        addon_segments=(AddOnSegment("api_group_publish", 1, OCTOBER.start, OCTOBER.end),),
        contracts=(ContractSegment(Decimal("50000"), dt.date(2026, 10, 11), OCTOBER.end, "DS-1"),),
        peak_daily_messages=3_000_000,
        peak_messages_day=dt.date(2026, 10, 12),
    )
    # Days 1-10 are billed by the DAU table; this test is about the other two titles.
    lines = [line for line in rate_application(book=book, app=app).lines if line.code != "premium"]
    with translation.override("zh-hans"):
        titles = [line_title_text(line) for line in lines]
        explanations = [line_explanation_text(line) for line in lines]
    assert titles == ["专属服务（高消息量合同）", "API 调用频率提升 /message/group/publish.json"]
    assert explanations[0] == (
        "专属服务合同 DS-1：50,000.00 / 月；单日最高下发消息 3,000,000 条；按天折算 21/31 天："
        "50,000.00 x 21/31 = 33,870.97"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Money(Decimal("6000"), "CNY"), "¥6,000.00"),
        (Decimal("-1250.5"), "-¥1,250.50"),
        (Decimal("0.005"), "¥0.01"),
        (1234567, "¥1,234,567.00"),
        ("99.999", "¥100.00"),
        (None, ""),
        ("not a number", ""),
    ],
)
def test_cny_filter(value, shown):
    template = Template("{% load billing_format %}{{ value|cny }}")
    assert template.render(Context({"value": value})) == shown


def test_cny_filter_refuses_other_currencies():

    template = Template("{% load billing_format %}{{ value|cny }}")
    with pytest.raises(CurrencyError):
        template.render(Context({"value": Money(Decimal("1"), "USD")}))


@pytest.mark.django_db
def test_by_application_groups_in_line_order_with_subtotals(acme_invoice):
    groups = by_application(acme_invoice.lines.order_by("position"))
    assert [(g.app_key, g.subtotal) for g in groups] == [
        ("acme-chat", Decimal("16000.00")),
        ("acme-live", Decimal("4129.03")),
    ]
    assert [len(g.lines) for g in groups] == [3, 3]
    assert groups[1].plan_names == "Free → Ultimate"
    with translation.override("zh-hans"):
        assert groups[1].plan_names == "免费版 → 至尊版"


@pytest.mark.django_db
def test_a_line_with_a_message_id_this_code_no_longer_knows_reads_its_english(acme_invoice):
    line = acme_invoice.lines.order_by("position").first()
    line.messages = {**line.messages, "title": ["retired_title_id"], "explanation": [["gone"]]}
    with translation.override("zh-hans"):
        assert line_title_text(line) == line.description
        assert line_explanation_text(line) == line.explanation
