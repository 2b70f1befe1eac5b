"""Ingest under faults: hostile payloads, a failing database, a worker restarted mid-stream,
two workers sharing the load, a broker that is not there yet."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import DevicePublisher, heartbeats
from sqlalchemy import Engine, func, select, text
from support.waiting import wait_until
from test_ingest import ingest_config, stored_ids

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port
from sitwatch.protocol import ProtocolError
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import check_event
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import Device
from sitwatch.server.models import Event as EventRow


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'sitwatch.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def start_worker(broker: Mosquitto, engine: Engine, client_id: str, **mqtt: object) -> IngestWorker:
    worker = IngestWorker(ingest_config(broker, **mqtt), engine, client_id=client_id)
    worker.start()
    assert worker.wait_ready(), "ingest worker did not subscribe"
    return worker


def is_valid_event(payload: bytes, device_id: str) -> bool:
    try:
        check_event(protocol.parse_event(payload, device_id))
    except ProtocolError:
        return False
    return True


def is_valid_status(payload: bytes) -> bool:
    try:
        protocol.parse_status(payload)
    except ProtocolError:
        return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
VALID = json.loads(heartbeats("desk-x", 1)[0].to_json())
FIELDS = sorted({*VALID, "data", "session_s", "state"})


@st.composite
def near_valid_event(draw: st.DrawFn) -> bytes:
    """A real event with one field replaced, removed or given a hostile string."""
    body = dict(VALID, id=uuid.uuid4().hex, type=draw(st.sampled_from(list(protocol.EventType))))
    key = draw(st.sampled_from(FIELDS))
    choice = draw(st.integers(0, 2))
    if choice == 0:
        body.pop(key, None)
    elif choice == 1:
        body[key] = draw(json_values)
    else:
        body[key] = draw(st.sampled_from(["<script>alert(1)</script>", "\x00", "\ud800", "é" * 70]))
    return json.dumps(body).encode("utf-8", "surrogatepass")


payloads = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_valid_event()
    | st.just(b"{" * 5000)
    | st.just(b" " * (protocol.MAX_PAYLOAD_BYTES + 1))
)
segments = st.sampled_from(["desk-fuzz", "desk-fuzz", "<i>x&amp;'\"", "", "a b", "é", "x" * 70])


def test_hostile_payloads_are_rejected_and_ingest_carries_on(
    private_broker: Mosquitto, migrated_sqlite: Engine
) -> None:
    broker = private_broker  # no retained statuses from other tests
    worker = start_worker(broker, migrated_sqlite, f"ingest-{uuid.uuid4().hex[:8]}")
    device = DevicePublisher(broker.host, broker.port, ["desk-fuzz"])
    sent = {"messages": 0, "valid_events": 0, "valid_statuses": 0}
    try:

        @settings(
            max_examples=300,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(payload=payloads, segment=segments, leaf=st.sampled_from(["event", "status"]))
        def publish_one(payload: bytes, segment: str, leaf: str) -> None:
            device.publish_raw(f"sitwatch/{segment}/{leaf}", payload)
            sent["messages"] += 1
            if segment == "desk-fuzz" and leaf == "event" and is_valid_event(payload, segment):
                sent["valid_events"] += 1
            if segment == "desk-fuzz" and leaf == "status" and is_valid_status(payload):
                sent["valid_statuses"] += 1

        publish_one()
        assert wait_until(lambda: worker.handled >= sent["messages"], timeout=8)
        valid = sent["valid_events"] + sent["valid_statuses"]
        assert worker.rejected == sent["messages"] - valid
        assert worker.db_errors == 0

        events = heartbeats("desk-fuzz", 5)
        device.publish(events)
        assert wait_until(lambda: device.acked >= {e.id for e in events})
    finally:
        device.close()
        worker.stop()
    with migrated_sqlite.connect() as connection:
        assert set(connection.scalars(select(Device.id))) <= {"desk-fuzz"}
        assert connection.scalar(select(func.count()).select_from(EventRow)) == (
            5 + sent["valid_events"]
        )
    print(f"\nfuzz: {sent}, rejected {worker.rejected}")


def test_a_message_that_raises_any_error_costs_only_itself(
    broker: Mosquitto,
    migrated_sqlite: Engine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in validation (here an error that is not a ProtocolError, for one event) rejects
    that message alone: the rest of its batch, other desks included, is stored and acked."""
    from sitwatch.server.ingest import worker as ingest

    desks = [f"desk-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    events = [e for desk in desks for e in heartbeats(desk, 20)]
    poisoned = events[7].id

    def check_or_fail(event: protocol.Event) -> dict[str, object]:
        if event.id == poisoned:
            raise ZeroDivisionError("a bug")
        return check_event(event)

    monkeypatch.setattr(ingest, "check_event", check_or_fail)
    worker = start_worker(
        broker, migrated_sqlite, f"ingest-{uuid.uuid4().hex[:8]}", batch_wait_s=0.2
    )
    device = DevicePublisher(broker.host, broker.port, desks)
    caplog.set_level(logging.WARNING, logger="sitwatch.server.ingest.worker")
    valid = {e.id for e in events} - {poisoned}
    try:
        device.publish(events, wait=False)  # one or two batches, the poisoned event in one
        wait_until(lambda: device.acked >= valid, what="the acks of the poisoned event's batch")
        assert wait_until(lambda: worker.handled >= len(events))
    finally:
        device.close()
        worker.stop()
    assert sorted(stored_ids(migrated_sqlite)) == sorted(valid)
    assert worker.rejected == 1 and poisoned not in device.acked
    (line,) = [r for r in caplog.records if "rejected message" in r.getMessage()]
    assert line.exc_info is None
    size = len(events[7].to_json())
    assert line.getMessage().endswith(f"({size} bytes): ZeroDivisionError: a bug")


def test_database_error_is_not_acked_and_the_worker_recovers(
    broker: Mosquitto, migrated_sqlite: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    desk = f"desk-{uuid.uuid4().hex[:8]}"
    worker = start_worker(broker, migrated_sqlite, f"ingest-{uuid.uuid4().hex[:8]}")
    device = DevicePublisher(broker.host, broker.port, [desk])
    try:
        with migrated_sqlite.begin() as connection:  # the table is gone: every insert fails
            connection.execute(text("ALTER TABLE events RENAME TO events_away"))
        events = heartbeats(desk, 10)
        with caplog.at_level(logging.ERROR, logger="sitwatch.server.ingest.worker"):
            device.publish(events)
            assert wait_until(lambda: worker.db_errors >= 1)
        assert "database error" in caplog.text
        assert device.acked == set()
        with migrated_sqlite.begin() as connection:
            connection.execute(text("ALTER TABLE events_away RENAME TO events"))
        assert device.resend_unacked(events)
    finally:
        device.close()
        worker.stop()
    assert sorted(stored_ids(migrated_sqlite)) == sorted(e.id for e in events)


@pytest.mark.parametrize("drain", [True, False], ids=["graceful", "crash"])
def test_worker_restarted_mid_stream_stores_everything_once(
    broker: Mosquitto, migrated_sqlite: Engine, drain: bool
) -> None:
    desk = f"desk-{uuid.uuid4().hex[:8]}"
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    worker = start_worker(broker, migrated_sqlite, client_id, batch_size=50)
    device = DevicePublisher(broker.host, broker.port, [desk])
    events = heartbeats(desk, 2000)
    try:
        device.publish(events, wait=False)
        assert wait_until(lambda: worker.stored >= 300)
        worker.stop(drain=drain)
        first_run = worker.stored
        worker = start_worker(broker, migrated_sqlite, client_id, batch_size=50)
        assert device.resend_unacked(events, timeout=8)
    finally:
        device.close()
        worker.stop()
    ids = stored_ids(migrated_sqlite)
    assert len(ids) == len(set(ids)) == len(events)
    assert first_run < len(events) and worker.stored == len(events) - first_run


def test_two_workers_on_a_shared_subscription_split_the_load(
    broker: Mosquitto, migrated_sqlite: Engine
) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    workers = [
        start_worker(broker, migrated_sqlite, f"ingest-{group}-{n}", share_group=group)
        for n in (1, 2)
    ]
    desks = [f"desk-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    device = DevicePublisher(broker.host, broker.port, desks)
    events = [e for d in desks for e in heartbeats(d, 300)]
    try:
        device.publish(events)
        assert device.resend_unacked(events)
    finally:
        device.close()
        for worker in workers:
            worker.stop()
    ids = stored_ids(migrated_sqlite)
    assert len(ids) == len(set(ids)) == len(events)
    assert all(worker.stored > 0 for worker in workers)
    assert sum(w.stored for w in workers) == len(events)


def test_worker_started_before_the_broker_connects_when_it_appears(
    migrated_sqlite: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "late-broker").mkdir()
    late = Mosquitto(port=free_port(), workdir=str(tmp_path / "late-broker"))
    worker = IngestWorker(ingest_config(late), migrated_sqlite, client_id="ingest-early")
    with caplog.at_level(logging.WARNING, logger="sitwatch.server.ingest.worker"):
        worker.start()
        assert wait_until(lambda: "cannot reach MQTT broker" in caplog.text)
    try:
        late.start()
        assert worker.wait_ready(timeout_s=8)
        device = DevicePublisher(late.host, late.port, ["desk-late"])
        events = heartbeats("desk-late", 5)
        device.publish(events)
        assert wait_until(lambda: device.acked >= {e.id for e in events})
        device.close()
    finally:
        worker.stop()
        late.kill()
    assert sorted(stored_ids(migrated_sqlite)) == sorted(e.id for e in events)


def test_a_stopped_member_of_a_shared_group_gets_no_share_of_new_events(
    broker: Mosquitto, migrated_sqlite: Engine
) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    staying, leaving = (
        start_worker(broker, migrated_sqlite, f"ingest-{group}-{n}", share_group=group)
        for n in (1, 2)
    )
    leaving.stop()
    desk = f"desk-{uuid.uuid4().hex[:6]}"
    device = DevicePublisher(broker.host, broker.port, [desk])
    events = heartbeats(desk, 100)
    try:
        device.publish(events)  # once: no resends needed
        assert wait_until(lambda: device.acked >= {e.id for e in events})
    finally:
        device.close()
        staying.stop()
    assert staying.stored == 100


def test_a_broker_outage_is_one_warning_not_one_per_reconnect_attempt(
    private_broker: Mosquitto,
    migrated_sqlite: Engine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sitwatch import mqtt

    monkeypatch.setattr(mqtt, "RECONNECT_MIN_S", 0.02)  # many attempts, quickly
    monkeypatch.setattr(mqtt, "RECONNECT_MAX_S", 0.1)
    worker = start_worker(private_broker, migrated_sqlite, f"ingest-{uuid.uuid4().hex[:8]}")
    caplog.set_level(logging.DEBUG, logger="sitwatch.server.ingest.worker")
    try:
        private_broker.stop()

        def attempts() -> int:  # failed reconnects, whatever level they are logged at
            return sum(
                "still unreachable" in r.getMessage() or "cannot reach" in r.getMessage()
                for r in caplog.records
            )

        assert wait_until(lambda: attempts() >= 5, timeout=10)

        def loud() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

        assert [line.split(" (")[0] for line in loud()] == [f"lost MQTT broker {worker.broker}"], (
            loud()
        )

        private_broker.start()
        assert worker.wait_ready(timeout_s=10)
        # The same worker stores and acks after the outage, each event once.
        desk = f"desk-{uuid.uuid4().hex[:8]}"
        device = DevicePublisher(private_broker.host, private_broker.port, [desk])
        events = heartbeats(desk, 20)
        try:
            device.publish(events)
            assert device.resend_unacked(events, timeout=30)
        finally:
            device.close()
        ids = stored_ids(migrated_sqlite)
        assert sorted(ids) == sorted(e.id for e in events)  # each once, nothing else

        private_broker.stop()  # the next outage is reported again
        assert wait_until(lambda: len(loud()) == 2)
    finally:
        worker.stop()
