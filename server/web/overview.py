"""The overview page (/): today's figures, the day's timeline and the last 7 and 30 days,
for all devices (several desks: the average desk that sat, never sums over people) or
(through ``page_figures``, for the device page) one; for an admin in office privacy mode,
the fleet only as such averages over enough desks (``fleet_figures``); and the drill
guide (/drill)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from flask import Blueprint, render_template

from sitwatch.drill import CIRCUIT
from sitwatch.server.queries import stats
from sitwatch.server.queries.pauses import paused_devices
from sitwatch.server.queries.scope import ALL_DESKS
from sitwatch.server.web.charts import WEEK_DAYS, series_chart, timeline_chart
from sitwatch.server.web.context import db, now, viewer, viewer_scope, web_state
from sitwatch.server.web.params import chosen_day, fleet_withheld

bp = Blueprint("overview", __name__)

MONTH_DAYS = 30
# The overview shows this many devices' cards and timeline rows (an office fleet's busiest
# today); the devices page lists them all.
OVERVIEW_DEVICES = 24


def page_figures(device_id: str | None) -> dict[str, Any]:
    """Everything the overview and the device page show, from the stats functions the JSON
    API calls too."""
    state, session, current, scope = web_state(), db(), now(), viewer_scope()
    calendar, offline_after_s = state.calendar, state.config.offline_after_s
    today = calendar.day_of(current)
    day = chosen_day(today)
    devices = stats.device_statuses(session, scope, current, offline_after_s, device_id)
    states = stats.seat_states(session, scope, current, offline_after_s, device_id)  # once
    per_device = stats.today_by_device(
        session, scope, calendar, current, offline_after_s, device_id, states
    )
    shown = busiest(devices, per_device, OVERVIEW_DEVICES)
    among = None if len(shown) == len(devices) else {d.id for d in shown}
    timeline = stats.day_timeline(
        session, scope, calendar, day, current, offline_after_s, device_id, among, states
    )
    # Several desks that are not all the viewer's own are several people: their day is
    # shown per desk, not summed (one person's own desks combine on their personal page).
    own = viewer().own_desks
    several = device_id is None and len(devices) > 1 and not {d.id for d in devices} <= own
    first_of_month = today - timedelta(days=MONTH_DAYS - 1)
    month: Sequence[stats.DayFigures | stats.AverageDay] = (
        stats.daily_average_series(session, scope, first_of_month, today)
        if several
        else stats.daily_series(session, scope, first_of_month, today, device_id)
    )
    week = month[-WEEK_DAYS:]
    return {
        "overview": stats.overview(
            session, scope, calendar, current, offline_after_s, device_id, per_device, states
        ),
        "per_device": per_device,
        "per_desk": stats.per_desk_today(today, list(per_device.values())) if several else None,
        "paused": paused_devices(session, scope, current, device_id),
        "devices": devices,
        "shown_devices": shown,
        "day": day,
        "today": today,
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1) if day < today else None,
        "timeline": timeline_chart(timeline, shown, current),
        "timeline_data": timeline,
        "week": series_chart(week),
        "month": series_chart(month),
        "calendar": calendar,
    }


def busiest(
    devices: list[stats.DeviceStatus],
    per_device: Mapping[str, stats.TodayFigures],
    limit: int,
) -> list[stats.DeviceStatus]:
    """All devices if there are at most ``limit``, else the ``limit`` seated longest today
    (a stretch in progress counts), in the devices' own order."""
    if len(devices) <= limit:
        return devices

    def seated_today(device: stats.DeviceStatus) -> float:
        figures = per_device.get(device.id)
        return 0.0 if figures is None else figures.seated_s + figures.current_stretch_s

    chosen = {d.id for d in sorted(devices, key=seated_today, reverse=True)[:limit]}
    return [d for d in devices if d.id in chosen]


def fleet_figures() -> dict[str, Any]:
    """The fleet as an admin sees it in office privacy mode: today and the last 7 and 30
    days per desk that sat (an average, never a sum over people), each shown only where at
    least ``min_group`` desks have data and sat (a day below that stays empty); no desk's own
    figures, no timeline, no records (one person's)."""
    state, session, current, seen = web_state(), db(), now(), viewer()
    calendar, offline_after_s = state.calendar, state.config.offline_after_s
    today = calendar.day_of(current)
    counted = stats.desks_with_data(session, ALL_DESKS, today, today)
    totals = per_desk = None
    if seen.may_see_total_of(counted):
        per_device = stats.today_by_device(session, ALL_DESKS, calendar, current, offline_after_s)
        average = stats.per_desk_today(today, list(per_device.values()))
        counted = average.desks  # the average is over the desks that sat
        if seen.may_see_total_of(counted):
            totals = stats.combine_today(today, list(per_device.values()))
            per_desk = average
    first = today - timedelta(days=MONTH_DAYS - 1)
    month = [
        day if seen.may_see_total_of(day.desks) else stats.AverageDay(day=day.day, desks=0)
        for day in stats.daily_average_series(session, ALL_DESKS, first, today)
    ]
    visible = stats.device_statuses(session, viewer_scope(), current, offline_after_s)
    return {
        "today": totals,
        "per_desk": per_desk,
        "withheld": None if totals is not None else fleet_withheld(counted),
        "min_group": seen.min_group,
        "week": series_chart(month[-WEEK_DAYS:]),
        "month": series_chart(month),
        "visible_devices": visible,
        "calendar": calendar,
    }


@bp.get("/")
def index() -> str:
    if viewer().sees_fleet_totals_only:
        return render_template("fleet.html", f=fleet_figures())
    return render_template("overview.html", p=page_figures(None))


# What each step's line drawing (static/drill/<step key>.svg, made for sitwatch) shows, for
# its alt text; the drawing's own <title> says the same.
PICTURES: dict[str, str] = {
    "setup": "A standing figure, legs apart, one band around the lower thighs and one "
    "around the ankles.",
    "glute_bridge": "A figure on its back, knees bent and feet flat, pushing the pelvis up.",
    "clams": "A figure lying on its side, knees bent, ankles together, the top knee "
    "opening upwards.",
    "reverse_clams": "A figure lying on its side, knees together, the top ankle lifting "
    "away from the bottom one.",
    "athletic_stance": "A figure standing with legs wide, knees slightly bent over the "
    "feet, hips back.",
    "band_walks": "A figure in the athletic stance stepping to the side, arrows both ways.",
}


@bp.get("/drill")
def drill() -> str:
    return render_template("drill.html", steps=CIRCUIT, pictures=PICTURES)
