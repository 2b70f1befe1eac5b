"""The dashboard's pause buttons: over real HTTP (login, CSRF) to a real Mosquitto, where a
subscriber gets a valid command with the right end; the broker down; hostile form input; the
"paused until" badge; and one button press travelling to a real device's tracker."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session
from web_fixtures import (
    NOW,
    add_event,
    csrf_from,
    login,
    make_app,
    seeded_engine,
)

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port
from sitwatch.calendar import Calendar
from sitwatch.server.models import Device
from sitwatch.server.web.desk_settings import command_for

pytestmark = pytest.mark.timeout(60)


@contextmanager
def listening(broker: Mosquitto, topic: str) -> Iterator[queue.Queue[mqtt.MQTTMessage]]:
    """Messages on ``topic`` from the moment the broker confirmed the subscription."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = queue.Queue[bool]()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda _c, _u, _mid, _rcs, _p: subscribed.put(True)
    client.on_message = lambda _c, _u, message: received.put(message)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.get(timeout=5)
        yield received
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def three_desks(tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine("sqlite", tmp_path, with_user=True) as engine:
        yield engine


def logged_in(engine: Engine, port: int) -> FlaskClient:
    client = make_app(engine, mqtt_port=port, SITWATCH_PUBLISH_TIMEOUT_S=2.0).test_client()
    assert login(client).status_code == 302
    return client


def press(client: FlaskClient, span: str | None, device_id: str = "desk-a"):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(f"/devices/{device_id}/settings").get_data(as_text=True))
    form = {"csrf_token": token}
    if span is not None:
        form["span"] = span
    return client.post(f"/devices/{device_id}/pause", data=form)


def test_the_settings_page_has_the_three_buttons_and_no_script(
    broker: Mosquitto, three_desks: Engine
) -> None:
    page = (
        logged_in(three_desks, broker.port).get("/devices/desk-a/settings").get_data(as_text=True)
    )
    for value, label in (
        ("hour", "Pause prompts for 1 hour"),
        ("tomorrow", "Pause until tomorrow"),
        ("resume", "Resume now"),
    ):
        assert f'name="span" value="{value}">{label}</button>' in page
    assert 'action="/devices/desk-a/pause"' in page
    assert "<script" not in page
    assert "Prompts are on." in page


@pytest.mark.parametrize(
    ("span", "until", "flash"),
    [
        ("hour", NOW + timedelta(hours=1), "paused until Wed 16:30."),
        # Days start at 04:00 (UTC here): tomorrow's starts Thursday 04:00.
        ("tomorrow", datetime(2026, 11, 26, 4, 0, tzinfo=UTC), "paused until Thu 04:00."),
    ],
)
def test_a_pause_button_publishes_a_pause_the_device_can_parse(
    broker: Mosquitto, three_desks: Engine, span: str, until: datetime, flash: str
) -> None:
    client = logged_in(three_desks, broker.port)
    with listening(broker, "sitwatch/desk-a/command") as received:
        response = press(client, span)
        assert response.status_code == 302, response.get_data(as_text=True)
        message = received.get(timeout=5)
    assert message.qos == 1 and not message.retain
    command = protocol.parse_command(message.payload)
    assert isinstance(command, protocol.PauseCommand)
    assert command.until == until
    assert command.pause_s == (until - NOW).total_seconds()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Prompts on Desk A {flash}" in page
    assert "offline" not in page.split("Prompts on Desk A")[1].split("</p>")[0]


def test_resume_now_publishes_a_resume_and_says_so(broker: Mosquitto, three_desks: Engine) -> None:
    client = logged_in(three_desks, broker.port)
    with listening(broker, "sitwatch/desk-a/command") as received:
        response = press(client, "resume")
        message = received.get(timeout=5)
    assert protocol.parse_command(message.payload) == protocol.ResumeCommand(at=NOW)
    assert not message.retain
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Prompts on Desk A resume now." in page


def test_an_offline_device_is_told_it_gets_the_pause_later(
    broker: Mosquitto, three_desks: Engine
) -> None:
    client = logged_in(three_desks, broker.port)  # desk-b was last heard 2 h ago
    response = press(client, "hour", "desk-b")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The device is offline: it gets this when it reconnects." in page


def test_an_unreachable_broker_is_a_clear_error(three_desks: Engine) -> None:
    client = logged_in(three_desks, free_port())  # nobody listens there
    for span, verb in (("hour", "paused"), ("resume", "resumed")):
        response = press(client, span)
        assert response.status_code == 503
        body = response.get_data(as_text=True)
        assert f"Prompts not {verb}: cannot reach the MQTT broker 127.0.0.1:" in body
        assert "The device carries on as before." in body
        assert 'class="flash flash-error"' in body


HOSTILE_SPANS = [
    None,
    "",
    " hour",
    "HOUR",
    "forever",
    "1e308",
    "-3600",
    "NaN",
    "hour\x00",
    "<script>alert(1)</script>",
    "tomorrow'; DROP TABLE events; --",
    "x" * 20_000,
    "\u202e",
]


def test_hostile_choices_are_refused_with_a_clear_message_and_nothing_is_sent(
    broker: Mosquitto, three_desks: Engine
) -> None:
    client = logged_in(three_desks, broker.port)
    with listening(broker, "sitwatch/desk-a/command") as received:
        for span in HOSTILE_SPANS:
            response = press(client, span)
            assert response.status_code == 400, repr(span)
            body = response.get_data(as_text=True)
            assert "Nothing sent: unknown pause choice" in body
            assert "<script>alert" not in body
        with pytest.raises(queue.Empty):
            received.get(timeout=0.3)


def test_forms_without_token_login_or_device_are_refused(
    broker: Mosquitto, three_desks: Engine
) -> None:
    client = logged_in(three_desks, broker.port)
    assert client.post("/devices/desk-a/pause", data={"span": "hour"}).status_code == 400
    assert client.get("/devices/desk-a/pause").status_code == 405
    token = csrf_from(client.get("/devices/desk-a/settings").get_data(as_text=True))
    for device_id in ("no-such-desk", "..%2F..%2Fetc", "desk%00a"):
        answer = client.post(
            f"/devices/{device_id}/pause", data={"csrf_token": token, "span": "hour"}
        )
        assert answer.status_code == 404
    stranger = make_app(three_desks, mqtt_port=broker.port).test_client()
    answer = stranger.post("/devices/desk-a/pause", data={"span": "hour"})
    assert answer.status_code in (302, 400)  # to the login page, or no CSRF token
    assert "/devices/desk-a/settings" not in answer.headers.get("Location", "")


def test_the_pause_command_for_tomorrow_follows_the_local_day_across_dst() -> None:
    berlin = Calendar("Europe/Berlin", 4)
    # Saturday 28 March 2026, 23:00 CET; clocks go forward that night, so Sunday 04:00 CEST
    # is 02:00 UTC: 4 hours away, not the 5 the local clock faces suggest.
    now = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    command = command_for("tomorrow", now, berlin)
    assert isinstance(command, protocol.PauseCommand)
    assert command.until == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert command.pause_s == 4 * 3600
    # Before the day starts (03:30 local) "tomorrow" begins at 04:00 the same morning.
    early = datetime(2026, 3, 30, 1, 30, tzinfo=UTC)
    assert command_for("tomorrow", early, berlin).until == datetime(  # type: ignore[union-attr]
        2026, 3, 30, 2, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="unknown pause span"):
        command_for("forever", now, berlin)


# --- the badge ----------------------------------------------------------------------------


def add_pause(engine: Engine, ts: datetime, pause_s: float, device_id: str = "desk-a") -> None:
    with Session(engine) as session:
        add_event(session, device_id, "pause", ts, pause_s=pause_s)
        session.commit()


def badge(client: FlaskClient, path: str) -> str | None:
    page = client.get(path).get_data(as_text=True)
    start = page.find('class="pill paused"')
    return None if start < 0 else page[start:].split(">", 1)[1].split("<", 1)[0]


def test_the_device_page_shows_a_running_pause_until_it_ends_or_is_resumed(
    three_desks: Engine,
) -> None:
    client = logged_in(three_desks, free_port())
    assert badge(client, "/devices/desk-a") is None
    add_pause(three_desks, NOW - timedelta(hours=2), 3600)  # over an hour ago
    assert badge(client, "/devices/desk-a") is None
    add_pause(three_desks, NOW - timedelta(minutes=10), 3600)
    assert badge(client, "/devices/desk-a") == "paused until Wed 16:20"
    assert badge(client, "/devices/desk-a/settings") == "paused until Wed 16:20"
    assert badge(client, "/devices/desk-c") is None  # another desk
    add_pause(three_desks, NOW - timedelta(minutes=1), 0)  # the device reports a resume
    assert badge(client, "/devices/desk-a") is None


def test_the_overview_and_devices_list_show_which_desks_are_paused(three_desks: Engine) -> None:
    client = logged_in(three_desks, free_port())
    add_pause(three_desks, NOW - timedelta(minutes=10), 3600)
    add_pause(three_desks, NOW - timedelta(minutes=5), 7200, device_id="desk-b")
    add_pause(three_desks, NOW - timedelta(minutes=1), 0, device_id="desk-b")  # resumed since
    add_pause(three_desks, NOW - timedelta(hours=3), 3600, device_id="desk-c")  # long over
    for path in ("/", "/devices"):
        page = client.get(path).get_data(as_text=True)
        assert page.count('class="pill paused"') == 1, path
        assert badge(client, path) == "paused until Wed 16:20"
    card = client.get("/").get_data(as_text=True).split('data-device="desk-a"', 1)[1]
    assert card.split("</a>", 1)[0].count("paused until") == 1  # on desk-a's own card


def test_a_pause_from_before_the_device_restarted_is_not_shown(three_desks: Engine) -> None:
    client = logged_in(three_desks, free_port())
    add_pause(three_desks, NOW - timedelta(minutes=10), 3600)  # boot "boot0001"
    with Session(three_desks) as session:
        session.execute(update(Device).where(Device.id == "desk-a").values(boot_id="boot0002"))
        session.commit()
    assert badge(client, "/devices/desk-a") is None


# --- end to end -----------------------------------------------------------------------------


def test_a_button_on_the_dashboard_pauses_and_resumes_a_real_desk(
    broker: Mosquitto,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Dashboard -> Mosquitto -> the device's link -> agent -> tracker; the tracker's pause
    event -> ingest -> database -> the badge on the device page."""
    from e2e_support import running_server, server_config
    from support.desks import Desk
    from support.waiting import wait_until

    from sitwatch.clock import FakeClock
    from sitwatch.device.tracker import State
    from sitwatch.server.web.app import create_app

    config = server_config(tmp_path / "server.db", broker.port, "pause-e2e-ingest")
    with running_server(config) as (engine, _worker):
        desk = Desk(mock_factory, tmp_path / "device", broker.port, FakeClock(), "desk-pz")
        try:
            assert wait_until(lambda: desk.service.link.is_connected, timeout=10)
            app = create_app(
                config,
                engine=engine,
                test_config={
                    "TESTING": True,
                    "SECRET_KEY": "t",
                    "SITWATCH_NOW": desk.clock.wall,
                },
            )
            client = app.test_client()
            assert login(client, "ana", "s3cret-pass").status_code == 302
            assert wait_until(lambda: client.get("/devices/desk-pz").status_code == 200, 10)
            desk.sit(True)

            def state() -> State:
                desk.agent.step(timeout_s=0.05)
                return desk.agent.tracker.state

            assert press(client, "hour", "desk-pz").status_code == 302
            assert wait_until(lambda: state() is State.PAUSED, timeout=10)
            assert wait_until(lambda: badge(client, "/devices/desk-pz") is not None, 10)
            assert badge(client, "/devices/desk-pz") == "paused until Mon 10:00"

            assert press(client, "resume", "desk-pz").status_code == 302
            assert wait_until(lambda: state() is not State.PAUSED, timeout=10)
            assert wait_until(lambda: badge(client, "/devices/desk-pz") is None, 10)
            pauses = [e.data["pause_s"] for e in desk.sent if e.type == "pause"]
            assert pauses == [3600, 0]
        finally:
            desk.close()
