"""One factory for protocol events in tests: a valid event of any kind, with every field
open to override."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sitwatch.protocol import Event, EventType

DEVICE = "desk-1"
BOOT = "boot0000aaaa"
MONDAY_9AM = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# The data each kind needs to pass the protocol's schema, for tests that do not care.
DEFAULT_DATA: dict[EventType, dict[str, Any]] = {
    EventType.STOOD_UP: {"session_s": 61.5},
    EventType.BREAK: {"away_s": 300},
    EventType.PROMPT: {"level": 1, "seated_s": 1800, "quiet": False},
    EventType.PROMPT_ACK: {"how": "drill", "response_s": 12.0},
    EventType.SNOOZE: {"snooze_s": 300, "count": 1},
    EventType.DRILL_STARTED: {"guided": True},
    EventType.DRILL_STEP: {"index": 0, "step": "setup"},
    EventType.DRILL_COMPLETED: {"guided": True},
    EventType.PAUSE: {"pause_s": 3600.0},
}


def make_event(
    kind: EventType = EventType.SEATED,
    ts: datetime = MONDAY_9AM,
    device_id: str = DEVICE,
    *,
    boot_id: str = BOOT,
    mono: float | None = None,
    clock_synced: bool = True,
    seq: int | None = None,
    **data: Any,
) -> Event:
    """An event of ``kind`` at ``ts`` (UTC); ``data`` given as keywords, else the kind's
    defaults. ``mono`` defaults to a value that follows ``ts``."""
    return Event(
        type=kind,
        device_id=device_id,
        boot_id=boot_id,
        mono=ts.timestamp() % 100_000 if mono is None else mono,
        ts=ts.astimezone(UTC),
        clock_synced=clock_synced,
        data=data or dict(DEFAULT_DATA.get(kind, {})),
        seq=seq,
    )
