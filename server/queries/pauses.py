"""Whether a device is paused now, from the pause events it reported: its latest ``pause``
event of its current boot (``ts`` + ``pause_s``; a resume reports ``pause_s`` 0)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sitwatch.calendar import as_utc
from sitwatch.protocol import MAX_PAUSE_S, EventType
from sitwatch.server.models import Device, Event
from sitwatch.server.queries.scope import Scope


def paused_until(session: Session, scope: Scope, device: Device, now: datetime) -> datetime | None:
    """When the device's current pause ends (UTC), or None if it is not paused."""
    return paused_devices(session, scope, now, device.id).get(device.id)


def paused_devices(
    session: Session, scope: Scope, now: datetime, device_id: str | None = None
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
        *scope.on(Event.device_id, device_id, seek_each=True),
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
