"""The benchmarks' data: real event payloads made by the real tracker (sitwatch.device.history),
and a device's backlog of those events plus its heartbeats."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sitwatch import protocol
from sitwatch.device.history import history
from sitwatch.protocol import Event, EventType, new_id


def last_weekday(before: date) -> date:
    """The last Monday-to-Friday day strictly before ``before``."""
    day = before - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def fleet_events(count: int, devices: int, end: date) -> list[Event]:
    """``count`` events from ``devices`` desks' histories (the working days before ``end``),
    in time order as a fleet sends them, each with its device's outbox ``seq``."""
    per_device = -(-count // devices)
    days = max(5, per_device // 40 + 10)  # about 55 events a working day: some to spare
    events: list[Event] = []
    for n in range(devices):
        device_id = f"bench-{n:03d}"
        desk = list(history(device_id, days, end=end, seed=n))
        while len(desk) < per_device:  # not enough: relive the same days under new ids
            desk += [replace(e, id=new_id()) for e in desk[: per_device - len(desk)]]
        events += [replace(e, seq=seq) for seq, e in enumerate(desk[:per_device], start=1)]
    events.sort(key=lambda e: (e.ts, e.device_id, e.seq or 0))
    return events[:count]


def write_payloads(events: list[Event], path: Path) -> Path:
    """One ``topic<TAB>payload`` line per event, for the publisher process."""
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(f"{protocol.topic(event.device_id, protocol.EVENT)}\t{event.to_json()}\n")
    return path


def backlog(device_id: str, days: int, end: date, heartbeat_s: float = 300) -> list[Event]:
    """What a device's outbox holds after ``days`` calendar days without the server: the
    tracker's events of those days plus a heartbeat every ``heartbeat_s`` seconds (weekends
    too: the agent keeps running), in time order."""
    events = list(history(device_id, days, end=end, seed=7))
    start = datetime.combine(end - timedelta(days=days), time(0), UTC)
    boot_id = new_id()
    beats = int(days * 86400 // heartbeat_s)
    for n in range(beats):
        at = start + timedelta(seconds=n * heartbeat_s)
        events.append(
            Event(
                type=EventType.HEARTBEAT,
                device_id=device_id,
                boot_id=boot_id,
                mono=1000.0 + n * heartbeat_s,
                ts=at,
                clock_synced=True,
                data={"queued": n},
            )
        )
    events.sort(key=lambda e: e.ts)
    return events
