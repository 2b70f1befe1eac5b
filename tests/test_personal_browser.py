"""The personal page in real headless Chromium, at a laptop's and a phone's width: a
member logs in through the form, lands on /my-day, and sees the week chart and the goal
ring drawn (real sizes on screen), the deltas in words, no console errors (the CSP allows
everything the page uses), and changes the goal through the form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import launch, needs_chromium, serve
from web_fixtures import PASSWORD, make_app, seed_personal, seeded_engine

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    with seeded_engine("sqlite", tmp_path, seed=seed_personal) as engine:
        yield from serve(make_app(engine), "personal")


def check_drawn(page: Any) -> None:
    chart = page.locator('svg[data-chart="week-pair"]')
    assert chart.locator("rect.last-week").count() == 7
    assert chart.locator("rect.this-week").count() == 3
    today_bar = chart.locator("rect.this-week").last.bounding_box()
    assert today_bar is not None and today_bar["height"] > 10
    # Last week's bars are hatched and outlined, not just another colour.
    last = chart.locator("rect.last-week").nth(2)
    assert "hatch-last-week" in last.evaluate("e => getComputedStyle(e).fill")
    assert last.evaluate("e => getComputedStyle(e).strokeWidth") != "0px"
    ring = page.locator('svg[data-chart="goal-ring"]')
    box = ring.bounding_box()
    assert box is not None and box["width"] > 60 and box["height"] > 60
    assert ring.locator("circle.ring-fill").get_attribute("stroke-dasharray") is not None
    assert ring.locator("circle.ring-fill").evaluate("e => getComputedStyle(e).fill") == "none"


def test_the_personal_page_draws_its_chart_and_ring(served: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{served}/login")
            page.fill("input[name=username]", "bob")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{served}/my-day")
            assert (
                "45 min more than last Wednesday"
                in page.locator('[data-delta="today"]').inner_text()
            )
            check_drawn(page)

            page.fill("input[name=max_stretch_min]", "100")
            page.fill("input[name=break_hours]", "3")
            page.click("input[value='Save my goal']")
            page.wait_for_url(f"{served}/my-day")
            assert page.locator('[data-goal-met="true"]').count() == 1
            assert page.locator('svg[data-chart="goal-ring"]').get_attribute("data-share") == "1.00"

            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
            )
            small = phone.new_page()
            small.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            small.goto(f"{served}/my-day")
            check_drawn(small)
            # Nothing of this page sideways: its content fits the phone's width (the top
            # bar's links are the layout's, not this page's).
            width = small.evaluate("document.querySelector('main').scrollWidth")
            assert width <= 390, width
            small.goto(f"{served}/my-week")
            assert small.locator('svg[data-chart="week-pair"]').count() == 1
            assert errors == [], errors
        finally:
            browser.close()
