"""The dashboard's pause buttons: which command each sends, and whether a device is paused
now (from the pause events it reported).

"Until tomorrow" ends at the start of the next day as the dashboard counts days (the
server's ``timezone`` and ``day_start_hour``, default 04:00): the same moment "today"'s
figures roll over. Outside its active hours a device never buzzes anyway, so between that
hour and the start of work the pause makes no difference.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wtforms import StringField

from sitwatch.calendar import Calendar, as_utc
from sitwatch.protocol import MAX_PAUSE_S, Command, EventType, PauseCommand, ResumeCommand
from sitwatch.server.models import Device, Event
from sitwatch.server.sql import on_devices

HOUR = "hour"
TOMORROW = "tomorrow"
RESUME = "resume"
SPANS = (HOUR, TOMORROW, RESUME)


class PauseForm(FlaskForm):
    """Three submit buttons named ``span`` (values in SPANS) and the CSRF token; the template
    writes the buttons itself, since WTForms has no button with its own value."""

    span = StringField()


def command_for(span: str, now: datetime, calendar: Calendar) -> Command:
    """The command a button sends at ``now`` (UTC); ``span`` must be one of SPANS."""
    if span == RESUME:
        return ResumeCommand(at=now)
    if span == HOUR:
        until = now + timedelta(hours=1)
    elif span == TOMORROW:
        until = calendar.bounds(calendar.day_of(now))[1]
    else:
        raise ValueError(f"unknown pause span {span!r:.40}")
    return PauseCommand(pause_s=round((until - now).total_seconds(), 3), until=until)


def paused_until(session: Session, device: Device, now: datetime) -> datetime | None:
    """When the device's current pause ends (UTC), or None if it is not paused."""
    return paused_devices(session, now, device.id).get(device.id)


def paused_devices(
    session: Session, now: datetime, device_id: str | None = None
) -> dict[str, datetime]:
    """The devices paused at ``now`` (all, or one) and when each pause ends (UTC), in one
    query: from each device's latest ``pause`` event (``ts`` + ``pause_s``; a resume reports
    ``pause_s`` 0). Only events of the device's current boot count, since a restarted
    device forgets its pause; and only the last MAX_PAUSE_S, the longest a pause can be
    (an indexed range: by kind and time on PostgreSQL, per device on SQLite)."""
    recent = [
        Event.type == EventType.PAUSE.value,
        Event.ts >= now - timedelta(seconds=MAX_PAUSE_S),
        Event.ts <= now,  # a pause dated after now has not begun, and must not pin the badge
        # SQLite has no (type, ts) index (models.Event): it seeks each device's instead.
        *on_devices(Event.device_id, device_id),
    ]
    latest = (
        select(Event.device_id, func.max(Event.ts).label("ts"))
        .where(*recent)
        .group_by(Event.device_id)
        .subquery()
    )
    rows = session.execute(
        select(Event.device_id, Event.ts, Event.data, Event.boot_id, Device.boot_id)
        .join(latest, (Event.device_id == latest.c.device_id) & (Event.ts == latest.c.ts))
        .join(Device, Device.id == Event.device_id)
        .where(*recent)
        # Of two pauses stamped alike, the later in the outbox's seq wins (the last row
        # below); the row id is the order a batch was stored in, sorted by random event id.
        .order_by(Event.seq.asc().nulls_first(), Event.id)
    ).all()
    last = {row[0]: row for row in rows}
    paused = {}
    for device, ts, data, boot_id, current_boot in last.values():
        if current_boot is not None and boot_id != current_boot:
            continue
        until = _pause_end(as_utc(ts), data)
        if until is not None and until > now:
            paused[device] = until
    return paused


def _pause_end(ts: datetime, data: object) -> datetime | None:
    pause_s = data.get("pause_s") if isinstance(data, dict) else None
    if isinstance(pause_s, bool) or not isinstance(pause_s, int | float):
        return None
    if not math.isfinite(pause_s):
        return None
    return ts + timedelta(seconds=min(max(float(pause_s), 0.0), MAX_PAUSE_S))
