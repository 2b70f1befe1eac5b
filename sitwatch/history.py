"""Realistic sitting history, made by running the real SittingTracker over simulated
working days with a fake clock: used by the demo's --seed-history and the benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sitwatch.clock import FakeClock
from sitwatch.device.tracker import SittingTracker
from sitwatch.protocol import Event, new_id
from sitwatch.settings import TrackerSettings


def desk_day(
    tracker: SittingTracker, clock: FakeClock, rng: random.Random, until: datetime
) -> None:
    """One person's working day at the desk, until the wall clock reaches ``until``."""

    def live(seconds: float) -> None:
        end = clock.monotonic() + seconds
        while True:
            deadline = tracker.next_deadline()
            if deadline is None or deadline > end:
                break
            clock.advance(max(0.0, deadline - clock.monotonic()))
            tracker.tick()
        clock.advance(max(0.0, end - clock.monotonic()))
        tracker.tick()

    diligence = rng.uniform(0.3, 0.9)  # how often this person answers a prompt with a drill
    while clock.wall() < until:
        tracker.seat_changed(True)
        stretch = rng.lognormvariate(3.5, 0.5) * 60  # median about 33 min
        for _ in range(rng.randint(0, 2)):  # shifting in the seat: short lifts
            live(stretch / 3)
            tracker.seat_changed(False)
            live(rng.uniform(3, 25))
            tracker.seat_changed(True)
        live(stretch / 3)
        if tracker.snapshot().state == "prompting" and rng.random() < diligence:
            live(rng.uniform(5, 120))
            tracker.button_pressed()
            tracker.seat_changed(False)
            live(tracker.drill_length_s + rng.uniform(10, 60))
            continue
        if tracker.snapshot().state == "prompting" and rng.random() < 0.3:
            live(3)
            tracker.button_held()
        live(rng.uniform(0, 600))
        tracker.seat_changed(False)
        live(rng.choice([rng.uniform(70, 110), rng.uniform(150, 900), rng.uniform(1800, 3600)]))
        if rng.random() < 0.1:
            tracker.button_pressed()  # a drill done on one's own
    tracker.seat_changed(False)
    live(600)

def history(
    device_id: str,
    days: int,
    *,
    end: date | None = None,
    timezone: str = "UTC",
    seed: int = 0,
    settings: TrackerSettings | None = None,
) -> Iterator[Event]:
    """Events of ``days`` working days (weekends off) ending the day before ``end``."""
    zone = ZoneInfo(timezone)
    rng = random.Random(f"{device_id}:{seed}")
    end = end or datetime.now(zone).date()
    settings = settings or TrackerSettings(timezone=timezone)
    for offset in range(days, 0, -1):
        day = end - timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        start = datetime.combine(day, time(8, 30), zone) + timedelta(minutes=rng.uniform(0, 60))
        stop = datetime.combine(day, time(17, 0), zone) + timedelta(minutes=rng.uniform(0, 90))
        events: list[Event] = []
        clock = FakeClock(mono=1000.0, wall_time=start.astimezone(UTC))
        tracker = SittingTracker(
            settings, clock, events.append, device_id=device_id, boot_id=new_id()
        )
        desk_day(tracker, clock, rng, stop.astimezone(UTC))
        yield from events

def count_types(events: list[Event]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        counts[str(event.type)] = counts.get(str(event.type), 0) + 1
    return counts
