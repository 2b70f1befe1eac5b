"""How durations, times and shares read on the pages: the Jinja filters ``duration``,
``clock`` (local time of day) and ``ago``, and ``percent``; the chart titles use them too."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from sitwatch.server.queries.stats import as_utc
from sitwatch.server.web.context import now, web_state


def format_duration(seconds: float | None) -> str:
    """1234 -> '20 min', 5400 -> '1 h 30 min', 42 -> '42 s' (static/live.js writes alike)."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def local_time(ts: datetime | None, fmt: str = "%H:%M") -> str:
    if ts is None:
        return "-"
    return as_utc(ts).astimezone(web_state().calendar.zone).strftime(fmt)


def time_ago(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    return format_duration((now() - as_utc(ts)).total_seconds()) + " ago"


def percent(part: int, whole: int) -> str:
    """A share as a whole percentage, '-' of nothing."""
    return f"{round(100 * part / whole)} %" if whole else "-"


def register_filters(app: Flask) -> None:
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(local_time, "clock")
    app.add_template_filter(time_ago, "ago")
