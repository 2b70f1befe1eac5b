"""The pages keep up by themselves, in real headless Chromium: a desk's events and status go
through a real Mosquitto to the real ingest worker while the overview and the desk's page
are open, and without a reload the card turns seated, "seated for" counts up (also while
the API cannot be reached), the tab's title says "Seated ...", a stand-up adds to today's
figures and a Last Will turns the badge offline. With scripts off the page still shows
what the server rendered.

The app runs on the real clock, as the worker does (it dates a desk's status by it); the
day starts twelve hours from the test's hour, so no local day ends during it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine
from support.browser import launch, needs_chromium, serve
from support.events import make_event
from support.waiting import wait_until
from web_fixtures import PASSWORD

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.protocol import EventType, Status, now_utc
from sitwatch.server.config import BrokerConfig, DatabaseConfig, ServerConfig
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.web.app import create_app
from sitwatch.server.web.filters import format_duration

DESK = "desk-live"
POLL_S = 0.5
WAIT_MS = 5000  # several polls
SEATED_FOR = timedelta(minutes=62)  # formatted as the server does: 1 h 02 min

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def config(tmp_path: Path, private_broker: Mosquitto) -> ServerConfig:
    return ServerConfig(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'sitwatch.db'}"),
        mqtt=BrokerConfig(host=private_broker.host, port=private_broker.port),
        timezone="UTC",
        day_start_hour=(now_utc().hour + 12) % 24,
        offline_after_s=900,
    )


@pytest.fixture
def worker(config: ServerConfig, sqlite_with_user: Engine) -> Iterator[IngestWorker]:
    worker = IngestWorker(config, sqlite_with_user, client_id="ingest-live-test").start()
    try:
        assert worker.wait_ready(10), "ingest worker did not subscribe"
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def desk(private_broker: Mosquitto) -> Iterator[mqtt.Client]:
    """The desk's MQTT client, as the agent publishes (QoS 1, status retained)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.connect(private_broker.host, private_broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def served(config: ServerConfig, sqlite_with_user: Engine) -> Iterator[str]:
    """The dashboard on a real HTTP server in a thread, polled every POLL_S seconds."""
    app = create_app(
        config,
        engine=sqlite_with_user,
        test_config={"TESTING": True, "SECRET_KEY": "test-secret", "SITWATCH_LIVE_POLL_S": POLL_S},
    )
    yield from serve(app, "dashboard")


def send_status(desk: mqtt.Client, worker: IngestWorker, state: str) -> None:
    seen = worker.statuses
    info = desk.publish(
        protocol.topic(DESK, protocol.STATUS), Status(state).to_json(), qos=1, retain=True
    )
    info.wait_for_publish(10)
    wait_until(lambda: worker.statuses > seen, what=f"the worker to take the {state} status")


def send_event(desk: mqtt.Client, worker: IngestWorker, event: protocol.Event) -> None:
    stored = worker.stored
    info = desk.publish(protocol.topic(DESK, protocol.EVENT), event.to_json(), qos=1)
    info.wait_for_publish(10)
    wait_until(lambda: worker.stored > stored, what=f"the worker to store {event.type.value}")


def test_an_open_page_follows_the_desk(
    served: str, worker: IngestWorker, desk: mqtt.Client
) -> None:
    from playwright.sync_api import expect, sync_playwright

    send_status(desk, worker, "online")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            # CSP violations and failed loads are console errors.
            console_errors: list[str] = []
            page.on(
                "console",
                lambda m: console_errors.append(m.text) if m.type == "error" else None,
            )
            page.goto(f"{served}/")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{served}/")
            card = page.locator(f'[data-device="{DESK}"]')
            today = page.locator('[data-live="today"]')
            expect(card.locator('[data-live="now"]')).to_have_text("not seated")
            expect(page).to_have_title("Overview · sitwatch")
            page.wait_for_function("() => document.documentElement.dataset.liveAt", timeout=WAIT_MS)

            desk_page = context.new_page()
            desk_page.goto(f"{served}/devices/{DESK}")
            expect(desk_page.locator('[data-live="seat-single"]')).to_have_text("Not seated")

            sat_down = now_utc() - SEATED_FOR
            send_event(desk, worker, make_event(EventType.SEATED, sat_down, DESK))
            seated_title = re.compile(r"^Seated 1 h 0[23] min · sitwatch$")
            expect(page).to_have_title(seated_title, timeout=WAIT_MS)
            expect(card.locator('[data-live="now"]')).to_have_text(
                re.compile(r"^seated for 1 h 0[23] min$")
            )
            expect(today.locator(".now")).to_have_class(re.compile(r"\bis-seated\b"))
            expect(today.locator('[data-live="seat-count"]')).to_have_text("1 of 1 seated now")
            expect(today.locator(".stretch")).to_be_visible()
            expect(desk_page).to_have_title(seated_title, timeout=WAIT_MS)
            expect(desk_page.locator('[data-live="seat-single"]')).to_have_text("Seated now")

            before_outage = len(console_errors)
            check_counts_up_between_polls(page)
            # Only the refused requests themselves were errors.
            console_errors[before_outage:] = [
                e for e in console_errors[before_outage:] if "ERR_FAILED" not in e
            ]

            stood_up = now_utc()
            session_s = (stood_up - sat_down).total_seconds()
            send_event(
                desk, worker, make_event(EventType.STOOD_UP, stood_up, DESK, session_s=session_s)
            )
            seated_s = today.locator('[data-figure="seated_s"]')
            expect(seated_s).to_have_attribute("data-value", str(round(session_s)), timeout=WAIT_MS)
            expect(seated_s).to_have_text(format_duration(session_s))
            expect(today.locator('[data-extra="seated_s"]')).to_have_text("1 session")
            expect(card.locator('[data-live="figures"]')).to_have_text(
                f"{format_duration(session_s)} seated · 0 breaks · 0/0 prompts answered · 0 drills"
            )
            expect(card.locator('[data-live="now"]')).to_have_text("not seated")
            expect(today.locator(".stretch")).to_be_hidden()
            expect(page).to_have_title("Overview · sitwatch")
            expect(desk_page).to_have_title(f"{DESK} · sitwatch", timeout=WAIT_MS)

            # The desk's Last Will: offline, retained.
            send_status(desk, worker, "offline")
            badge = card.locator('[data-live="online"]')
            expect(badge).to_have_text("offline", timeout=WAIT_MS)
            expect(badge).to_have_class(re.compile(r"\boffline\b"))
            expect(card.locator('[data-live="now"]')).to_have_text(
                re.compile(r"^last seen \d{1,2} s ago$")  # its stand-up, seconds ago
            )
            expect(desk_page.locator('[data-live="online"]')).to_have_text("offline")
            expect(desk_page.locator('[data-live="seat-single"]')).to_have_text("Offline")
            assert console_errors == [], console_errors

            check_without_scripts(browser, context, served, format_duration(session_s))
        finally:
            browser.close()


def check_counts_up_between_polls(page: Any) -> None:
    """With the API out of reach the shown stretch keeps counting from seated_since, in the
    card's figure (whole seconds); then polling picks up again."""
    stretch = page.locator('[data-live="today"] [data-figure="current_stretch_s"]')
    page.route("**/api/v1/live*", lambda route: route.abort())
    before = int(stretch.get_attribute("data-value") or 0)
    page.wait_for_function(
        "([el, before]) => Number(el.dataset.value) >= before + 2",
        arg=[stretch.element_handle(), before],
        timeout=WAIT_MS,
    )
    assert page.title().startswith("Seated 1 h 0")
    page.unroute("**/api/v1/live*")
    # A tab coming back into view asks at once, whatever the back-off after the failures.
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")


def check_without_scripts(browser: Any, context: Any, served: str, seated: str) -> None:
    """Scripts off: the same page, as rendered; nothing rewrites it."""
    plain = browser.new_context(storage_state=context.storage_state(), java_script_enabled=False)
    page = plain.new_page()
    page.goto(f"{served}/")
    assert page.title() == "Overview · sitwatch"
    card = page.locator(f'[data-device="{DESK}"]')
    assert card.locator('[data-live="online"]').inner_text() == "offline"
    assert page.locator('[data-live="today"] [data-figure="seated_s"]').inner_text() == seated
    assert page.locator("html").get_attribute("data-live-at") is None
    plain.close()
