"""The store page's activity chart: the last 30 days of `GET /v1/stores/{id}/stats` as bars the template draws
in SVG (server-side: no chart library, no script), with the same figures as a table for screen readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from app.messages.schemas import StoreStats

DAYS = 30
WIDTH = 600  # the SVG's coordinate system; it scales to the card's width
HEIGHT = 120  # stretched to the card's width and a fixed height (the day labels are HTML, under it)
TOP = 4  # room above the tallest bar
BOTTOM = 1  # the axis
SLOT = WIDTH / DAYS
BAR = SLOT * 0.38  # in and out side by side in each day's slot


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class ChartDay:
    day: date
    inbound: int
    outbound: int
    bar_in: Bar
    bar_out: Bar
    label_x: float
    labelled: bool  # every 7th day carries a date label, counted back from today


@dataclass(frozen=True)
class ActivityChart:
    days: list[ChartDay]
    inbound: int
    outbound: int
    peak: int  # the top of the scale (at least 1)
    width: int = WIDTH
    height: int = HEIGHT
    baseline: float = HEIGHT - BOTTOM
    bar: float = round(BAR, 1)


def activity_chart(stats: StoreStats, today: date) -> ActivityChart:
    """Every one of the last `DAYS` UTC days up to `today`, days without messages as zero (stats lists only
    days with messages)."""
    counts = {d.day: (d.inbound, d.outbound) for d in stats.days}
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    peak = max([1, *(max(counts.get(d, (0, 0))) for d in days)])
    baseline = HEIGHT - BOTTOM
    scale = (baseline - TOP) / peak

    def bar(x: float, value: int) -> Bar:
        height = round(value * scale, 1)
        return Bar(x=round(x, 1), y=round(baseline - height, 1), height=height)

    chart_days = []
    for i, day in enumerate(days):
        inbound, outbound = counts.get(day, (0, 0))
        left = i * SLOT + (SLOT - 2 * BAR) / 2
        chart_days.append(
            ChartDay(
                day=day,
                inbound=inbound,
                outbound=outbound,
                bar_in=bar(left, inbound),
                bar_out=bar(left + BAR, outbound),
                label_x=round(i * SLOT + SLOT / 2, 1),
                labelled=(DAYS - 1 - i) % 7 == 0,
            )
        )
    return ActivityChart(
        days=chart_days,
        inbound=sum(d.inbound for d in chart_days),
        outbound=sum(d.outbound for d in chart_days),
        peak=peak,
    )
