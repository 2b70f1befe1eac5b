"""A desk's seat state: its latest ``seated`` or ``stood_up`` event, kept on its devices row
(``Device.seat_type``, ``Device.seat_at``) by ingest, as sessions are derived, so the fleet
overview reads one row per desk instead of looking into each desk's raw events.

``refresh`` sets the row from the stored events of the desks a batch touched (new events,
and copies whose synced time corrected a stored one); ``latest`` is that lookup, also used
by the dashboard for the rare desk whose latest seat event is dated after now (a clock
slightly ahead, inside ingest's future margin), which must not pin its state yet.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, ScalarSelect, select, update
from sqlalchemy.orm import InstrumentedAttribute

from sitwatch.protocol import EventType
from sitwatch.server.models import Device, Event

SEAT_TYPES = (EventType.SEATED.value, EventType.STOOD_UP.value)


def latest(
    column: InstrumentedAttribute[Any],
    since: datetime | None = None,
    until: datetime | None = None,
) -> ScalarSelect[Any]:
    """``column`` of the device's latest seat event (dated within [since, until] if given),
    correlated to ``Device``. It walks the (device_id, ts) index backwards from the newest
    row. Of two stamped alike, the later in the outbox's seq (a stand and the next sitting
    down can share a millisecond), then the row id (the order a batch was stored in)."""
    conditions = [Event.device_id == Device.id, Event.type.in_(SEAT_TYPES)]
    if since is not None:
        conditions.append(Event.ts >= since)
    if until is not None:
        conditions.append(Event.ts <= until)
    # The time needs no tie-break: tied rows share it (and SQLite sorts past the index for one).
    ties = () if column is Event.ts else (Event.seq.desc().nulls_last(), Event.id.desc())
    return (
        select(column)
        .where(*conditions)
        .order_by(Event.ts.desc(), *ties)
        .limit(1)
        .correlate(Device)
        .scalar_subquery()
    )


def refresh(connection: Connection, device_ids: Collection[str] | None = None) -> None:
    """Set each desk's seat columns from its stored events (every desk: None)."""
    if device_ids is not None and not device_ids:
        return
    stmt = update(Device).values(seat_type=latest(Event.type), seat_at=latest(Event.ts))
    if device_ids is not None:
        stmt = stmt.where(Device.id.in_(sorted(device_ids)))
    connection.execute(stmt)


def touched_by(events: Collection[Any]) -> set[str]:
    """The desks among ``events`` (protocol Events) whose seat state they may change."""
    return {e.device_id for e in events if e.type.value in SEAT_TYPES}
