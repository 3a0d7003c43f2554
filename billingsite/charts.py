"""Server-side SVG charts: no JavaScript, no CDN, the same markup in a page, an e-mail or a PDF.

Why not a chart library's JS build: every chart here is a handful of bars, one line and a few
horizontal rules; an SVG string built on the server needs no script, prints, and renders in
dark mode through CSS (the marks carry classes; `currentColor` is the fallback colour).

`chart_svg` draws bars (positive and negative around a zero baseline), lines and horizontal
rules over one x axis of labelled slots. It only draws: the figures come from selectors and the
caption and the table alternative from the template (`templates/charts/figure.html`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

Number = int | Decimal

WIDTH = 560
HEIGHT = 240
# Room for the y ticks on the left and the x labels below.
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 28
FONT = 13


@dataclass(frozen=True)
class BarSeries:
    """One value per x slot (None: no bar). `css` names the colour class (`chart-bar-<css>`);
    `marked` holds the slots drawn with the mark class (the billed peak day)."""

    name: str
    values: Sequence[Number | None]
    css: str = "primary"
    marked: frozenset[int] = frozenset()


@dataclass(frozen=True)
class LineSeries:
    name: str
    values: Sequence[Number | None]
    css: str = "line"


@dataclass(frozen=True)
class Rule:
    """A horizontal line across the plot at `value` (a DAU block threshold)."""

    value: Number
    label: str


@dataclass(frozen=True)
class Chart:
    """What a template needs: the SVG and the rows of its table alternative."""

    svg: SafeString
    # The table alternative: a column per series, a row per x slot, values as text.
    columns: list[str]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    @property
    def table_rows_html(self) -> SafeString:
        """`rows` as the table's `<tr>` elements, every text escaped: what two nested template
        loops rendered before, for a tenth of their cost (a month is 30 rows, on every estimate
        and invoice page)."""
        return mark_safe(
            "".join(
                f'<tr><th scope="row" class="nowrap">{_e(label)}</th>'
                + "".join(f'<td class="num">{_e(value)}</td>' for value in values)
                + "</tr>"
                for label, values in self.rows
            )
        )


def nice_step(span: float, ticks: int = 4) -> float:
    """A round tick step (1, 2 or 5 x 10^n) giving about `ticks` steps over `span`."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def compact(value: float) -> str:
    """Axis ticks: '0', '500', '12k', '1.5M' (exact figures are in the table)."""
    size = abs(value)
    if size >= 1_000_000:
        text = f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    elif size >= 1_000:
        text = f"{value / 1_000:.1f}".rstrip("0").rstrip(".") + "k"
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


def _e(text: object) -> str:
    """Django's `conditional_escape` as text: SafeString as it is, anything else escaped."""
    html_method = getattr(text, "__html__", None)
    return html_method() if html_method is not None else html.escape(str(text))


def _n(value: float) -> str:
    """A coordinate, one decimal (format_html escapes its arguments, so numbers go as text)."""
    return f"{value:.1f}"


def _bounds(values: list[float], *, whole: bool) -> tuple[float, float, float]:
    low = min([0.0, *values])
    high = max([0.0, *values])
    if low == high:
        high = 1.0
    step = nice_step(high - low)
    if whole:
        # Counts (customers, DAU) have no half ticks.
        step = max(step, 1.0)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def chart_svg(
    *,
    title: str,
    labels: Sequence[str],
    bars: Sequence[BarSeries] = (),
    lines: Sequence[LineSeries] = (),
    rules: Sequence[Rule] = (),
    value_text: Callable[[Number], str] = str,
    label_every: int = 1,
) -> Chart:
    """The SVG of the series over the x slots `labels`; each mark has a <title> with its exact
    value (`value_text`), the x labels show every `label_every`-th slot."""
    slots = max(len(labels), 1)
    raw = [v for s in (*bars, *lines) for v in s.values if v is not None]
    values = [float(v) for v in raw] + [float(rule.value) for rule in rules]
    low, high, step = _bounds(values, whole=all(isinstance(v, int) for v in raw))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot_w = plot_w / slots

    def y(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    def x(slot: int) -> float:
        return LEFT + slot_w * (slot + 0.5)

    # Markup joined as text: numbers need no escaping and every text goes through `_e`, the
    # same escaping as format_html's (which cost ~50 calls per mark, most of a chart's time).
    parts: list[str] = []
    tick = low
    while tick <= high + step / 2:
        level = _n(y(tick))
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level}" y2="{level}"/>'
            f'<text class="chart-tick" x="{LEFT - 6}" y="{_n(y(tick) + FONT / 3)}" '
            f'text-anchor="end">{_e(compact(tick))}</text>'
        )
        tick += step
    group_w = slot_w * 0.8 / max(len(bars), 1)
    for index, series in enumerate(bars):
        name = _e(series.name)
        for slot, value in enumerate(series.values):
            if value is None:
                continue
            top, bottom = sorted((y(float(value)), y(0.0)))
            css = f"chart-bar chart-bar-{series.css}"
            if slot in series.marked:
                css += " chart-mark"
            parts.append(
                f'<rect class="{_e(css)}" x="{_n(LEFT + slot_w * (slot + 0.1) + group_w * index)}" '
                f'y="{_n(top)}" width="{_n(max(group_w - 1, 1))}" '
                f'height="{_n(max(bottom - top, 0.5))}">'
                f"<title>{_e(labels[slot])}: {name} {_e(value_text(value))}</title></rect>"
            )
    for series in lines:
        points = [
            f"{_n(x(slot))},{_n(y(float(value)))}"
            for slot, value in enumerate(series.values)
            if value is not None
        ]
        if points:
            parts.append(
                f'<polyline class="chart-line chart-line-{_e(series.css)}" '
                f'points="{_e(" ".join(points))}"/>'
            )
        name = _e(series.name)
        parts.extend(
            f'<circle class="chart-dot chart-line-{_e(series.css)}" cx="{_n(x(slot))}" '
            f'cy="{_n(y(float(value)))}" r="3">'
            f"<title>{_e(labels[slot])}: {name} {_e(value_text(value))}</title></circle>"
            for slot, value in enumerate(series.values)
            if value is not None
        )
    for rule in rules:
        level = _n(y(float(rule.value)))
        parts.append(
            f'<line class="chart-rule" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level}" y2="{level}"/>'
            f'<text class="chart-rule-label" x="{WIDTH - RIGHT - 2}" '
            f'y="{_n(y(float(rule.value)) - 3)}" text-anchor="end">{_e(rule.label)}</text>'
        )
    zero = _n(y(0.0))
    parts.append(
        f'<line class="chart-axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero}" y2="{zero}"/>'
    )
    parts.extend(
        f'<text class="chart-tick" x="{_n(x(slot))}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">{_e(label)}</text>'
        for slot, label in enumerate(labels)
        if slot % max(label_every, 1) == 0
    )
    svg = format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'font-size="{}" fill="currentColor" stroke="currentColor" stroke-width="0">{}</svg>',
        WIDTH, HEIGHT, title, FONT, mark_safe("".join(parts)),
    )  # fmt: skip
    series = [*bars, *lines]
    rows = [
        (
            label,
            ["" if s.values[slot] is None else value_text(s.values[slot]) for s in series],
        )
        for slot, label in enumerate(labels)
    ]
    return Chart(svg=svg, columns=[s.name for s in series], rows=rows, rules=list(rules))
