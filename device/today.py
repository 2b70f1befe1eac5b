"""Today's figures on the device itself (seated minutes, drills), for Home Assistant and the
simulator's status line. Pure: fed with events, knows nothing of MQTT."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sitwatch.protocol import Event, EventType


class TodayTally:
    """Counts one local day at a time; the day starts at ``day_start_hour`` (as on the
    dashboard: late nights count to the day they started)."""

    def __init__(self, timezone: str = "UTC", day_start_hour: int = 4) -> None:
        self._zone = ZoneInfo(timezone)
        self._day_start = timedelta(hours=day_start_hour)
        self.day: date | None = None
        self.seated_s = 0.0
        self.drills = 0

    def day_of(self, event: Event) -> date:
        return (event.ts.astimezone(self._zone) - self._day_start).date()

    def add(self, event: Event) -> bool:
        """Count ``event``; True when a figure changed."""
        day = self.day_of(event)
        if day != self.day:
            self.day, self.seated_s, self.drills = day, 0.0, 0
        if event.type == EventType.STOOD_UP:
            self.seated_s += float(event.data["session_s"])
            return True
        if event.type == EventType.DRILL_COMPLETED:
            self.drills += 1
            return True
        return False

    @property
    def seated_min(self) -> float:
        return round(self.seated_s / 60.0, 1)
