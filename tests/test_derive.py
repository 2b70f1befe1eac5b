"""Local days, event sanity checks, and rollups that stay right whatever the arrival order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from support.events import make_event

from sitwatch.calendar import Calendar
from sitwatch.protocol import EventType, ProtocolError
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import check_event, rebuild_all_rollups
from sitwatch.server.ingest.worker import Batch, store_batch
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import DailyRollup

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
         EventType.DRILL_COMPLETED, EventType.HEARTBEAT]
    )  # fmt: skip
    data = {
        EventType.STOOD_UP: {"session_s": rng.uniform(0, 20000)},
        EventType.BREAK: {"away_s": 300.0},
        EventType.PROMPT: {"level": 1, "seated_s": 1800.0, "quiet": False},
        EventType.PROMPT_ACK: {"how": rng.choice(["drill", "stood_up"]), "response_s": 3.0},
        EventType.DRILL_COMPLETED: {"guided": rng.random() < 0.5},
        EventType.HEARTBEAT: {},
    }[kind]
    return make_event(kind, ts, device_id, **data)


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
def test_incremental_rollups_equal_a_rebuild_whatever_the_order_and_replays(
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
    incremental = snapshot(migrated_sqlite, device_id)
    with migrated_sqlite.begin() as connection:
        rebuild_all_rollups(connection, RULES)
    assert snapshot(migrated_sqlite, device_id) == incremental
    assert sum(day[1] for day in incremental.values()) == sum(
        e.type is EventType.STOOD_UP for e in events
    )
