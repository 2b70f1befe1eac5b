"""The one-statement batch insert keeps every value exactly, on SQLite and on PostgreSQL
(where the rows travel as one JSON document), and stays idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from support.events import make_event
from web_fixtures import seeded_engine

from sitwatch.calendar import Calendar
from sitwatch.protocol import Event, EventType
from sitwatch.server.ingest.derive import check_event
from sitwatch.server.ingest.worker import Batch, store_batch
from sitwatch.server.models import DailyRollup, Device, Drill
from sitwatch.server.models import Event as EventRow

HOSTILE = 'a "quote", a \\ backslash, {braces}, NULL, \'; DROP TABLE events; -- \u2028 ✓ 🪑'


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=lambda _engine: None) as made:
        yield made


def tricky_events() -> list[Event]:
    at = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    return [
        make_event(EventType.DRILL_STEP, at, "desk-a", index=3, step=HOSTILE),
        make_event(EventType.PROMPT_ACK, at, "desk-a", how="x" * 200, response_s=0.1 + 0.2),
        make_event(EventType.STOOD_UP, at, "desk-b", session_s=1e-300),
        make_event(EventType.DRILL_COMPLETED, at, "desk-b", guided=True),
    ]


def test_values_come_back_exactly_and_a_replay_stores_nothing(empty_database: Engine) -> None:
    events = tricky_events()
    events[2] = replace(events[2], mono=123456.789012345678, seq=2**31 - 1)
    batch = Batch()
    for event in events:
        batch.events[event.id] = (event, check_event(event))
    now = datetime(2026, 3, 2, 10, 0, 0, 654321, tzinfo=UTC)
    day_rules = Calendar("UTC", 4)
    with empty_database.begin() as connection:
        assert store_batch(connection, batch, day_rules, now) == {e.id for e in events}
    with empty_database.begin() as connection:
        assert store_batch(connection, batch, day_rules, now) == set()  # idempotent
    with empty_database.connect() as connection:
        rows = {r.event_id: r for r in connection.execute(select(EventRow.__table__))}
        devices = {d.id: d for d in connection.execute(select(Device.__table__))}
        drills = connection.execute(select(Drill.__table__)).all()
        rollups = connection.execute(select(DailyRollup.__table__)).all()
    assert len(rows) == len(events)
    for event in events:
        row = rows[event.id]
        assert (row.device_id, row.boot_id, row.seq, row.type) == (
            event.device_id, event.boot_id, event.seq, event.type.value,
        )  # fmt: skip
        assert row.ts == event.ts.astimezone(UTC)  # microseconds and offset kept
        assert row.mono == event.mono
        assert row.clock_synced is event.clock_synced
        assert row.data == check_event(event)
        assert row.received_at == now
    assert rows[events[0].id].data["step"] == HOSTILE
    assert rows[events[1].id].data["response_s"] == 0.1 + 0.2
    assert set(devices) == {"desk-a", "desk-b"}
    assert all(d.first_seen_at == now and d.name == d.id for d in devices.values())
    assert [(d.event_id, d.guided) for d in drills] == [(events[3].id, True)]
    by_device = {r.device_id: r for r in rollups}
    assert by_device["desk-b"].day == date(2026, 3, 1)  # 03:30 UTC: before the 04:00 start
    assert (by_device["desk-b"].sessions, by_device["desk-b"].drills) == (1, 1)
    assert by_device["desk-b"].seated_s == pytest.approx(1e-300)
