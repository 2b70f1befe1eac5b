"""The geometry of the server-rendered SVG charts: positions, sizes and <title> tooltips,
computed from the figures and drawn by the templates (``_macros.html``, ``insights.html``):
the day's timeline and the daily bars of the overview and device pages, and the Insights
page's funnel and exercise bars, bout histogram, hour x weekday heatmap and seat-time
budget per day; the personal page's week beside last week and its goal ring.

Charts are inline SVG drawn by Jinja from the geometry computed here, not a JavaScript chart
library: the pages work with scripts off, there is no 200 kB vendored file to keep current,
every bar carries a <title> tooltip, and tests can count bars in the HTML itself.

Phone first: an SVG scaled by a viewBox shrinks its text with it (4 px labels at 390 px), so
the charts have no viewBox. Across, positions and widths are percentages of the plot's width
(``x``, ``width``: 0-100, drawn with a ``%``); down, they are CSS pixels. Text therefore keeps
the stylesheet's size at any width, and what needs a fixed width (the desks' names, the
y-axis labels) is drawn beside the plot, not in it. Every chart's values are also listed in
words (``items``/``titles``) for a "Show the numbers" list under it: readable without a mouse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import url_for

from sitwatch.server.queries import insights, progress, stats
from sitwatch.server.web.filters import format_duration, local_time, percent

WEEK_DAYS = 7  # a longer series labels its days by number only


@dataclass(frozen=True)
class Rect:
    """A bar: ``x`` and ``width`` in % of the plot's width, ``y`` and ``height`` in px."""

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
    """A label: ``x`` in % of the plot's width (unused beside the plot), ``y`` in px;
    ``css`` "minor" for those a phone leaves out to keep the rest apart."""

    x: float
    y: float
    label: str
    css: str = ""
    line2: str = ""  # a second line under the label (a phone has no room beside it)


@dataclass(frozen=True)
class RowLabel:
    """One desk's row of the timeline: its name (a link, beside the plot) and its day in
    words, in time order."""

    y: float
    text: str
    href: str
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimelineChart:
    height: int
    top: int  # px above the first row, for the hour labels
    row_height: int
    rows: list[RowLabel]
    bars: list[Rect]
    marks: list[Marker]
    ticks: list[Tick]
    now_x: float | None


# A row is as tall as a touch target: its name beside it is the link to the desk's day.
TL_TOP, TL_ROW_H = 26, 44


def timeline_chart(
    timeline: stats.Timeline, devices: list[stats.DeviceStatus], current: datetime
) -> TimelineChart:
    """One row per device on a 24 h axis starting at the day's start hour."""
    span_s = (timeline.end - timeline.start).total_seconds()

    def x_of(ts: datetime) -> float:
        offset = (ts - timeline.start).total_seconds()
        return round(100 * min(max(offset / span_s, 0.0), 1.0), 2)

    rows, bars, marks = [], [], []
    for index, device in enumerate(devices):
        top = TL_TOP + index * TL_ROW_H
        href = url_for("devices.device", device_id=device.id, day=timeline.day.isoformat())
        told: list[tuple[datetime, str]] = []
        for bar in timeline.bars_of(device.id):
            left, right = x_of(bar.start), x_of(bar.end)
            state = "so far" if bar.is_open else f"to {local_time(bar.end)}"
            title = f"{local_time(bar.start)} {state}: {format_duration(bar.duration_s)} seated"
            css = "session open" if bar.is_open else "session"
            bars.append(Rect(left, top + 11, max(right - left, 0.2), TL_ROW_H - 22, title, css))
            told.append((bar.start, title))
        for mark in timeline.marks_of(device.id):
            y = top + 7 if mark.kind == "prompt" else top + TL_ROW_H - 6
            what = "Prompt" if mark.kind == "prompt" else "Drill"
            title = f"{what} at {local_time(mark.ts)}" + (
                f" ({mark.detail})" if mark.detail else ""
            )
            css = mark.kind if mark.counted else f"{mark.kind} not-counted"
            marks.append(Marker(x_of(mark.ts), y, title, css))
            told.append((mark.ts, title))
        items = tuple(title for _, title in sorted(told, key=lambda item: item[0]))
        rows.append(RowLabel(top + TL_ROW_H / 2, device.label, href, items))
    ticks = []
    for hours in range(0, 24, 3):  # the closing 24:00 line is drawn by the template
        at = timeline.start + timedelta(hours=hours)
        ticks.append(Tick(x_of(at), TL_TOP - 10, local_time(at), "minor" if hours % 6 else ""))
    now_x = x_of(current) if timeline.start <= current < timeline.end else None
    height = TL_TOP + max(len(devices), 1) * TL_ROW_H + 4
    return TimelineChart(height, TL_TOP, TL_ROW_H, rows, bars, marks, ticks, now_x)


@dataclass(frozen=True)
class BarChart:
    height: int
    base_y: float
    bars: list[Rect]
    badges: list[Marker]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    total_seated_s: float
    total_drills: float
    is_long: bool = False  # more days than a phone has room for badges

    @property
    def titles(self) -> list[str]:
        return [bar.title for bar in self.bars]


BC_HEIGHT, BC_TOP, BC_BOTTOM = 220, 12, 64
HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)


def hour_step(top_hours: float) -> int:
    """Gridline spacing in hours giving at most 4 steps up to ``top_hours``: a divisor of a
    day while one fits (a fleet sums to thousands of hours a day, then as ``count_step``)."""
    for step in HOUR_STEPS:
        if top_hours <= step * 4:
            return step
    return count_step(top_hours)


def count_step(top: float) -> int:
    """Gridline spacing giving at most 4 steps up to ``top`` (1, 2, 5, 10, 20, ...)."""
    if top <= 4:
        return 1
    magnitude = 10 ** math.floor(math.log10(top / 4))
    return next(m * magnitude for m in (1, 2, 5, 10) if top <= m * magnitude * 4)


def series_chart(days: Sequence[stats.DayFigures | stats.AverageDay]) -> BarChart:
    """Seated hours per day as bars; drills per day as numbered badges under each bar (the
    average desk's, to 0.1, for ``AverageDay``)."""
    base_y = float(BC_HEIGHT - BC_BOTTOM)
    plot_h = base_y - BC_TOP
    top_hours = max((d.seated_s / 3600 for d in days), default=0.0)
    step = hour_step(top_hours)
    y_max = max(step, math.ceil(top_hours / step) * step)
    slot = 100 / max(len(days), 1)
    width = slot * 0.66
    long_axis = len(days) > WEEK_DAYS
    bars, badges, labels = [], [], []
    for index, day in enumerate(days):
        left = index * slot + (slot - width) / 2
        centre = round(index * slot + slot / 2, 2)
        height = round(plot_h * (day.seated_s / 3600) / y_max, 1)
        title = (
            f"{day.day:%a %d %b}: {format_duration(day.seated_s)} seated, "
            f"{day.drills:g} drill{'s' if day.drills != 1 else ''}"
        )
        bars.append(Rect(round(left, 2), base_y - height, round(width, 2), height, title, "bar"))
        # Every other day (a phone: every sixth), counted back from today, so that the
        # newest day is always labelled.
        from_last = len(days) - 1 - index
        if long_axis and from_last % 2 == 0:
            minor = "minor" if from_last % 6 else ""
            labels.append(Tick(centre, base_y + 18, f"{day.day:%d}", minor))
        elif not long_axis:
            labels.append(Tick(centre, base_y + 17, f"{day.day:%a}", line2=f"{day.day:%d}"))
        # A month's badges alternate between two rows, so that two-digit counts of
        # neighbouring days do not overlap.
        badge_y = base_y + (34 + 18 * (index % 2) if long_axis else 48)
        if day.drills:
            badges.append(Marker(centre, badge_y, title, "drill-badge", f"{day.drills:g}"))
    y_ticks = [
        Tick(0, round(base_y - plot_h * hours / y_max, 1), f"{hours} h")
        for hours in range(0, y_max + 1, step)
    ]
    return BarChart(
        BC_HEIGHT,
        base_y,
        bars,
        badges,
        labels,
        y_ticks,
        total_seated_s=sum(d.seated_s for d in days),
        total_drills=round(sum(d.drills for d in days), 1),
        is_long=long_axis,
    )


@dataclass(frozen=True)
class PairChart:
    """Each weekday's bar beside last week's: this week filled, last week outlined and
    hatched (told apart by more than colour), every bar labelled with its hours (readable
    without hovering). Drawn as the bar charts are: ``x``, ``width`` in %, ``y`` in px."""

    height: int
    base_y: float
    bars: list[Rect]
    values: list[Tick]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    so_far: list[Rect]  # last week's share "by this time" on today's weekday (a line)
    items: list[str]  # each day in words, for the "Show the numbers" list
    is_long: bool = False  # always a week: the bar frame's phone rules for a month do not apply


PC_HEIGHT = 200
PC_VALUE_PX = 14  # a value label's line: two closer than this are set one above the other


def _hours_text(seconds: float) -> str:
    """Hours to one decimal, whole ones without it: "2.5", "3", "0"."""
    return f"{round(seconds / 3600, 1):g}"


def _apart(upper: float, lower: float) -> float:
    """``upper``'s label baseline moved up until it clears ``lower``'s (a phone has about
    17 px per bar: two values at one height would run into each other)."""
    return min(upper, lower - PC_VALUE_PX)


def week_pair_chart(week: progress.WeekComparison) -> PairChart:
    """This week's days beside last week's, seated hours per day: in each day's slot last
    week's bar on the left, this week's on the right (none for days still to come)."""
    base_y = float(BC_HEIGHT - BC_BOTTOM)
    plot_h = base_y - BC_TOP - 2 * PC_VALUE_PX  # room for two stacked values above a bar
    top_hours = max(
        [d.this.progress.seated_s / 3600 for d in week.days]
        + [d.last.seated_s / 3600 for d in week.days]
    )
    step = hour_step(top_hours)
    y_max = max(step, math.ceil(top_hours / step) * step)
    slot = 100 / 7
    width = round(slot * 0.4, 2)
    bars, values, labels, so_far, items = [], [], [], [], []

    def height_of(seconds: float) -> float:
        return round(plot_h * (seconds / 3600) / y_max, 1)

    for index, day in enumerate(week.days):
        left = index * slot + slot * 0.08
        this, last = day.this.progress, day.last
        shown = [(0.0, last.seated_s, "bar last-week", f"{last.day:%a %d %b} (last week)")]
        if not day.is_future:
            shown.append((slot * 0.44, this.seated_s, "bar this-week", f"{this.day:%a %d %b}"))
        tops = []
        for shift, seconds, css, when in shown:
            height = height_of(seconds)
            x = round(left + shift, 2)
            title = f"{when}: {format_duration(seconds)} seated"
            bars.append(Rect(x, base_y - height, width, height, title, css))
            tops.append((round(x + width / 2, 2), base_y - height - 4, _hours_text(seconds)))
        if len(tops) == 2 and abs(tops[0][1] - tops[1][1]) < PC_VALUE_PX:
            (x_a, y_a, text_a), (x_b, y_b, text_b) = tops
            if y_a <= y_b:
                tops = [(x_a, _apart(y_a, y_b), text_a), (x_b, y_b, text_b)]
            else:
                tops = [(x_a, y_a, text_a), (x_b, _apart(y_b, y_a), text_b)]
        values.extend(Tick(x, y, text) for x, y, text in tops)
        words = f"{last.day:%a %d %b}: {format_duration(last.seated_s)}"
        if day.last_so_far.seated_s != last.seated_s and not day.is_future:
            height = height_of(day.last_so_far.seated_s)
            by_then = format_duration(day.last_so_far.seated_s)
            title = f"{last.day:%a %d %b} by this time: {by_then}"
            so_far.append(Rect(round(left, 2), base_y - height, width, 0, title, "so-far"))
            words += f" ({by_then} by this time)"
        now = "not yet" if day.is_future else f"{format_duration(this.seated_s)} seated"
        items.append(f"{this.day:%a %d %b}: {now}; the week before, {words}")
        centre = round(index * slot + slot / 2, 2)
        labels.append(Tick(centre, base_y + 17, f"{this.day:%a}", line2=f"{this.day:%d}"))
    y_ticks = [
        Tick(0, round(base_y - plot_h * hours / y_max, 1), f"{hours} h")
        for hours in range(0, y_max + 1, step)
    ]
    return PairChart(PC_HEIGHT, base_y, bars, values, labels, y_ticks, so_far, items)


@dataclass(frozen=True)
class Ring:
    """A progress ring: a circle of ``circumference`` whose first ``filled`` is drawn."""

    radius: float
    circumference: float
    filled: float
    share: float


RING_RADIUS = 42.0


def goal_ring(day: progress.GoalDay) -> Ring:
    """Today's stand-up hours against the goal's, as a ring."""
    circumference = round(2 * math.pi * RING_RADIUS, 2)
    return Ring(
        RING_RADIUS, circumference, round(circumference * day.break_share, 2), day.break_share
    )


# --- the Insights page ----------------------------------------------------------------------

HEAT_LEVELS = 5  # cell colours besides "nothing"


@dataclass(frozen=True)
class Row:
    """One horizontal bar with its label and shown value."""

    y: float
    label: str
    value_text: str
    bar: Rect
    key: str
    value: int


@dataclass(frozen=True)
class RowChart:
    height: int
    rows: list[Row]

    @property
    def titles(self) -> list[str]:
        return [row.bar.title for row in self.rows]


@dataclass(frozen=True)
class ColumnChart:
    height: int
    base_y: float
    bars: list[Rect]
    x_labels: list[Tick]
    y_ticks: list[Tick]
    values: list[Tick]  # the count above each bar
    line_y: float | None = None  # a reference line (the budget)
    line_label: str = ""
    is_long: bool = False

    @property
    def titles(self) -> list[str]:
        return [bar.title for bar in self.bars]


@dataclass(frozen=True)
class HeatCell:
    x: float
    y: float
    size_w: float
    size_h: float
    level: int
    title: str
    weekday: int
    hour: int
    seated_s: float


@dataclass(frozen=True)
class HeatGrid:
    height: int
    cells: list[HeatCell]
    row_labels: list[Tick]
    col_labels: list[Tick]
    peak_s: float

    @property
    def titles(self) -> list[str]:
        """The hours anybody sat, in words (the empty ones would be 100 lines of "0 min")."""
        return [cell.title for cell in self.cells if cell.level]


RC_LONGEST = 72.0  # % of the width for the largest bar; its value text goes after it


def row_chart(items: list[tuple[str, str, int, str]], css: str = "hbar") -> RowChart:
    """Horizontal bars scaled to the largest value, each under its label (a phone has no
    room beside it); ``items`` are (key, label, value, value text)."""
    top, step = 2.0, 50.0
    most = max((value for _, _, value, _ in items), default=0) or 1
    rows = []
    for index, (key, label, value, text) in enumerate(items):
        y = top + index * step
        length = round(RC_LONGEST * value / most, 2)
        title = f"{label}: {text}"
        bar = Rect(0.0, y + 20, max(length, 0.3 if value else 0.0), 22.0, title, css)
        rows.append(Row(y + 14, label, text, bar, key, value))
    return RowChart(int(top + len(items) * step), rows)


def funnel_chart(funnel: insights.Funnel) -> RowChart:
    stand_min = insights.STAND_WITHIN_S // 60
    drill_min = insights.DRILL_WITHIN_S // 60
    stages = (
        ("nudges", "Nudged", funnel.nudges),
        ("stood_up", f"Stood up within {stand_min} min", funnel.stood_up),
        ("drilled", f"... and drilled within {drill_min} min", funnel.drilled),
    )
    return row_chart(
        [
            (key, label, value, f"{value} ({percent(value, funnel.nudges)})")
            for key, label, value in stages
        ],
        css="hbar funnel",
    )


def exercise_chart(exercises: list[insights.ExerciseCount]) -> RowChart:
    shown = [e for e in exercises if e.key != insights.OTHER_STEP or e.count]
    return row_chart([(e.key, e.title, e.count, str(e.count)) for e in shown], css="hbar exercise")


CC_HEIGHT, CC_TOP, CC_BOTTOM = 220, 20, 44


def _column_frame(count: int) -> tuple[float, float, float]:
    base_y = float(CC_HEIGHT - CC_BOTTOM)
    slot = 100 / max(count, 1)
    return base_y, base_y - CC_TOP, slot


def histogram_chart(bouts: tuple[int, ...]) -> ColumnChart:
    base_y, plot_h, slot = _column_frame(len(bouts))
    step = count_step(max(bouts, default=0))
    y_max = max(step, math.ceil(max(bouts, default=0) / step) * step)
    bars, labels, values = [], [], []
    for index, (label, count) in enumerate(zip(insights.BOUT_LABELS, bouts, strict=True)):
        centre = round(index * slot + slot / 2, 2)
        height = round(plot_h * count / y_max, 1)
        width = round(slot * 0.7, 2)
        title = f"{label} min: {count} bout{'s' if count != 1 else ''}"
        bars.append(
            Rect(round(centre - width / 2, 2), base_y - height, width, height, title, "bar")
        )
        labels.append(Tick(centre, base_y + 17, label, line2="min"))
        values.append(Tick(centre, base_y - height - 5, str(count)))
    y_ticks = [
        Tick(0, round(base_y - plot_h * n / y_max, 1), str(n)) for n in range(0, y_max + 1, step)
    ]
    return ColumnChart(CC_HEIGHT, base_y, bars, labels, y_ticks, values)


def budget_chart(days: list[insights.DayInsight], goals: insights.Goals) -> ColumnChart:
    """Seated hours per day (per device that sat, when several did) against the budget
    line; over-budget days hatched in red and marked "!", goal days green and marked with a
    tick (told apart by more than colour)."""
    base_y, plot_h, slot = _column_frame(len(days))
    per_device = [d.seated_s / d.devices_sat if d.devices_sat else 0.0 for d in days]
    budget_h = goals.seat_budget_s / 3600
    top_h = max([h / 3600 for h in per_device] + [budget_h])
    step = count_step(top_h)
    y_max = max(step, math.ceil(top_h / step) * step)
    long_axis = len(days) > 10
    bars, labels, values = [], [], []
    for index, (day, seated_s) in enumerate(zip(days, per_device, strict=True)):
        centre = round(index * slot + slot / 2, 2)
        height = round(plot_h * (seated_s / 3600) / y_max, 1)
        width = round(slot * 0.66, 2)
        css = "bar over" if day.over_budget else ("bar goal" if day.meets_goals else "bar")
        who = (
            f" a device ({day.devices_sat} sat, {day.devices_over_budget} over budget)"
            if day.devices_sat > 1
            else ""
        )
        title = (
            f"{day.day:%a %d %b}: {format_duration(seated_s)} seated{who}"
            + (", over budget" if day.over_budget else "")
            + (", goals met" if day.meets_goals else "")
        )
        bars.append(Rect(round(centre - width / 2, 2), base_y - height, width, height, title, css))
        from_last = len(days) - 1 - index
        if not long_axis or from_last % 2 == 0:
            minor = long_axis and from_last % 6 != 0
            labels.append(Tick(centre, base_y + 18, f"{day.day:%d}", "minor" if minor else ""))
        if day.over_budget:
            values.append(Tick(centre, base_y - height - 5, "!", "over"))
        elif day.meets_goals:
            values.append(Tick(centre, base_y - height - 5, "✓", "goal"))
    y_ticks = [
        Tick(0, round(base_y - plot_h * h / y_max, 1), f"{h} h") for h in range(0, y_max + 1, step)
    ]
    line_y = round(base_y - plot_h * budget_h / y_max, 1)
    return ColumnChart(
        CC_HEIGHT,
        base_y,
        bars,
        labels,
        y_ticks,
        values,
        line_y,
        f"budget {format_duration(goals.seat_budget_s)}",
        is_long=long_axis,
    )


HM_TOP, HM_CELL_H = 22, 26


def heat_level(seated_s: float, peak_s: float) -> int:
    """0 for nothing, else 1..HEAT_LEVELS by the share of the busiest cell."""
    if seated_s <= 0 or peak_s <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, math.ceil(HEAT_LEVELS * seated_s / peak_s)))


def heatmap_chart(heatmap: insights.Heatmap) -> HeatGrid:
    """Weekdays down, the day's 24 hours across (``x``, ``size_w`` in %, as every chart)."""
    peak = heatmap.peak_s
    cell_w = 100 / 24
    cells, rows, cols = [], [], []
    for column, hour in enumerate(heatmap.hours):
        x = column * cell_w
        minor = "minor" if column % 3 else ""
        cols.append(Tick(round(x + cell_w / 2, 2), HM_TOP - 8, f"{hour:02d}", minor))
    for weekday, name in enumerate(insights.WEEKDAYS):
        y = HM_TOP + weekday * HM_CELL_H
        rows.append(Tick(0, y + HM_CELL_H / 2 + 4, name))
        for column, hour in enumerate(heatmap.hours):
            seconds = heatmap.seated_s[weekday][hour]
            title = f"{name} {hour:02d}:00-{(hour + 1) % 24:02d}:00: {format_duration(seconds)}"
            x = column * cell_w
            cells.append(
                HeatCell(
                    round(x + 0.1, 2),
                    y + 1,
                    round(cell_w - 0.2, 2),
                    HM_CELL_H - 2,
                    heat_level(seconds, peak),
                    title,
                    weekday,
                    hour,
                    seconds,
                )
            )
    height = HM_TOP + 7 * HM_CELL_H + 4
    return HeatGrid(height, cells, rows, cols, peak)
