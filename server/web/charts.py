"""The geometry of the server-rendered SVG charts: positions, sizes and <title> tooltips,
computed from the figures and drawn by the templates (``_macros.html``).

Charts are inline SVG drawn by Jinja from the geometry computed here, not a JavaScript chart
library: the pages work with scripts off, there is no 200 kB vendored file to keep current,
every bar carries a <title> tooltip, and tests can count bars in the HTML itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import url_for

from sitwatch.server.queries import stats
from sitwatch.server.web.filters import format_duration, local_time

WEEK_DAYS = 7  # a longer series labels its days by number only


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    title: str
    css: str = ""


@dataclass(frozen=True)
class Marker:
    x: float
    y: float
    title: str
    css: str
    text: str = ""


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class RowLabel:
    y: float
    text: str
    href: str


@dataclass(frozen=True)
class TimelineChart:
    width: int
    height: int
    x0: float
    x1: float
    rows: list[RowLabel]
    bars: list[Rect]
    marks: list[Marker]
    ticks: list[Tick]
    now_x: float | None


TL_WIDTH, TL_LABEL_W, TL_TOP, TL_ROW_H = 960, 150, 22, 36


def timeline_chart(
    timeline: stats.Timeline, devices: list[stats.DeviceStatus], current: datetime
) -> TimelineChart:
    """One row per device on a 24 h axis starting at the day's start hour."""
    x0, x1 = float(TL_LABEL_W), float(TL_WIDTH - 12)
    span_s = (timeline.end - timeline.start).total_seconds()

    def x_of(ts: datetime) -> float:
        offset = (ts - timeline.start).total_seconds()
        return round(x0 + (x1 - x0) * min(max(offset / span_s, 0.0), 1.0), 1)

    rows, bars, marks = [], [], []
    for index, device in enumerate(devices):
        top = TL_TOP + index * TL_ROW_H
        href = url_for("devices.device", device_id=device.id, day=timeline.day.isoformat())
        rows.append(RowLabel(top + TL_ROW_H / 2, device.label, href))
        for bar in timeline.bars_of(device.id):
            left, right = x_of(bar.start), x_of(bar.end)
            state = "so far" if bar.is_open else f"to {local_time(bar.end)}"
            title = f"{local_time(bar.start)} {state}: {format_duration(bar.duration_s)} seated"
            css = "session open" if bar.is_open else "session"
            bars.append(Rect(left, top + 9, max(right - left, 1.5), TL_ROW_H - 18, title, css))
        for mark in timeline.marks_of(device.id):
            y = top + 6 if mark.kind == "prompt" else top + TL_ROW_H - 6
            what = "Prompt" if mark.kind == "prompt" else "Drill"
            title = f"{what} at {local_time(mark.ts)}" + (
                f" ({mark.detail})" if mark.detail else ""
            )
            marks.append(Marker(x_of(mark.ts), y, title, mark.kind))
    ticks = []
    for hours in range(0, 24, 3):  # the closing 24:00 line is drawn by the template
        at = timeline.start + timedelta(hours=hours)
        ticks.append(Tick(x_of(at), TL_TOP - 8, local_time(at)))
    now_x = x_of(current) if timeline.start <= current < timeline.end else None
    height = TL_TOP + max(len(devices), 1) * TL_ROW_H + 4
    return TimelineChart(TL_WIDTH, height, x0, x1, rows, bars, marks, ticks, now_x)


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    x0: float
    x1: float
    base_y: float
    bars: list[Rect]
    badges: list[Marker]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    total_seated_s: float
    total_drills: int


# Sized for a half-width card so the 12 px chart text shows at about 12 px.
BC_WIDTH, BC_HEIGHT, BC_LEFT, BC_TOP, BC_BOTTOM = 560, 210, 40, 10, 52
HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)


def hour_step(top_hours: float) -> int:
    """Gridline spacing in hours giving at most 4 steps up to ``top_hours`` (a fleet sums to
    thousands of hours a day)."""
    for step in HOUR_STEPS:
        if top_hours <= step * 4:
            return step
    magnitude = 10 ** math.floor(math.log10(top_hours / 4))
    return next(m * magnitude for m in (1, 2, 5, 10) if top_hours <= m * magnitude * 4)


def series_chart(days: list[stats.DayFigures]) -> BarChart:
    """Seated hours per day as bars; drills per day as numbered badges under each bar."""
    x0, x1 = float(BC_LEFT), float(BC_WIDTH - 10)
    base_y = float(BC_HEIGHT - BC_BOTTOM)
    plot_h = base_y - BC_TOP
    top_hours = max((d.seated_s / 3600 for d in days), default=0.0)
    step = hour_step(top_hours)
    y_max = max(step, math.ceil(top_hours / step) * step)
    slot = (x1 - x0) / max(len(days), 1)
    width = slot * 0.66
    long_axis = len(days) > WEEK_DAYS
    bars, badges, labels = [], [], []
    for index, day in enumerate(days):
        left = x0 + index * slot + (slot - width) / 2
        centre = round(x0 + index * slot + slot / 2, 1)
        height = round(plot_h * (day.seated_s / 3600) / y_max, 1)
        title = (
            f"{day.day:%a %d %b}: {format_duration(day.seated_s)} seated, "
            f"{day.drills} drill{'s' if day.drills != 1 else ''}"
        )
        bars.append(Rect(round(left, 1), base_y - height, round(width, 1), height, title, "bar"))
        text = f"{day.day:%d}" if long_axis else f"{day.day:%a %d}"
        labels.append(Tick(centre, base_y + 16, text))
        if day.drills:
            badges.append(Marker(centre, base_y + 34, title, "drill-badge", str(day.drills)))
    y_ticks = [
        Tick(x0 - 8, round(base_y - plot_h * hours / y_max, 1), f"{hours} h")
        for hours in range(0, y_max + 1, step)
    ]
    return BarChart(
        BC_WIDTH,
        BC_HEIGHT,
        x0,
        x1,
        base_y,
        bars,
        badges,
        labels,
        y_ticks,
        total_seated_s=sum(d.seated_s for d in days),
        total_drills=sum(d.drills for d in days),
    )
