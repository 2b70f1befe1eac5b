"""Time sources: a monotonic clock for durations and a UTC wall clock for timestamps.

A Pi without an RTC boots with a stale wall clock that jumps when NTP syncs, so every
duration in sitwatch comes from ``monotonic()``; the wall clock only stamps events.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

# systemd-timesyncd creates this file once the clock is synchronised (Raspberry Pi OS).
TIMESYNC_FLAG = "/run/systemd/timesync/synchronized"
# Before this date a wall clock is certainly not set (fake-hwclock or epoch).
PLAUSIBLE_SINCE = datetime(2025, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never jumps. Use for every duration."""

    def wall(self) -> datetime:
        """Current UTC time, timezone-aware. May jump; use only to stamp events."""

    def is_synced(self) -> bool:
        """Whether the wall clock is known to be synchronised (NTP or RTC)."""

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of this clock's time take in real time: what a wait for a
        deadline on this clock passes to ``Event.wait``."""


class SystemClock:
    """The real clocks of this machine."""

    def __init__(self, timesync_flag: str = TIMESYNC_FLAG) -> None:
        self._timesync_flag = timesync_flag

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def is_synced(self) -> bool:
        if os.path.exists(self._timesync_flag):
            return True
        # Without systemd-timesyncd (a dev machine, a container) trust a plausible date.
        return not os.path.isdir("/run/systemd/timesync") and self.wall() >= PLAUSIBLE_SINCE

    def real_seconds(self, seconds: float) -> float:
        return seconds


@dataclass
class FakeClock:
    """A clock a test (or the simulator) moves by hand: ``advance(1800)`` is half an hour.

    ``step_wall`` moves only the wall clock, like NTP correcting a Pi without RTC.
    """

    mono: float = 1000.0
    wall_time: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    synced: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def monotonic(self) -> float:
        with self._lock:
            return self.mono

    def wall(self) -> datetime:
        with self._lock:
            return self.wall_time

    def is_synced(self) -> bool:
        return self.synced

    def real_seconds(self, seconds: float) -> float:
        # A test moves the clock by hand; a wait on it is a real wait of the same length
        # (cut short by whatever the waiter waits on), as before there was a fake clock.
        return seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.mono += seconds
            self.wall_time += timedelta(seconds=seconds)

    def step_wall(self, seconds: float) -> None:
        with self._lock:
            self.wall_time += timedelta(seconds=seconds)


class ScaledClock:
    """Runs time faster than real time (``factor`` 60 makes a minute pass each second).

    Used by the simulator and the demo so a 30-minute limit can be watched in seconds. The
    wall clock is the base's, live, plus the time the scaling added: it moves at the scaled
    pace and follows the base's own jumps (NTP syncing a Pi without RTC), so ``wall()``
    and ``is_synced()`` always describe the same clock.
    """

    def __init__(self, factor: float = 1.0, base: Clock | None = None) -> None:
        if factor <= 0:
            raise ValueError(f"time factor must be positive, got {factor}")
        self.factor = factor
        self._base = base or SystemClock()
        self._mono0 = self._base.monotonic()

    def monotonic(self) -> float:
        return self._mono0 + (self._base.monotonic() - self._mono0) * self.factor

    def wall(self) -> datetime:
        # Read the base's monotonic clock first: a wall read after it is never older.
        gained = (self._base.monotonic() - self._mono0) * (self.factor - 1)
        return self._base.wall() + timedelta(seconds=gained)

    def is_synced(self) -> bool:
        return self._base.is_synced()

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of scaled time take in real time."""
        return seconds / self.factor
