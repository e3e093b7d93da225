"""Bar charts of the run pages as plain numbers for inline SVG (templates/runs/_bar_chart.html).

No chart library: the geometry is computed here, the template draws rectangles, and every value
is also given as text (in the bars' titles and in a table beside the chart). Horizontal positions
are percentages of the plot's width and vertical ones are pixels, so the SVG has no viewBox and
its text keeps its CSS size (12 px and up) at any width instead of shrinking with the chart.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HEIGHT = 240
TOP = 20      # room for the value label above the highest bar
BOTTOM = 30   # room for the category labels under the bars
TICKS = 4     # about this many gridlines above zero
# Above this many bars the value labels would overlap: values are then in the titles and table only.
MAX_LABELLED_BARS = 12


@dataclass(frozen=True)
class Rect:
    series: str
    x: float       # percent of the plot's width
    y: float       # pixels from the top
    width: float   # percent
    height: float  # pixels
    title: str


@dataclass(frozen=True)
class Whisker:
    """An interval drawn over a bar (e.g. a pass rate's 95 % confidence interval)."""

    low_y: float   # pixels from the top
    high_y: float
    x1: float      # percent: the caps' ends
    x2: float
    text: str


@dataclass(frozen=True)
class Bar:
    label: str
    values: tuple[int | float, ...]
    total_text: str
    rects: list[Rect]
    label_x: float  # percent
    value_y: float
    show_label: bool
    whisker: Whisker | None = None


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass
class BarChart:
    """One bar per category; several series are stacked (e.g. prompt and completion tokens)."""

    chart_id: str
    title: str
    series: list[str]
    unit: str = ""
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    height: int = HEIGHT
    baseline: int = HEIGHT - BOTTOM
    show_values: bool = True
    note: str = ""  # what the chart leaves out, said under its title (e.g. steps of unknown cost)
    interval_name: str = ""  # what the bars' whiskers are ("95 % interval"), a column of the table

    @property
    def is_empty(self) -> bool:
        return not self.bars or all(sum(bar.values) == 0 for bar in self.bars)

    @property
    def top_y(self) -> float:
        return self.ticks[-1].y if self.ticks else self.baseline

    @property
    def label_y(self) -> int:
        return self.height - 10


def axis_step(highest: float, ticks: int = TICKS) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving at most `ticks` gridlines up to `highest`."""
    if highest <= 0:
        return 1
    raw = highest / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def axis_number(value: float) -> str:
    """Tick text: 2500 -> '2,500', 12000 -> '12k', 0.5 -> '0.5', 0.00003 -> '0.00003'."""
    if value >= 10_000:
        return f"{value / 1000:g}k"
    if value == int(value):
        return f"{value:,.0f}"
    text = f"{value:g}"
    # Small amounts of money (0.00003) in plain digits, not 3e-05.
    return f"{value:.10f}".rstrip("0").rstrip(".") if "e" in text else text


def _ticks(top: float, step: float, baseline: int) -> list[Tick]:
    plot_height = baseline - TOP
    count = round(top / step)
    return [Tick(y=round(baseline - plot_height * i / count, 2), text=axis_number(step * i)) for i in range(count + 1)]


def bar_chart(*, chart_id: str, title: str, series: Sequence[str], categories: Sequence[str],
              values: Sequence[Sequence[int | float]], fmt: Callable[[int | float], str],
              unit: str = "", label_every: int = 1, note: str = "", top: float | None = None,
              intervals: Sequence[tuple[float, float] | None] | None = None) -> BarChart:
    """values[i] holds one number per series for category i; fmt writes a number for people; unit names the axis.
    `top` fixes the axis' end (100 for percentages); `intervals[i]` draws a (low, high) whisker over bar i."""
    chart = BarChart(chart_id=chart_id, title=title, series=list(series), unit=unit, note=note)
    count = len(categories)
    if not count:
        return chart
    chart.show_values = count <= MAX_LABELLED_BARS
    highest = max([*(sum(v) for v in values), *(high for _, high in filter(None, intervals or []))], default=0)
    step = axis_step(top or highest)
    top = top or step * max(math.ceil(highest / step), 1)
    chart.ticks = _ticks(top, step, chart.baseline)
    plot_height = chart.baseline - TOP
    slot = 100 / count
    bar_width = slot * 0.7
    for index, (category, numbers) in enumerate(zip(categories, values, strict=True)):
        x = index * slot + (slot - bar_width) / 2
        y = float(chart.baseline)
        rects = []
        for name, number in zip(series, numbers, strict=True):
            height = plot_height * number / top
            y -= height
            rects.append(Rect(series=name, x=round(x, 3), y=round(y, 2), width=round(bar_width, 3),
                              height=round(height, 2), title=f"{category}: {name} {fmt(number)}"))
        interval = intervals[index] if intervals else None
        whisker = _whisker(interval, x, bar_width, chart.baseline, plot_height, top, fmt) if interval else None
        chart.bars.append(Bar(
            label=category, values=tuple(numbers), total_text=fmt(sum(numbers)), rects=rects,
            label_x=round(x + bar_width / 2, 3), value_y=round(min(y, whisker.high_y if whisker else y) - 4, 2),
            show_label=index % label_every == 0 or index == count - 1, whisker=whisker,
        ))
    return chart


def _whisker(interval: tuple[float, float], x: float, bar_width: float, baseline: int, plot_height: float,
             top: float, fmt: Callable[[int | float], str]) -> Whisker:
    low, high = interval
    middle = x + bar_width / 2
    return Whisker(low_y=round(baseline - plot_height * low / top, 2), high_y=round(baseline - plot_height * high / top, 2),
                   x1=round(middle - bar_width / 6, 3), x2=round(middle + bar_width / 6, 3),
                   text=f"{fmt(low)} to {fmt(high)}")
