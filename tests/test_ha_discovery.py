"""Home Assistant discovery: configs HA accepts, published retained by the link when opted in,
and re-sent when Home Assistant restarts."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from link_support import FakeServer, clear_retained, wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.clock import SystemClock
from sitwatch.device.config import MqttConfig
from sitwatch.device.ha_discovery import HA_STATUS_TOPIC, discovery_messages, object_id
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox

pytestmark = pytest.mark.timeout(30)
HA_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def test_configs_for_seat_minutes_and_drills() -> None:
    messages = {m.topic: json.loads(m.payload) for m in discovery_messages("desk-1", "Desk one")}

    assert set(messages) == {
        "homeassistant/binary_sensor/sitwatch_desk-1_seat/config",
        "homeassistant/sensor/sitwatch_desk-1_seated_today/config",
        "homeassistant/sensor/sitwatch_desk-1_drills_today/config",
    }
    seat = messages["homeassistant/binary_sensor/sitwatch_desk-1_seat/config"]
    assert seat["device_class"] == "occupancy"
    assert seat["state_topic"] == "sitwatch/desk-1/seat"
    assert (seat["payload_on"], seat["payload_off"]) == ("ON", "OFF")
    minutes = messages["homeassistant/sensor/sitwatch_desk-1_seated_today/config"]
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


@pytest.fixture
def ha_link(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[MqttLink, str]]:
    device_id = f"desk-{uuid.uuid4().hex[:10]}"
    outbox = Outbox(tmp_path / "outbox.db")
    config = MqttConfig(host=broker.host, port=broker.port, heartbeat_s=0, ha_discovery=True)
    link = MqttLink(
        config,
        device_id,
        "boot0000aaaa",
        outbox,
        SystemClock(),
        settings_path=tmp_path / "settings.json",
        on_settings=lambda s: None,
        device_name="Desk",
    )
    yield link, device_id
    link.stop()
    outbox.close()
    clear_retained(
        broker.host, broker.port, device_id, tuple(m.topic for m in discovery_messages(device_id))
    )


def test_the_link_publishes_discovery_and_resends_it_when_home_assistant_restarts(
    broker: Mosquitto, ha_link: tuple[MqttLink, str]
) -> None:
    link, device_id = ha_link
    home_assistant = FakeServer(broker.host, broker.port)
    try:
        link.start()
        link.publish_seat(False)
        seat_config = f"homeassistant/binary_sensor/{object_id(device_id, 'seat')}/config"
        wait_until(lambda: home_assistant.messages(seat_config), 10, "discovery config")
        assert len(home_assistant.messages(seat_config)) == 1

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
    link = MqttLink(
        MqttConfig(host=broker.host, port=broker.port, heartbeat_s=0),
        device_id,
        "boot0000aaaa",
        outbox,
        SystemClock(),
        settings_path=tmp_path / "s.json",
        on_settings=lambda s: None,
    )
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
