"""Home Assistant discovery: configs HA accepts, published retained by the link when opted in,
and re-sent when Home Assistant restarts."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from link_support import FakeServer, clear_retained
from support.desks import Desk
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.clock import FakeClock, SystemClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.device.ha_discovery import (
    HA_STATUS_TOPIC,
    birth_topic,
    discovery_messages,
    object_id,
)
from sitwatch.device.link import HA_RESEND_MIN_S, MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.settings import TrackerSettings

pytestmark = pytest.mark.timeout(30)
HA_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def test_configs_for_seat_minutes_and_drills() -> None:
    messages = {m.topic: json.loads(m.payload) for m in discovery_messages("desk-1", "Desk one")}

    assert set(messages) == {
        "homeassistant/binary_sensor/desk-1/sitwatch_desk-1_seat/config",
        "homeassistant/sensor/desk-1/sitwatch_desk-1_seated_today/config",
        "homeassistant/sensor/desk-1/sitwatch_desk-1_drills_today/config",
    }
    seat = messages["homeassistant/binary_sensor/desk-1/sitwatch_desk-1_seat/config"]
    assert seat["device_class"] == "occupancy"
    assert seat["state_topic"] == "sitwatch/desk-1/seat"
    assert (seat["payload_on"], seat["payload_off"]) == ("ON", "OFF")
    minutes = messages["homeassistant/sensor/desk-1/sitwatch_desk-1_seated_today/config"]
    assert minutes["state_topic"] == "sitwatch/desk-1/today"
    assert minutes["unit_of_measurement"] == "min"
    assert "seated_min" in minutes["value_template"]
    for body in messages.values():
        assert HA_ID.match(body["unique_id"])
        assert body["availability_topic"] == "sitwatch/desk-1/status"
        assert body["availability_template"] == "{{ value_json.state }}"
        assert body["payload_available"] == "online"
        assert body["device"]["identifiers"] == ["sitwatch_desk-1_device"]
        assert body["device"]["name"] == "Desk one"
    assert all(m.retain and m.qos == 1 for m in discovery_messages("desk-1"))


def test_availability_template_matches_the_status_payloads() -> None:
    # HA compares the template's result with payload_available/not_available: the JSON
    # status the link and its Last Will publish must carry exactly those words.
    for state in ("online", "offline"):
        payload = protocol.Status(state=state, boot_id="b" * 12).to_json()
        assert json.loads(payload)["state"] == state


def test_ids_stay_in_the_allowed_alphabet_whatever_the_prefix() -> None:
    assert object_id("Desk_9-x", "seat") == "sitwatch_Desk_9-x_seat"
    assert HA_ID.match(object_id("a.b c", "seat"))
    hostile = discovery_messages("desk-2", device_name='"}<script>alert(1)</script>', prefix="ha")
    assert all(m.topic.startswith("ha/") for m in hostile)
    assert json.loads(hostile[0].payload)["device"]["name"] == '"}<script>alert(1)</script>'


def make_ha_link(
    broker: Mosquitto, tmp_path: Path, clock: FakeClock, prefix: str = "homeassistant"
) -> tuple[MqttLink, Outbox, str]:
    device_id = f"desk-{uuid.uuid4().hex[:10]}"
    outbox = Outbox(tmp_path / "outbox.db")
    mqtt = MqttConfig(
        host=broker.host, port=broker.port, heartbeat_s=0, ha_discovery=True, ha_prefix=prefix
    )
    config = DeviceConfig(device_id=device_id, name="Desk", data_dir=str(tmp_path), mqtt=mqtt)
    link = MqttLink(config, "boot0000aaaa", outbox, clock)
    return link, outbox, device_id


@pytest.fixture
def ha_link(broker: Mosquitto, tmp_path: Path, clock: FakeClock) -> Iterator[tuple[MqttLink, str]]:
    link, outbox, device_id = make_ha_link(broker, tmp_path, clock)
    yield link, device_id
    link.stop()
    outbox.close()
    clear_retained(
        broker.host, broker.port, device_id, tuple(m.topic for m in discovery_messages(device_id))
    )


def test_the_link_publishes_discovery_and_resends_it_when_home_assistant_restarts(
    broker: Mosquitto, ha_link: tuple[MqttLink, str], clock: FakeClock
) -> None:
    link, device_id = ha_link
    home_assistant = FakeServer(broker.host, broker.port)
    try:
        link.start()
        link.publish_seat(False)
        seat_config = f"homeassistant/binary_sensor/{device_id}/sitwatch_{device_id}_seat/config"
        wait_until(lambda: home_assistant.messages(seat_config), 10, "discovery config")
        assert len(home_assistant.messages(seat_config)) == 1

        clock.advance(HA_RESEND_MIN_S)
        home_assistant.publish(HA_STATUS_TOPIC, "online")
        wait_until(lambda: len(home_assistant.messages(seat_config)) == 2, 10, "re-sent config")
        seat = protocol.topic(device_id, protocol.SEAT)
        wait_until(lambda: len(home_assistant.messages(seat)) == 2, 10, "re-sent seat state")
        assert home_assistant.messages(seat)[-1][0] == b"OFF"
    finally:
        home_assistant.close()
    late = FakeServer(broker.host, broker.port)  # retained: a restarted HA finds them too
    try:
        wait_until(lambda: late.messages(seat_config), 10, "retained config")
        assert late.messages(seat_config)[0][1]
    finally:
        late.close()


def test_no_discovery_unless_opted_in(broker: Mosquitto, tmp_path: Path) -> None:
    device_id = f"desk-{uuid.uuid4().hex[:10]}"
    watcher = FakeServer(broker.host, broker.port)
    outbox = Outbox(tmp_path / "outbox.db")
    mqtt = MqttConfig(host=broker.host, port=broker.port, heartbeat_s=0)
    config = DeviceConfig(device_id=device_id, data_dir=str(tmp_path), mqtt=mqtt)
    link = MqttLink(config, "boot0000aaaa", outbox, SystemClock())
    try:
        link.start()
        status = protocol.topic(device_id, protocol.STATUS)
        wait_until(lambda: watcher.messages(status), 10, "online status")
        assert not any(
            device_id in topic for topic, _, _ in watcher.raw if topic.startswith("homeassistant/")
        )
    finally:
        link.stop()
        outbox.close()
        watcher.close()
        clear_retained(broker.host, broker.port, device_id)


# --- Home Assistant's birth message under any prefix, only when it means it ----------------


class Watcher:
    """Records what arrives on some topic filters (FakeServer watches homeassistant/# only)."""

    def __init__(self, broker: Mosquitto, *filters: str) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.on_message = self._record
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        ready = f"watcher/{uuid.uuid4().hex}"
        self._client.subscribe([(f, 1) for f in (*filters, ready)])
        # The broker handles the SUBSCRIBE before a later PUBLISH from the same client.
        self.publish(ready, "1")
        wait_until(lambda: self.count(ready), 10, "watcher subscribed")

    def _record(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((message.topic, bytes(message.payload)))

    def count(self, topic: str) -> int:
        return len(self.payloads(topic))

    def payloads(self, topic: str, since: int = 0) -> list[bytes]:
        """What came on ``topic`` after the first ``since`` messages seen."""
        with self._lock:
            return [payload for name, payload in self.seen[since:] if name == topic]

    def mark(self) -> int:
        with self._lock:
            return len(self.seen)

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class QuietDesk:
    """A desk that takes whatever the link tells it: a link serving one answers configs."""

    def post_settings(self, settings: TrackerSettings) -> None:
        pass

    def post_online(self, online: bool) -> None:
        pass

    def post_pause(self, pause_s: float) -> None:
        pass

    def post_resume(self, issued_ago_s: float) -> None:
        pass


def handled_so_far(watcher: Watcher, device_id: str) -> None:
    """Wait until the link has handled every message sent to it before: it handles them in
    order, and answers a config on its config/result topic."""
    result = protocol.topic(device_id, protocol.CONFIG_RESULT)
    before = watcher.count(result)
    watcher.publish(protocol.topic(device_id, protocol.CONFIG), protocol.config_payload({}))
    wait_until(lambda: watcher.count(result) > before, 10, "the link's config result")


@pytest.fixture
def prefixed(
    broker: Mosquitto, tmp_path: Path, clock: FakeClock
) -> Iterator[tuple[MqttLink, str, str, Watcher]]:
    """A link with discovery under its own prefix, and a watcher of that prefix."""
    prefix = f"ha-{uuid.uuid4().hex[:8]}"
    link, outbox, device_id = make_ha_link(broker, tmp_path, clock, prefix)
    watcher = Watcher(broker, f"{prefix}/#", f"sitwatch/{device_id}/#")
    yield link, device_id, prefix, watcher
    link.stop()
    outbox.close()
    watcher.close()
    topics = tuple(m.topic for m in discovery_messages(device_id, prefix=prefix))
    clear_retained(broker.host, broker.port, device_id, (*topics, birth_topic(prefix)))


def seat_config(device_id: str, prefix: str) -> str:
    return f"{prefix}/binary_sensor/{device_id}/{object_id(device_id, 'seat')}/config"


def test_the_birth_message_is_read_under_the_configured_prefix(
    prefixed: tuple[MqttLink, str, str, Watcher], clock: FakeClock
) -> None:
    link, device_id, prefix, watcher = prefixed
    link.start(QuietDesk())
    config = seat_config(device_id, prefix)
    wait_until(lambda: watcher.count(config) == 1, 10, "discovery under the prefix")

    clock.advance(HA_RESEND_MIN_S)
    watcher.publish(HA_STATUS_TOPIC, "online")  # another Home Assistant's prefix
    handled_so_far(watcher, device_id)
    assert watcher.count(config) == 1

    watcher.publish(birth_topic(prefix), "online")
    wait_until(lambda: watcher.count(config) == 2, 10, "discovery re-sent")


def test_only_a_fresh_online_re_sends_discovery_and_at_most_every_few_seconds(
    prefixed: tuple[MqttLink, str, str, Watcher], clock: FakeClock
) -> None:
    link, device_id, prefix, watcher = prefixed
    birth = birth_topic(prefix)
    # A birth kept by the broker arrives on subscribing: the connection sent all anyway.
    watcher.publish(birth, "online", retain=True)
    link.start(QuietDesk())
    config = seat_config(device_id, prefix)
    wait_until(lambda: watcher.count(config) == 1, 10, "discovery on connect")
    watcher.publish(birth, b"", retain=True)

    clock.advance(HA_RESEND_MIN_S)
    for payload in (b"offline", b"\xff\xfe garbage", b"onlinex", b""):
        watcher.publish(birth, payload)
    handled_so_far(watcher, device_id)
    assert watcher.count(config) == 1

    # Any client may say "online": a burst costs one re-send.
    for _ in range(5):
        watcher.publish(birth, b"online\n")
    handled_so_far(watcher, device_id)
    assert watcher.count(config) == 2

    clock.advance(HA_RESEND_MIN_S)
    watcher.publish(birth, "online")
    wait_until(lambda: watcher.count(config) == 3, 10, "discovery re-sent again")


# --- today's figures: kept across a restart, published on connect -----------------------------


def test_today_survives_an_agent_restart_and_is_published_on_connect(
    broker: Mosquitto,
    mock_factory: object,
    tmp_path: Path,
) -> None:
    device_id = f"desk-{uuid.uuid4().hex[:10]}"
    today = protocol.topic(device_id, protocol.TODAY)
    watcher = Watcher(broker, today)

    def figures_since(mark: int) -> list[dict[str, object]]:
        # The empty payloads clearing the retained topic left out.
        return [json.loads(p) for p in watcher.payloads(today, since=mark) if p]

    clock = FakeClock()
    desk = Desk(mock_factory, tmp_path / "device", broker.port, clock, device_id=device_id)
    try:
        # On connect, before anything happened: nothing sat today yet.
        wait_until(lambda: figures_since(0), 10, "today's figures on connect")
        assert figures_since(0)[0] == {"v": 1, "seated_min": 0.0, "drills": 0}
        desk.sit(True)
        desk.live(10 * 60)
        desk.sit(False)
        desk.live(3 * 60)  # stood up after 10 min, then off the seat for a circuit's length
        desk.press(0.3)  # a drill logged with the button: it counts
        done = {"v": 1, "seated_min": 10.0, "drills": 1}
        wait_until(lambda: figures_since(0)[-1] == done, 10, "today's figures")
    finally:
        desk.close()
    clear_retained(broker.host, broker.port, device_id)

    seen = watcher.mark()
    later = FakeClock(wall_time=clock.wall() + timedelta(minutes=5))
    desk = Desk(mock_factory, tmp_path / "device", broker.port, later, device_id=device_id)
    try:
        wait_until(lambda: figures_since(seen), 10, "today's figures after the restart")
        assert figures_since(seen) == [done]
    finally:
        desk.close()
        watcher.close()
        clear_retained(broker.host, broker.port, device_id)
