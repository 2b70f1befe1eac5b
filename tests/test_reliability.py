"""Reliability: network cuts, wall-clock jumps and a flood of hostile payloads, each with the
whole system running. Afterwards every valid event is in the database exactly once and
both processes still serve."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from e2e_support import CuttableProxy, running_server, server_config, stored_ids
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from support.desks import Desk
from support.waiting import wait_until

from sitwatch.broker import Mosquitto
from sitwatch.clock import FakeClock
from sitwatch.server.db import session_factory
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.models import SittingSession

MIN = 60.0


def assert_exactly_once(desk: Desk, engine) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: len(desk.service.outbox) == 0, 30, "every event acked")
    ids = stored_ids(engine)
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.id for e in desk.sent}


@pytest.mark.timeout(120)
def test_network_cut_mid_stream_loses_nothing(
    broker: Mosquitto,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    proxy = CuttableProxy(broker.port)
    config = server_config(tmp_path / "server.db", broker.port, "rel-cut")
    with running_server(config) as (engine, _worker):
        desk = Desk(mock_factory, tmp_path / "dev", proxy.port, FakeClock(), "desk-cut")
        try:
            assert wait_until(lambda: desk.service.link.is_connected, timeout=10)
            for _ in range(3):
                desk.sit(True)
                desk.live(10 * MIN)
                desk.sit(False)
                desk.live(3 * MIN)
            proxy.cut()  # the Wi-Fi drops while the user keeps working
            for _ in range(4):
                desk.sit(True)
                desk.live(35 * MIN)
                desk.press(0.3)
                desk.sit(False)
                desk.live(4 * MIN)
            assert len(desk.service.outbox) > 0
            proxy.mend()
            assert_exactly_once(desk, engine)
        finally:
            desk.close()
            proxy.close()


def working_hour(desk: Desk) -> None:
    """A stretch past the limit with a prompt and a re-prompt, a drill, a break."""
    desk.sit(True)
    desk.live(50 * MIN)
    desk.press(0.3)
    desk.sit(False)
    desk.live(4 * MIN)


@pytest.mark.timeout(120)
def test_ingest_worker_crashes_during_a_burst_and_a_new_one_takes_over(
    private_broker: Mosquitto,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The whole system: a desk, Mosquitto and the ingest worker on SQLite. The worker dies
    mid-burst (its queue dropped unstored, as in a crash) and a new one starts with the same
    client id. Every event is stored exactly once and both sides serve afterwards. (Broker
    outages, with the same worker throughout, are in test_outages.py.)"""
    from web_fixtures import make_app

    config = server_config(tmp_path / "server.db", private_broker.port, "rel-burst")
    with running_server(config) as (engine, worker):
        desk = Desk(mock_factory, tmp_path / "dev", private_broker.port, FakeClock(), "desk-b")
        try:
            assert wait_until(lambda: desk.service.link.is_connected, timeout=10)
            working_hour(desk)
            worker.stop(drain=False)  # the server dies with messages unstored
            working_hour(desk)
            restarted = IngestWorker(config, engine).start()  # same client id and session
            try:
                assert restarted.wait_ready(10)
                working_hour(desk)
                assert_exactly_once(desk, engine)
                assert {e.type.value for e in desk.sent} >= {"prompt", "drill_completed"}
                # Still serving: the desk's link is up and the dashboard answers.
                assert desk.service.link.is_connected
                assert make_app(engine).test_client().get("/healthz").status_code == 200
            finally:
                restarted.stop()
        finally:
            desk.close()


@pytest.mark.timeout(60)
def test_wall_clock_steps_do_not_change_durations(
    broker: Mosquitto,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    config = server_config(tmp_path / "server.db", broker.port, "rel-clock")
    clock = FakeClock()
    clock.synced = False  # a Pi without RTC boots with a stale clock
    with running_server(config) as (engine, _worker):
        desk = Desk(mock_factory, tmp_path / "dev", broker.port, clock, "desk-clock")
        try:
            desk.sit(True)
            desk.live(10 * MIN)
            clock.step_wall(-3 * 3600)  # NTP corrects backwards by hours ...
            desk.live(10 * MIN)
            clock.step_wall(+7 * 3600)  # ... then forwards
            clock.synced = True
            desk.live(5 * MIN)
            desk.sit(False)
            desk.live(3 * MIN)
            assert_exactly_once(desk, engine)
            with session_factory(engine)() as session:
                [sitting] = session.scalars(select(SittingSession)).all()
            assert sitting.duration_s == pytest.approx(25 * MIN, abs=1)
        finally:
            desk.close()


HOSTILE = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"v": st.just(1)},
        optional={
            "type": st.sampled_from(["seated", "stood_up", "prompt", "<script>", ""]),
            "id": st.text(max_size=70),
            "device_id": st.text(max_size=70),
            "boot_id": st.text(max_size=70),
            "mono": st.floats() | st.text(max_size=5),
            "ts": st.text(max_size=30) | st.just("2026-03-02T09:00:00Z"),
            "clock_synced": st.booleans() | st.integers(),
            "data": st.dictionaries(st.text(max_size=12), st.integers() | st.text(max_size=30)),
            "ids": st.lists(st.text(max_size=70), max_size=5),
            "settings": st.dictionaries(st.text(max_size=20), st.integers() | st.text(max_size=9)),
            "state": st.sampled_from(["online", "offline", "maybe"]),
        },
    ).map(lambda value: json.dumps(value).encode()),
)
LEAVES = ["event", "status", "ack", "config", "config/result", "seat", "today"]
FLOOD = 10_000


@pytest.mark.timeout(240)
def test_ten_thousand_hostile_payloads_on_every_topic(
    broker: Mosquitto,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    config = server_config(tmp_path / "server.db", broker.port, "rel-flood")
    with running_server(config) as (engine, worker):
        desk = Desk(mock_factory, tmp_path / "dev", broker.port, FakeClock(), "desk-flood")
        attacker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rel-attacker")
        attacker.connect(broker.host, broker.port)
        attacker.loop_start()
        sent = 0
        lock = threading.Lock()
        try:
            desk.sit(True)
            desk.live(31 * MIN)

            @settings(
                max_examples=FLOOD,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(
                payload=HOSTILE,
                leaf=st.sampled_from(LEAVES),
                device=st.sampled_from(["desk-flood", "desk-x", "a" * 64]),
            )
            def flood(payload: bytes, leaf: str, device: str) -> None:
                nonlocal sent
                attacker.publish(f"sitwatch/{device}/{leaf}", payload, qos=0)
                if leaf == "status" and device == "desk-flood":
                    attacker.publish("homeassistant/status", payload[:50], qos=0)
                with lock:
                    sent += 1

            flood()
            assert sent >= FLOOD * 0.9
            # Both sides still serve: the desk keeps reporting, the worker keeps storing.
            desk.sit(False)
            desk.live(3 * MIN)
            desk.sit(True)
            desk.live(5 * MIN)
            assert_exactly_once(desk, engine)
            assert worker.rejected > 0
            assert desk.agent.tracker.settings.sitting_limit_s == 30 * MIN  # nothing applied
        finally:
            attacker.loop_stop()
            attacker.disconnect()
            desk.close()
            # Clear retained junk from the shared broker for later tests.
            cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            cleaner.connect(broker.host, broker.port)
            for device in ("desk-flood", "desk-x", "a" * 64):
                for leaf in LEAVES:
                    cleaner.publish(f"sitwatch/{device}/{leaf}", b"", retain=True)
            cleaner.disconnect()


@pytest.mark.timeout(120)
def test_a_week_of_backlog_drains_on_the_first_send(broker: Mosquitto, tmp_path: Path) -> None:
    """Thousands of queued events leave the outbox on acks of up to MAX_ACK_IDS ids each,
    without waiting for a resend (an ack too large for the device was once refused)."""
    from support.events import make_event

    from sitwatch.clock import SystemClock
    from sitwatch.device.config import DeviceConfig, MqttConfig
    from sitwatch.device.link import MqttLink
    from sitwatch.device.outbox import Outbox
    from sitwatch.protocol import EventType

    outbox = Outbox(tmp_path / "outbox.db")
    events = [
        make_event(EventType.HEARTBEAT, device_id="desk-week", mono=300.0 * n, queued=n)
        for n in range(2400)
    ]
    for event in events:
        outbox.add(event)
    config = server_config(tmp_path / "server.db", broker.port, "rel-week")
    # Full batches (as in production), so the acks carry hundreds of ids each.
    mqtt_settings = config.mqtt.model_copy(update={"batch_wait_s": 0.5, "batch_size": 1000})
    config = config.model_copy(update={"mqtt": mqtt_settings})
    with running_server(config) as (engine, worker):
        mqtt = MqttConfig(port=broker.port, heartbeat_s=0, resend_after_s=3600)
        desk = DeviceConfig(device_id="desk-week", data_dir=str(tmp_path), mqtt=mqtt)
        link = MqttLink(desk, "boot-week-1", outbox, SystemClock())
        link.start()
        try:
            wait_until(
                lambda: len(outbox) == 0,
                60,
                "the outbox to drain",
                detail=lambda: f"{len(outbox)} left",
            )
        finally:
            link.stop()
            outbox.close()
        assert worker.duplicates == 0  # nothing was sent twice
        assert sorted(stored_ids(engine)) == sorted(e.id for e in events)


@pytest.mark.timeout(120)
def test_device_agent_killed_mid_outbox_and_restarted(broker: Mosquitto, tmp_path: Path) -> None:
    """The real ``sitwatch-device`` process (simulated pins, a scripted day at 600x) is
    SIGKILLed while the server is away and its outbox holds unacknowledged events, then
    started again on the same data directory. The outbox numbers every event it records
    (``seq``), so the stored events must be exactly 1..N: none lost, none twice."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    from contextlib import closing

    from sqlalchemy import func

    from sitwatch.server.models import Event as StoredEvent

    data = tmp_path / "desk"
    command = [
        str(Path(sys.executable).with_name("sitwatch-device")),
        "--simulate",
        "--scripted",
        "--speed",
        "600",
        "--data-dir",
        str(data),
        "--device-id",
        "desk-kill",
        "--mqtt-port",
        str(broker.port),
        "--log-level",
        "WARNING",
    ]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def queued() -> int:
        try:
            with closing(sqlite3.connect(data / "outbox.db")) as outbox:
                return outbox.execute("select count(*) from events").fetchone()[0]
        except sqlite3.Error:
            return 0

    config = server_config(tmp_path / "server.db", broker.port, "rel-kill")
    with running_server(config) as (engine, worker):
        desk = start()
        try:

            def stored() -> int:
                with session_factory(engine)() as session:
                    return session.scalar(select(func.count()).select_from(StoredEvent)) or 0

            wait_until(lambda: stored() >= 10, 30, "events from the desk")
            worker.stop()  # the server goes away; the desk keeps recording
            wait_until(lambda: queued() >= 10, 30, "queued events")
        finally:
            os.kill(desk.pid, signal.SIGKILL)
            desk.wait(10)
        left = queued()
        assert left >= 10
        restarted_worker = IngestWorker(config, engine).start()
        desk = start()
        try:
            assert restarted_worker.wait_ready(10)
            wait_until(
                lambda: stored() > 0 and queued() == 0,
                60,
                "the queue to drain",
                detail=lambda: f"{queued()} still queued",
            )
        finally:
            desk.send_signal(signal.SIGTERM)
            desk.wait(15)
            restarted_worker.stop()
        with session_factory(engine)() as session:
            stored_seqs = list(session.scalars(select(StoredEvent.seq)))
            boots = set(session.scalars(select(StoredEvent.boot_id)))
        # The scripted day went on until the stop: what it recorded last may still wait in
        # the outbox (for the next start). Stored and waiting together are every number
        # from 1 up, each exactly once.
        with closing(sqlite3.connect(data / "outbox.db")) as outbox:
            waiting = [row[0] for row in outbox.execute("select seq from events")]
        everything = sorted(stored_seqs + waiting)
        assert everything == list(range(1, len(everything) + 1))
        assert len(stored_seqs) > left
        assert len(boots) == 2  # from before the kill and after the restart
