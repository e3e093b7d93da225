"""Bar charts of the run pages as plain numbers for an inline SVG (templates/runs/_bar_chart.html).

No chart library: the geometry is computed here, the template draws rectangles, and every value
is also given as text (in the bars' titles and in a table beside the chart).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 640
HEIGHT = 220
TOP = 24      # room for the value labels above the highest bar
BOTTOM = 28   # room for the category labels under the bars
LEFT = 8
RIGHT = 8
# Above this many bars the value labels would overlap: values are then in the titles and table only.
MAX_LABELLED_BARS = 12


@dataclass(frozen=True)
class Rect:
    series: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Bar:
    label: str
    values: tuple[int | float, ...]
    total_text: str
    rects: list[Rect]
    label_x: float
    value_y: float
    show_label: bool


@dataclass
class BarChart:
    """One bar per category; several series are stacked (e.g. prompt and completion tokens)."""

    chart_id: str
    title: str
    series: list[str]
    bars: list[Bar] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    baseline: int = HEIGHT - BOTTOM
    show_values: bool = True

    @property
    def is_empty(self) -> bool:
        return not self.bars or all(sum(bar.values) == 0 for bar in self.bars)


def bar_chart(*, chart_id: str, title: str, series: Sequence[str], categories: Sequence[str],
              values: Sequence[Sequence[int | float]], fmt: Callable[[int | float], str],
              label_every: int = 1) -> BarChart:
    """values[i] holds one number per series for category i; fmt writes a number for people."""
    chart = BarChart(chart_id=chart_id, title=title, series=list(series))
    count = len(categories)
    if not count:
        return chart
    chart.show_values = count <= MAX_LABELLED_BARS
    highest = max((sum(v) for v in values), default=0) or 1
    slot = (WIDTH - LEFT - RIGHT) / count
    bar_width = max(slot * 0.7, 1.0)
    plot_height = chart.baseline - TOP
    for index, (category, numbers) in enumerate(zip(categories, values, strict=True)):
        x = LEFT + index * slot + (slot - bar_width) / 2
        y = float(chart.baseline)
        rects = []
        for name, number in zip(series, numbers, strict=True):
            height = plot_height * number / highest
            y -= height
            rects.append(Rect(series=name, x=round(x, 2), y=round(y, 2), width=round(bar_width, 2),
                              height=round(height, 2), title=f"{category}: {name} {fmt(number)}"))
        chart.bars.append(Bar(
            label=category, values=tuple(numbers), total_text=fmt(sum(numbers)), rects=rects,
            label_x=round(x + bar_width / 2, 2), value_y=round(y - 6, 2),
            show_label=index % label_every == 0 or index == count - 1,
        ))
    return chart
