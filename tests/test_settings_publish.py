"""Settings saved on the dashboard reach the device's retained config topic on a real
Mosquitto, and a broker that cannot be reached is reported, not hidden."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import (
    csrf_from,
    login,
    make_app,
    seeded_engine,
)

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port
from sitwatch.server.config import BrokerConfig
from sitwatch.server.models import Device
from sitwatch.server.web.publish import PublishError, publish_settings
from sitwatch.settings import TrackerSettings


def read_retained(broker: Mosquitto, topic: str, timeout_s: float = 5.0) -> bytes:
    """Subscribe afresh, as a device booting later would, and return the retained payload."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")

    def when_connected(c, _u, _f, reason_code, _p):  # type: ignore[no-untyped-def]
        assert not reason_code.is_failure
        c.subscribe(topic, qos=1)

    client.on_connect = when_connected
    client.on_message = lambda _c, _u, message: received.put(message)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        message = received.get(timeout=timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    assert message.retain, "config must be retained"
    return message.payload


@pytest.fixture
def three_desks(tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine("sqlite", tmp_path, with_user=True) as engine:
        yield engine


def _client(engine: Engine, port: int) -> FlaskClient:
    app = make_app(engine, mqtt_port=port, SITWATCH_PUBLISH_TIMEOUT_S=2.0)
    client = app.test_client()
    assert login(client).status_code == 302
    return client


def _form(client: FlaskClient) -> dict[str, str]:
    token = csrf_from(client.get("/devices/desk-a/settings").get_data(as_text=True))
    return {
        "csrf_token": token,
        "sitting_limit_s": "2400",
        "grace_s": "45",
        "break_s": "180",
        "reprompt_s": "600",
        "max_level": "4",
        "snooze_s": "300",
        "max_snoozes": "1",
        "drill_step_s": "20",
        "press_ignore_s": "1.5",
        "timezone": "Europe/Berlin",
        "quiet_start": "21:30",
        "quiet_end": "06:45",
        # quiet_enabled unticked: quiet hours off
    }


def test_valid_settings_are_published_retained_and_stored(
    broker: Mosquitto, three_desks: Engine
) -> None:
    client = _client(three_desks, broker.port)
    response = client.post("/devices/desk-a/settings", data=_form(client))
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Settings saved and sent to the broker; the desk&#39;s answer shows below." in page
    assert "Settings sent, not yet confirmed by the desk." in page  # no desk answers here
    assert 'name="sitting_limit_s" type="text" value="2400"' in page

    payload = read_retained(broker, "sitwatch/desk-a/config")
    sent = TrackerSettings.parse(protocol.parse_config(payload).settings)
    assert sent.sitting_limit_s == 2400 and sent.press_ignore_s == 1.5
    assert sent.timezone == "Europe/Berlin" and sent.quiet_hours is None
    with Session(three_desks) as session:
        assert session.get(Device, "desk-a").settings == json.loads(payload)["settings"]


def test_unreachable_broker_is_a_clear_error_and_nothing_is_stored(three_desks: Engine) -> None:
    client = _client(three_desks, free_port())  # nobody listens there
    response = client.post("/devices/desk-a/settings", data=_form(client))
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "Settings not saved: cannot reach the MQTT broker 127.0.0.1:" in body
    assert 'value="2400"' in body  # the user's input is still in the form
    with Session(three_desks) as session:
        assert session.get(Device, "desk-a").settings is None


def test_publish_settings_directly(broker: Mosquitto) -> None:
    config = BrokerConfig(host=broker.host, port=broker.port)
    settings = TrackerSettings(sitting_limit_s=900)
    publish_settings(config, "desk-z", settings, timeout_s=3)
    sent = protocol.parse_config(read_retained(broker, "sitwatch/desk-z/config"))
    assert sent.settings == settings.model_dump(mode="json")
    assert sent.id == protocol.config_id(sent.settings)
    with pytest.raises(PublishError, match="bad device id"):
        publish_settings(config, "bad/id", settings)
