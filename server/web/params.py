"""What a request asks for, read from its path and query string for the pages and the API
alike: dates (``?day=``, ``?from=``, ``?to=`` as YYYY-MM-DD), the device, and the insights
they choose; a bad value ends the request with a 400, an unknown device with a 404."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask import abort, request

from sitwatch.server.models import Device
from sitwatch.server.queries import insights
from sitwatch.server.web.context import db, now, viewer_scope, web_state

DATE_ARG = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EARLIEST_DAY = date(2000, 1, 1)  # before any sitwatch data; keeps date arithmetic in range
INSIGHT_WEEKS = 4  # the default range: this week and the three before it


def date_arg(name: str, default: date | None) -> date | None:
    """The query argument ``name`` as a date, or ``default`` when it is absent or empty."""
    text = request.args.get(name)
    if not text:
        return default
    try:
        if not DATE_ARG.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        abort(400, f"{name} must be a date as YYYY-MM-DD, got {text[:40]!r}")


def chosen_day(today: date) -> date:
    """The day a page shows: ``?day=``, from EARLIEST_DAY to tomorrow; default ``today``."""
    day = date_arg("day", today) or today
    if not EARLIEST_DAY <= day <= today + timedelta(days=1):
        abort(400, f"day must be between {EARLIEST_DAY} and tomorrow, got {day}")
    return day


def device_or_404(device_id: str) -> Device:
    """The stored device ``device_id``; a 404 naming it if there is none, or if the viewer may
    not see it (the same answer: a desk outside the viewer's scope is not there for them)."""
    device = db().get(Device, device_id)
    if device is None or not viewer_scope().allows(device_id):
        abort(404, f"no device {device_id[:64]!r}")
    return device


def insights_request() -> insights.Insights:
    """The insights a request asks for: ?from=&to= (YYYY-MM-DD, inclusive; default this
    week and the three before it) and ?device= (a device id; default all devices). Shared
    by the JSON, the CSV files and the Insights page."""
    state = web_state()
    calendar = state.calendar
    today = calendar.day_of(now())
    last = date_arg("to", today) or today
    default_first = calendar.week_start(last) - timedelta(weeks=INSIGHT_WEEKS - 1)
    first = date_arg("from", default_first) or default_first
    device_id = request.args.get("device") or None
    if device_id is not None:
        device_or_404(device_id)
    try:
        return insights.insights(
            db(),
            viewer_scope(),
            calendar,
            first,
            last,
            device_id=device_id,
            goals=insights.Goals.from_config(state.config.goals),
            today=today,
        )
    except ValueError as exc:
        abort(400, str(exc))
