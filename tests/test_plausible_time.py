"""Time the server can believe (docs/protocol.md, "Plausible time"): an event dated before
the floor or further ahead of the server's clock than the margin is kept at its arrival
time, flagged unsynced and acked, so it can pin neither a desk's state nor its pause; and a
synced copy of an event stored unsynced corrects its time and everything derived from it.
On SQLite and PostgreSQL, and end to end with a real desk link, Mosquitto and the ingest."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from link_support import FakeServer, clear_retained
from server_helpers import migrated_engine, postgres_schema
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from support.events import make_event
from support.waiting import wait_until
from test_derive import RULES as BERLIN_RULES
from test_derive import random_event, snapshot
from test_ingest import ingest_config
from web_fixtures import add_device, add_event, add_user, login, make_app

from sitwatch.broker import Mosquitto
from sitwatch.calendar import Calendar
from sitwatch.clock import FakeClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.protocol import Event, EventType, Status, now_utc
from sitwatch.server.config import ServerConfig, ServerConfigError, load_server_config
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import check_event, rebuild_all_rollups
from sitwatch.server.ingest.worker import Batch, IngestWorker, store_batch
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import DailyRollup, Drill, SittingSession
from sitwatch.server.models import Event as EventRow
from sitwatch.server.queries.pauses import paused_devices
from sitwatch.server.queries.scope import ALL_DESKS
from sitwatch.server.queries.stats import seat_states, today_by_device

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # a Wednesday
TODAY = date(2026, 11, 25)
RULES = Calendar("UTC", 4)  # as web_fixtures.make_app counts days
CALENDAR = Calendar("UTC", 4)
DESK = "desk-a"
FORGED = datetime(2199, 6, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def batch_of(events: list[Event], online: str | None = DESK) -> Batch:
    batch = Batch()
    for event in events:
        batch.add_event(event, check_event(event))
    if online:
        batch.statuses.append((online, Status(state="online"), False))
    return batch


def store(
    engine: Engine,
    events: list[Event],
    now: datetime,
    *,
    online: str | None = DESK,
    rules: Calendar = RULES,
    **margin: float,
) -> set[str]:
    """One ingest batch, as the worker stores it; ``online``: a live status from that desk."""
    with engine.begin() as connection:
        return store_batch(connection, batch_of(events, online), rules, now, **margin)


def stored(engine: Engine, event_id: str) -> EventRow:
    with Session(engine) as session:
        return session.scalars(select(EventRow).where(EventRow.event_id == event_id)).one()


def card(engine: Engine, now: datetime, device_id: str = DESK) -> str:
    """What the overview page says about a desk's seat right now."""
    client = make_app(engine, now=now).test_client()
    assert login(client).status_code == 302
    page = client.get("/").get_data(as_text=True)
    desk_card = page.split(f'data-device="{device_id}"', 1)[1]
    return desk_card.split('class="device-now">', 1)[1].split("<", 1)[0]


def badge(engine: Engine, now: datetime, device_id: str = DESK) -> str | None:
    client = make_app(engine, now=now).test_client()
    assert login(client).status_code == 302
    page = client.get(f"/devices/{device_id}").get_data(as_text=True)
    start = page.find('class="pill paused"')
    return None if start < 0 else page[start:].split(">", 1)[1].split("<", 1)[0]


def rollup_figures(engine: Engine, now: datetime) -> tuple[object, ...]:
    with Session(engine) as session:
        f = today_by_device(session, ALL_DESKS, CALENDAR, now, 900, DESK)[DESK]
    return (f.seated_s, f.sessions, f.breaks, f.prompts, f.prompts_answered, f.drills)


# --- item 3: plausible time ------------------------------------------------------------------


def test_a_forged_seated_event_from_2199_does_not_show_the_desk_seated_for_good(
    migrated_database: Engine,
) -> None:
    add_user(migrated_database)
    store(
        migrated_database,
        [make_event(EventType.STOOD_UP, NOW - 10 * MINUTE, DESK, session_s=600)],
        NOW,
    )
    forged = make_event(EventType.SEATED, FORGED, DESK)
    assert store(migrated_database, [forged], NOW) == {forged.id}  # stored, so acked: never re-sent
    row = stored(migrated_database, forged.id)
    assert (row.ts, row.clock_synced, row.received_at) == (NOW, False, NOW)

    # The desk stands up five minutes later: the dashboard follows, as after any seated.
    later = NOW + 5 * MINUTE
    store(migrated_database, [make_event(EventType.STOOD_UP, later, DESK, session_s=300)], later)
    assert card(migrated_database, later + MINUTE) == "not seated"
    with Session(migrated_database) as session:
        assert not seat_states(session, ALL_DESKS, NOW + timedelta(hours=3), 10**6)[DESK].is_seated


def test_a_forged_pause_from_2199_pins_no_paused_until_from_that_date(
    migrated_database: Engine,
) -> None:
    add_user(migrated_database)
    forged = make_event(EventType.PAUSE, FORGED, DESK, pause_s=3600)
    assert store(migrated_database, [forged], NOW) == {forged.id}
    # Kept at its arrival: a pause from 15:30 for the hour it says, not one in 2199.
    assert badge(migrated_database, NOW + MINUTE) == "paused until Wed 16:30"
    resume = make_event(EventType.PAUSE, NOW + 2 * MINUTE, DESK, pause_s=0)
    store(migrated_database, [resume], NOW + 2 * MINUTE)
    assert badge(migrated_database, NOW + 3 * MINUTE) is None
    with Session(migrated_database) as session:
        assert paused_devices(session, ALL_DESKS, NOW + timedelta(days=30)) == {}


def test_future_events_stored_before_this_check_pin_neither_seat_nor_pause(
    migrated_database: Engine,
) -> None:
    add_user(migrated_database)
    with Session(
        migrated_database
    ) as session:  # as a database from an older sitwatch may hold them
        add_device(session, DESK, "Desk A", last_seen=NOW - MINUTE)
        session.flush()
        add_event(session, DESK, "stood_up", NOW - 10 * MINUTE, session_s=600.0)
        add_event(session, DESK, "seated", FORGED)
        add_event(session, DESK, "pause", NOW + timedelta(hours=20), pause_s=3600)
        session.commit()
    assert card(migrated_database, NOW) == "not seated"
    assert badge(migrated_database, NOW) is None


def test_forged_future_seated_and_pause_leave_todays_figures_as_they_were(
    migrated_database: Engine,
) -> None:
    real = [
        make_event(EventType.STOOD_UP, NOW - 60 * MINUTE, DESK, session_s=1800),
        make_event(EventType.PROMPT, NOW - 70 * MINUTE, DESK, level=1, seated_s=1800.0,
                   quiet=False),
        make_event(EventType.DRILL_COMPLETED, NOW - 50 * MINUTE, DESK, guided=True),
    ]  # fmt: skip
    store(migrated_database, real, NOW - 40 * MINUTE)
    before = rollup_figures(migrated_database, NOW)
    assert before == (1800.0, 1, 0, 1, 0, 1)
    store(
        migrated_database,
        [
            make_event(EventType.SEATED, FORGED, DESK),
            make_event(EventType.PAUSE, FORGED + MINUTE, DESK, pause_s=7 * 86400),
        ],
        NOW,
    )
    assert rollup_figures(migrated_database, NOW + MINUTE) == before
    with Session(migrated_database) as session:
        assert session.scalar(select(DailyRollup.day).order_by(DailyRollup.day.desc())) == TODAY
        assert session.scalar(select(EventRow.ts).order_by(EventRow.ts.desc())) == NOW


def test_a_desk_whose_clock_runs_days_ahead_has_its_sitting_counted_when_it_arrived(
    migrated_database: Engine,
) -> None:
    ahead = make_event(EventType.STOOD_UP, NOW + timedelta(days=3), DESK, session_s=1200)
    assert store(migrated_database, [ahead], NOW) == {ahead.id}
    assert rollup_figures(migrated_database, NOW)[:2] == (1200.0, 1)  # today, not in three days
    with Session(migrated_database) as session:
        seated = session.execute(select(SittingSession.started_at, SittingSession.ended_at)).one()
    assert tuple(seated) == (NOW - timedelta(seconds=1200), NOW)


@pytest.mark.parametrize(
    "ts",
    [
        datetime(1970, 1, 1, 0, 1, tzinfo=UTC),  # a Pi without RTC or fake-hwclock
        datetime(2024, 12, 31, 23, 59, tzinfo=UTC),
    ],
)
def test_an_event_dated_before_the_floor_is_kept_at_its_arrival_time(
    migrated_database: Engine, ts: datetime
) -> None:
    early = replace(make_event(EventType.STOOD_UP, ts, DESK, session_s=900), clock_synced=False)
    assert store(migrated_database, [early], NOW) == {early.id}
    row = stored(migrated_database, early.id)
    assert (row.ts, row.clock_synced) == (NOW, False)
    assert rollup_figures(migrated_database, NOW)[:2] == (900.0, 1)
    with Session(migrated_database) as session:
        assert session.scalars(select(DailyRollup.day)).all() == [TODAY]


def test_times_inside_the_floor_and_the_margin_are_believed(migrated_database: Engine) -> None:
    floor = make_event(EventType.BREAK, datetime(2025, 1, 1, tzinfo=UTC), DESK, away_s=300.0)
    near = make_event(EventType.BREAK, NOW + timedelta(hours=23), DESK, away_s=300.0)
    far = make_event(EventType.BREAK, NOW + timedelta(hours=25), DESK, away_s=300.0)
    store(migrated_database, [floor, near, far], NOW)
    assert stored(migrated_database, floor.id).ts == floor.ts
    assert stored(migrated_database, near.id).ts == near.ts
    assert (
        stored(migrated_database, far.id).ts,
        stored(migrated_database, far.id).clock_synced,
    ) == (NOW, False)


def test_the_margin_comes_from_the_config(migrated_database: Engine, tmp_path: Path) -> None:
    assert ServerConfig().future_margin_s == 86400
    path = tmp_path / "server.toml"
    path.write_text("future_margin_s = 3600\n", encoding="utf-8")
    margin = load_server_config(path, environ={}).future_margin_s
    assert margin == 3600
    soon = make_event(EventType.BREAK, NOW + 30 * MINUTE, DESK, away_s=300.0)
    later = make_event(EventType.BREAK, NOW + 2 * 60 * MINUTE, DESK, away_s=300.0)
    store(migrated_database, [soon, later], NOW, future_margin_s=margin)
    assert stored(migrated_database, soon.id).ts == soon.ts
    assert stored(migrated_database, later.id).ts == NOW
    path.write_text("future_margin_s = 5\n", encoding="utf-8")
    with pytest.raises(ServerConfigError, match="future_margin_s"):
        load_server_config(path, environ={})


# --- item 4: a synced copy corrects an unsynced one -----------------------------------------


def day_counts(engine: Engine) -> dict[date, tuple[object, ...]]:
    return snapshot(engine, DESK)


def stale(event: Event, by: timedelta) -> Event:
    """The copy a desk sent while its clock was ``by`` behind (not synced yet)."""
    return replace(event, ts=event.ts - by, clock_synced=False)


def test_a_synced_copy_corrects_the_time_of_an_unsynced_one_and_all_derived_from_it(
    migrated_database: Engine,
) -> None:
    true = NOW - timedelta(hours=2)
    events = [
        make_event(EventType.PROMPT, true - 10 * MINUTE, DESK, level=1, seated_s=1800.0,
                   quiet=False),
        make_event(EventType.PROMPT_ACK, true - 9 * MINUTE, DESK, how="drill", response_s=60.0),
        make_event(EventType.STOOD_UP, true, DESK, session_s=1800.0),
        make_event(EventType.DRILL_COMPLETED, true + MINUTE, DESK, guided=True),
        make_event(EventType.BREAK, true + 5 * MINUTE, DESK, away_s=300.0),
        make_event(EventType.SEATED, true + 6 * MINUTE, DESK, away_s=360.0),
    ]  # fmt: skip
    behind = timedelta(days=3)  # fake-hwclock's last saved time
    assert store(migrated_database, [stale(e, behind) for e in events], NOW - 60 * MINUTE) == {
        e.id for e in events
    }
    assert list(day_counts(migrated_database)) == [TODAY - timedelta(days=3)]

    assert store(migrated_database, events, NOW) == set()  # all duplicates, acked again
    for event in events:
        row = stored(migrated_database, event.id)
        assert (row.ts, row.clock_synced) == (event.ts, True), event.type
    with Session(migrated_database) as session:
        session_row = session.scalars(select(SittingSession)).one()
        assert (session_row.started_at, session_row.ended_at) == (true - 30 * MINUTE, true)
        assert session.scalars(select(Drill.ts)).all() == [true + MINUTE]
        state = seat_states(session, ALL_DESKS, NOW, 900)[DESK]
    assert state.seated_since == true + 6 * MINUTE
    # The day it left has no figures left; the day it joined has them all.
    assert day_counts(migrated_database) == {TODAY: (1800.0, 1, 1800.0, 1, 1, 1, 1, 1)}
    incremental = day_counts(migrated_database)
    with migrated_database.begin() as connection:
        rebuild_all_rollups(connection, RULES)
    assert day_counts(migrated_database) == incremental


def test_only_a_synced_copy_from_the_same_desk_corrects(migrated_database: Engine) -> None:
    true = NOW - timedelta(hours=1)
    kept = make_event(EventType.STOOD_UP, true, DESK, session_s=600.0)
    store(migrated_database, [kept], NOW)
    store(
        migrated_database, [stale(kept, timedelta(days=1))], NOW
    )  # an unsynced copy after a synced one
    assert stored(migrated_database, kept.id).ts == true

    event = make_event(EventType.STOOD_UP, true, DESK, session_s=600.0)
    store(migrated_database, [stale(event, timedelta(days=1))], NOW)
    other = replace(event, device_id="desk-b")  # another desk using this desk's event id
    store(migrated_database, [other], NOW, online="desk-b")
    forged = replace(event, ts=FORGED)  # "synced", but dated where no clock can be right
    store(migrated_database, [forged], NOW)
    row = stored(migrated_database, event.id)
    assert (row.ts, row.clock_synced, row.device_id) == (true - timedelta(days=1), False, DESK)


def test_of_two_copies_in_one_batch_the_synced_one_is_stored(migrated_database: Engine) -> None:
    event = make_event(EventType.DRILL_COMPLETED, NOW - MINUTE, DESK, guided=False)
    assert store(migrated_database, [stale(event, timedelta(days=2)), event], NOW) == {event.id}
    row = stored(migrated_database, event.id)
    assert (row.ts, row.clock_synced) == (event.ts, True)
    assert list(day_counts(migrated_database)) == [TODAY]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_corrected_rollups_equal_a_rebuild_whatever_the_order(
    migrated_database: Engine, seed: int
) -> None:
    rng = random.Random(seed)
    device_id = f"desk-{seed}"
    events = [random_event(rng, device_id) for _ in range(60)]
    # About half were first sent with a clock behind by up to three days; the synced copy
    # comes after its stale one (the desk re-stamps on a resend) or, after a fault, before.
    arrivals: list[Event] = []
    for event in events:
        if rng.random() < 0.5:
            arrivals.append(stale(event, timedelta(seconds=rng.uniform(60, 3 * 86400))))
        arrivals.append(event)
    rng.shuffle(arrivals)
    arrivals += rng.sample(events, 10)  # replays
    size = rng.randint(1, 15)
    for start in range(0, len(arrivals), size):
        store(
            migrated_database,
            arrivals[start : start + size],
            now_utc(),
            online=None,
            rules=BERLIN_RULES,
        )
    with Session(migrated_database) as session:
        times = dict(session.execute(select(EventRow.event_id, EventRow.ts)).all())
        ended = dict(
            session.execute(select(SittingSession.event_id, SittingSession.ended_at)).all()
        )
        drilled = dict(session.execute(select(Drill.event_id, Drill.ts)).all())
    assert times == {e.id: e.ts for e in events}
    assert ended == {e.id: e.ts for e in events if e.type is EventType.STOOD_UP}
    assert drilled == {e.id: e.ts for e in events if e.type is EventType.DRILL_COMPLETED}
    incremental = snapshot(migrated_database, device_id)
    with migrated_database.begin() as connection:
        rebuild_all_rollups(connection, BERLIN_RULES)
    assert snapshot(migrated_database, device_id) == incremental


@pytest.mark.postgres
@pytest.mark.parametrize("first", ["correction", "other worker"])
def test_a_correction_keeps_another_workers_figures_for_the_same_day(first: str) -> None:
    """Two ingest workers on PostgreSQL: one corrects an event into today while the other
    stores a session of today; whichever holds today's rollup row first, both count."""
    with postgres_schema() as url:
        engine = make_engine(url)
        upgrade(engine)
        name = f"sitwatch-{uuid.uuid4().hex[:8]}"
        waiting_engine = make_engine(f"{url}&application_name={name}")
        try:
            event = make_event(EventType.STOOD_UP, NOW - 60 * MINUTE, DESK, session_s=600.0)
            store(engine, [stale(event, timedelta(days=2))], NOW)
            other = make_event(EventType.STOOD_UP, NOW - 30 * MINUTE, DESK, session_s=900.0)
            batches = {"correction": [event], "other worker": [other]}
            second = "other worker" if first == "correction" else "correction"
            errors: list[BaseException] = []

            def run_second() -> None:
                try:
                    store(waiting_engine, batches[second], NOW)
                except BaseException as exc:  # reported by the test thread
                    errors.append(exc)

            with engine.connect() as connection:
                transaction = connection.begin()
                store_batch(connection, batch_of(batches[first]), RULES, NOW)
                thread = threading.Thread(target=run_second)
                thread.start()
                assert wait_until(lambda: blocked(engine, name), timeout=10)
                transaction.commit()
            thread.join(10)
            assert not thread.is_alive() and errors == []
            assert day_counts(engine) == {TODAY: (1500.0, 2, 900.0, 0, 0, 0, 0, 0)}
        finally:
            waiting_engine.dispose()
            engine.dispose()


def blocked(engine: Engine, application_name: str) -> bool:
    """Whether the connection named ``application_name`` waits for a lock."""
    with engine.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = :name AND wait_event_type = 'Lock'"
                ),
                {"name": application_name},
            )
        )


# --- end to end: a real desk link, Mosquitto and the ingest ----------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine("sqlite", tmp_path) as engine:
        yield engine


def desk_link(
    broker: Mosquitto, tmp_path: Path, device_id: str, clock: FakeClock
) -> tuple[MqttLink, Outbox]:
    mqtt = MqttConfig(host=broker.host, port=broker.port, heartbeat_s=0, resend_after_s=30)
    config = DeviceConfig(device_id=device_id, data_dir=str(tmp_path), mqtt=mqtt)
    outbox = Outbox(tmp_path / f"{device_id}.db")
    link = MqttLink(config, uuid.uuid4().hex, outbox, clock)
    return link, outbox


def desk_event(
    link: MqttLink, outbox: Outbox, clock: FakeClock, kind: EventType, **data: object
) -> Event:
    """An event the desk's tracker would add now (stamped as the clock is)."""
    event = Event(
        type=kind,
        device_id=link.device_id,
        boot_id=link.boot_id,
        mono=clock.monotonic(),
        ts=clock.wall(),
        clock_synced=clock.is_synced(),
        data=dict(data),
    )
    return outbox.add(event)


def test_a_desk_whose_clock_synced_while_the_server_was_away_gets_its_true_times(
    broker: Mosquitto, sqlite_engine: Engine, tmp_path: Path
) -> None:
    config = ingest_config(broker)
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    worker = IngestWorker(config, sqlite_engine, client_id=client_id).start()
    assert worker.wait_ready()
    worker.stop()  # away: the broker keeps its session and queues what desks send
    device_id = f"desk-{uuid.uuid4().hex[:8]}"
    watcher = FakeServer(broker.host, broker.port, acking=False)
    clock = FakeClock(wall_time=now_utc() - timedelta(days=30), synced=False)
    link, outbox = desk_link(broker, tmp_path, device_id, clock)
    try:
        clock.advance(1800)
        desk_event(link, outbox, clock, EventType.STOOD_UP, session_s=1800.0)
        clock.advance(120)
        desk_event(link, outbox, clock, EventType.DRILL_COMPLETED, guided=True)
        link.start()

        def copies() -> list[Event]:
            return [e for e in watcher.events() if e.device_id == device_id]

        wait_until(lambda: len(copies()) == 2, 10, "the unsynced copies")
        clock.step_wall(30 * 86400)  # NTP syncs: the wall clock jumps to the real time
        clock.synced = True
        clock.advance(31)  # past resend_after_s: the desk re-sends, re-stamped
        wait_until(lambda: len(copies()) == 4, 10, "the re-stamped copies")
        synced = {e.id: e for e in copies() if e.clock_synced}
        assert len(synced) == 2

        worker = IngestWorker(config, sqlite_engine, client_id=client_id).start()
        try:
            wait_until(lambda: len(outbox) == 0, 15, "the outbox to drain")
        finally:
            worker.stop()
    finally:
        link.stop()
        outbox.close()
        watcher.close()
        clear_retained(broker.host, broker.port, device_id)
    with Session(sqlite_engine) as session:
        rows = session.scalars(select(EventRow).where(EventRow.device_id == device_id)).all()
        assert {r.event_id: (r.ts, r.clock_synced) for r in rows} == {
            e.id: (e.ts, True) for e in synced.values()
        }
        stood = next(e for e in synced.values() if e.type is EventType.STOOD_UP)
        drill = next(e for e in synced.values() if e.type is EventType.DRILL_COMPLETED)
        ended = session.scalar(
            select(SittingSession.ended_at).where(SittingSession.device_id == device_id)
        )
        assert ended == stood.ts
        assert session.scalar(select(Drill.ts).where(Drill.device_id == device_id)) == drill.ts
    rules = config.calendar
    days = snapshot(sqlite_engine, device_id)
    # The days of the true times (none of the stale ones, a month back); the sitting, the
    # stand-up and the drill may fall on two days when the test runs near the day's start.
    true_times = (stood.ts - timedelta(seconds=1800), stood.ts, drill.ts)
    assert sorted(days) == sorted({rules.day_of(ts) for ts in true_times})
    with sqlite_engine.begin() as connection:
        rebuild_all_rollups(connection, rules)
    assert snapshot(sqlite_engine, device_id) == days


def test_a_desk_with_its_clock_days_ahead_is_acked_and_counted_at_arrival(
    broker: Mosquitto, sqlite_engine: Engine, tmp_path: Path
) -> None:
    config = ingest_config(broker)
    worker = IngestWorker(config, sqlite_engine, client_id=f"ingest-{uuid.uuid4().hex[:8]}")
    worker.start()
    assert worker.wait_ready()
    device_id = f"desk-{uuid.uuid4().hex[:8]}"
    # A clock three days ahead that says it is synced (a plausible date, no timesyncd).
    clock = FakeClock(wall_time=now_utc() + timedelta(days=3), synced=True)
    link, outbox = desk_link(broker, tmp_path, device_id, clock)
    try:
        event = desk_event(link, outbox, clock, EventType.STOOD_UP, session_s=600.0)
        before = now_utc()
        link.start()
        wait_until(lambda: len(outbox) == 0, 15, "the outbox to drain")  # acked: not stuck
    finally:
        worker.stop()
        link.stop()
        outbox.close()
        clear_retained(broker.host, broker.port, device_id)
    with Session(sqlite_engine) as session:
        rows = session.scalars(select(EventRow).where(EventRow.device_id == device_id)).all()
    assert [r.event_id for r in rows] == [event.id]  # stored exactly once
    assert before <= rows[0].ts == rows[0].received_at <= now_utc()
    assert not rows[0].clock_synced
