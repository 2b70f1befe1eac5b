"""The on-disk queue of events the server has not yet acknowledged (SQLite, WAL, FULL sync).

An event enters with ``add()`` (durable before it returns) and leaves only with
``confirm()``, when the server's ack names it. A broker PUBACK proves nothing: paho keeps
its session in memory and a killed broker drops what it had acknowledged. Which events
were published when is kept in memory only (a TEMP table), so after a restart everything
is due again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sitwatch import protocol
from sitwatch.protocol import DROPPABLE, Event, EventType

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    device_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    mono REAL NOT NULL,
    ts TEXT NOT NULL,
    clock_synced INTEGER NOT NULL,
    data TEXT NOT NULL
)
"""
_COLUMNS = "seq, id, type, device_id, boot_id, mono, ts, clock_synced, data"
# When each event was last published lives in a TEMP table: in memory, gone with the
# process, never fsynced, yet joinable with the events in SQL.
_SENT_SCHEMA = "CREATE TEMP TABLE IF NOT EXISTS sent (id TEXT PRIMARY KEY, at REAL NOT NULL)"


class Outbox:
    """On-disk queue of events awaiting the server's acknowledgement (SQLite, WAL,
    synchronous=FULL). Thread-safe: one connection behind one lock.

    Bounded: past ``max_rows`` the oldest droppable events (heartbeats) go first; other
    events are never dropped, the bound is exceeded instead and a warning logged."""

    def __init__(self, path: Path | str, max_rows: int = 100_000) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.path = Path(path)
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._over_bound_warned = False
        self._conn = self._open()
        self._count: int = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        if self._count:
            log.info("outbox %s holds %d unacknowledged events", self.path, self._count)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return _connect(self.path)
        except sqlite3.DatabaseError as exc:
            # A device that cannot start is worse than one that lost its backlog: keep the
            # damaged file for inspection and begin a new one.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "outbox %s is unreadable (%s); moved to %s, starting empty", self.path, exc, aside
            )
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return _connect(self.path)

    def add(self, event: Event) -> Event:
        """Store ``event`` durably and return it with ``seq`` assigned.

        Raises ProtocolError if the event would not pass the server's validation: such an
        event could never be acknowledged and would sit in the outbox for ever."""
        protocol.parse_event(event.to_json())
        row = (
            event.id,
            str(event.type),
            event.device_id,
            event.boot_id,
            event.mono,
            protocol.format_ts(event.ts),
            int(event.clock_synced),
            json.dumps(event.data, separators=(",", ":")),
        )
        with self._lock, self._conn:
            cursor = self._conn.execute(
                "INSERT OR IGNORE INTO events"
                " (id, type, device_id, boot_id, mono, ts, clock_synced, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if cursor.rowcount == 0:  # the same event added twice: keep the first
                seq = self._conn.execute(
                    "SELECT seq FROM events WHERE id = ?", (event.id,)
                ).fetchone()[0]
                return replace(event, seq=seq)
            seq = cursor.lastrowid
            self._count += 1
            if self._count > self.max_rows:
                self._drop_oldest_droppable(self._count - self.max_rows)
        return replace(event, seq=seq)

    def _drop_oldest_droppable(self, excess: int) -> None:
        kinds = sorted(str(kind) for kind in DROPPABLE)
        marks = ",".join("?" * len(kinds))
        rows = self._conn.execute(
            f"SELECT seq, id FROM events WHERE type IN ({marks}) ORDER BY seq LIMIT ?",
            (*kinds, excess),
        ).fetchall()
        self._conn.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq, _ in rows])
        self._conn.executemany("DELETE FROM temp.sent WHERE id = ?", [(i,) for _, i in rows])
        self._count -= len(rows)
        if rows:
            log.debug("outbox full: dropped %d oldest heartbeats", len(rows))
        if self._count > self.max_rows:
            if not self._over_bound_warned:
                log.warning(
                    "outbox %s holds %d events, over its bound of %d: nothing left to drop but"
                    " events that must be kept; is the server acknowledging?",
                    self.path,
                    self._count,
                    self.max_rows,
                )
                self._over_bound_warned = True
        else:
            self._over_bound_warned = False

    def due(self, now_mono: float, resend_after_s: float, limit: int = 100) -> list[Event]:
        """Events to publish now, in seq order: never sent (in this process), or sent more
        than ``resend_after_s`` ago without an ack."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM events AS e WHERE NOT EXISTS"
                " (SELECT 1 FROM temp.sent AS s WHERE s.id = e.id AND s.at >= ?)"
                " ORDER BY e.seq LIMIT ?",
                (now_mono - resend_after_s, limit),
            ).fetchall()
        return [_event_from_row(row) for row in rows]

    def mark_sent(self, ids: Iterable[str], now_mono: float) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO temp.sent (id, at) VALUES (?, ?)",
                [(event_id, now_mono) for event_id in ids],
            )

    def in_flight(self, now_mono: float, resend_after_s: float) -> int:
        """How many events were published less than ``resend_after_s`` ago and are unacked."""
        with self._lock:
            return self._conn.execute(
                "SELECT COUNT(*) FROM temp.sent WHERE at >= ?", (now_mono - resend_after_s,)
            ).fetchone()[0]

    def forget_sent(self) -> None:
        """Count every event as never sent, e.g. after a reconnect: what the broker held in
        memory may be gone, so the whole backlog is due at once."""
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM temp.sent")

    def restamp(self, event_id: str, ts: datetime) -> None:
        """Replace the wall-clock stamp of an event taken before the clock was synced."""
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE events SET ts = ?, clock_synced = 1 WHERE id = ?",
                (protocol.format_ts(ts), event_id),
            )

    def confirm(self, ids: Iterable[str]) -> int:
        """The server stored these: delete them. Returns how many were removed; ids not
        in the outbox (a duplicate ack) are ignored."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return 0
        with self._lock, self._conn:
            cursor = self._conn.executemany(
                "DELETE FROM events WHERE id = ?", [(event_id,) for event_id in unique]
            )
            removed = cursor.rowcount
            self._conn.executemany("DELETE FROM temp.sent WHERE id = ?", [(i,) for i in unique])
            self._count -= removed
            if self._count <= self.max_rows:
                self._over_bound_warned = False
        return removed

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # The Pi's SD card loses power: FULL keeps the last commits, NORMAL may not.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA temp_store=MEMORY")
        with conn:
            conn.execute(_SCHEMA)
            conn.execute(_SENT_SCHEMA)
        conn.execute("SELECT COUNT(*) FROM events").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn


def _event_from_row(row: tuple) -> Event:
    seq, event_id, kind, device_id, boot_id, mono, ts, clock_synced, data = row
    return Event(
        type=EventType(kind),
        device_id=device_id,
        boot_id=boot_id,
        mono=mono,
        ts=protocol.parse_ts(ts),
        clock_synced=bool(clock_synced),
        data=json.loads(data),
        id=event_id,
        seq=seq,
    )
