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
from link_support import FakeServer
from support.desks import LinkDesk
from support.events import make_event
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port
from sitwatch.device.outbox import Outbox
from sitwatch.protocol import EventType

pytestmark = [pytest.mark.timeout(40), pytest.mark.slow]

TESTS = Path(__file__).parent


def stand_ups(desk: LinkDesk, count: int, every_s: float = 0.0) -> None:
    """``count`` stand-ups recorded as the agent would, ``every_s`` apart."""
    for _ in range(count):
        desk.add(EventType.STOOD_UP)
        if every_s:
            time.sleep(every_s)


@pytest.fixture
def desk(private_broker: Mosquitto, tmp_path: Path) -> Iterator[LinkDesk]:
    made = LinkDesk(
        private_broker.host, private_broker.port, tmp_path, f"desk-{uuid.uuid4().hex[:8]}"
    )
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


def stream_while(desk: LinkDesk, action: threading.Event, count: int) -> threading.Thread:
    """Adds ``count`` events, 10 ms apart, in the background (the agent keeps recording)."""

    def run() -> None:
        stand_ups(desk, count // 2, every_s=0.01)
        action.set()
        stand_ups(desk, count - count // 2, every_s=0.01)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["graceful", "sigkill"])
def test_broker_stopped_mid_stream_and_restarted(
    private_broker: Mosquitto, desk: LinkDesk, server: FakeServer, how: str
) -> None:
    desk.start()
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
    desk = LinkDesk("127.0.0.1", port, tmp_path, "desk-nobroker")
    broker = Mosquitto(port=port, workdir=str(tmp_path / "broker"))
    (tmp_path / "broker").mkdir()
    try:
        with caplog.at_level(logging.INFO, logger="sitwatch.device.link"):
            started = time.monotonic()
            desk.start()
            assert time.monotonic() - started < 1  # returns at once, no exception
            stand_ups(desk, 10)
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
from support.events import make_event
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
    db = tmp_path / f"{device_id}.db"  # where LinkDesk keeps its outbox
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
    restarted = LinkDesk(private_broker.host, private_broker.port, tmp_path, device_id)
    try:
        restarted.start()
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
    desk = LinkDesk(private_broker.host, port, tmp_path, "desk-outage")
    caplog.set_level(logging.DEBUG)
    try:
        desk.start()
        if outage == "broker stopped":
            wait_until(lambda: desk.link.is_connected, 10, "link to connect")
            private_broker.stop()
        stand_ups(desk, 3)

        def attempts() -> int:
            return sum("still unreachable" in r.getMessage() for r in caplog.records)

        wait_until(lambda: attempts() >= 5, 10, "five failed reconnect attempts")
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage().split(" at ")[0] for r in loud] == [
            "lost the MQTT broker" if outage == "broker stopped" else "broker unreachable"
        ], [f"{r.levelname} {r.name}: {r.getMessage()}" for r in loud]
    finally:
        desk.close()
