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
    login,
    make_app,
    seeded_engine,
    settings_form,
    shown_settings,
)

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port
from sitwatch.server.config import BrokerConfig
from sitwatch.server.models import Device
from sitwatch.server.web.publish import PublishError, publish_settings
from sitwatch.settings import ActiveHours, QuietHours, TrackerSettings


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
    """The form as a person changes it: minutes where the page says minutes."""
    return settings_form(
        client,
        "desk-a",
        sitting_limit_min="40",
        grace_s="45",
        break_min="3",
        reprompt_min="10",
        max_level="2",
        snooze_min="2.5",
        max_snoozes="1",
        drill_step_s="20",
        press_ignore_s="1.5",
        timezone="Europe/Berlin",
        work_mon_start="08:30",
        work_mon_end="17:00",
        work_fri_mode="off",
        work_sat_mode="all_day",
        quiet_start="21:30",
        quiet_end="06:45",
        quiet_enabled=None,  # unticked: quiet hours off
    )


def test_valid_settings_are_published_retained_and_stored(
    broker: Mosquitto, three_desks: Engine
) -> None:
    client = _client(three_desks, broker.port)
    response = client.post("/devices/desk-a/settings", data=_form(client))
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Settings saved and sent to the broker; the desk&#39;s answer shows below." in page
    save_row = page.split('<div class="save-row">', 1)[1].split("</div>", 1)[0]
    assert 'id="save"' in save_row  # the desk's answer sits next to the save button
    assert "Settings sent, not yet confirmed by the desk." in save_row  # no desk answers here

    payload = read_retained(broker, "sitwatch/desk-a/config")
    sent = TrackerSettings.parse(protocol.parse_config(payload).settings)
    assert (sent.sitting_limit_s, sent.break_s, sent.reprompt_s, sent.snooze_s) == (
        2400,
        180,
        600,
        150,
    )
    assert (sent.grace_s, sent.press_ignore_s, sent.drill_step_s) == (45, 1.5, 20)
    assert (sent.max_level, sent.max_snoozes) == (2, 1)
    assert sent.timezone == "Europe/Berlin" and sent.quiet_hours is None
    assert sent.active_hours == ActiveHours(mon="08:30-17:00", fri="", sat="00:00-24:00", sun="")
    with Session(three_desks) as session:
        assert session.get(Device, "desk-a").settings == json.loads(payload)["settings"]

    shown = shown_settings(page)  # and shown again as they were typed
    assert (shown["sitting_limit_min"], shown["break_min"], shown["snooze_min"]) == (
        "40",
        "3",
        "2.5",
    )
    assert (shown["work_mon-start"], shown["work_mon-end"]) == ("08:30", "17:00")
    assert (shown["work_fri-mode"], shown["work_sat-mode"]) == ("off", "all_day")
    assert "quiet_enabled" not in shown and shown["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    "stored",
    [
        TrackerSettings(
            sitting_limit_s=1500,
            grace_s=45,
            break_s=150,
            reprompt_s=100,  # 1.6667 min on the page
            max_level=5,  # beyond the three patterns, still allowed
            snooze_s=630.5,
            max_snoozes=0,
            press_ignore_s=0.25,
            timezone="America/Argentina/Buenos_Aires",
            quiet_hours=QuietHours(start="23:00", end="23:00"),
            active_hours=ActiveHours(
                mon="09:00-24:00", tue="00:00-24:00", wed="", sat="10:00-12:00"
            ),
        ),
        TrackerSettings(quiet_hours=None, active_hours=None),
    ],
    ids=["odd values", "no quiet or working hours"],
)
def test_settings_saved_unchanged_are_stored_exactly_as_they_were(
    broker: Mosquitto, three_desks: Engine, stored: TrackerSettings
) -> None:
    with Session(three_desks) as session:
        session.get(Device, "desk-a").settings = stored.model_dump(mode="json")
        session.commit()
    client = _client(three_desks, broker.port)
    response = client.post("/devices/desk-a/settings", data=settings_form(client, "desk-a"))
    assert response.status_code == 302, response.get_data(as_text=True)
    with Session(three_desks) as session:
        assert session.get(Device, "desk-a").settings == stored.model_dump(mode="json")


def test_unreachable_broker_is_a_clear_error_and_nothing_is_stored(three_desks: Engine) -> None:
    client = _client(three_desks, free_port())  # nobody listens there
    response = client.post("/devices/desk-a/settings", data=_form(client))
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "Settings not saved: cannot reach the MQTT broker 127.0.0.1:" in body
    assert shown_settings(body)["sitting_limit_min"] == "40"  # the input is still in the form
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
