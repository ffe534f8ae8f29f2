"""Server-rendered SVG bar charts: geometry here, markup in templates/activities/_bar_chart.html
(this app's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    maximum: int
    total: int
    label: str
    baseline: float
    first_day: date | None
    last_day: date | None


def bar_chart(
    points: Sequence[tuple[date, int]], *, label: str, width: int = 600, height: int = 160
) -> BarChart:
    """One bar per day, scaled to the largest value (an all-zero chart draws no bars)."""
    top, bottom = 10, 20  # room for the maximum's label and the day labels
    plot = height - top - bottom
    maximum = max((value for _, value in points), default=0)
    slot = width / max(len(points), 1)
    bars = []
    for index, (day, value) in enumerate(points):
        bar_height = plot * value / maximum if maximum else 0
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.15, 2),
                y=round(top + plot - bar_height, 2),
                width=round(slot * 0.7, 2),
                height=round(bar_height, 2),
                day=day,
                value=value,
            )
        )
    return BarChart(
        width=width,
        height=height,
        bars=bars,
        maximum=maximum,
        total=sum(value for _, value in points),
        label=label,
        baseline=top + plot,
        first_day=points[0][0] if points else None,
        last_day=points[-1][0] if points else None,
    )
