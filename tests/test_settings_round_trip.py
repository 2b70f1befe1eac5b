"""Settings go to the desk and its answer comes back: the dashboard publishes, a real device
link applies (or a desk rejects), the real ingest stores its config/result from a real
Mosquitto, and the settings page says which. Plus how the ingest keeps an answer."""

from __future__ import annotations

import html
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from e2e_support import running_server, server_config
from flask.testing import FlaskClient
from link_support import clear_retained
from server_helpers import migrated_engine
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from support.desks import Desk
from support.waiting import wait_until
from web_fixtures import login, settings_form

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.clock import FakeClock
from sitwatch.server.ingest.config_results import store_config_result
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.models import ConfigResult, Device
from sitwatch.server.web.app import create_app

pytestmark = pytest.mark.timeout(90)

DESK = "desk-rt"
APPLIED = "Settings applied by the desk at"
REJECTED = "Settings rejected by the desk:"
UNCONFIRMED = "Settings sent, not yet confirmed by the desk."


@pytest.fixture
def server(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[Engine, IngestWorker]]:
    # A client id of its own: a persistent session would bring the last test's clean-up.
    config = server_config(tmp_path / "server.db", broker.port, f"rt-{uuid.uuid4().hex[:8]}")
    with running_server(config) as running:
        yield running
    clear_retained(broker.host, broker.port, DESK)


@pytest.fixture
def desk(broker: Mosquitto, mock_factory, tmp_path: Path) -> Iterator[Desk]:  # type: ignore[no-untyped-def]
    desk = Desk(mock_factory, tmp_path / "device", broker.port, FakeClock(), DESK)
    try:
        wait_until(lambda: desk.service.link.is_connected, 10, "the desk to connect")
        yield desk
    finally:
        desk.close()


def dashboard(engine: Engine, broker: Mosquitto, tmp_path: Path) -> FlaskClient:
    config = server_config(tmp_path / "server.db", broker.port)
    app = create_app(config, engine=engine, test_config={"TESTING": True, "SECRET_KEY": "t"})
    client = app.test_client()
    assert login(client, "ana", "s3cret-pass").status_code == 302
    return client


def save(client: FlaskClient, sitting_limit_min: str) -> str:
    """Submit the settings form as shown with a new sitting limit; the page it leads to."""
    form = settings_form(
        client,
        DESK,
        sitting_limit_min=sitting_limit_min,
        drill_step_s="20",
        timezone="UTC",
        quiet_enabled=None,
    )
    response = client.post(f"/devices/{DESK}/settings", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def answer_line(client: FlaskClient) -> str:
    page = client.get(f"/devices/{DESK}/settings").get_data(as_text=True)
    start = page.find('class="desk-answer')
    if start < 0:
        return ""
    inner = page[start:].split(">", 1)[1].split("</p>", 1)[0]
    return html.unescape(re.sub(r"<[^>]+>", "", inner))


def stored(engine: Engine) -> ConfigResult | None:
    with Session(engine) as session:
        return session.get(ConfigResult, DESK)


def publish_as_desk(broker: Mosquitto, payload: bytes | str) -> None:
    """What a desk of another version (or anyone on the broker) might put on config/result."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="round-trip-forger")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        topic = protocol.topic(DESK, protocol.CONFIG_RESULT)
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def sent_id(engine: Engine) -> str:
    with Session(engine) as session:
        device = session.get(Device, DESK)
        assert device is not None and device.settings is not None
        return protocol.config_id(device.settings)


def test_settings_saved_on_the_dashboard_are_applied_and_the_page_says_so(
    broker: Mosquitto, server: tuple[Engine, IngestWorker], desk: Desk, tmp_path: Path
) -> None:
    engine, _worker = server
    client = dashboard(engine, broker, tmp_path)
    wait_until(lambda: client.get(f"/devices/{DESK}/settings").status_code == 200, 10, "desk")
    assert answer_line(client) == ""  # nothing sent from the dashboard yet

    page = save(client, "40")
    assert "Settings saved and sent to the broker; the desk&#39;s answer shows below." in page
    assert "Settings saved and sent to the device" not in page  # it has not said so yet
    wait_until(lambda: APPLIED in answer_line(client), 10, "the desk's answer on the page")
    answer = stored(engine)
    assert answer is not None and answer.accepted and answer.config_id == sent_id(engine)
    assert answer_line(client) == f"{APPLIED} {answer.received_at:%H:%M}."
    desk.agent.step(timeout_s=1)
    assert desk.agent.tracker.settings.sitting_limit_s == 2400

    save(client, "45")  # new settings: the answer about the old ones is not about these
    wait_until(lambda: stored(engine).config_id == sent_id(engine), 10, "the second answer")  # type: ignore[union-attr]
    assert APPLIED in answer_line(client)
    desk.agent.step(timeout_s=1)
    assert desk.agent.tracker.settings.sitting_limit_s == 2700


def test_a_desk_that_rejects_the_settings_shows_its_reason_escaped(
    broker: Mosquitto, server: tuple[Engine, IngestWorker], desk: Desk, tmp_path: Path
) -> None:
    engine, _worker = server
    client = dashboard(engine, broker, tmp_path)
    wait_until(lambda: client.get(f"/devices/{DESK}/settings").status_code == 200, 10, "desk")
    save(client, "40")
    wait_until(lambda: APPLIED in answer_line(client), 10, "the desk's answer")
    desk.close()  # from here on, a desk of another version answers

    reason = "invalid remote settings:\n  remote settings.press_ignore_s: <b>unknown</b>"
    publish_as_desk(broker, protocol.config_result_payload(False, reason, answers=sent_id(engine)))
    wait_until(lambda: REJECTED in answer_line(client), 10, "the rejection on the page")
    assert answer_line(client) == f"{REJECTED} {reason}"
    page = client.get(f"/devices/{DESK}/settings").get_data(as_text=True)
    assert "<b>unknown</b>" not in page and "&lt;b&gt;unknown&lt;/b&gt;" in page

    # An answer to some other config (here: one the desk could not read) is not about these.
    publish_as_desk(broker, protocol.config_result_payload(False, "payload is not JSON"))
    wait_until(lambda: answer_line(client) == UNCONFIRMED, 10, "no answer to these settings")


def test_a_malformed_result_is_one_log_line_and_costs_nothing_else(
    broker: Mosquitto,
    server: tuple[Engine, IngestWorker],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, worker = server
    publish_as_desk(broker, protocol.config_result_payload(True, answers="abc123"))
    wait_until(lambda: stored(engine) is not None, 10, "the valid result")
    rejected = worker.rejected
    with caplog.at_level(logging.WARNING, logger="sitwatch.server.ingest"):
        publish_as_desk(broker, b'{"v":1,"accepted":"maybe"}')
        wait_until(lambda: worker.rejected > rejected, 10, "the rejection")
    topic = protocol.topic(DESK, protocol.CONFIG_RESULT)
    lines = [r for r in caplog.records if topic in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None and "\n" not in lines[0].getMessage()
    assert "'accepted' must be bool" in lines[0].getMessage()
    answer = stored(engine)
    assert answer is not None and answer.accepted and answer.config_id == "abc123"
    publish_as_desk(broker, b"")  # the retained topic cleared: nothing to store or reject
    publish_as_desk(broker, protocol.config_result_payload(False, "x", answers="def456"))
    wait_until(lambda: stored(engine).config_id == "def456", 10, "the next result")  # type: ignore[union-attr]
    assert worker.rejected == rejected + 1


# --- how the ingest keeps an answer ----------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path) as engine:
        yield engine


def test_the_same_answer_again_keeps_its_first_time(empty_database: Engine) -> None:
    first = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    later = first + timedelta(hours=1)
    answer = protocol.ConfigResult(accepted=True, config_id="abc123")
    with empty_database.begin() as connection:
        assert store_config_result(connection, DESK, answer, first)
    with empty_database.begin() as connection:  # the retained result, after a reconnect
        assert not store_config_result(connection, DESK, answer, later)
    assert stored(empty_database).received_at == first  # type: ignore[union-attr]
    refused = protocol.ConfigResult(accepted=False, reason="no", config_id="abc123")
    with empty_database.begin() as connection:
        assert store_config_result(connection, DESK, refused, later)
    row = stored(empty_database)
    assert row is not None and (row.accepted, row.reason, row.received_at) == (False, "no", later)


def test_an_old_desk_names_what_it_accepted_by_the_settings_it_reports(
    empty_database: Engine,
) -> None:
    """A desk from before config ids: its accepted settings are the table it was sent."""
    settings = {"sitting_limit_s": 2400.0, "quiet_hours": None}
    old = protocol.parse_config_result(protocol.config_result_payload(True, settings=settings))
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with empty_database.begin() as connection:
        store_config_result(connection, DESK, old, now)
    assert stored(empty_database).config_id == protocol.config_id(settings)  # type: ignore[union-attr]
    with empty_database.begin() as connection:
        store_config_result(connection, DESK, protocol.ConfigResult(accepted=False), now)
    assert stored(empty_database).config_id is None  # type: ignore[union-attr]
