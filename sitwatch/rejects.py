"""How a rejected message is logged, by the ingest and by the device's link alike: one line,
never a traceback, and a flood of the same rejection summed up instead of a line each."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sitwatch.protocol import ProtocolError

SUMMARY_EVERY_S = 60.0
MAX_SOURCES = 1000  # sources tracked at once; past that they share one (a flood of names)
MAX_REASON_CHARS = 300


def reason_of(exc: BaseException) -> str:
    """The exception as one short line; its type is named unless it is a ProtocolError."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, ProtocolError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


@dataclass
class _Repeats:
    until: float  # monotonic seconds: when the count is logged and the key forgotten
    count: int = 0
    last: str = ""


class RejectLog:
    """Logs the first rejection of a kind (same source, same exception type) in full, then
    only counts that kind for ``interval_s`` seconds; when they are over, one line says how
    many more there were and shows the last. Thread-safe."""

    def __init__(
        self,
        logger: logging.Logger,
        monotonic: Callable[[], float] = time.monotonic,
        interval_s: float = SUMMARY_EVERY_S,
    ) -> None:
        self._log = logger
        self._monotonic = monotonic
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._repeats: dict[tuple[str, str], _Repeats] = {}
        self._next_due = float("inf")

    def reject(self, source: str, what: str, exc: BaseException) -> None:
        """Log that ``what`` (e.g. "rejected a message on 'x/y'") from ``source`` failed."""
        line = f"{what}: {reason_of(exc)}"
        with self._lock:
            now = self._monotonic()
            self._summarise(now)
            if len(self._repeats) >= MAX_SOURCES:
                source = "other sources"
            key = (source, type(exc).__name__)
            repeats = self._repeats.get(key)
            if repeats is not None:
                repeats.count += 1
                repeats.last = line
                return
            until = now + self._interval_s
            self._repeats[key] = _Repeats(until)
            self._next_due = min(self._next_due, until)
        self._log.warning("%s", line)

    def flush(self, everything: bool = False) -> None:
        """Log the counts whose interval is over (all of them with ``everything``); call it
        now and then, and at shutdown."""
        with self._lock:
            self._summarise(float("inf") if everything else self._monotonic())

    def _summarise(self, now: float) -> None:
        if now < self._next_due:
            return
        for key, repeats in list(self._repeats.items()):
            if repeats.until > now:
                continue
            del self._repeats[key]
            if repeats.count:
                self._log.warning(
                    "%d more like this from %s (logged once per %.0f s); the last: %s",
                    repeats.count,
                    key[0],
                    self._interval_s,
                    repeats.last,
                )
        self._next_due = min((r.until for r in self._repeats.values()), default=float("inf"))
