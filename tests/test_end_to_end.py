"""The whole path with real parts: gpiozero (MockFactory pins) -> tracker -> outbox -> real
broker (Mosquitto, and NATS's MQTT server) -> ingest worker -> SQLite file -> Flask app over
real HTTP."""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_support import running_server, server_config, stored_ids
from sqlalchemy import func, select
from support.desks import Desk
from support.waiting import wait_until
from werkzeug.serving import make_server

from sitwatch.broker import BrokerProcess, Mosquitto
from sitwatch.clock import FakeClock
from sitwatch.server.db import session_factory
from sitwatch.server.models import DailyRollup, Drill, SittingSession
from sitwatch.server.web.app import create_app

MIN = 60.0


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


def test_a_sitting_session_travels_from_the_pin_to_the_dashboard(
    any_broker: BrokerProcess,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    config = server_config(tmp_path / "server.db", any_broker.port)
    with running_server(config) as (engine, _worker):
        desk = Desk(mock_factory, tmp_path / "device", any_broker.port, FakeClock())
        try:
            desk.sit(True)
            desk.live(31 * MIN)  # prompted at 30 min
            desk.press(0.3)  # short press: the guided circuit
            desk.sit(False)  # off the chair for the circuit
            desk.live(6 * 20 + 60)  # every step, then the break is credited
            sent = desk.sent
            assert [str(e.type) for e in sent][:3] == ["seated", "prompt", "drill_started"]
            kinds = [str(e.type) for e in sent]
            # Answered by the drill as the circuit ends, done off the chair: verified.
            assert kinds.index("prompt_ack") == kinds.index("drill_completed") - 1
            assert {"drill_completed", "stood_up", "break"} <= set(kinds)
            [done] = [e for e in sent if str(e.type) == "drill_completed"]
            assert done.data["verified"] is True

            wait_until(lambda: len(desk.service.outbox) == 0, 15, "the acks")
            assert sorted(stored_ids(engine)) == sorted(e.id for e in sent)  # each once
            with session_factory(engine)() as session:
                [sitting] = session.scalars(select(SittingSession)).all()
                assert sitting.duration_s == pytest.approx(31 * MIN + 0.3, abs=1)
                assert session.scalar(select(func.count()).select_from(Drill)) == 1
                rollup = session.scalars(select(DailyRollup)).one()
                assert (rollup.prompts, rollup.prompts_answered, rollup.drills) == (1, 1, 1)

            app = create_app(config, engine=engine, test_config={"SITWATCH_NOW": desk.clock.wall})
            http_server = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=http_server.serve_forever, daemon=True).start()
            try:
                browser = Browser(f"http://127.0.0.1:{http_server.server_port}")
                browser.login("ana", "s3cret-pass")
                found = json.loads(browser.get("/api/v1/devices/desk-e2e/today"))
                today = found["today"]
                assert today["drills"] == 1 and today["breaks"] == 1
                assert not today["seated_now"]
                assert today["prompts"] == 1 and today["answered_by_drill"] == 1
                assert today["seated_s"] == pytest.approx(31 * MIN, abs=2)
                assert found["longest"]["today_s"] == pytest.approx(31 * MIN, abs=2)
                assert "desk-e2e" in browser.get("/devices/desk-e2e")
            finally:
                http_server.shutdown()
        finally:
            desk.close()


def test_a_pause_command_from_the_server_silences_the_desk(
    broker: Mosquitto,
    mock_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import paho.mqtt.client as mqtt

    from sitwatch import protocol
    from sitwatch.device.tracker import State

    desk = Desk(mock_factory, tmp_path / "device", broker.port, FakeClock(), "desk-pause")
    try:
        assert wait_until(lambda: desk.service.link.is_connected, timeout=10)
        desk.sit(True)
        until = desk.clock.wall() + timedelta(hours=1)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.connect(broker.host, broker.port)
        client.loop_start()
        command = protocol.PauseCommand(pause_s=3600, until=until)
        topic = protocol.topic("desk-pause", protocol.COMMAND)
        client.publish(topic, command.to_json(), qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()

        def paused() -> bool:
            desk.agent.step(timeout_s=0.05)
            return desk.agent.tracker.state is State.PAUSED

        assert wait_until(paused, timeout=10)
        desk.live(59 * MIN)
        assert not [e for e in desk.sent if e.type == "prompt"]
        desk.live(2 * MIN)
        assert [e for e in desk.sent if e.type == "prompt"]
    finally:
        desk.close()
