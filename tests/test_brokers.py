"""Brokers other than Mosquitto: a real desk process's Last Will and retained status on each
tested broker."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from e2e_support import running_server, server_config
from link_support import clear_retained
from server_helpers import wait_until
from sqlalchemy import Engine, select
from test_ingest import stored_ids

from sitwatch import protocol
from sitwatch.broker import BrokerProcess
from sitwatch.protocol import Status
from sitwatch.server.db import session_factory
from sitwatch.server.models import Device
from sitwatch.server.models import Event as EventRow


def retained_status(broker: BrokerProcess, device_id: str) -> tuple[Status, bool]:
    """What a newcomer subscribing to the desk's status topic is handed: (status, retained)."""
    seen: list[mqtt.MQTTMessage] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"late-{uuid.uuid4().hex}")
    client.on_message = lambda _c, _u, message: seen.append(message)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.subscribe(protocol.topic(device_id, protocol.STATUS), qos=1)
        assert wait_until(lambda: seen, 10), "no retained status"
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
                assert wait_until(lambda: desk_online(engine, device_id), 20), "never online"
                assert wait_until(lambda: stored_ids(engine) and queued(data) == 0, 20)
                assert retained_status(any_broker, device_id)[0].state == "online"
                assert desk_online(engine, device_id)
            finally:
                os.kill(desk.pid, signal.SIGKILL)
                desk.wait(10)
                desk.stdin.close()
            assert wait_until(lambda: desk_online(engine, device_id) is False, 20), "no Will"
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
