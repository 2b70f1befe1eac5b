"""Brokers other than Mosquitto: a real desk process's Last Will and retained status on each
tested broker, and the share-group probe that stops an ingest on a broker that grants
``$share/...`` subscriptions and then delivers nothing to them (NATS 2.9, amqtt)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from e2e_support import running_server, server_config
from link_support import clear_retained
from server_helpers import DevicePublisher, heartbeats, migrated_engine
from sqlalchemy import Engine, func, select
from support.waiting import wait_until
from test_ingest import ingest_config, stored_ids
from test_server_cli import server_process, sqlite_config, stop

from sitwatch import protocol
from sitwatch.broker import BrokerProcess, EmbeddedBroker, Mosquitto, NatsServer, free_port
from sitwatch.protocol import ProtocolError, Status
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.ingest.worker import EVENT_FILTER, PROBE_TOPIC, IngestWorker
from sitwatch.server.models import Device
from sitwatch.server.models import Event as EventRow

NO_SHARE_LINE = "does not deliver shared subscriptions"


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine("sqlite", tmp_path) as engine:
        yield engine


@pytest.fixture(scope="module")
def amqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(workdir=str(tmp_path_factory.mktemp("amqtt"))).start()
    yield broker
    broker.stop()


def retained_status(broker: BrokerProcess, device_id: str) -> tuple[Status, bool]:
    """What a newcomer subscribing to the desk's status topic is handed: (status, retained)."""
    seen: list[mqtt.MQTTMessage] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"late-{uuid.uuid4().hex}")
    client.on_message = lambda _c, _u, message: seen.append(message)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe(protocol.topic(device_id, protocol.STATUS), qos=1)
        wait_until(lambda: seen, 10, "the retained status")
    finally:
        client.disconnect()
        client.loop_stop()
    return protocol.parse_status(seen[0].payload), bool(seen[0].retain)


def desk_online(engine: Engine, device_id: str) -> bool | None:
    with session_factory(engine)() as session:
        return session.scalar(select(Device.online).where(Device.id == device_id))


def queued(data_dir: Path) -> int:
    """Events in the desk's outbox (stored there until the server acknowledges them)."""
    with closing(sqlite3.connect(data_dir / "outbox.db")) as outbox:
        return outbox.execute("select count(*) from events").fetchone()[0]


@pytest.mark.timeout(120)
def test_a_desk_process_that_dies_is_offline_by_its_last_will(
    any_broker: BrokerProcess, tmp_path: Path
) -> None:
    """The real ``sitwatch-device`` (simulated pins, keys on stdin) sits down; its event is
    stored and acknowledged, its retained status says online. SIGKILLed, it sends no
    goodbye: the broker's Last Will must say offline, to the server and to newcomers."""
    device_id = f"desk-will-{uuid.uuid4().hex[:6]}"
    data = tmp_path / "desk"
    command = [
        str(Path(sys.executable).with_name("sitwatch-device")),
        "--simulate",
        "--data-dir",
        str(data),
        "--device-id",
        device_id,
        "--mqtt-port",
        str(any_broker.port),
        "--log-level",
        "WARNING",
    ]
    config = server_config(tmp_path / "server.db", any_broker.port, f"will-{device_id}")
    try:
        with running_server(config) as (engine, _worker):
            desk = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            assert desk.stdin is not None
            try:
                desk.stdin.write(b"s\n")  # sit down: a "seated" event
                desk.stdin.flush()
                wait_until(lambda: desk_online(engine, device_id), 20, "the desk online")
                assert wait_until(lambda: stored_ids(engine) and queued(data) == 0, 20)
                assert retained_status(any_broker, device_id)[0].state == "online"
                assert desk_online(engine, device_id)
            finally:
                os.kill(desk.pid, signal.SIGKILL)
                desk.wait(10)
                desk.stdin.close()
            wait_until(lambda: desk_online(engine, device_id) is False, 20, "the Will")
            status, retained = retained_status(any_broker, device_id)
            assert (status.state, status.detail, retained) == ("offline", "connection lost", True)
            with session_factory(engine)() as session:
                rows = session.execute(select(EventRow.seq, EventRow.type)).all()
        # Both ends: the outbox numbers what it records, so stored seqs 1..N means each
        # event arrived exactly once; the outbox was empty before the kill.
        assert sorted(seq for seq, _type in rows) == list(range(1, len(rows) + 1))
        assert "seated" in {kind for _seq, kind in rows}
    finally:
        clear_retained(any_broker.host, any_broker.port, device_id)


def test_the_probe_topic_matches_the_event_filter_but_is_no_device_topic() -> None:
    assert mqtt.topic_matches_sub(EVENT_FILTER, PROBE_TOPIC)
    with pytest.raises(ProtocolError):
        protocol.parse_topic(PROBE_TOPIC)  # so no device's ACL (sitwatch/<id>/...) grants it


def test_a_share_group_worker_gives_up_where_shared_subscriptions_deliver_nothing(
    nats_broker: NatsServer, amqtt_broker: EmbeddedBroker, migrated_sqlite: Engine
) -> None:
    for broker in (nats_broker, amqtt_broker):
        config = ingest_config(broker, share_group="fleet", share_probe_timeout_s=1)
        worker = IngestWorker(config, migrated_sqlite, client_id=f"ingest-{uuid.uuid4().hex[:6]}")
        failures: list[str] = []
        worker.when_failed = failures.append
        worker.start()
        try:
            assert worker.subscribed.wait(10), "the broker did not grant the subscriptions"
            assert worker.failed.wait(10), f"no verdict on {broker.name}"
            assert not worker.wait_ready(0)
        finally:
            worker.stop()
        assert failures == [worker.failure]
        assert worker.failure is not None and NO_SHARE_LINE in worker.failure
        assert f"{broker.host}:{broker.port}" in worker.failure
        assert (worker.rejected, worker.handled) == (0, 0)  # the probe is never data


def test_probes_on_the_event_filter_are_never_data(
    private_broker: Mosquitto, migrated_sqlite: Engine
) -> None:
    """A share-group worker's probe also reaches the fleet's group and any lone worker: each
    drops it before validation (not rejected, not queued), and stores the events after it.
    A broker of its own: statuses other tests retained would be counted as handled."""
    broker = private_broker
    group = f"g{uuid.uuid4().hex[:6]}"
    lone = IngestWorker(ingest_config(broker), migrated_sqlite, client_id=f"lone-{group}")
    shared = IngestWorker(
        ingest_config(broker, share_group=group), migrated_sqlite, client_id=f"shared-{group}"
    )
    for worker in (lone, shared):
        worker.start()
        assert worker.wait_ready(), "not ready"
    assert shared.share_confirmed.is_set()
    desk = f"desk-{uuid.uuid4().hex[:6]}"
    device = DevicePublisher(broker.host, broker.port, [desk])
    events = heartbeats(desk, 3)
    try:
        device.publish_raw(PROBE_TOPIC, b"another worker's probe")
        device.publish(events)  # after the probe on the same connection: delivered after it
        assert wait_until(lambda: device.acked >= {e.id for e in events}, 30)
        assert wait_until(lambda: lone.handled + shared.handled == 2 * len(events), 30)
    finally:
        device.close()
        lone.stop()
        shared.stop()
    assert (lone.rejected, shared.rejected) == (0, 0)
    assert (lone.handled, shared.handled) == (len(events), len(events))
    assert sorted(stored_ids(migrated_sqlite)) == sorted(e.id for e in events)


@pytest.mark.parametrize("command", ["ingest", "run"])
def test_server_in_a_share_group_exits_2_on_a_broker_without_shared_subscriptions(
    nats_broker: NatsServer, tmp_path: Path, command: str
) -> None:
    config = sqlite_config(
        tmp_path,
        f'[mqtt]\nhost = "{nats_broker.host}"\nport = {nats_broker.port}\n'
        f'client_id = "ingest-{uuid.uuid4().hex[:6]}"\nshare_group = "fleet"\n'
        "share_probe_timeout_s = 1\n"
        f'[web]\nport = {free_port()}\nsecret_key = "test-only"\n',
    )
    log = tmp_path / f"{command}.log"
    process = server_process(config, command, log=log)
    try:
        code = process.wait(30)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail(f"still running without shared subscriptions:\n{log.read_text()}")
    said = log.read_text()
    assert code == 2, said
    assert "Traceback" not in said
    errors = [line for line in said.splitlines() if NO_SHARE_LINE in line]
    assert len(errors) == 1 and errors[0].startswith("sitwatch-server: error: "), said
    assert "share_group = 'fleet'" in errors[0] and f":{nats_broker.port} " in errors[0]


def test_ingest_in_a_share_group_on_mosquitto_starts_and_stores(
    broker: Mosquitto, tmp_path: Path
) -> None:
    config = sqlite_config(
        tmp_path,
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'client_id = "ingest-{uuid.uuid4().hex[:6]}"\nshare_group = "g{uuid.uuid4().hex[:6]}"\n',
    )
    log = tmp_path / "ingest.log"
    process = server_process(config, "ingest", log=log)
    desk = f"desk-{uuid.uuid4().hex[:6]}"
    device = DevicePublisher(broker.host, broker.port, [desk])
    events = heartbeats(desk, 20)
    try:
        # Generous: a server process starts in seconds, slower on a loaded machine.
        assert wait_until(lambda: "delivers shared subscriptions" in log.read_text(), 60)
        device.publish(events)
        wait_until(
            lambda: device.acked >= {e.id for e in events}, 30, "the acks", detail=log.read_text
        )
    finally:
        device.close()
        assert stop(process) == 0, log.read_text()
    assert "0 rejected" in log.read_text()
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(EventRow)) == 20
    finally:
        engine.dispose()
