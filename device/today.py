"""Today's figures on the device itself (seated minutes, drills), for Home Assistant and the
simulator's status line. Fed with events, knows nothing of MQTT; kept in a small file in
the data folder, so a restarted agent goes on counting the same day."""

from __future__ import annotations

import json
import logging
import math
from datetime import date, datetime
from pathlib import Path

from sitwatch import protocol
from sitwatch.calendar import Calendar
from sitwatch.device.settings_store import write_json
from sitwatch.protocol import Event, EventType, drill_counts

log = logging.getLogger(__name__)


class TodayTally:
    """Counts one local day at a time, the dashboard's ``Calendar`` day (it starts at
    ``day_start_hour``: late nights count to the day they started). With a ``path`` the
    figures are read from it at start and written to it at every change."""

    def __init__(
        self, timezone: str = "UTC", day_start_hour: int = 4, path: Path | None = None
    ) -> None:
        self.calendar = Calendar(timezone, day_start_hour)
        self._path = None if path is None else Path(path)
        self.day: date | None = None
        self.seated_s = 0.0
        self.drills = 0
        if self._path is not None:
            self._load(self._path)

    def add(self, event: Event) -> bool:
        """Count ``event``; True when a figure changed (a new day's first event included,
        when the day before had any)."""
        changed = self._start(self.calendar.day_of(event.ts))
        if event.type == EventType.STOOD_UP:
            self.seated_s += float(event.data["session_s"])
            changed = True
        elif event.type == EventType.DRILL_COMPLETED and drill_counts(event):
            self.drills += 1
            changed = True
        if changed:
            self._save()
        return changed

    def roll_over(self, now: datetime) -> bool:
        """Begin ``now``'s day if the figures are of an earlier one (a restart the next
        morning); True when a figure changed."""
        day = self.calendar.day_of(now)
        if self.day is not None and day <= self.day:
            return False
        changed = self._start(day)
        if changed:
            self._save()
        return changed

    @property
    def seated_min(self) -> float:
        return round(self.seated_s / 60.0, 1)

    def _start(self, day: date) -> bool:
        if day == self.day:
            return False
        had_any = self.seated_s != 0 or self.drills != 0
        self.day, self.seated_s, self.drills = day, 0.0, 0
        return had_any

    def _save(self) -> None:
        if self._path is None:
            return
        body = {
            "v": protocol.VERSION,
            "day": None if self.day is None else self.day.isoformat(),
            "seated_s": self.seated_s,
            "drills": self.drills,
        }
        try:
            write_json(self._path, body)
        except OSError as exc:  # the figures are for display; tracking goes on
            log.warning("cannot save today's figures to %s: %s", self._path, exc)

    def _load(self, path: Path) -> None:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON
            log.warning("ignoring today's figures in %s: %s", path, exc)
            return
        try:
            day, seated_s, drills = _figures(body)
        except (TypeError, ValueError) as exc:
            log.warning("ignoring today's figures in %s: %s", path, exc)
            return
        self.day, self.seated_s, self.drills = day, seated_s, drills


def _figures(body: object) -> tuple[date, float, int]:
    if not isinstance(body, dict) or body.get("v") != protocol.VERSION:
        raise ValueError("not a today file of protocol version 1")
    day, seated_s, drills = body.get("day"), body.get("seated_s"), body.get("drills")
    if not isinstance(day, str):
        raise ValueError(f"day must be a date, got {day!r:.40}")
    if isinstance(seated_s, bool) or not isinstance(seated_s, int | float):
        raise ValueError(f"seated_s must be a number, got {seated_s!r:.40}")
    if not math.isfinite(seated_s) or not 0 <= seated_s <= 86_400 * 2:
        raise ValueError(f"seated_s out of range: {seated_s!r:.40}")
    if isinstance(drills, bool) or not isinstance(drills, int) or not 0 <= drills <= 100_000:
        raise ValueError(f"drills must be a count, got {drills!r:.40}")
    return date.fromisoformat(day), float(seated_s), drills
