"""What a request asks for, read from its path and query string for the pages and the API
alike: dates (``?day=``, ``?from=``, ``?to=`` as YYYY-MM-DD), the device, and the insights
they choose; a bad value ends the request with a 400, an unknown device with a 404, a
desk the viewer may manage but not see the figures of with a 403 (server/web/access.py)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask import abort, request

from sitwatch.server.models import Device
from sitwatch.server.queries import insights
from sitwatch.server.queries.scope import ALL_DESKS
from sitwatch.server.queries.stats import desks_with_data
from sitwatch.server.web.access import DeskAccess
from sitwatch.server.web.context import db, now, viewer, web_state

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


def managed_device_or_404(device_id: str) -> Device:
    """The stored device ``device_id`` if the viewer may change it; a 404 naming it if there
    is none, or if the viewer may not see it (the same answer: a desk outside the viewer's
    scope is not there for them)."""
    device = db().get(Device, device_id)
    if device is None or viewer().access(device_id) is DeskAccess.NONE:
        abort(404, f"no device {device_id[:64]!r}")
    return device


def device_or_404(device_id: str) -> Device:
    """As ``managed_device_or_404``, for the desk's own figures: a 403 if the viewer manages
    the desk but may not see them (office privacy mode, not shared)."""
    device = managed_device_or_404(device_id)
    if viewer().access(device_id) is not DeskAccess.FULL:
        abort(403, "office privacy mode: this desk's figures are shown only to its member")
    return device


def admin_or_403() -> None:
    """Ends the request with a 403 unless an admin is logged in."""
    if not viewer().is_admin:
        abort(403, "only an admin may do this")


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
    scope = viewer().scope
    if device_id is not None:
        device_or_404(device_id)
    elif viewer().sees_fleet_totals_only:
        scope = ALL_DESKS
        desks = desks_with_data(db(), scope, first, last)
        if not viewer().may_see_total_of(desks):
            abort(403, fleet_withheld(desks))
    try:
        return insights.insights(
            db(),
            scope,
            calendar,
            first,
            last,
            device_id=device_id,
            goals=insights.Goals.from_config(state.config.goals),
            today=today,
        )
    except ValueError as exc:
        abort(400, str(exc))


def fleet_withheld(desks: int) -> str:
    """Why a fleet figure is not shown (office privacy mode, fewer than min_group desks)."""
    least = viewer().min_group
    return (
        f"office privacy mode: fleet figures are shown only over at least {least} desks,"
        f" and only {desks} have data here"
    )
