"""The local day: how a UTC instant maps to the day it counts to, the one rule that the
ingest's rollups, the dashboard's stats, the insights' SQL and the device's today tally
share. A day starts at ``day_start_hour`` o'clock in ``timezone`` (04:00 by default, so a
late night counts to the day it started), and is 23 or 25 hours long across a DST change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

_HOUR = timedelta(hours=1)


def as_utc(ts: datetime) -> datetime:
    """``ts`` in UTC; a naive time is taken as UTC (everything sitwatch stores is UTC)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


@dataclass(frozen=True)
class Calendar:
    """Where local days begin: ``day_start_hour`` o'clock in the IANA zone ``timezone``;
    weeks run Monday to Sunday."""

    timezone: str = "UTC"
    day_start_hour: int = 4

    # Kept once made (a frozen dataclass takes them in its __dict__): ingest asks for the
    # day of every event and of every piece of every session it recounts.
    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def day_start(self) -> timedelta:
        """How far after local midnight a day starts."""
        return timedelta(hours=self.day_start_hour)

    def day_of(self, ts: datetime) -> date:
        """The local day ``ts`` counts to (before day_start_hour: the day before)."""
        local = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts  # naive: UTC (as_utc)
        return (local.astimezone(self.zone) - self.day_start).date()

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """UTC start (inclusive) and end (exclusive) of local ``day``."""
        start = datetime.combine(day, time(self.day_start_hour), tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time(self.day_start_hour), tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def week_start(self, day: date) -> date:
        """Monday of ``day``'s week."""
        return day - timedelta(days=day.weekday())

    def hour_pieces(self, start: datetime, end: datetime) -> list[tuple[date, int, float]]:
        """[start, end) cut at local clock-hour boundaries and at UTC offset changes: per
        piece, the day its hour counts to, the local clock hour (0-23) and its seconds. The
        repeated hour of an autumn change yields two pieces of the same hour; the hour a
        spring change skips, none."""
        zone, day_start = self.zone, self.day_start
        pieces: list[tuple[date, int, float]] = []
        at, end = as_utc(start), as_utc(end)
        while at < end:
            local = at.astimezone(zone)
            offset = local.utcoffset() or timedelta(0)
            hour_start = local.replace(minute=0, second=0, microsecond=0, tzinfo=None)
            cut = min(end, (hour_start + _HOUR - offset).replace(tzinfo=UTC))
            if (cut.astimezone(zone).utcoffset() or timedelta(0)) != offset:
                cut = _offset_change(zone, at, cut, offset)
            day = (hour_start - day_start).date()
            pieces.append((day, local.hour, (cut - at).total_seconds()))
            at = cut
        return pieces


def _offset_change(zone: ZoneInfo, low: datetime, high: datetime, offset: timedelta) -> datetime:
    """The first instant after ``low`` (which has ``offset``) and at most ``high`` (which
    has another) with another offset, to the microsecond."""
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high
