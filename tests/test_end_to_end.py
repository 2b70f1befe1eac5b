"""The whole path with real parts: gpiozero (MockFactory pins) -> tracker -> outbox -> real
Mosquitto -> ingest worker -> SQLite file -> Flask app over real HTTP."""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import wait_until
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from sitwatch.broker import Mosquitto
from sitwatch.clock import FakeClock
from sitwatch.device.config import DeviceConfig, MqttConfig, PinsConfig
from sitwatch.device.service import DeviceService
from sitwatch.protocol import Event
from sitwatch.server.app import create_app
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.ingest import IngestWorker
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import DailyRollup, Drill, SittingSession, User
from sitwatch.server.models import Event as StoredEvent
from sitwatch.settings import TrackerSettings

MIN = 60.0
PINS = PinsConfig()


class Browser:
    """A cookie-keeping HTTP client, logging in through the real form (with its CSRF token)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as answer:
            return answer.read().decode()

    def login(self, username: str, password: str) -> None:
        page = self.get("/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token, page
        form = {"csrf_token": token.group(1), "username": username, "password": password}
        body = urllib.parse.urlencode(form).encode()
        with self.opener.open(self.base + "/login", data=body, timeout=10) as answer:
            assert "/login" not in answer.geturl()


@pytest.fixture
def server(broker: Mosquitto, tmp_path: Path) -> Iterator[tuple[ServerConfig, object, str]]:
    config = ServerConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'server.db'}"},
            "mqtt": {"port": broker.port, "client_id": "e2e-ingest", "batch_wait_s": 0.01},
        }
    )
    engine = make_engine(config.database.url)
    upgrade(engine)
    with session_factory(engine)() as session:
        session.add(User(username="ana", password_hash=generate_password_hash("s3cret-pass")))
        session.commit()
    worker = IngestWorker(config, engine).start()
    assert worker.wait_ready(10)
    yield config, engine, worker  # type: ignore[misc]
    worker.stop()
    engine.dispose()


def test_a_sitting_session_travels_from_the_pin_to_the_dashboard(
    server, mock_factory, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    config, engine, worker = server
    clock = FakeClock()
    device_config = DeviceConfig(
        device_id="desk-e2e",
        name="Ana's <desk>",
        data_dir=str(tmp_path / "device"),
        tracker=TrackerSettings(quiet_hours=None, drill_step_s=20),
        mqtt=MqttConfig(port=config.mqtt.port, heartbeat_s=0),
    )
    service = DeviceService(device_config, clock, pin_factory=mock_factory)
    sent: list[Event] = []
    service.agent.sinks.append(sent.append)
    service.start()
    bot = service.agent
    try:

        def live(seconds: float, step: float = 5.0) -> None:
            end = clock.monotonic() + seconds
            while clock.monotonic() < end:
                clock.advance(min(step, end - clock.monotonic()))
                bot.step()

        mat, button = mock_factory.pin(PINS.mat), mock_factory.pin(PINS.button)
        mat.drive_low()  # sits down
        bot.step(timeout_s=1)
        live(31 * MIN)  # prompted at 30 min
        button.drive_low()
        clock.advance(0.3)
        button.drive_high()  # short press: the guided circuit
        bot.step(timeout_s=1)
        mat.drive_high()  # off the chair for the circuit
        bot.step(timeout_s=1)
        live(6 * 20 + 60)  # every step, then the break is credited
        assert [str(e.type) for e in sent][:3] == ["seated", "prompt", "prompt_ack"]
        assert {"drill_completed", "stood_up", "break"} <= {str(e.type) for e in sent}

        assert wait_until(lambda: len(service.outbox) == 0, timeout=15), "server never acked"
        with session_factory(engine)() as session:
            stored = session.scalar(select(func.count()).select_from(StoredEvent))
            assert stored == len(sent)
            [sitting] = session.scalars(select(SittingSession)).all()
            assert sitting.duration_s == pytest.approx(31 * MIN + 0.3, abs=1)
            assert session.scalar(select(func.count()).select_from(Drill)) == 1
            rollup = session.scalars(select(DailyRollup)).one()
            assert (rollup.prompts, rollup.prompts_answered, rollup.drills) == (1, 1, 1)

        app = create_app(config, engine=engine, test_config={"SITWATCH_NOW": clock.wall})
        http_server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=http_server.serve_forever, daemon=True)
        thread.start()
        try:
            browser = Browser(f"http://127.0.0.1:{http_server.server_port}")
            browser.login("ana", "s3cret-pass")
            found = json.loads(browser.get("/api/v1/devices/desk-e2e/today"))
            today = found["today"]
            assert today["drills"] == 1 and today["breaks"] == 1 and not today["seated_now"]
            assert today["prompts"] == 1 and today["answered_by_drill"] == 1
            assert today["seated_s"] == pytest.approx(31 * MIN, abs=2)
            assert found["longest"]["today_s"] == pytest.approx(31 * MIN, abs=2)
            page = browser.get("/devices/desk-e2e")
            assert "desk-e2e" in page
        finally:
            http_server.shutdown()
    finally:
        service.close()
