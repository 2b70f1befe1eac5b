"""The dashboard in real headless Chromium: log in through the form, read today's figures,
see the charts drawn, keep a screenshot for the README (docs/dashboard.png)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import PASSWORD, add_user, make_app, make_engine_for, seed_demo
from werkzeug.serving import make_server

from sitwatch.broker import free_port
from sitwatch.server.dashboard import format_duration
from sitwatch.server.models import Device

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"
# A Thursday afternoon: three weeks of history and a day well under way.
NOW = datetime(2026, 11, 26, 15, 40, tzinfo=UTC)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
        reason="needs Debian's chromium (/usr/bin/chromium) and the playwright package",
    ),
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine_for(tmp_path)
    add_user(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def served(engine: Engine) -> Iterator[str]:
    """The app on a real HTTP server in a thread; yields its base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, make_app(engine, now=NOW), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_dashboard_renders_in_chromium(engine: Engine, served: str) -> None:
    from playwright.sync_api import sync_playwright

    expected = seed_demo(engine, NOW, days=35)
    assert expected["sessions"] > 3  # the seed made a real-looking day
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

            page.goto(f"{served}/")
            assert page.url.startswith(f"{served}/login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{served}/")

            seated = page.locator('[data-figure="seated_s"]').first
            assert seated.get_attribute("data-value") == str(round(expected["seated_s"]))
            assert seated.inner_text() == format_duration(expected["seated_s"])
            drills = page.locator('[data-figure="drills"]').first
            assert drills.inner_text() == str(expected["drills"])
            assert "1 of 3 seated now" in page.locator(".today .now").first.inner_text()

            timeline = page.locator('svg[data-chart="timeline"]')
            assert timeline.locator("rect.session").count() == expected["bars_today"]
            assert timeline.locator("rect.session.open").count() == 1
            week = page.locator('svg[data-chart="week"]')
            assert week.locator("rect.bar").count() == 7
            assert page.locator('svg[data-chart="month"] rect.bar').count() == 30
            # Drawn, not just present: today's bar has a real height on screen.
            today_bar = week.locator("rect.bar").last.bounding_box()
            assert today_bar is not None and today_bar["height"] > 10

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # A hostile name is shown as text and runs nothing.
            with Session(engine) as session:
                session.get(Device, "desk-ben").name = '"><img src=x onerror=alert(1)>'
                session.commit()
            page.goto(f"{served}/devices/desk-ben")
            assert page.locator("h1").inner_text().startswith('"><img src=x onerror=alert(1)>')
            page.goto(f"{served}/")
            assert page.locator("img").count() == 0
            assert dialogs == []
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
