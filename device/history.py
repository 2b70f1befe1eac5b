"""Realistic sitting history, made by running the real SittingTracker over simulated
working days with a fake clock: used by the demo's --seed-history and the benchmarks.
Each desk's person has habits of their own (``Person``); the demo's desks differ by them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sitwatch.clock import FakeClock
from sitwatch.device.tracker import SittingTracker
from sitwatch.protocol import Event, EventType, new_id
from sitwatch.settings import TrackerSettings


@dataclass(frozen=True)
class Person:
    """How one person uses a desk. The defaults are an office worker of middling diligence."""

    diligence: tuple[float, float] = (
        0.3,
        0.9,
    )  # chance to answer a prompt with a drill: drawn daily
    snooze_chance: float = 0.3  # chance to snooze a prompt not answered with a drill
    # chance to do a prompt's drill on the chair first: not counted, the prompt stays open
    seated_drill_chance: float = 0.0
    snoozes: int = 1  # holds tried in a row; every one but the last is sat out
    stretch_log_mean: float = 3.5  # ln of the median seated stretch in minutes (3.5: 33 min)
    lingers_s: tuple[float, float] = (0, 600)  # seated on after the stretch (and any prompt)
    arrives: time = time(8, 30)
    arrive_spread_min: float = 60
    leaves: time = time(17, 0)
    leave_spread_min: float = 90
    workdays: frozenset[int] = frozenset(range(5))  # Monday is 0


OFFICE = Person()
# The demo's desks, by the name ``sitwatch-device simulate --person`` takes too.
PEOPLE = {
    "answers": Person(diligence=(0.8, 0.95), snooze_chance=0.1, seated_drill_chance=0.05),
    "snoozes": Person(
        diligence=(0.0, 0.1),
        snooze_chance=0.9,
        snoozes=3,
        stretch_log_mean=4.1,
        lingers_s=(900, 2400),
        arrives=time(9, 0),
        leaves=time(17, 30),
    ),
    "odd-hours": Person(
        arrives=time(13, 0),
        arrive_spread_min=120,
        leaves=time(21, 0),
        workdays=frozenset({1, 2, 3, 5, 6}),
    ),
}


def desk_day(
    tracker: SittingTracker,
    clock: FakeClock,
    rng: random.Random,
    until: datetime,
    person: Person = OFFICE,
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

    diligence = rng.uniform(*person.diligence)
    while clock.wall() < until:
        tracker.seat_changed(True)
        stretch = rng.lognormvariate(person.stretch_log_mean, 0.5) * 60
        for _ in range(rng.randint(0, 2)):  # shifting in the seat: short lifts
            live(stretch / 3)
            tracker.seat_changed(False)
            live(rng.uniform(3, 25))
            tracker.seat_changed(True)
        live(stretch / 3)
        if tracker.snapshot().state == "prompting" and rng.random() < diligence:
            live(rng.uniform(5, 120))
            tracker.button_pressed()
            if person.seated_drill_chance and rng.random() < person.seated_drill_chance:
                live(tracker.drill_length_s + rng.uniform(5, 30))  # on the chair: not counted
            tracker.seat_changed(False)
            live(tracker.drill_length_s + rng.uniform(10, 60))
            continue
        for attempt in range(person.snoozes):
            if tracker.snapshot().state != "prompting" or rng.random() >= person.snooze_chance:
                break
            live(3)
            tracker.button_held()
            if attempt < person.snoozes - 1:
                live(tracker.settings.snooze_s + 5)  # sat out: the prompt comes back
        live(rng.uniform(*person.lingers_s))
        tracker.seat_changed(False)
        away_s = rng.choice([rng.uniform(70, 110), rng.uniform(150, 900), rng.uniform(1800, 3600)])
        live(away_s)
        if rng.random() < 0.1 and away_s >= tracker.drill_length_s:
            tracker.button_pressed()  # a drill done on one's own, off the seat
    tracker.seat_changed(False)
    live(600)


def history(
    device_id: str,
    days: int,
    *,
    end: date | None = None,
    until: datetime | None = None,
    timezone: str = "UTC",
    seed: int = 0,
    settings: TrackerSettings | None = None,
    person: Person = OFFICE,
) -> Iterator[Event]:
    """Events of the ``person``'s working days among the ``days`` days before ``end``
    (default today). With ``until``: the ``days`` days up to and including ``until``'s, and
    nothing stamped after ``until`` (see ``happened_by``)."""
    zone = ZoneInfo(timezone)
    rng = random.Random(f"{device_id}:{seed}")
    if until is not None:
        end = until.astimezone(zone).date() + timedelta(days=1)
    end = end or datetime.now(zone).date()
    settings = settings or TrackerSettings(timezone=timezone)
    for offset in range(days, 0, -1):
        day = end - timedelta(days=offset)
        if day.weekday() not in person.workdays:
            continue
        start = datetime.combine(day, person.arrives, zone) + timedelta(
            minutes=rng.uniform(0, person.arrive_spread_min)
        )
        stop = datetime.combine(day, person.leaves, zone) + timedelta(
            minutes=rng.uniform(0, person.leave_spread_min)
        )
        if until is not None and start >= until:
            break  # not at the desk yet today
        events: list[Event] = []
        clock = FakeClock(mono=1000.0, wall_time=start.astimezone(UTC))
        tracker = SittingTracker(
            settings, clock, events.append, device_id=device_id, boot_id=new_id()
        )
        if until is None:
            desk_day(tracker, clock, rng, stop.astimezone(UTC), person)
            yield from events
        else:
            desk_day(tracker, clock, rng, min(stop, until).astimezone(UTC), person)
            yield from happened_by(events, until)


def happened_by(events: list[Event], now: datetime) -> list[Event]:
    """A day's events (in the order the tracker emitted them) as far as they had happened by
    ``now``, cut where the desk was last idle (seat empty, no drill running): a session still
    open at ``now`` is left out whole, so a live desk taking over starts on an empty seat
    and no card counts a stretch that nobody is sitting."""
    kept = 0
    seated = drilling = False
    for index, event in enumerate(events):
        if event.ts > now:
            break
        if event.type == EventType.SEATED:
            seated = True
        elif event.type == EventType.STOOD_UP:
            seated = False
        elif event.type == EventType.DRILL_STARTED:
            drilling = True
        elif event.type == EventType.DRILL_COMPLETED:
            drilling = False
        if not seated and not drilling:
            kept = index + 1
    return events[:kept]


def count_types(events: list[Event]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        counts[str(event.type)] = counts.get(str(event.type), 0) + 1
    return counts
