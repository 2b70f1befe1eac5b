"""Every page on a phone (390x844) and a wide screen (1366x900), light and dark, in real
headless Chromium: axe-core (scripts/fetch-axe, from the npm registry) finds no serious or
critical violation; at 390 px chart text is at least 11 px, the page does not scroll sideways,
every control a finger aims at is at least 44 px, the menu folds into one row (and opens
with scripts off), tables stack, every chart's values can be read without hovering. The
stylesheet's palettes are checked for WCAG contrast by a pure helper."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from support.browser import launch, needs_chromium, serve
from web_fixtures import PASSWORD, make_app, make_engine_for, seed_small

from sitwatch.server.config import PrivacyConfig

ROOT = Path(__file__).resolve().parent.parent
STYLE = ROOT / "server" / "web" / "static" / "style.css"
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1366, "height": 900}
TOUCH_PX = 44  # WCAG 2.5.5 (AAA), Apple's and the minimum on a phone
WIDE_TARGET_PX = 24  # WCAG 2.5.8 (AA) on a wide screen
CHART_TEXT_PX = 11
TOPBAR_PX = 60  # one row of 44 px targets and its padding
# Every page a person reaches from the menu, and a desk's own pages.
PAGES = (
    "/",
    "/devices",
    "/devices/desk-a",
    "/devices/desk-a/settings",
    "/insights",
    "/drill",
    "/me",
    "/users",
    "/audit",
    "/my-day",  # alice's own desk-a (seed_small's figures)
    "/my-week",
)
NO_DESK_PAGES = ("/my-day", "/my-week")  # carol, a member with no desk: the empty state


# --- contrast, from the stylesheet's own variables ----------------------------------------


def luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a #rrggbb colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def palettes(css: str) -> dict[str, dict[str, str]]:
    """The colour variables of the first ``:root`` block (light) and of the one inside
    ``prefers-color-scheme: dark`` (its values over the light ones)."""
    variables = re.compile(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;")
    light_block = css[css.index(":root {") : css.index("}", css.index(":root {"))]
    dark_start = css.index("@media (prefers-color-scheme: dark)")
    dark_block = css[dark_start : css.index("}", css.index(":root {", dark_start))]
    light = dict(variables.findall(light_block))
    return {"light": light, "dark": {**light, **dict(variables.findall(dark_block))}}


# Text on its background: at least 4.5:1.
TEXT_PAIRS = [
    ("ink", "bg"),
    ("ink", "card"),
    ("ink", "surface"),
    ("ink", "seated-bg"),
    ("muted", "card"),
    ("muted", "bg"),
    ("muted", "surface"),
    ("accent", "card"),
    ("accent", "bg"),
    ("on-accent", "accent"),
    ("on-drill", "drill"),
    ("drill", "card"),  # the drill guide's reps
    ("bad", "card"),
    ("topbar-ink", "topbar"),
    ("topbar-strong", "topbar"),
    ("online-ink", "online-bg"),
    ("offline-ink", "offline-bg"),
    ("paused-ink", "paused-bg"),
    ("error-ink", "error-bg"),
    ("ok-ink", "ok-bg"),
]
# Chart shapes and field borders on the card: at least 3:1 (WCAG 1.4.11).
SHAPE_PAIRS = [
    ("seat", "card"),
    ("prompt", "card"),
    ("drill", "card"),
    ("stood", "card"),
    ("over", "card"),
    ("goal", "card"),
    ("bad", "card"),
    ("field-border", "card"),
]


def test_contrast_helper_knows_the_extremes() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#777777") == 1
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_palette_contrast(scheme: str) -> None:
    colours = palettes(STYLE.read_text(encoding="utf-8"))[scheme]
    low_text = [
        (fg, bg, round(contrast(colours[fg], colours[bg]), 2))
        for fg, bg in TEXT_PAIRS
        if contrast(colours[fg], colours[bg]) < 4.5
    ]
    low_shapes = [
        (fg, bg, round(contrast(colours[fg], colours[bg]), 2))
        for fg, bg in SHAPE_PAIRS
        if contrast(colours[fg], colours[bg]) < 3
    ]
    assert low_text == [] and low_shapes == []


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def axe_script() -> str:
    """axe.min.js as scripts/fetch-axe keeps it (fetched, pinned and checked, on first
    use; scripts/test runs it before pytest). Without it the test fails, never skips."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fetch-axe")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            "axe-core is missing and could not be fetched from the npm registry "
            f"(scripts/fetch-axe): {done.stderr.strip() or done.stdout.strip()}",
            pytrace=False,
        )
    return Path(done.stdout.strip()).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """seed_small's three desks, admin alice with desk-a linked to her (her personal
    pages have figures) and member carol with no desk, shared by the module's checks."""
    from sqlalchemy.orm import Session
    from web_fixtures import add_user

    from sitwatch.server.members import link_desk

    engine = make_engine_for(tmp_path_factory.mktemp("a11y"))
    add_user(engine)
    add_user(engine, "carol", role="member")
    seed_small(engine)
    with Session(engine) as session:
        link_desk(session, "alice", "desk-a")
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def served(engine: Engine) -> Iterator[str]:
    yield from serve(make_app(engine))


@pytest.fixture(scope="module")
def office(engine: Engine) -> Iterator[str]:
    """The same data in office privacy mode: an admin's overview is the fleet page."""
    yield from serve(make_app(engine, privacy=PrivacyConfig(office_mode=True, min_group=2)))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@dataclass(frozen=True)
class Screen:
    name: str
    viewport: dict[str, int]
    scheme: str

    @property
    def is_phone(self) -> bool:
        return self.viewport["width"] < 640


SCREENS = [
    Screen("wide", WIDE, "light"),
    Screen("phone", PHONE, "light"),
    Screen("wide-dark", WIDE, "dark"),
    Screen("phone-dark", PHONE, "dark"),
]


def logged_in(
    browser: Any,
    base: str,
    screen: Screen,
    axe: str | None = None,
    username: str = "alice",
    **extra: Any,
) -> Any:
    """A new context at ``screen``'s size and colour scheme, logged in as ``username``
    (alice, an admin, lands on the overview; a member on /my-day) through the form;
    axe-core is added to its pages before their own scripts (the CSP still holds for the
    site's)."""
    context = browser.new_context(viewport=screen.viewport, color_scheme=screen.scheme, **extra)
    if axe is not None:
        context.add_init_script(script=axe)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/" if username == "alice" else f"{base}/my-day")
    return context, page


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page as it is, one line each."""
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.slice(0, 4).map(n => n.target.join(' ')"
        " + (n.failureSummary ? ' (' + n.failureSummary.split('\\n').slice(1).join(' ') + ')'"
        " : '')).join('; '))"
    )
    return list(found)


def measure(page: Any, phone: bool) -> dict[str, Any]:
    """What a person sees on the page: sideways overflow, the smallest chart text (font
    size times the SVG's scale on screen), and the controls smaller than a target."""
    return page.evaluate(
        """([minimum]) => {
          const shown = e => { const r = e.getBoundingClientRect();
            return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; };
          const texts = [...document.querySelectorAll('svg.chart text')].filter(shown);
          const sizes = texts.map(t => ({text: t.textContent.trim(),
            px: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a}));
          const small = [];
          for (const e of document.querySelectorAll(
              'a[href], button, input:not([type=hidden]), select, summary')) {
            let box = e;
            // A checkbox is aimed at through its label (the menu's too).
            if (e.type === 'checkbox') box = e.labels[0];
            if (!shown(box)) continue;
            // Links inside a sentence are exempt (WCAG 2.5.8's "inline" exception).
            if (e.tagName === 'A' && getComputedStyle(e).display === 'inline') continue;
            const r = box.getBoundingClientRect();
            if (r.height < minimum - 0.5 || r.width < minimum - 0.5)
              small.push(`${e.tagName.toLowerCase()} "${(e.textContent || e.name || '').trim()
                .slice(0, 30)}" ${Math.round(r.width)}x${Math.round(r.height)}`);
          }
          return {
            scroll_width: document.documentElement.scrollWidth,
            chart_texts: sizes.length,
            smallest_text: sizes.sort((a, b) => a.px - b.px)[0] || null,
            small_targets: small,
          };
        }""",
        [TOUCH_PX if phone else WIDE_TARGET_PX],
    )


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize("screen", SCREENS, ids=lambda s: s.name)
def test_every_page_passes_axe_and_fits(
    browser: Any, served: str, office: str, axe_script: str, screen: Screen
) -> None:
    problems: dict[str, Any] = {}
    context, page = logged_in(browser, served, screen, axe_script)
    try:
        for path in PAGES:
            page.goto(f"{served}{path}")
            problems.update(check_page(page, path, screen))
        problems.update(check_goal_error(page, served, screen))
        page.context.clear_cookies()
        page.goto(f"{served}/login")
        problems.update(check_page(page, "/login", screen))
    finally:
        context.close()
    context, page = logged_in(browser, served, screen, axe_script, username="carol")
    try:
        for path in NO_DESK_PAGES:
            page.goto(f"{served}{path}")
            assert page.locator('[data-personal="no-desk"]').count() == 1, path
            problems.update(check_page(page, f"{path} (no desk)", screen))
    finally:
        context.close()
    context, page = logged_in(browser, office, screen, axe_script)
    try:
        assert page.locator('[data-fleet="totals"]').count() == 1  # office mode's fleet page
        problems.update(check_page(page, "/ (office mode)", screen))
    finally:
        context.close()
    assert problems == {}


def check_goal_error(page: Any, base: str, screen: Screen) -> dict[str, Any]:
    """The goal form sent with too short a stretch: the page again, with the error shown
    by its field, checked as every page is."""
    page.goto(f"{base}/my-day")
    page.fill("input[name=max_stretch_min]", "5")
    page.click("input[value='Save my goal']")
    page.wait_for_url(f"{base}/my-day/goal")
    error = page.locator('[data-error-for="max_stretch_min"]')
    assert error.is_visible() and error.inner_text() == "Choose 10 to 240 minutes"
    return check_page(page, "/my-day/goal (an error)", screen)


def check_page(page: Any, path: str, screen: Screen) -> dict[str, Any]:
    """axe's findings and the measured sizes that fail, by page; empty when all is well."""
    found: dict[str, Any] = {}
    top = page.locator(".topbar").bounding_box()
    if top is None or top["height"] > TOPBAR_PX:  # one row: the menu fits, or folds
        found[f"{path}: top bar"] = top
    violations = serious_violations(page)
    if screen.is_phone and page.locator(".menu-button").count():
        page.click(".menu-button")  # the unfolded menu must pass too
        violations += [f"(menu open) {v}" for v in serious_violations(page)]
    if violations:
        found[f"{path}: axe"] = violations
    sizes = measure(page, screen.is_phone)
    if sizes["small_targets"]:
        found[f"{path}: targets"] = sizes["small_targets"]
    if sizes["scroll_width"] > screen.viewport["width"]:
        found[f"{path}: scrolls sideways"] = sizes["scroll_width"]
    smallest = sizes["smallest_text"]
    if smallest and smallest["px"] < CHART_TEXT_PX:
        found[f"{path}: chart text"] = smallest
    return found


@needs_chromium
@pytest.mark.browser
def test_a_phone_reads_every_chart(browser: Any, served: str) -> None:
    """At 390 px: the menu is one row until opened, chart text is real size, the day table
    is stacked rows, every chart has its values in words one tap away."""
    screen = Screen("phone", PHONE, "light")
    context, page = logged_in(browser, served, screen)
    try:
        top = page.locator(".topbar").bounding_box()
        assert top is not None and top["height"] <= TOPBAR_PX
        assert not page.locator("nav >> text=Insights").is_visible()
        page.click(".menu-button")
        links = page.locator(".topbar nav a")
        assert links.count() == 8 and links.nth(2).is_visible()
        for box in (link.bounding_box() for link in links.all()):
            assert box is not None and box["height"] >= TOUCH_PX

        for path in ("/", "/insights"):
            page.goto(f"{page.url.split('/', 3)[0]}//{page.url.split('/', 3)[2]}{path}")
            charts = page.locator("svg.chart[data-chart]")
            assert charts.count() >= (3 if path == "/" else 5)
            for chart in charts.all():
                name = chart.get_attribute("data-chart")
                box = chart.bounding_box()
                assert box is not None and box["x"] + box["width"] <= PHONE["width"], name
                card = chart.locator("xpath=ancestor::section[1]")
                words = card.locator("details.numbers").first
                words.locator("summary").click()
                first = words.locator("li").first
                assert first.is_visible() and first.inner_text().strip(), name
            smallest = measure(page, phone=True)["smallest_text"]
            assert smallest is not None and smallest["px"] >= CHART_TEXT_PX, smallest

        # The Insights day table: one block per day, each value with its column's name.
        row = page.locator("table.insight-days tbody tr").first
        cells = row.locator("td")
        first, second = cells.nth(0).bounding_box(), cells.nth(1).bounding_box()
        assert first is not None and second is not None
        assert second["y"] >= first["y"] + first["height"] - 1  # under, not beside
        label = cells.nth(1).evaluate("td => getComputedStyle(td, '::before').content")
        assert label == '"Seated"'
    finally:
        context.close()


@needs_chromium
@pytest.mark.browser
def test_a_phone_reads_the_personal_pages_in_the_dark(browser: Any, served: str) -> None:
    """At 390 px in dark mode: the week pair chart fits, its text is real size, last week is
    hatched and outlined (not only another colour), its values are listed one tap away; the
    goal ring and the stretch bar are drawn at a readable size; /my-week's days stack."""
    screen = Screen("phone-dark", PHONE, "dark")
    context, page = logged_in(browser, served, screen)
    try:
        page.goto(f"{served}/my-day")
        chart = page.locator('svg.chart[data-chart="week-pair"]')
        assert chart.get_attribute("viewBox") is None
        box = chart.bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        assert chart.locator("rect.last-week").count() == 7
        last = chart.locator("rect.last-week").first
        assert "hatch-last-week" in last.evaluate("e => getComputedStyle(e).fill")
        assert last.evaluate("e => getComputedStyle(e).strokeWidth") != "0px"
        smallest = measure(page, phone=True)["smallest_text"]
        assert smallest is not None and smallest["px"] >= CHART_TEXT_PX, smallest
        words = page.locator("section[aria-label='This week and last week'] details.numbers")
        words.locator("summary").click()
        assert words.locator("li").count() == 7
        assert words.locator("li").first.inner_text().startswith("Mon 23 Nov: ")
        ring = page.locator('svg[data-chart="goal-ring"]')
        ring_box = ring.bounding_box()
        assert ring_box is not None and ring_box["width"] >= 100
        ring_text = ring.locator("text.ring-label").evaluate(
            "t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a"
        )
        assert ring_text >= CHART_TEXT_PX
        bar = page.locator('svg[data-chart="stretch-bar"]').bounding_box()
        assert bar is not None and bar["height"] >= 12 and bar["width"] >= 200

        page.goto(f"{served}/my-week")
        row = page.locator("table.week-days tbody tr").first
        day, seated = row.locator("th").bounding_box(), row.locator("td").first.bounding_box()
        assert day is not None and seated is not None
        assert seated["y"] >= day["y"] + day["height"] - 1  # under, not beside
        label = row.locator("td").first.evaluate("td => getComputedStyle(td, '::before').content")
        assert label == '"Seated"'
    finally:
        context.close()


@needs_chromium
@pytest.mark.browser
def test_the_menu_opens_without_scripts_and_dark_mode_follows_the_system(
    browser: Any, served: str
) -> None:
    screen = Screen("phone-dark", PHONE, "dark")
    context, page = logged_in(browser, served, screen, java_script_enabled=False)
    try:
        assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != (
            "rgb(244, 246, 248)"  # the light --bg
        )
        colours = palettes(STYLE.read_text(encoding="utf-8"))["dark"]
        background = page.evaluate(
            "() => getComputedStyle(document.documentElement).backgroundColor"
        )
        red, green, blue = (int(colours["bg"][i : i + 2], 16) for i in (1, 3, 5))
        assert background == f"rgb({red}, {green}, {blue})"
        assert not page.locator("nav >> text=Insights").is_visible()
        page.click(".menu-button")
        assert page.locator("nav >> text=Insights").is_visible()
        page.click("nav >> text=Insights")
        page.wait_for_url(re.compile(r".*/insights$"))
    finally:
        context.close()


@needs_chromium
@pytest.mark.browser
def test_the_check_itself_finds_violations(browser: Any, axe_script: str) -> None:
    """The harness is live: on a page made to fail, axe reports what the issue's run found
    on the old dashboard (low contrast, a link inside an image), so a clean result above
    means clean pages, not a check that never ran."""
    context = browser.new_context(viewport=PHONE)
    context.add_init_script(script=axe_script)
    try:
        page = context.new_page()
        page.set_content(
            '<html lang="en"><head><title>t</title></head><body><main>'
            '<p style="color:#aaa;background:#fff">low contrast text</p>'
            '<svg role="img" aria-label="chart"><a href="/x"><text y="20">desk</text></a></svg>'
            "</main></body></html>"
        )
        found = " ".join(serious_violations(page))
        assert "color-contrast" in found and "nested-interactive" in found
    finally:
        context.close()
