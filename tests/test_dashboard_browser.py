"""The whole path in real headless Chromium: events the real SittingTracker emits are
published to a real Mosquitto, stored by the real ingest worker, and the dashboard served
over HTTP must show them: log in through the form, rename a desk through the settings page,
read today's figures, see the charts drawn (the Insights page's funnel, histogram and
heatmap too), keep screenshots for the README."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session
from support.browser import launch, needs_chromium, serve
from web_fixtures import PASSWORD, demo_events, make_app

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.calendar import Calendar
from sitwatch.drill import CIRCUIT
from sitwatch.protocol import EventType, Status, drill_counts
from sitwatch.server.config import BrokerConfig, DatabaseConfig, ServerConfig
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.models import Device
from sitwatch.server.web.filters import format_duration

# The README's pictures: written to docs/ when SITWATCH_SCREENSHOTS=1 (to refresh them),
# otherwise to a temporary folder, so a test run leaves the checkout as it was.
DOCS = Path(__file__).resolve().parent.parent / "docs"
# A Thursday afternoon: five weeks of history and a day well under way.
NOW = datetime(2026, 11, 26, 15, 40, tzinfo=UTC)
DESKS = {"desk-anna": "Anna's desk", "desk-ben": "Ben's standing desk", "desk-lab": "Lab bench"}
SEED = 4  # a day on which two of the three desks are occupied at NOW

pytestmark = [pytest.mark.browser, needs_chromium]


def expected_today(events: list[Any]) -> dict[str, Any]:
    """Today's figures worked out from the raw events, independently of the server."""
    calendar = Calendar("UTC", 4)
    today = calendar.day_of(NOW)
    last_seat: dict[str, Any] = {}
    for e in sorted(events, key=lambda e: e.ts):
        if e.type in (EventType.SEATED, EventType.STOOD_UP):
            last_seat[e.device_id] = e
    stood = [e for e in events if e.type is EventType.STOOD_UP]
    started_today = [
        e for e in stood if calendar.day_of(e.ts - timedelta(seconds=e.data["session_s"])) == today
    ]
    seated_now = [e for e in last_seat.values() if e.type is EventType.SEATED]
    todays = [e for e in events if calendar.day_of(e.ts) == today]
    # The overview shows several desks per desk that sat today, not summed (stats.PerDesk).
    sat = {e.device_id for e in started_today} | {e.device_id for e in seated_now}
    return {
        "desks_sat": len(sat),
        "seated_s": sum(e.data["session_s"] for e in started_today),
        "drills": sum(e.type is EventType.DRILL_COMPLETED and drill_counts(e) for e in todays),
        "prompts": sum(e.type is EventType.PROMPT for e in todays),
        "seated_now": len(seated_now),
        "bars": len(started_today) + sum(calendar.day_of(e.ts) == today for e in seated_now),
    }


def ingest_through_mqtt(broker: Mosquitto, engine: Engine, events: list[Any]) -> None:
    """Publish as the devices would (retained status, QoS 1 events) to the real worker and
    wait until it has stored every event."""
    config = ServerConfig(
        database=DatabaseConfig(url=str(engine.url)),
        mqtt=BrokerConfig(host=broker.host, port=broker.port, client_id="ingest-browser-test"),
        timezone="UTC",
        day_start_hour=4,
    )
    worker = IngestWorker(config, engine).start()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    device.max_inflight_messages_set(100)
    device.max_queued_messages_set(0)
    try:
        assert worker.wait_ready(10), "ingest worker did not subscribe"
        device.connect(broker.host, broker.port)
        device.loop_start()
        infos = [
            device.publish(
                protocol.topic(d, protocol.STATUS), Status("online").to_json(), qos=1, retain=True
            )
            for d in DESKS
        ]
        infos += [
            device.publish(protocol.topic(e.device_id, protocol.EVENT), e.to_json(), qos=1)
            for e in events
        ]
        for info in infos:
            info.wait_for_publish(10)
        deadline = time.monotonic() + 10
        while worker.stored < len(events) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.stored == len(events) and worker.rejected == 0
    finally:
        device.disconnect()
        device.loop_stop()
        worker.stop()


@pytest.fixture
def served(sqlite_with_user: Engine) -> Iterator[str]:
    """The app on a real HTTP server in a thread; yields its base URL."""
    yield from serve(make_app(sqlite_with_user, now=NOW), "dashboard")


def test_ingested_day_renders_in_chromium(
    private_broker: Mosquitto, sqlite_with_user: Engine, served: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    shots = DOCS if os.environ.get("SITWATCH_SCREENSHOTS") == "1" else tmp_path

    events = demo_events(list(DESKS), NOW, seed=SEED)
    ingest_through_mqtt(private_broker, sqlite_with_user, events)
    expected = expected_today(events)
    assert expected["seated_now"] == 2 and expected["drills"] > 0
    with Session(sqlite_with_user) as session:
        # Heartbeats would keep last_seen current; the app's clock is frozen at NOW.
        session.execute(update(Device).values(last_seen_at=NOW - timedelta(seconds=40)))
        session.get(Device, "desk-ben").name = DESKS["desk-ben"]
        session.get(Device, "desk-lab").name = DESKS["desk-lab"]
        session.commit()

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            # CSP violations and failed loads (e.g. the stylesheet) are console errors.
            console_errors: list[str] = []
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )

            page.goto(f"{served}/")
            assert page.url.startswith(f"{served}/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{served}/")

            page.goto(f"{served}/devices/desk-anna/settings")
            page.fill("input[name=name]", DESKS["desk-anna"])
            page.click("input[value=Rename]")
            assert "Device renamed." in page.locator(".flash").inner_text()

            page.goto(f"{served}/")
            seated = page.locator('[data-figure="seated_s"]').first
            desks = expected["desks_sat"]
            per_desk_s = round(expected["seated_s"] / desks, 1)
            assert seated.get_attribute("data-value") == str(round(per_desk_s))
            assert seated.inner_text() == format_duration(per_desk_s)
            assert page.locator('[data-figure="desks_in_use"]').inner_text() == str(desks)
            for name in ("drills", "prompts"):
                shown = page.locator(f'[data-figure="{name}"]').first.inner_text()
                assert shown == f"{round(expected[name] / desks, 1):g}", name
            assert "2 of 3 seated now" in page.locator(".today .now").first.inner_text()
            assert "Anna's desk" in page.locator(".device-cards").inner_text()

            timeline = page.locator('svg[data-chart="timeline"]')
            assert timeline.locator("rect.session").count() == expected["bars"]
            assert timeline.locator("rect.session.open").count() == 2
            week = page.locator('svg[data-chart="week"]')
            assert week.locator("rect.bar").count() == 7
            assert page.locator('svg[data-chart="month"] rect.bar').count() == 30
            # The stylesheet applied: the top bar is dark, not the browser's default white.
            top_bar = page.locator(".topbar").evaluate("e => getComputedStyle(e).backgroundColor")
            assert top_bar == "rgb(29, 39, 51)"
            # Drawn, not just present: today's bar has a real height on screen.
            today_bar = week.locator("rect.bar").last.bounding_box()
            assert today_bar is not None and today_bar["height"] > 10

            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            check_insights_page(page, served, events, shots / "insights.png")
            check_drill_guide_on_a_phone(browser, page.context, served, shots / "phone.png")

            # A hostile name is shown as text and runs nothing.
            with Session(sqlite_with_user) as session:
                session.get(Device, "desk-ben").name = '"><img src=x onerror=alert(1)>'
                session.commit()
            page.goto(f"{served}/devices/desk-ben")
            assert page.locator("h1").inner_text().startswith('"><img src=x onerror=alert(1)>')
            page.goto(f"{served}/")
            assert page.locator("img").count() == 0
            assert dialogs == []
            assert console_errors == []
        finally:
            browser.close()
    assert (shots / "dashboard.png").stat().st_size > 10_000
    assert (shots / "insights.png").stat().st_size > 10_000
    assert (shots / "phone.png").stat().st_size > 10_000


def check_drill_guide_on_a_phone(
    browser: Any, logged_in: Any, served: str, screenshot: Path
) -> None:
    """The drill guide at a phone's 390 px: every exercise's drawing loaded and shown above
    its text, the text at least 14 px; then the overview's picture on a phone for the
    README (tests/test_phone_and_a11y.py checks the phone layout itself)."""
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, storage_state=logged_in.storage_state()
    )
    try:
        page = phone.new_page()
        page.goto(f"{served}/drill")
        steps = page.locator("li.step")
        assert steps.count() == len(CIRCUIT)
        for index in range(steps.count()):
            step = steps.nth(index)
            picture, title = step.locator("img.step-picture"), step.locator("h2")
            assert picture.evaluate("img => img.complete && img.naturalWidth") > 0
            box, text = picture.bounding_box(), title.bounding_box()
            assert box is not None and text is not None
            assert box["y"] + box["height"] <= text["y"] and box["width"] >= 200
            assert box["x"] + box["width"] <= 390  # no sideways scrolling
            for part in step.locator("h2, p").all():
                size = part.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
                assert size >= 14, (CIRCUIT[index].key, size)
        page.goto(f"{served}/")
        page.locator('section[aria-label="Day timeline"]').evaluate("e => e.scrollIntoView()")
        page.screenshot(path=str(screenshot))  # one screenful: the day and the week
    finally:
        phone.close()


def check_insights_page(page: Any, served: str, events: list[Any], screenshot: Path) -> None:
    """The Insights page through the nav link: funnel, bout histogram and heatmap drawn
    with real sizes, their numbers the API's, the bout count the raw events'."""
    page.click("nav >> text=Insights")
    page.wait_for_url(f"{served}/insights")
    api = page.request.get(f"{served}/api/v1/insights").json()
    calendar = Calendar("UTC", 4)
    first, last = date.fromisoformat(api["from"]), date.fromisoformat(api["to"])
    bouts = [
        e
        for e in events
        if e.type is EventType.STOOD_UP
        and first <= calendar.day_of(e.ts - timedelta(seconds=e.data["session_s"])) <= last
    ]
    assert sum(api["bouts"]["counts"]) == len(bouts) > 20
    assert api["funnel"]["nudges"] > 0 and api["funnel"]["stood_up"] > 0

    funnel = page.locator('svg[data-chart="funnel"]')
    assert funnel.locator("rect.funnel").count() == 3
    nudged = funnel.locator('rect[data-key="nudges"]')
    assert nudged.get_attribute("data-value") == str(api["funnel"]["nudges"])
    nudged_box = nudged.bounding_box()
    stood_box = funnel.locator('rect[data-key="stood_up"]').bounding_box()
    assert nudged_box is not None and stood_box is not None
    assert nudged_box["width"] > 100 and 0 < stood_box["width"] <= nudged_box["width"]
    shown = page.locator('[data-figure="funnel_nudges"]').inner_text()
    assert shown == str(api["funnel"]["nudges"])

    histogram = page.locator('svg[data-chart="histogram"]')
    assert histogram.locator("rect.bar").count() == 5
    heights = [
        (box or {"height": 0})["height"]
        for box in (bar.bounding_box() for bar in histogram.locator("rect.bar").all())
    ]
    tallest = max(range(5), key=lambda i: api["bouts"]["counts"][i])
    assert heights[tallest] == max(heights) > 30

    heatmap = page.locator('svg[data-chart="heatmap"]')
    assert heatmap.locator("rect.heat").count() == 7 * 24
    assert heatmap.locator("rect.heat-5").count() >= 1
    assert heatmap.locator("rect.heat-0").count() > 24  # nights and weekends
    # The stylesheet shades the cells: the busiest opaque, an empty one light grey.
    busiest = heatmap.locator("rect.heat-5").first
    assert busiest.evaluate("e => getComputedStyle(e).fillOpacity") == "1"
    empty = heatmap.locator("rect.heat-0").first.evaluate("e => getComputedStyle(e).fill")
    assert empty == "rgb(238, 241, 245)"
    peak = max(max(row) for row in api["heatmap"]["seated_s"])
    values = heatmap.locator("rect.heat").evaluate_all("els => els.map(e => +e.dataset.value)")
    assert max(values) == round(peak) > 0
    assert int(busiest.get_attribute("data-value") or 0) > 0.8 * peak
    assert page.locator('svg[data-chart="budget"] rect.bar').count() == len(api["days"])
    page.screenshot(path=str(screenshot), full_page=True)
