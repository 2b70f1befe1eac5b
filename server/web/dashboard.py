"""Dashboard pages: overview of all devices, one device, device list, settings and rename
forms, the drill guide; plus the geometry of the server-rendered SVG charts.

Charts are inline SVG drawn by Jinja from the geometry computed here, not a JavaScript chart
library: the pages work with scripts off, there is no 200 kB vendored file to keep current,
every bar carries a <title> tooltip, and tests can count bars in the HTML itself.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from sitwatch.drill import CIRCUIT
from sitwatch.protocol import PauseCommand
from sitwatch.server.models import Device
from sitwatch.server.queries import stats
from sitwatch.server.web import pausing
from sitwatch.server.web.app import db, now, web_state
from sitwatch.server.web.desk_answer import answer_to
from sitwatch.server.web.publish import PublishError, publish_command, publish_settings
from sitwatch.settings import SettingsError, TrackerSettings

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)

DAY_ARG = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EARLIEST_DAY = date(2000, 1, 1)  # before any sitwatch data; keeps date arithmetic in range
WEEK_DAYS = 7
MONTH_DAYS = 30
# The overview shows this many devices' cards and timeline rows (an office fleet's busiest
# today); the devices page lists them all.
OVERVIEW_DEVICES = 24


# --- formatting -------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """1234 -> '20 min', 5400 -> '1 h 30 min', 42 -> '42 s'."""
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
    return stats.as_utc(ts).astimezone(web_state().calendar.zone).strftime(fmt)


def time_ago(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    return format_duration((now() - stats.as_utc(ts)).total_seconds()) + " ago"


def register_filters(app: Flask) -> None:
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(local_time, "clock")
    app.add_template_filter(time_ago, "ago")


# --- chart geometry -------------------------------------------------------------------------


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
        href = url_for("dashboard.device", device_id=device.id, day=timeline.day.isoformat())
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


# --- pages ----------------------------------------------------------------------------------


def _chosen_day(today: date) -> date:
    text = request.args.get("day")
    if not text:
        return today
    try:
        if not DAY_ARG.match(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        abort(400, f"day must be a date as YYYY-MM-DD, got {text[:40]!r}")
    if not EARLIEST_DAY <= day <= today + timedelta(days=1):
        abort(400, f"day must be between {EARLIEST_DAY} and tomorrow, got {day}")
    return day


def _device_or_404(device_id: str) -> Device:
    device = db().get(Device, device_id)
    if device is None:
        abort(404, "No such device.")
    return device


def _stats_page(device_id: str | None) -> dict[str, Any]:
    """Everything the overview and the device page show, from the stats functions the JSON
    API calls too."""
    state, session, current = web_state(), db(), now()
    calendar, offline_after_s = state.calendar, state.config.offline_after_s
    today = calendar.day_of(current)
    day = _chosen_day(today)
    devices = stats.device_statuses(session, current, offline_after_s, device_id)
    states = stats.seat_states(session, current, offline_after_s, device_id)  # asked once
    per_device = stats.today_by_device(
        session, calendar, current, offline_after_s, device_id, states
    )
    shown = busiest(devices, per_device, OVERVIEW_DEVICES)
    among = None if len(shown) == len(devices) else {d.id for d in shown}
    timeline = stats.day_timeline(
        session, calendar, day, current, offline_after_s, device_id, among, states
    )
    week = stats.daily_series(session, today - timedelta(days=WEEK_DAYS - 1), today, device_id)
    month = stats.daily_series(session, today - timedelta(days=MONTH_DAYS - 1), today, device_id)
    return {
        "overview": stats.overview(
            session, calendar, current, offline_after_s, device_id, per_device, states
        ),
        "per_device": per_device,
        "paused": pausing.paused_devices(session, current, device_id),
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


@bp.get("/")
def index() -> str:
    return render_template("overview.html", p=_stats_page(None))


@bp.get("/devices")
def devices() -> str:
    state = web_state()
    current = now()
    rows = stats.device_statuses(db(), current, state.config.offline_after_s)
    return render_template(
        "devices.html",
        devices=rows,
        offline_after_s=state.config.offline_after_s,
        paused=pausing.paused_devices(db(), current),
    )


@bp.get("/devices/<device_id>")
def device(device_id: str) -> str:
    _device_or_404(device_id)
    page = _stats_page(device_id)
    return render_template(
        "device.html",
        device=page["devices"][0],
        p=page,
        paused_until=page["paused"].get(device_id),  # _stats_page looked it up already
    )


@bp.get("/drill")
def drill() -> str:
    return render_template("drill.html", steps=CIRCUIT)


# --- settings and rename --------------------------------------------------------------------


def _described(name: str) -> str:
    return TrackerSettings.model_fields[name].description or ""


NUMBER_FIELDS = (
    "sitting_limit_s",
    "grace_s",
    "break_s",
    "reprompt_s",
    "max_level",
    "snooze_s",
    "max_snoozes",
    "drill_step_s",
    "press_ignore_s",
)
NUMBER = {"inputmode": "decimal", "autocomplete": "off"}


class SettingsForm(FlaskForm):
    """TrackerSettings as a form. Every field is text: TrackerSettings.parse is the only
    validator, so the device's config file, the MQTT topic and this form accept and reject
    exactly the same values."""

    sitting_limit_s = StringField(
        "Sitting limit (s)", description=_described("sitting_limit_s"), render_kw=NUMBER
    )
    grace_s = StringField("Grace (s)", description=_described("grace_s"), render_kw=NUMBER)
    break_s = StringField("Break (s)", description=_described("break_s"), render_kw=NUMBER)
    reprompt_s = StringField(
        "Re-prompt every (s)", description=_described("reprompt_s"), render_kw=NUMBER
    )
    max_level = StringField(
        "Max prompt level", description=_described("max_level"), render_kw=NUMBER
    )
    snooze_s = StringField("Snooze (s)", description=_described("snooze_s"), render_kw=NUMBER)
    max_snoozes = StringField(
        "Snoozes in a row", description=_described("max_snoozes"), render_kw=NUMBER
    )
    drill_step_s = StringField(
        "Drill step (s)", description=_described("drill_step_s"), render_kw=NUMBER
    )
    press_ignore_s = StringField(
        "Ignore presses for (s)", description=_described("press_ignore_s"), render_kw=NUMBER
    )
    timezone = StringField("Time zone", description=_described("timezone"))
    quiet_enabled = BooleanField("Quiet hours", description="silence prompts in this window")
    quiet_start = StringField(
        "Quiet from", description="HH:MM local time", render_kw={"placeholder": "22:00"}
    )
    quiet_end = StringField(
        "Quiet until", description="HH:MM local time", render_kw={"placeholder": "07:00"}
    )
    submit = SubmitField("Save and send to device")

    def fill(self, settings: TrackerSettings) -> None:
        for name in NUMBER_FIELDS:
            getattr(self, name).data = f"{getattr(settings, name):g}"
        self.timezone.data = settings.timezone
        quiet = settings.quiet_hours
        self.quiet_enabled.data = quiet is not None
        self.quiet_start.data = quiet.start if quiet else "22:00"
        self.quiet_end.data = quiet.end if quiet else "07:00"

    def as_table(self) -> dict[str, Any]:
        """The raw input as a settings table, for TrackerSettings.parse."""
        table: dict[str, Any] = {
            name: (getattr(self, name).data or "").strip() for name in NUMBER_FIELDS
        }
        table["timezone"] = (self.timezone.data or "").strip()
        table["quiet_hours"] = (
            {
                "start": (self.quiet_start.data or "").strip(),
                "end": (self.quiet_end.data or "").strip(),
            }
            if self.quiet_enabled.data
            else None
        )
        return table

    def attach_errors(self, error: SettingsError) -> list[str]:
        """Put each of the error's problems on the field its location names; return those
        about no single field (e.g. grace_s > break_s)."""
        unplaced = []
        for problem in error.problems:
            key = problem.key
            why = problem.message.removeprefix("Value error, ")
            field = self._fields.get(FIELD_OF_KEY.get(key, key))
            if field is not None and (key in TrackerSettings.model_fields or key in FIELD_OF_KEY):
                field.errors = [*field.errors, f"{key} = {problem.shown}: {why}"]
            else:
                unplaced.append(why)
        return unplaced


SETTINGS_WHERE = "settings"
FIELD_OF_KEY = {
    "quiet_hours": "quiet_enabled",
    "quiet_hours.start": "quiet_start",
    "quiet_hours.end": "quiet_end",
}


class RenameForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=100)],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )
    submit = SubmitField("Rename")


def _stored_settings(device: Device) -> TrackerSettings:
    if not device.settings:
        return TrackerSettings()
    try:
        return TrackerSettings.parse(device.settings, where=f"device {device.id} settings")
    except SettingsError as exc:
        log.warning("stored settings no longer valid, showing defaults: %s", exc)
        return TrackerSettings()


def _settings_page(
    device: Device, form: SettingsForm, rename: RenameForm, errors: list[str]
) -> str:
    status = stats.device_statuses(db(), now(), web_state().config.offline_after_s, device.id)[0]
    return render_template(
        "settings.html",
        device=status,
        form=form,
        rename_form=rename,
        form_errors=errors,
        number_fields=NUMBER_FIELDS,
        pause_form=pausing.PauseForm(formdata=None),
        paused_until=pausing.paused_until(db(), device, now()),
        day_start_hour=web_state().calendar.day_start_hour,
        desk_answer=answer_to(db(), device.id, device.settings),
    )


@bp.route("/devices/<device_id>/settings", methods=["GET", "POST"])
def settings(device_id: str) -> Any:
    device = _device_or_404(device_id)
    form = SettingsForm()
    rename = RenameForm(data={"name": device.name})
    if not form.is_submitted():
        form.fill(_stored_settings(device))
        return _settings_page(device, form, rename, [])
    if not form.validate():  # only the CSRF token can fail here (CSRFProtect checks it first)
        return _settings_page(device, form, rename, ["The form expired; please try again."]), 400
    try:
        validated = TrackerSettings.parse(form.as_table(), where=SETTINGS_WHERE)
    except SettingsError as exc:
        unplaced = form.attach_errors(exc)
        return _settings_page(
            device, form, rename, unplaced or ["Please correct the fields marked below."]
        )
    timeout_s = current_app.config["SITWATCH_PUBLISH_TIMEOUT_S"]
    try:
        publish_settings(web_state().config.mqtt, device.id, validated, timeout_s)
    except PublishError as exc:
        flash(f"Settings not saved: {exc}. The device keeps its current settings.", "error")
        return _settings_page(device, form, rename, []), 503
    # Stored only once the broker holds them: Device.settings is what the device will get.
    device.settings = validated.model_dump(mode="json")
    db().commit()
    # Only the desk's config/result (shown on the page) says whether it applied them.
    flash("Settings saved and sent to the broker; the desk's answer shows below.", "ok")
    return redirect(url_for("dashboard.settings", device_id=device.id))


@bp.post("/devices/<device_id>/rename")
def rename(device_id: str) -> Any:
    device = _device_or_404(device_id)
    rename_form = RenameForm()
    if not rename_form.validate_on_submit():
        form = SettingsForm(formdata=None)
        form.fill(_stored_settings(device))
        return _settings_page(device, form, rename_form, []), 400
    device.name = rename_form.name.data or ""
    db().commit()
    flash("Device renamed.", "ok")
    return redirect(url_for("dashboard.settings", device_id=device.id))


@bp.post("/devices/<device_id>/pause")
def pause(device_id: str) -> Any:
    """The pause buttons: pause prompts for an hour or until tomorrow, or resume now."""
    device = _device_or_404(device_id)
    pause_form = pausing.PauseForm()
    span = pause_form.span.data if pause_form.validate() else None
    if span not in pausing.SPANS:
        what = repr(span[:40]) if span else "(none)"
        flash(f"Nothing sent: unknown pause choice {what}; use one of the buttons.", "error")
        return _settings_page_as_stored(device), 400
    current, state = now(), web_state()
    command = pausing.command_for(span, current, state.calendar)
    verb = "resumed" if span == pausing.RESUME else "paused"
    try:
        publish_command(
            state.config.mqtt, device.id, command, current_app.config["SITWATCH_PUBLISH_TIMEOUT_S"]
        )
    except PublishError as exc:
        flash(f"Prompts not {verb}: {exc}. The device carries on as before.", "error")
        return _settings_page_as_stored(device), 503
    label = device.name or device.id
    if isinstance(command, PauseCommand):
        message = f"Prompts on {label} paused until {local_time(command.until, '%a %H:%M')}."
    else:
        message = f"Prompts on {label} resume now."
    offline_after_s = state.config.offline_after_s
    if not stats.is_online(device.online, device.last_seen_at, current, offline_after_s):
        message += " The device is offline: it gets this when it reconnects."
    flash(message, "ok")
    return redirect(url_for("dashboard.settings", device_id=device.id))


def _settings_page_as_stored(device: Device) -> str:
    form = SettingsForm(formdata=None)
    form.fill(_stored_settings(device))
    return _settings_page(device, form, RenameForm(formdata=None, data={"name": device.name}), [])
