"""JSON API (/api/v1/...) and CSV export of daily rollups: the same stats functions as the
pages, so the numbers agree. Login (the session cookie) is required like everywhere else."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from sitwatch.server import stats
from sitwatch.server.app import db, now, web_state
from sitwatch.server.models import Device

bp = Blueprint("api", __name__, url_prefix="/api/v1")

DATE_ARG = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_DAYS = 30

CSV_COLUMNS = (
    "day",
    "device_id",
    "device_name",
    "seated_s",
    "seated_min",
    "sessions",
    "longest_s",
    "breaks",
    "prompts",
    "prompts_answered",
    "prompts_answered_by_drill",
    "drills",
)


def to_json(value: Any) -> Any:
    """Dataclasses, dates and datetimes as JSON (times in UTC, ISO 8601 with Z)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return stats.as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def _today_json(figures: stats.TodayFigures) -> dict[str, Any]:
    return {**to_json(figures), "seated_now": figures.seated_now}


def _overview_json(found: stats.Overview) -> dict[str, Any]:
    return {
        "today": _today_json(found.today),
        "longest": to_json(found.longest),
        "streaks": to_json(found.streaks),
    }


def _date_arg(name: str, default: date | None) -> date | None:
    text = request.args.get(name)
    if not text:
        return default
    try:
        if not DATE_ARG.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        abort(400, f"{name} must be a date as YYYY-MM-DD, got {text[:40]!r}")


def _device_or_404(device_id: str) -> Device:
    device = db().get(Device, device_id)
    if device is None:
        abort(404, f"no device {device_id[:64]!r}")
    return device


@bp.get("/devices")
def devices() -> Response:
    rows = stats.device_statuses(db(), now(), web_state().config.offline_after_s)
    return jsonify(devices=[{**to_json(row), "label": row.label} for row in rows])


@bp.get("/devices/<device_id>/today")
def device_today(device_id: str) -> Response:
    _device_or_404(device_id)
    state = web_state()
    found = stats.overview(db(), state.calendar, now(), state.config.offline_after_s, device_id)
    return jsonify(device_id=device_id, **_overview_json(found))


@bp.get("/devices/<device_id>/days")
def device_days(device_id: str) -> Response:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, both inclusive; default the last 30 days."""
    _device_or_404(device_id)
    today = web_state().calendar.day_of(now())
    last = _date_arg("to", today) or today
    first = _date_arg("from", last - timedelta(days=DEFAULT_DAYS - 1)) or last
    if first > last:
        abort(400, f"from ({first}) is after to ({last})")
    try:
        days = stats.daily_series(db(), first, last, device_id)
    except ValueError as exc:
        abort(400, str(exc))
    return jsonify(device_id=device_id, days=to_json(days))


@bp.get("/summary")
def summary() -> Response:
    """All devices together, and each device's today."""
    state, session, current = web_state(), db(), now()
    calendar, offline_after_s = state.calendar, state.config.offline_after_s
    found = stats.overview(session, calendar, current, offline_after_s)
    per_device = stats.today_by_device(session, calendar, current, offline_after_s)
    return jsonify(
        now=to_json(current),
        timezone=calendar.timezone,
        day_start_hour=calendar.day_start_hour,
        **_overview_json(found),
        devices={device_id: _today_json(f) for device_id, f in per_device.items()},
    )


def _csv_safe(text: str) -> str:
    """Device names are user input: a leading = + - @ would run as a spreadsheet formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_lines(rows: Iterator[stats.RollupRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.day.isoformat(),
                row.device_id,
                _csv_safe(row.device_name),
                f"{row.seated_s:.0f}",
                f"{row.seated_s / 60:.1f}",
                row.sessions,
                f"{row.longest_s:.0f}",
                row.breaks,
                row.prompts,
                row.prompts_answered,
                row.prompts_answered_by_drill,
                row.drills,
            )
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_response(device_id: str | None, filename: str) -> Response:
    first, last = _date_arg("from", None), _date_arg("to", None)
    sessions = web_state().sessions

    def lines() -> Iterator[str]:
        # The rows are read while the response streams, after the request's own session has
        # been closed: this generator opens and always closes its own (also when the client
        # hangs up and the server closes the generator).
        with sessions() as session:
            yield from _csv_lines(stats.rollup_rows(session, first, last, device_id))

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
    _device_or_404(device_id)
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", device_id)
    return _csv_response(device_id, f"sitwatch-{safe_id}-daily.csv")
