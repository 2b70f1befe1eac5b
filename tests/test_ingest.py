"""Ingest through a real Mosquitto into a real SQLite file: stored once, acked after commit."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from server_helpers import DevicePublisher, heartbeats
from sqlalchemy import Engine, func, select
from support.events import make_event
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.calendar import Calendar
from sitwatch.protocol import EventType, Status
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.ingest.derive import recompute_rollups
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import ROLLUP_FIGURES, DailyRollup, Device, Drill, SittingSession
from sitwatch.server.models import Event as EventRow
from sitwatch.server.queries import stats
from sitwatch.server.queries.scope import ALL_DESKS, Scope

BERLIN = ZoneInfo("Europe/Berlin")


def ingest_config(broker: Mosquitto, **mqtt: object) -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "mqtt": {"host": broker.host, "port": broker.port, "batch_wait_s": 0.01, **mqtt},
            "timezone": "Europe/Berlin",
            "day_start_hour": 4,
        }
    )


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'sitwatch.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def worker(broker: Mosquitto, migrated_sqlite: Engine) -> Iterator[IngestWorker]:
    worker = IngestWorker(
        ingest_config(broker), migrated_sqlite, client_id=f"ingest-{uuid.uuid4().hex[:8]}"
    )
    worker.start()
    assert worker.wait_ready(), "ingest worker did not subscribe"
    yield worker
    worker.stop()


@pytest.fixture
def desk() -> str:
    return f"desk-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def device(broker: Mosquitto, desk: str) -> Iterator[DevicePublisher]:
    publisher = DevicePublisher(broker.host, broker.port, [desk])
    yield publisher
    publisher.close()


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(select(EventRow.event_id)))


def rollups(engine: Engine, device_id: str) -> dict[date, dict[str, object]]:
    with session_factory(engine)() as session:
        rows = session.scalars(select(DailyRollup).where(DailyRollup.device_id == device_id))
        return {r.day: {name: getattr(r, name) for name in ROLLUP_FIGURES} for r in rows}


def test_events_are_acked_only_once_they_are_in_the_database(
    broker: Mosquitto, migrated_sqlite: Engine, worker: IngestWorker, desk: str
) -> None:
    missing_at_ack: list[str] = []

    def check_stored(ids: list[str]) -> None:
        with migrated_sqlite.connect() as connection:
            found = set(
                connection.scalars(select(EventRow.event_id).where(EventRow.event_id.in_(ids)))
            )
        missing_at_ack.extend(i for i in ids if i not in found)

    device = DevicePublisher(broker.host, broker.port, [desk], on_ack=check_stored)
    try:
        events = heartbeats(desk, 200)
        device.publish(events)
        assert wait_until(lambda: device.acked >= {e.id for e in events})
    finally:
        device.close()
    assert missing_at_ack == []
    assert sorted(stored_ids(migrated_sqlite)) == sorted(e.id for e in events)
    assert worker.stored == 200 and worker.duplicates == 0 and worker.rejected == 0


def test_unknown_device_is_created_named_after_its_id(
    migrated_sqlite: Engine, worker: IngestWorker, device: DevicePublisher, desk: str
) -> None:
    events = heartbeats(desk, 1)
    device.publish(events)
    assert wait_until(lambda: events[0].id in device.acked)
    with session_factory(migrated_sqlite)() as session:
        stored = session.get(Device, desk)
        assert stored is not None and stored.name == desk
        assert stored.last_seen_at.tzinfo is not None
        assert abs(stored.last_seen_at - datetime.now(UTC)) < timedelta(seconds=30)


def test_replayed_events_are_stored_once_and_acked_again(
    migrated_sqlite: Engine, worker: IngestWorker, device: DevicePublisher, desk: str
) -> None:
    events = heartbeats(desk, 30)
    device.publish(events)
    assert wait_until(lambda: device.acked >= {e.id for e in events})
    device.acked.clear()
    device.publish(events[:10] + events[:10])  # the ack was lost, the device sends again
    assert wait_until(lambda: device.acked >= {e.id for e in events[:10]})
    assert wait_until(lambda: worker.duplicates == 20)
    assert len(stored_ids(migrated_sqlite)) == 30
    assert worker.stored == 30


def test_status_marks_device_online_then_offline(
    migrated_sqlite: Engine, worker: IngestWorker, device: DevicePublisher, desk: str
) -> None:
    def device_row() -> tuple[object, ...] | None:
        with session_factory(migrated_sqlite)() as session:
            stored = session.get(Device, desk)
            return stored and (stored.online, stored.boot_id, stored.version)

    status_topic = protocol.topic(desk, protocol.STATUS)
    online = Status("online", boot_id="boot-0042", version="1.2.3")
    device.publish_raw(status_topic, online.to_json())
    assert wait_until(lambda: device_row() == (True, "boot-0042", "1.2.3"))
    device.publish_raw(status_topic, Status("offline").to_json())
    assert wait_until(lambda: device_row() == (False, "boot-0042", "1.2.3"))


def test_the_device_name_is_shown_until_renamed_on_the_dashboard(
    migrated_sqlite: Engine, worker: IngestWorker, device: DevicePublisher, desk: str
) -> None:
    def name() -> str | None:
        with session_factory(migrated_sqlite)() as session:
            stored = session.get(Device, desk)
            return stored and stored.name

    status_topic = protocol.topic(desk, protocol.STATUS)
    device.publish_raw(status_topic, Status("online", name="  Ana's\n desk ").to_json())
    assert wait_until(lambda: name() == "Ana's desk")  # whitespace folded
    with session_factory(migrated_sqlite)() as session:
        session.get(Device, desk).name = "Reception"  # renamed on the dashboard
        session.commit()
    device.publish_raw(status_topic, Status("online", name="Other").to_json())
    device.publish_raw(status_topic, Status("offline").to_json())
    assert wait_until(lambda: worker.statuses >= 3)
    assert name() == "Reception"


def test_retained_status_updates_presence_but_is_not_a_sign_of_life(
    broker: Mosquitto, migrated_sqlite: Engine, desk: str
) -> None:
    long_ago = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    with session_factory(migrated_sqlite)() as session:
        session.add(Device(id=desk, name="Desk", first_seen_at=long_ago, last_seen_at=long_ago))
        session.commit()
    status_topic = protocol.topic(desk, protocol.STATUS)
    publisher = DevicePublisher(broker.host, broker.port, [desk])
    online = Status("online").to_json()
    publisher.client.publish(status_topic, online, qos=1, retain=True).wait_for_publish(5)
    worker = IngestWorker(ingest_config(broker), migrated_sqlite, client_id=f"ingest-{desk}")
    try:
        worker.start()  # gets the retained status on subscribing

        def seen() -> tuple[bool, datetime] | None:
            with session_factory(migrated_sqlite)() as session:
                stored = session.get(Device, desk)
                return stored and (stored.online, stored.last_seen_at)

        assert wait_until(lambda: seen() == (True, long_ago))
    finally:
        worker.stop()
        publisher.client.publish(status_topic, b"", qos=1, retain=True).wait_for_publish(5)
        publisher.close()


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN)


def scripted_day(desk: str) -> list[protocol.Event]:
    """Two sessions (the second runs past 04:00 into the next day), a prompt answered by a
    drill, a break, then a prompt and a break after the 04:00 roll-over."""
    return [
        make_event(EventType.SEATED, local(2, 8, 0), desk),
        make_event(EventType.PROMPT, local(2, 8, 30), desk, level=1, seated_s=1800.0, quiet=False),
        make_event(EventType.PROMPT_ACK, local(2, 8, 31), desk, how="drill", response_s=60.0),
        make_event(EventType.DRILL_STARTED, local(2, 8, 31), desk, guided=True),
        make_event(EventType.DRILL_STEP, local(2, 8, 32), desk, index=0, step="bridge"),
        make_event(EventType.DRILL_COMPLETED, local(2, 8, 35), desk, guided=True),
        make_event(EventType.STOOD_UP, local(2, 8, 50), desk, session_s=3000.0),
        make_event(EventType.BREAK, local(2, 9, 0), desk, away_s=600.0),
        make_event(EventType.SEATED, local(2, 23, 30), desk),
        make_event(EventType.PROMPT, local(3, 4, 10), desk, level=2, seated_s=16800, quiet=True),
        make_event(EventType.SNOOZE, local(3, 4, 11), desk, snooze_s=600, count=1),
        make_event(EventType.STOOD_UP, local(3, 4, 30), desk, session_s=18000.0),
        make_event(EventType.BREAK, local(3, 4, 45), desk, away_s=900.0),
        make_event(EventType.HEARTBEAT, local(3, 5, 0), desk),
    ]


EXPECTED_DAYS = {
    date(2026, 3, 2): {
        "seated_s": 21000.0,
        "sessions": 2,
        "longest_s": 18000.0,
        "breaks": 1,
        "prompts": 1,
        "prompts_answered": 1,
        "prompts_answered_by_drill": 1,
        "drills": 1,
    },
    date(2026, 3, 3): {
        "seated_s": 0.0,
        "sessions": 0,
        "longest_s": 0.0,
        "breaks": 1,
        "prompts": 1,
        "prompts_answered": 0,
        "prompts_answered_by_drill": 0,
        "drills": 0,
    },
}


def assert_fleet_days_agree(engine: Engine) -> list[stats.RecordDay]:
    """The fleet's rows per day, kept by ingest batch by batch (server/fleet_days.py), equal
    a count over every desk's rollups; returns them."""
    with session_factory(engine)() as session:
        kept = stats.record_days(session, ALL_DESKS)
        desks = Scope.of(session.scalars(select(Device.id)))
        assert kept and kept == stats.record_days(session, desks)
    return kept


def test_scripted_day_rolls_up_to_hand_checked_figures(
    migrated_sqlite: Engine, worker: IngestWorker, device: DevicePublisher, desk: str
) -> None:
    events = scripted_day(desk)
    device.publish(events)
    assert wait_until(lambda: device.acked >= {e.id for e in events})
    assert rollups(migrated_sqlite, desk) == EXPECTED_DAYS
    with session_factory(migrated_sqlite)() as session:
        sessions = session.scalars(
            select(SittingSession).where(SittingSession.device_id == desk).order_by("started_at")
        ).all()
        assert [(s.started_at, s.ended_at) for s in sessions] == [
            (local(2, 8, 0), local(2, 8, 50)),
            (local(2, 23, 30), local(3, 4, 30)),
        ]
        drills = session.scalars(select(Drill).where(Drill.device_id == desk)).all()
        assert [(d.ts, d.guided) for d in drills] == [(local(2, 8, 35), True)]


def test_out_of_order_and_replayed_arrival_gives_the_same_rollups(
    migrated_sqlite: Engine, worker: IngestWorker, device: DevicePublisher, desk: str
) -> None:
    events = scripted_day(desk)
    shuffled = random.Random(4).sample(events, len(events))
    for part in (shuffled[:5], shuffled[3:9], shuffled[7:], events[::2]):
        device.publish(part)
        assert wait_until(lambda part=part: device.acked >= {e.id for e in part})
    assert rollups(migrated_sqlite, desk) == EXPECTED_DAYS
    # The seat state on the devices row is the latest seat event by time, not by arrival.
    with migrated_sqlite.connect() as connection:
        kept = connection.execute(
            select(Device.seat_type, Device.seat_at).where(Device.id == desk)
        ).one()
    assert tuple(kept) == ("stood_up", local(3, 4, 30))
    assert [
        (d.day.day, d.drills, d.longest_s) for d in assert_fleet_days_agree(migrated_sqlite)
    ] == [
        (2, 1, 18000.0),
        (3, 0, 0.0),
    ]
    with (
        migrated_sqlite.begin() as connection
    ):  # the incremental rows equal a rebuild from raw rows
        recompute_rollups(
            connection,
            Calendar("Europe/Berlin", 4),
            [(desk, date(2026, 3, 2)), (desk, date(2026, 3, 3))],
        )
    assert rollups(migrated_sqlite, desk) == EXPECTED_DAYS


def test_throughput_of_one_worker_on_sqlite(
    broker: Mosquitto, migrated_sqlite: Engine, worker: IngestWorker
) -> None:
    desks = [f"desk-{uuid.uuid4().hex[:6]}" for _ in range(10)]
    device = DevicePublisher(broker.host, broker.port, desks)
    events = [e for d in desks for e in heartbeats(d, 500)]
    try:
        started = time.perf_counter()
        device.publish(events)
        assert wait_until(lambda: worker.stored >= len(events), timeout=8)
        elapsed = time.perf_counter() - started
        assert wait_until(lambda: device.acked >= {e.id for e in events})
    finally:
        device.close()
    with migrated_sqlite.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(EventRow)) == len(events)
    print(f"\ningest: {len(events)} events in {elapsed:.2f} s = {len(events) / elapsed:.0f}/s")
