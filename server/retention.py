"""How long raw events are kept (``[privacy] keep_events_days``): ``prune_events`` deletes
older ones, while sessions, drills and daily rollups stay, so the dashboard's history
outlives them (docs/privacy.md). ``sitwatch-server prune`` runs it; systemd's
sitwatch-prune.timer runs that daily."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from sitwatch.calendar import Calendar, as_utc
from sitwatch.server.models import Device, Event


def events_cutoff(now: datetime, keep_days: int) -> datetime | None:
    """Events dated before this are due for deletion; None when they are kept forever."""
    return None if keep_days == 0 else as_utc(now) - timedelta(days=keep_days)


def first_kept_day(now: datetime, keep_days: int, calendar: Calendar) -> date | None:
    """The first whole local day whose events are all still kept (None: every day): rollups
    of earlier days can no longer be recomputed from events."""
    cutoff = events_cutoff(now, keep_days)
    return None if cutoff is None else calendar.day_of(cutoff) + timedelta(days=1)


def prune_events(session: Session, now: datetime, keep_days: int) -> int:
    """Delete events dated more than ``keep_days`` before ``now`` (flushed, not committed);
    returns how many. ``keep_days`` 0 keeps every event."""
    cutoff = events_cutoff(now, keep_days)
    if cutoff is None:
        return 0
    result = session.execute(delete(Event).where(Event.ts < cutoff))
    # A desk whose latest seat event went has no stored seat event left (server/seat.py).
    session.execute(
        update(Device).where(Device.seat_at < cutoff).values(seat_type=None, seat_at=None)
    )
    session.flush()
    return result.rowcount  # type: ignore[attr-defined]
