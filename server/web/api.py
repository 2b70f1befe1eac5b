"""JSON API (/api/v1/...) and CSV export of daily rollups and insights: the same stats and
insights functions as the pages, so the numbers agree; ``/live`` is what the pages' script
(static/live.js) polls to keep the seat state and today's figures current. Login (the
session cookie) is required like everywhere else."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Collection, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sitwatch.calendar import as_utc
from sitwatch.server.models import ROLLUP_FIGURES
from sitwatch.server.queries import insights, stats
from sitwatch.server.web import personal
from sitwatch.server.web.context import db, now, viewer, viewer_scope, web_state
from sitwatch.server.web.params import date_arg, device_or_404, insights_request

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_DAYS = 30

# The rollup figures in the model's order, with seated_min after seated_s for spreadsheets.
_CSV_FIGURES = tuple(name for name in ROLLUP_FIGURES if name != "seated_s")
CSV_COLUMNS = ("day", "device_id", "device_name", "seated_s", "seated_min", *_CSV_FIGURES)


def to_json(value: Any) -> Any:
    """Dataclasses, dates and datetimes as JSON (times in UTC, ISO 8601 with Z)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _today_json(figures: stats.TodayFigures) -> dict[str, Any]:
    body = {**to_json(figures), "seated_now": figures.seated_now}
    # Published in API v1 under its short name.
    body["answered_by_drill"] = body.pop("prompts_answered_by_drill")
    return body


def _overview_json(found: stats.Overview) -> dict[str, Any]:
    return {
        "today": _today_json(found.today),
        "longest": to_json(found.longest),
        "streaks": to_json(found.streaks),
    }


def _per_desk_json(day: date, per_device: dict[str, stats.TodayFigures]) -> dict[str, Any]:
    """The average desk that sat today (stats.PerDesk), named as in ``today``: what the
    overview shows for several desks instead of their sums."""
    body = to_json(stats.per_desk_today(day, list(per_device.values())))
    body["answered_by_drill"] = body.pop("prompts_answered_by_drill")
    return body


@bp.get("/devices")
def devices() -> Response:
    # The desks the viewer manages (in office privacy mode an admin's are all, by name).
    scope = viewer().manage_scope
    rows = stats.device_statuses(db(), scope, now(), web_state().config.offline_after_s)
    return jsonify(devices=[{**to_json(row), "label": row.label} for row in rows])


@bp.get("/devices/<device_id>/today")
def device_today(device_id: str) -> Response:
    device_or_404(device_id)
    state = web_state()
    found = stats.overview(
        db(), viewer_scope(), state.calendar, now(), state.config.offline_after_s, device_id
    )
    return jsonify(device_id=device_id, **_overview_json(found))


@bp.get("/devices/<device_id>/days")
def device_days(device_id: str) -> Response:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, both inclusive; default the last 30 days."""
    device_or_404(device_id)
    today = web_state().calendar.day_of(now())
    last = date_arg("to", today) or today
    first = date_arg("from", last - timedelta(days=DEFAULT_DAYS - 1)) or last
    if first > last:
        abort(400, f"from ({first}) is after to ({last})")
    try:
        days = stats.daily_series(db(), viewer_scope(), first, last, device_id)
    except ValueError as exc:
        abort(400, str(exc))
    return jsonify(device_id=device_id, days=to_json(days))


@bp.get("/summary")
def summary() -> Response:
    """All devices together, and each device's today."""
    state, session, current = web_state(), db(), now()
    calendar, offline_after_s = state.calendar, state.config.offline_after_s
    states = stats.seat_states(session, viewer_scope(), current, offline_after_s)
    per_device = stats.today_by_device(
        session, viewer_scope(), calendar, current, offline_after_s, None, states
    )
    found = stats.overview(
        session, viewer_scope(), calendar, current, offline_after_s, None, per_device, states
    )
    return jsonify(
        now=to_json(current),
        timezone=calendar.timezone,
        day_start_hour=calendar.day_start_hour,
        **_overview_json(found),
        today_per_desk=_per_desk_json(calendar.day_of(current), per_device),
        devices={device_id: _today_json(f) for device_id, f in per_device.items()},
    )


def _live_json(device_id: str | None, shown: Collection[str] | None) -> dict[str, Any]:
    """Today's figures with when the seat was taken (``seated_since``, null if free), for
    ``device_id`` or every desk of the scope together, and each desk's among ``shown``
    (None: all) with its online state and last sign of life. Three small queries: no
    longest stretch or streaks, which the page does not refresh."""
    state, session, current, scope = web_state(), db(), now(), viewer_scope()
    calendar, offline_after_s = state.calendar, state.config.offline_after_s
    devices = stats.device_statuses(session, scope, current, offline_after_s, device_id)
    states = stats.seat_states(session, scope, current, offline_after_s, device_id)
    per_device = stats.today_by_device(
        session, scope, calendar, current, offline_after_s, device_id, states
    )
    today = stats.combine_today(calendar.day_of(current), list(per_device.values()))
    # The longest stretch in progress is the one that began first.
    seated_since = min((s.seated_since for s in states.values() if s.seated_since), default=None)
    return {
        "now": to_json(current),
        "today": {**_today_json(today), "seated_since": to_json(seated_since)},
        # The average desk that sat today: what a page showing several desks shows.
        "today_per_desk": _per_desk_json(today.day, per_device),
        "devices": {
            d.id: {
                **_today_json(per_device[d.id]),
                "label": d.label,
                "is_online": states[d.id].is_online,
                "seated_since": to_json(states[d.id].seated_since),
                "last_seen_at": to_json(d.last_seen_at),
            }
            # A desk stored between the queries is in the next answer.
            for d in devices
            if d.id in per_device and (shown is None or d.id in shown)
        },
    }


@bp.get("/my-day")
def my_day() -> Response:
    """The logged-in person's own desks combined (server/web/personal.py): today so far
    against the same weekday last week up to the same time, the goal and its streak."""
    if not viewer().own_desks:
        return jsonify(desks=[], today=None)
    goal = personal.current_goal()
    found = personal.day_figures(goal)["view"]
    today = found.today
    return jsonify(
        now=to_json(now()),
        desks=sorted(viewer().own_desks),
        today={
            "day": today.day.isoformat(),
            "seated_s": round(today.progress.seated_s),
            "longest_s": round(today.progress.longest_s),
            "break_hours": today.progress.break_hours,
            "goal_met": today.met,
            "seated_now": found.seated_now,
        },
        same_day_last_week={
            "day": found.same_day_last_week.day.isoformat(),
            "until": to_json(found.same_time_last_week),
            "seated_s": round(found.same_day_last_week.seated_s),
        },
        change_s=round(found.today_vs_last_week.change_s),
        trend=found.today_vs_last_week.direction,
        goal=to_json(found.goal),
        streak=to_json(found.streak),
        week=personal.week_json(found.week, goal),
    )


@bp.get("/my-week")
def my_week() -> Response:
    """The weekly summary: ?week=YYYY-MM-DD (any day of it; default this week), each day
    beside the same weekday the week before, totals and the trend."""
    week_start = personal.chosen_week(web_state().calendar.day_of(now()))
    if not viewer().own_desks:
        return jsonify(desks=[], week=None)
    found = personal.week_figures(week_start)
    return jsonify(
        desks=sorted(viewer().own_desks), week=personal.week_json(found["week"], found["goal"])
    )


@bp.get("/live")
def live() -> Response:
    """Every desk of the viewer's together, and each desk's own (only those named by
    repeated ``?device=``, if any: the cards a page shows)."""
    shown = set(request.args.getlist("device")) or None
    return jsonify(_live_json(None, shown))


@bp.get("/devices/<device_id>/live")
def device_live(device_id: str) -> Response:
    device_or_404(device_id)
    return jsonify(_live_json(device_id, None))


def _csv_safe(text: str) -> str:
    """Device names are user input: a leading = + - @ would run as a spreadsheet formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# Seconds as whole seconds, counts as they are.
_CSV_WHOLE_SECONDS = tuple(name.endswith("_s") for name in _CSV_FIGURES)


def _csv_lines(rows: Iterator[stats.RollupRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = [getattr(row, name) for name in _CSV_FIGURES]
        writer.writerow(
            (
                row.day.isoformat(),
                row.device_id,
                _csv_safe(row.device_name),
                f"{row.seated_s:.0f}",
                f"{row.seated_s / 60:.1f}",
                *(
                    f"{value:.0f}" if whole else value
                    for value, whole in zip(values, _CSV_WHOLE_SECONDS, strict=True)
                ),
            )
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_response(device_id: str | None, filename: str) -> Response:
    first, last = date_arg("from", None), date_arg("to", None)
    sessions, scope = web_state().sessions, viewer_scope()

    def lines() -> Iterator[str]:
        # The rows are read while the response streams, after the request's own session has
        # been closed: this generator opens and always closes its own (also when the client
        # hangs up and the server closes the generator).
        with sessions() as session:
            yield from _csv_lines(stats.rollup_rows(session, scope, first, last, device_id))

    return Response(
        lines(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/rollups.csv")
def rollups_csv() -> Response:
    """Every device's daily rollups (?from= and ?to= optional)."""
    return _csv_response(None, "sitwatch-daily.csv")


@bp.get("/devices/<device_id>/rollups.csv")
def device_rollups_csv(device_id: str) -> Response:
    device_or_404(device_id)
    return _csv_response(device_id, f"sitwatch-{_file_safe(device_id)}-daily.csv")


def _file_safe(device_id: str) -> str:
    """A device id as it may stand in a download's file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


# --- insights (issue 7): funnel, bouts, heatmap, budget, streaks, exercises ----------------

BOUT_COLUMNS = tuple(
    f"bouts_{lo}_{hi}" if hi is not None else f"bouts_{lo}_plus"
    for lo, hi in insights.BOUT_EDGES_MIN
)
INSIGHT_DAY_COLUMNS = (
    "day",
    "seated_s",
    "over_budget",
    "devices_sat",
    "devices_over_budget",
    "drills",
    "meets_goals",
    "prompts",
    "nudges",
    "stood_up_5min",
    "drilled",
    "median_to_stand_s",
    *BOUT_COLUMNS,
    "longest_bout_s",
    *(f"steps_{key}" for key in insights.EXERCISE_KEYS),
)
HEATMAP_COLUMNS = ("weekday", "hour", "seated_s", "seated_min")
INSIGHT_WEEK_COLUMNS = ("week_start", "nudges", "stood_up_5min", "drilled", "median_to_stand_s")


def insights_json(found: insights.Insights) -> dict[str, Any]:
    calendar = web_state().calendar
    return {
        "from": found.first.isoformat(),
        "to": found.last.isoformat(),
        "device_id": found.device_id,
        "timezone": calendar.timezone,
        "day_start_hour": calendar.day_start_hour,
        "rules": {
            "stand_within_s": insights.STAND_WITHIN_S,
            "drill_within_s": insights.DRILL_WITHIN_S,
            "bout_buckets_min": list(insights.BOUT_LABELS),
        },
        "goals": to_json(found.goals),
        "funnel": to_json(found.funnel),
        "weeks": to_json(found.weeks),
        "bouts": {
            "buckets_min": list(insights.BOUT_LABELS),
            "counts": list(found.bouts),
            "longest_s": found.longest_bout_s,
        },
        "days_over_budget": found.days_over_budget,
        "streaks": to_json(found.streaks),
        "exercises": to_json(found.exercises),
        "heatmap": {
            "weekdays": list(insights.WEEKDAYS),
            "hours": list(found.heatmap.hours),  # display order; seated_s is by clock hour
            "seated_s": to_json(found.heatmap.seated_s),
        },
        "days": to_json(found.days),
    }


@bp.get("/insights")
def insights_view() -> Response:
    """Nudge funnel, bouts, heatmap, budget, streaks and exercises (see server/queries/insights.py
    for the rules)."""
    return jsonify(insights_json(insights_request()))


def _flag(value: bool) -> int:
    return 1 if value else 0


def insight_day_rows(found: insights.Insights) -> Iterator[tuple[Any, ...]]:
    for d in found.days:
        yield (
            d.day.isoformat(),
            f"{d.seated_s:.0f}",
            _flag(d.over_budget),
            d.devices_sat,
            d.devices_over_budget,
            d.drills,
            _flag(d.meets_goals),
            d.prompts,
            *_funnel_cells(d.funnel),
            *d.bouts,
            f"{d.longest_bout_s:.0f}",
            *(d.exercises[key] for key in insights.EXERCISE_KEYS),
        )


def _funnel_cells(funnel: insights.Funnel) -> tuple[Any, ...]:
    median = funnel.median_to_stand_s
    return (
        funnel.nudges,
        funnel.stood_up,
        funnel.drilled,
        "" if median is None else f"{median:.0f}",
    )


def insight_week_rows(found: insights.Insights) -> Iterator[tuple[Any, ...]]:
    for week in found.weeks:
        yield (week.week_start.isoformat(), *_funnel_cells(week.funnel))


def heatmap_rows(found: insights.Insights) -> Iterator[tuple[Any, ...]]:
    for weekday, name in enumerate(insights.WEEKDAYS):
        for hour in found.heatmap.hours:
            seconds = found.heatmap.seated_s[weekday][hour]
            yield (name, f"{hour:02d}:00", f"{seconds:.0f}", f"{seconds / 60:.1f}")


def _small_csv(columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]], name: str) -> Response:
    """A CSV computed in full before it is sent (a few hundred rows at most)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _insights_filename(found: insights.Insights, what: str) -> str:
    who = "" if found.device_id is None else _file_safe(found.device_id) + "-"
    return f"sitwatch-{who}insights-{what}-{found.first}-{found.last}.csv"


@bp.get("/insights/days.csv")
def insights_days_csv() -> Response:
    """One row per day: the insights JSON's ``days`` (same ?from= ?to= ?device=)."""
    found = insights_request()
    return _small_csv(
        INSIGHT_DAY_COLUMNS, insight_day_rows(found), _insights_filename(found, "days")
    )


@bp.get("/insights/weeks.csv")
def insights_weeks_csv() -> Response:
    """One row per week (from its Monday): the nudge funnel, as the JSON's ``weeks``."""
    found = insights_request()
    return _small_csv(
        INSIGHT_WEEK_COLUMNS, insight_week_rows(found), _insights_filename(found, "weeks")
    )


@bp.get("/insights/heatmap.csv")
def insights_heatmap_csv() -> Response:
    """One row per weekday and hour (168 rows, in the page's order)."""
    found = insights_request()
    return _small_csv(HEATMAP_COLUMNS, heatmap_rows(found), _insights_filename(found, "heatmap"))
