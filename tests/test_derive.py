"""Local days, event sanity checks, and rollups that stay right whatever the arrival order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from support.events import make_event
from web_fixtures import seeded_engine

from sitwatch.calendar import Calendar
from sitwatch.clock import FakeClock
from sitwatch.device.tracker import SittingTracker
from sitwatch.protocol import Event, EventType, ProtocolError
from sitwatch.server import sql
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import check_event, rebuild_all_rollups
from sitwatch.server.ingest.worker import Batch, store_batch
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import DailyInsight, DailyRollup, Drill, Nudge
from sitwatch.server.queries import insights, stats
from sitwatch.server.queries.scope import ALL_DESKS
from sitwatch.settings import TrackerSettings

BERLIN = ZoneInfo("Europe/Berlin")
RULES = Calendar("Europe/Berlin", 4)


def test_late_night_counts_to_the_day_it_started() -> None:
    assert RULES.day_of(datetime(2026, 3, 3, 3, 59, tzinfo=BERLIN)) == date(2026, 3, 2)
    assert RULES.day_of(datetime(2026, 3, 3, 4, 0, tzinfo=BERLIN)) == date(2026, 3, 3)


def test_day_bounds_follow_daylight_saving() -> None:
    start, end = RULES.bounds(date(2026, 3, 28))  # clocks go forward on the 29th at 02:00
    assert start == datetime(2026, 3, 28, 3, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=23)
    assert RULES.day_of(start) == date(2026, 3, 28)
    assert RULES.day_of(end - timedelta(microseconds=1)) == date(2026, 3, 28)


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        (EventType.STOOD_UP, {"session_s": -5.0}, "session_s"),
        (EventType.STOOD_UP, {"session_s": 1e12}, "session_s"),
        (EventType.DRILL_STEP, {"index": 2**40, "step": "bridge"}, "out of range"),
    ],
)
def test_events_a_database_or_chart_would_choke_on_are_refused(
    kind: EventType, data: dict[str, object], reason: str
) -> None:
    event = make_event(kind, datetime(2026, 3, 2, 9, tzinfo=UTC), **data)
    with pytest.raises(ProtocolError, match=reason):
        check_event(event)


def test_only_schema_keys_are_kept() -> None:
    event = make_event(EventType.BREAK, datetime(2026, 3, 2, 9, tzinfo=UTC), away_s=5.0, x="<b>")
    assert check_event(event) == {"away_s": 5.0}
    drill = make_event(EventType.DRILL_COMPLETED, guided=True, verified=False, x=1)
    assert check_event(drill) == {"guided": True, "verified": False}  # optional keys stay


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("derive") / "derive.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield engine
    engine.dispose()


def random_event(rng: random.Random, device_id: str) -> object:
    ts = datetime(2026, 3, 27, 0, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 4 * 86400))
    kind = rng.choice(
        [EventType.STOOD_UP, EventType.BREAK, EventType.PROMPT, EventType.PROMPT_ACK,
         EventType.DRILL_COMPLETED, EventType.DRILL_STEP, EventType.HEARTBEAT]
    )  # fmt: skip
    data = {
        EventType.STOOD_UP: {"session_s": rng.uniform(0, 20000)},
        EventType.BREAK: {"away_s": 300.0},
        EventType.PROMPT: {"level": 1, "seated_s": 1800.0, "quiet": False},
        EventType.PROMPT_ACK: {"how": rng.choice(["drill", "stood_up"]), "response_s": 3.0},
        EventType.DRILL_COMPLETED: {
            "guided": rng.random() < 0.5,
            **rng.choice([{}, {"verified": True}, {"verified": False}]),
        },
        EventType.DRILL_STEP: {"index": 1, "step": rng.choice(["clams", "setup", "odd"])},
        EventType.HEARTBEAT: {},
    }[kind]
    return make_event(kind, ts, device_id, **data)


def derived(engine: Engine, device_id: str) -> tuple[object, ...]:
    """A desk's rollups, nudges and daily insight rows, as comparable values."""
    with engine.connect() as connection:
        nudges = connection.execute(
            select(Nudge.event_id, Nudge.started_at, Nudge.day, Nudge.stand_s, Nudge.drill_s)
            .where(Nudge.device_id == device_id)
            .order_by(Nudge.event_id)
        ).all()
        daily = connection.execute(
            select(DailyInsight.__table__)
            .where(DailyInsight.__table__.c.device_id == device_id)
            .order_by(DailyInsight.__table__.c.day)
        ).all()
    rounded = [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in daily]
    return snapshot(engine, device_id), [tuple(n) for n in nudges], rounded


def snapshot(engine: Engine, device_id: str) -> dict[date, tuple[object, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(DailyRollup).where(DailyRollup.device_id == device_id)
        ).all()
    return {
        r.day: (
            round(r.seated_s, 6), r.sessions, round(r.longest_s, 6), r.breaks, r.prompts,
            r.prompts_answered, r.prompts_answered_by_drill, r.drills,
        )
        for r in rows
    }  # fmt: skip


@settings(max_examples=25, deadline=None, database=None)
@given(seed=st.integers(0, 10**6), batch_size=st.integers(1, 40))
def test_incremental_rollups_and_insights_equal_a_rebuild_whatever_the_order_and_replays(
    migrated_sqlite: Engine, seed: int, batch_size: int
) -> None:
    rng = random.Random(seed)
    device_id = f"desk-{seed}-{batch_size}"
    events = [random_event(rng, device_id) for _ in range(60)]
    arrivals = events + rng.sample(events, 20)  # replays
    rng.shuffle(arrivals)
    for start in range(0, len(arrivals), batch_size):
        batch = Batch()
        for event in arrivals[start : start + batch_size]:
            batch.events.setdefault(event.id, (event, check_event(event)))
        with migrated_sqlite.begin() as connection:
            store_batch(connection, batch, RULES, datetime.now(UTC))
    incremental = derived(migrated_sqlite, device_id)
    with migrated_sqlite.begin() as connection:
        rebuild_all_rollups(connection, RULES)
    assert derived(migrated_sqlite, device_id) == incremental
    rollups, nudges, daily = incremental
    assert sum(day[1] for day in rollups.values()) == sum(  # type: ignore[attr-defined]
        e.type is EventType.STOOD_UP for e in events
    )
    assert nudges and daily  # type: ignore[truthy-bool]


@pytest.mark.parametrize("kept_slots", [sql.KEPT_DESK_SLOTS, 2])
def test_batches_of_several_desks_derive_each_desk_as_a_rebuild(
    migrated_sqlite: Engine, monkeypatch: pytest.MonkeyPatch, kept_slots: int
) -> None:
    # Five desks a batch: their statements have room for eight, three bound to NULL; kept
    # for two desks at most, the five-desk ones are built for five.
    monkeypatch.setattr(sql, "KEPT_DESK_SLOTS", kept_slots)
    rng = random.Random(kept_slots)
    desks = [f"multi-{kept_slots}-{n}" for n in range(5)]
    events = [random_event(rng, device_id) for device_id in desks for _ in range(40)]
    rng.shuffle(events)
    for start in range(0, len(events), 50):
        batch = Batch()
        for event in events[start : start + 50]:
            batch.events[event.id] = (event, check_event(event))
        with migrated_sqlite.begin() as connection:
            store_batch(connection, batch, RULES, datetime.now(UTC))
    incremental = {device_id: derived(migrated_sqlite, device_id) for device_id in desks}
    with migrated_sqlite.begin() as connection:
        rebuild_all_rollups(connection, RULES)
    assert {device_id: derived(migrated_sqlite, device_id) for device_id in desks} == incremental
    assert all(nudges and daily for _rollups, nudges, daily in incremental.values())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=lambda engine: None) as engine:
        yield engine


def desk_morning() -> list[Event]:
    """The real tracker: a prompt answered with the circuit done on the chair (then the
    stand-up answers it), a prompt answered with the circuit off the chair, and a drill an
    older desk logged (no ``verified``); numbered as the outbox does."""
    clock = FakeClock(mono=1000.0, wall_time=datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    events: list[Event] = []
    settings = TrackerSettings(quiet_hours=None, active_hours=None)
    tracker = SittingTracker(settings, clock, events.append, device_id="desk-1", boot_id="boot0001")

    def live(seconds: float) -> None:
        clock.advance(seconds)
        tracker.tick()

    for on_the_chair in (True, False):
        tracker.seat_changed(True)
        live(30 * 60 + 10)  # prompted
        tracker.button_pressed()
        if on_the_chair:
            live(tracker.drill_length_s + 30)
        tracker.seat_changed(False)
        live(tracker.drill_length_s + 120)
    older = make_event(EventType.DRILL_COMPLETED, clock.wall(), "desk-1", guided=False)
    return [replace(e, seq=n) for n, e in enumerate([*events, older])]


def test_a_drill_done_on_the_chair_is_stored_unverified_and_counts_nowhere(
    empty_db: Engine,
) -> None:
    events = desk_morning()
    acks = [e.data["how"] for e in events if e.type is EventType.PROMPT_ACK]
    assert acks == ["stood_up", "drill"]
    batch = Batch()
    for event in events:
        batch.events[event.id] = (event, check_event(event))
    now = events[-1].ts + timedelta(minutes=1)
    with empty_db.begin() as connection:
        store_batch(connection, batch, RULES, now)
    day = RULES.day_of(now)
    with Session(empty_db) as session:
        drills = session.execute(select(Drill.guided, Drill.verified).order_by(Drill.ts)).all()
        assert drills == [(True, False), (True, True), (False, True)]
        rollup = session.scalars(select(DailyRollup)).one()
        assert (rollup.drills, rollup.prompts_answered, rollup.prompts_answered_by_drill) == (
            2,
            2,
            1,
        )
        found = insights.insights(session, ALL_DESKS, RULES, day, day, today=day)
        assert (found.funnel.nudges, found.funnel.stood_up, found.funnel.drilled) == (2, 2, 1)
        assert {e.key: e.count for e in found.exercises}["glute_bridge"] == 1
        streak = stats.drill_streaks(session, ALL_DESKS, RULES, now, goal_drills=3)
        assert streak.current == 0  # two drills count, not three
        timeline = stats.day_timeline(session, ALL_DESKS, RULES, day, now, 300)
        marks = [(m.detail, m.counted) for m in timeline.marks if m.kind == "drill"]
        assert marks == [
            ("guided, not counted: the seat was taken", False),
            ("guided", True),
            ("on one's own", True),
        ]
    with empty_db.begin() as connection:
        rebuild_all_rollups(connection, RULES)
    with Session(empty_db) as session:
        assert session.scalars(select(DailyRollup.drills)).one() == 2
