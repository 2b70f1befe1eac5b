"""A device's settings page (/devices/<id>/settings): the settings form, which publishes
validated TrackerSettings to the desk before storing them, the rename form, and the pause
buttons (/pause), which send a one-off pause or resume command. Each change that goes through
is written to the audit log.

"Until tomorrow" ends at the start of the next day as the dashboard counts days (the
server's ``timezone`` and ``day_start_hour``, default 04:00): the same moment "today"'s
figures roll over. Outside its active hours a device never buzzes anyway, so between that
hour and the start of work the pause makes no difference.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from sitwatch.calendar import Calendar
from sitwatch.protocol import Command, PauseCommand, ResumeCommand
from sitwatch.server import audit
from sitwatch.server.models import Device
from sitwatch.server.queries import stats
from sitwatch.server.queries.desk_answer import answer_to
from sitwatch.server.queries.pauses import paused_until
from sitwatch.server.web.access import DeskAccess
from sitwatch.server.web.context import db, now, record, viewer, web_state
from sitwatch.server.web.filters import local_time
from sitwatch.server.web.params import managed_device_or_404
from sitwatch.server.web.publish import PublishError, publish_command, publish_settings
from sitwatch.server.web.settings_form import SettingsForm
from sitwatch.settings import SettingsError, TrackerSettings

log = logging.getLogger(__name__)

bp = Blueprint("settings", __name__)


SETTINGS_WHERE = "settings"


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
    seen = viewer()
    scope = seen.manage_scope
    status = stats.device_statuses(
        db(), scope, now(), web_state().config.offline_after_s, device.id
    )[0]
    return render_template(
        "settings.html",
        device=status,
        form=form,
        rename_form=rename,
        form_errors=errors,
        pause_form=PauseForm(formdata=None),
        paused_until=paused_until(db(), scope, device, now()),
        day_start_hour=web_state().calendar.day_start_hour,
        desk_answer=answer_to(db(), scope, device.id, device.settings),
        with_figures=seen.access(device.id) is DeskAccess.FULL,
    )


@bp.route("/devices/<device_id>/settings", methods=["GET", "POST"])
def page(device_id: str) -> Any:
    device = managed_device_or_404(device_id)
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
    stored, sent = device.settings or {}, validated.model_dump(mode="json")
    record(audit.DEVICE_SETTINGS, device.id, {k: v for k, v in sent.items() if stored.get(k) != v})
    device.settings = sent
    db().commit()
    # Only the desk's config/result (shown on the page) says whether it applied them.
    flash("Settings saved and sent to the broker; the desk's answer shows below.", "ok")
    return redirect(url_for("settings.page", device_id=device.id))


@bp.post("/devices/<device_id>/rename")
def rename(device_id: str) -> Any:
    device = managed_device_or_404(device_id)
    rename_form = RenameForm()
    if not rename_form.validate_on_submit():
        form = SettingsForm(formdata=None)
        form.fill(_stored_settings(device))
        return _settings_page(device, form, rename_form, []), 400
    record(audit.DEVICE_RENAME, device.id, {"from": device.name, "to": rename_form.name.data})
    device.name = rename_form.name.data or ""
    db().commit()
    flash("Device renamed.", "ok")
    return redirect(url_for("settings.page", device_id=device.id))


# --- pause buttons -------------------------------------------------------------------------

HOUR = "hour"
TOMORROW = "tomorrow"
RESUME = "resume"
SPANS = (HOUR, TOMORROW, RESUME)


class PauseForm(FlaskForm):
    """Three submit buttons named ``span`` (values in SPANS) and the CSRF token; the template
    writes the buttons itself, since WTForms has no button with its own value."""

    span = StringField()


def command_for(span: str, current: datetime, calendar: Calendar) -> Command:
    """The command a button sends at ``current`` (UTC); ``span`` must be one of SPANS."""
    if span == RESUME:
        return ResumeCommand(at=current)
    if span == HOUR:
        until = current + timedelta(hours=1)
    elif span == TOMORROW:
        until = calendar.bounds(calendar.day_of(current))[1]
    else:
        raise ValueError(f"unknown pause span {span!r:.40}")
    return PauseCommand(pause_s=round((until - current).total_seconds(), 3), until=until)


@bp.post("/devices/<device_id>/pause")
def pause(device_id: str) -> Any:
    """The pause buttons: pause prompts for an hour or until tomorrow, or resume now."""
    device = managed_device_or_404(device_id)
    pause_form = PauseForm()
    span = pause_form.span.data if pause_form.validate() else None
    if span not in SPANS:
        what = repr(span[:40]) if span else "(none)"
        flash(f"Nothing sent: unknown pause choice {what}; use one of the buttons.", "error")
        return _settings_page_as_stored(device), 400
    current, state = now(), web_state()
    command = command_for(span, current, state.calendar)
    verb = "resumed" if span == RESUME else "paused"
    try:
        publish_command(
            state.config.mqtt, device.id, command, current_app.config["SITWATCH_PUBLISH_TIMEOUT_S"]
        )
    except PublishError as exc:
        flash(f"Prompts not {verb}: {exc}. The device carries on as before.", "error")
        return _settings_page_as_stored(device), 503
    record(
        audit.DEVICE_RESUME if span == RESUME else audit.DEVICE_PAUSE,
        device.id,
        {"until": command.until.isoformat()} if isinstance(command, PauseCommand) else None,
    )
    db().commit()
    label = device.name or device.id
    if isinstance(command, PauseCommand):
        message = f"Prompts on {label} paused until {local_time(command.until, '%a %H:%M')}."
    else:
        message = f"Prompts on {label} resume now."
    offline_after_s = state.config.offline_after_s
    if not stats.is_online(device.online, device.last_seen_at, current, offline_after_s):
        message += " The device is offline: it gets this when it reconnects."
    flash(message, "ok")
    return redirect(url_for("settings.page", device_id=device.id))


def _settings_page_as_stored(device: Device) -> str:
    form = SettingsForm(formdata=None)
    form.fill(_stored_settings(device))
    return _settings_page(device, form, RenameForm(formdata=None, data={"name": device.name}), [])
