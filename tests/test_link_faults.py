"""Faults: the broker stops, is killed, or is not there at start; the device process dies
with events unacknowledged. Every event still reaches the server, in seq order, exactly
once after de-duplication by id."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from link_support import FakeServer, make_event, wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port
from sitwatch.clock import SystemClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.protocol import EventType

pytestmark = [pytest.mark.timeout(40), pytest.mark.slow]

BOOT = "boot0000aaaa"
TESTS = Path(__file__).parent


class Desk:
    def __init__(self, host: str, port: int, path: Path, device_id: str) -> None:
        self.device_id = device_id
        self.outbox = Outbox(path / "outbox.db")
        mqtt = MqttConfig(host=host, port=port, heartbeat_s=0, resend_after_s=1)
        config = DeviceConfig(device_id=device_id, data_dir=str(path), mqtt=mqtt)
        self.link = MqttLink(config, BOOT, self.outbox, SystemClock())
        self.ids: list[str] = []

    def add(self, count: int = 1, pause_s: float = 0.0) -> None:
        for _ in range(count):
            event = make_event(EventType.STOOD_UP, device_id=self.device_id)
            self.ids.append(self.outbox.add(event).id)
            self.link.notify()
            if pause_s:
                time.sleep(pause_s)

    def close(self) -> None:
        self.link.stop()
        self.outbox.close()


@pytest.fixture
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Like conftest's private broker, with persistence that saves (sitwatch.broker)."""
    broker = Mosquitto(workdir=str(tmp_path_factory.mktemp("mosquitto-faults")))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def desk(private_broker: Mosquitto, tmp_path: Path) -> Iterator[Desk]:
    made = Desk(private_broker.host, private_broker.port, tmp_path, f"desk-{uuid.uuid4().hex[:8]}")
    yield made
    made.close()


@pytest.fixture
def server(private_broker: Mosquitto) -> Iterator[FakeServer]:
    fake = FakeServer(private_broker.host, private_broker.port)
    yield fake
    fake.close()


def assert_all_delivered(server: FakeServer, ids: list[str]) -> None:
    """Every id arrived (duplicates allowed), nothing else did, and seq orders them as added."""
    first = {}
    for event in server.events():
        first.setdefault(event.id, event)
    assert set(first) == set(ids)
    by_seq = sorted(first.values(), key=lambda event: event.seq)  # type: ignore[arg-type,return-value]
    assert [event.id for event in by_seq] == ids


def stream_while(desk: Desk, action: threading.Event, count: int) -> threading.Thread:
    """Adds ``count`` events, 10 ms apart, in the background (the agent keeps recording)."""

    def run() -> None:
        desk.add(count // 2, pause_s=0.01)
        action.set()
        desk.add(count - count // 2, pause_s=0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
def test_broker_stopped_mid_stream_and_restarted(
    private_broker: Mosquitto, desk: Desk, server: FakeServer, how: str
) -> None:
    desk.link.start()
    wait_until(lambda: desk.link.is_connected, 10, "link to connect")
    halfway = threading.Event()
    producer = stream_while(desk, halfway, 100)
    halfway.wait(10)
    if how == "graceful":
        private_broker.stop()
        assert (private_broker.workdir / "mosquitto.db").exists()  # sessions were saved
    else:
        private_broker.kill()
    wait_until(lambda: not desk.link.is_connected, 10, "link to notice")
    recorded = len(desk.ids)  # the broker stays away while events keep coming
    wait_until(lambda: len(desk.ids) >= min(recorded + 10, 100), 10, "events during the outage")
    private_broker.start()
    producer.join(10)

    wait_until(lambda: len(desk.outbox) == 0, 20, "outbox to drain after the restart")
    assert len(desk.ids) == 100
    assert_all_delivered(server, desk.ids)


def test_start_without_a_broker_buffers_then_drains_when_one_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    desk = Desk("127.0.0.1", port, tmp_path, "desk-nobroker")
    broker = Mosquitto(port=port, workdir=str(tmp_path / "broker"))
    (tmp_path / "broker").mkdir()
    try:
        with caplog.at_level(logging.INFO, logger="sitwatch.device.link"):
            started = time.monotonic()
            desk.link.start()
            assert time.monotonic() - started < 1  # returns at once, no exception
            desk.add(10)
            wait_until(lambda: "broker unreachable" in caplog.text, 5, "the log line")
        assert f"broker unreachable at 127.0.0.1:{port}, buffering events" in caplog.text
        assert not desk.link.is_connected and len(desk.outbox) == 10

        broker.start()
        server = FakeServer(broker.host, broker.port)
        try:
            wait_until(lambda: len(desk.outbox) == 0, 15, "buffered events to drain")
            assert_all_delivered(server, desk.ids)
        finally:
            server.close()
    finally:
        desk.close()
        broker.kill()


CRASHING_DEVICE = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from link_support import make_event
from sitwatch.clock import SystemClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.protocol import EventType

outbox = Outbox(Path({db!r}))
mqtt = MqttConfig(host="127.0.0.1", port={port}, heartbeat_s=0, resend_after_s=1)
config = DeviceConfig(device_id={device!r}, mqtt=mqtt)
link = MqttLink(config, "bootcrash0001", outbox, SystemClock())
link.start()
for _ in range({count}):
    event = outbox.add(make_event(EventType.PROMPT, device_id={device!r}, boot_id="bootcrash0001"))
    print(event.id, flush=True)
    link.notify()
time.sleep(60)  # until SIGKILLed: no stop(), no close()
"""


def test_device_killed_with_events_unacknowledged_resends_them_after_restart(
    private_broker: Mosquitto, server: FakeServer, tmp_path: Path
) -> None:
    device_id = "desk-crash"
    db = tmp_path / "outbox.db"
    server.acking = False  # the server is slow: nothing confirmed before the crash
    script = CRASHING_DEVICE.format(
        tests=str(TESTS), db=str(db), port=private_broker.port, device=device_id, count=20
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert process.stdout is not None
        ids = [process.stdout.readline().strip() for _ in range(20)]
        wait_until(lambda: len(server.unique_ids()) >= 10, 15, "some events published")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    status = protocol.topic(device_id, protocol.STATUS)
    wait_until(
        lambda: any(
            protocol.parse_status(p).detail == "connection lost" for p, _ in server.messages(status)
        ),
        10,
        "the Last Will",
    )

    # Recorded but never published: the agent wrote them just before the crash.
    with Outbox(db) as outbox:
        assert len(outbox) == 20
        ids += [
            outbox.add(make_event(device_id=device_id, boot_id="bootcrash0001")).id
            for _ in range(5)
        ]

    server.acking = True
    restarted = Desk(private_broker.host, private_broker.port, tmp_path, device_id)
    try:
        restarted.link.start()
        wait_until(lambda: len(restarted.outbox) == 0, 15, "replay after the restart")
    finally:
        restarted.close()
    assert_all_delivered(server, ids)
    assert len(server.events()) > len(ids)  # duplicates happened, and de-dup by id handles them

    def last_status() -> protocol.Status:
        return protocol.parse_status(server.messages(status)[-1][0])

    # The goodbye is published on stop; the server's subscriber may see it a moment later.
    wait_until(lambda: last_status().detail == "stopped", 10, "the goodbye status")
    assert last_status().state == "offline"


@pytest.mark.parametrize("outage", ["broker stopped", "no broker at start"])
def test_an_outage_is_one_warning_not_an_error_per_reconnect_attempt(
    private_broker: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    outage: str,
) -> None:
    """paho logged "Client is not connected" at ERROR on every reconnect attempt (every 30 s
    on a Pi, for as long as the broker was away); sitwatch's own warning says it once."""
    from sitwatch import mqtt as mqtt_module

    monkeypatch.setattr(mqtt_module, "RECONNECT_MIN_S", 0.02)  # many attempts, quickly
    monkeypatch.setattr(mqtt_module, "RECONNECT_MAX_S", 0.1)
    port = private_broker.port if outage == "broker stopped" else free_port()
    desk = Desk(private_broker.host, port, tmp_path, "desk-outage")
    caplog.set_level(logging.DEBUG)
    try:
        desk.link.start()
        if outage == "broker stopped":
            wait_until(lambda: desk.link.is_connected, 10, "link to connect")
            private_broker.stop()
        desk.add(3)

        def attempts() -> int:
            return sum("still unreachable" in r.getMessage() for r in caplog.records)

        wait_until(lambda: attempts() >= 5, 10, "five failed reconnect attempts")
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage().split(" at ")[0] for r in loud] == [
            "lost the MQTT broker" if outage == "broker stopped" else "broker unreachable"
        ], [f"{r.levelname} {r.name}: {r.getMessage()}" for r in loud]
    finally:
        desk.close()
