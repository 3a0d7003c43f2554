"""The SVG chart renderer (billingsite/charts.py): well-formed SVG, marks where the figures
put them, text escaped, a table alternative with every value."""

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from billingsite.charts import (
    BOTTOM,
    HEIGHT,
    TOP,
    BarSeries,
    LineSeries,
    Rule,
    chart_svg,
    compact,
    nice_step,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(chart):
    # Inline SVG in HTML has no namespace; add it to parse as XML.
    return ET.fromstring(str(chart.svg).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


@pytest.mark.parametrize(
    ("span", "step"),
    [(0, 1.0), (1, 0.5), (4, 1.0), (10, 5.0), (18_500, 5_000.0), (106_650, 50_000.0), (7, 2.0)],
)
def test_nice_steps_are_one_two_or_five_times_a_power_of_ten(span, step):
    assert nice_step(span) == step


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (0.5, "0.5"), (500, "500"), (10_000, "10k"), (12_500, "12.5k"),
     (-5_000, "-5k"), (1_500_000, "1.5M")],
)  # fmt: skip
def test_ticks_are_compact(value, text):
    assert compact(value) == text


def test_bars_rules_and_the_marked_peak():
    chart = chart_svg(
        title="DAU",
        labels=["11-01", "11-02", "11-03"],
        bars=[BarSeries(name="DAU", values=[12_000, 18_500, None], marked=frozenset({1}))],
        rules=[Rule(value=10_000, label="10,000 DAU"), Rule(value=20_000, label="20,000 DAU")],
        value_text=lambda v: f"{v:,}",
    )
    svg = parse(chart)
    assert svg.get("role") == "img" and svg.get("aria-label") == "DAU"
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 2  # no bar for the day without usage
    assert ["chart-mark" in bar.get("class") for bar in bars] == [False, True]
    assert bars[1].find(f"{SVG}title").text == "11-02: DAU 18,500"
    # The axis runs 0..20,000: the 20k rule at the top of the plot, 10k half way, and the
    # 18,500 bar's top just below the 20k rule.
    rules = [line for line in svg.findall(f"{SVG}line") if line.get("class") == "chart-rule"]
    plot = HEIGHT - TOP - BOTTOM
    assert [float(rule.get("y1")) for rule in rules] == [TOP + plot / 2, TOP]
    assert float(bars[1].get("y")) == pytest.approx(TOP + plot * 1_500 / 20_000, abs=0.1)
    assert chart.columns == ["DAU"]
    assert chart.rows == [("11-01", ["12,000"]), ("11-02", ["18,500"]), ("11-03", [""])]


def test_negative_bars_hang_below_the_zero_axis_and_the_line_goes_through_every_value():
    chart = chart_svg(
        title="Balance",
        labels=["2026-10", "2026-11"],
        bars=[
            BarSeries(name="In", values=[Decimal("9000.00"), Decimal("0")], css="in"),
            BarSeries(name="Out", values=[Decimal("0"), Decimal("-3000.00")], css="out"),
        ],
        lines=[LineSeries(name="Balance", values=[Decimal("9000.00"), Decimal("6000.00")])],
        value_text=str,
    )
    svg = parse(chart)
    axis = next(line for line in svg.findall(f"{SVG}line") if line.get("class") == "chart-axis")
    zero = float(axis.get("y1"))
    out = svg.findall(f"{SVG}rect")[-1]
    assert "chart-bar-out" in out.get("class")
    assert float(out.get("y")) == pytest.approx(zero, abs=0.1)  # starts at 0, goes down
    assert len(svg.find(f"{SVG}polyline").get("points").split()) == 2
    assert chart.rows == [
        ("2026-10", ["9000.00", "0", "9000.00"]),
        ("2026-11", ["0", "-3000.00", "6000.00"]),
    ]


def test_text_is_escaped():
    chart = chart_svg(
        title='<script>alert("x")</script>',
        labels=["<b>"],
        bars=[BarSeries(name="&", values=[1])],
    )
    assert "<script>" not in str(chart.svg) and "<b>" not in str(chart.svg)
    parse(chart)  # still well-formed


def test_an_empty_chart_draws_an_axis():
    svg = parse(chart_svg(title="Nothing", labels=[]))
    assert svg.findall(f"{SVG}rect") == []
