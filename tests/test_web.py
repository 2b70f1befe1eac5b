"""The dashboard through Flask's test client: login, CSRF, escaping, forms, pages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import (
    PASSWORD,
    TODAY,
    add_device,
    add_drill,
    add_rollup,
    add_session,
    add_user,
    at,
    csrf_from,
    login,
    make_app,
    make_engine_for,
    seeded_engine,
    settings_form,
    shown_settings,
)

from sitwatch.drill import CIRCUIT
from sitwatch.server.models import Device
from sitwatch.server.queries.stats import DayFigures
from sitwatch.server.web.charts import series_chart

HOSTILE_NAMES = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.fixture
def three_desks(tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine("sqlite", tmp_path, with_user=True) as engine:
        yield engine


@pytest.fixture
def app(three_desks: Engine) -> Flask:
    return make_app(three_desks)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def logged_in(client: FlaskClient) -> FlaskClient:
    assert login(client).status_code == 302
    return client


@pytest.mark.parametrize(
    "path", ["/", "/devices", "/devices/desk-a", "/devices/desk-a/settings", "/drill", "/nowhere"]
)
def test_pages_redirect_to_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_health_and_static_need_no_login(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    with client.get("/static/style.css") as response:  # a file response: close it
        assert response.status_code == 200
    assert client.get("/login").status_code == 200


def test_wrong_password_is_rejected(client: FlaskClient) -> None:
    response = login(client, password="not the password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert login(client, username="mallory").status_code == 401
    assert client.get("/").status_code == 302


def test_login_goes_to_next_but_never_off_site(client: FlaskClient) -> None:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    form = {"csrf_token": token, "username": "alice", "password": PASSWORD}
    response = client.post("/login?next=/devices/desk-a%3Fday%3D2026-11-24", data=form)
    assert response.headers["Location"] == "/devices/desk-a?day=2026-11-24"
    client.get("/login")  # logged in already; a second login is allowed
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = client.post("/login", query_string={"next": hostile}, data=form)
        assert response.headers["Location"] == "/"


def test_logout_needs_a_post_with_csrf(logged_in: FlaskClient) -> None:
    assert logged_in.get("/logout").status_code == 405
    assert logged_in.post("/logout").status_code == 400  # no token
    token = csrf_from(logged_in.get("/").get_data(as_text=True))
    assert logged_in.post("/logout", data={"csrf_token": token}).status_code == 302
    assert logged_in.get("/").status_code == 302


def test_posts_without_csrf_token_are_refused(client: FlaskClient, logged_in: FlaskClient) -> None:
    form = {"username": "alice", "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 400
    refused = logged_in.post("/devices/desk-a/settings", data={"sitting_limit_s": "600"})
    assert refused.status_code == 400
    assert "CSRF" in refused.get_data(as_text=True)
    assert logged_in.post("/devices/desk-a/rename", data={"name": "x"}).status_code == 400
    bad_token = {"name": "x", "csrf_token": "forged"}
    assert logged_in.post("/devices/desk-a/rename", data=bad_token).status_code == 400


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_hostile_device_name_renders_as_text(
    logged_in: FlaskClient, three_desks: Engine, hostile: str
) -> None:
    page = logged_in.get("/devices/desk-a/settings").get_data(as_text=True)
    response = logged_in.post(
        "/devices/desk-a/rename", data={"csrf_token": csrf_from(page), "name": hostile}
    )
    assert response.status_code == 302
    with Session(three_desks) as session:
        assert session.get(Device, "desk-a").name == hostile  # stored as typed
    for path in ("/", "/devices", "/devices/desk-a", "/devices/desk-a/settings"):
        body = logged_in.get(path).get_data(as_text=True)
        assert hostile not in body, path
        assert "<img src=x" not in body and "<script>alert" not in body
        assert str(escape(hostile)) in body, path  # Jinja's escaping: &lt; &#34; ...


def test_rename_rejects_empty_and_too_long_names(logged_in: FlaskClient) -> None:
    token = csrf_from(logged_in.get("/devices/desk-a/settings").get_data(as_text=True))
    for name in ("   ", "x" * 101):
        response = logged_in.post(
            "/devices/desk-a/rename", data={"csrf_token": token, "name": name}
        )
        assert response.status_code == 400
        assert 'data-error-for="name"' in response.get_data(as_text=True)


def _settings_form(client: FlaskClient, **changes: str | None) -> dict[str, str]:
    return settings_form(client, "desk-a", **changes)


def _post_settings(client: FlaskClient, **changes: str | None) -> str:
    """The page after submitting the form with ``changes``: a problem keeps it on the page."""
    response = client.post("/devices/desk-a/settings", data=_settings_form(client, **changes))
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _error_for(body: str, name: str) -> str:
    errors = body.split(f'data-error-for="{name}">', 1)
    assert len(errors) == 2, f"no error shown for {name}"
    return html.unescape(errors[1].split("</p>", 1)[0])


def _text(body: str) -> str:
    """What a person reads: the page without its tags and their attributes."""
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"sitting_limit_min": "abc"}, "sitting_limit_min", "Must be a number"),
        ({"sitting_limit_min": "0.5"}, "sitting_limit_min", "Must be at least 1 minute"),
        ({"sitting_limit_min": "300"}, "sitting_limit_min", "Must be at most 240 minutes"),
        ({"snooze_min": ""}, "snooze_min", "Enter a number"),
        ({"grace_s": "-5"}, "grace_s", "Cannot be negative"),
        ({"press_ignore_s": "11"}, "press_ignore_s", "Must be at most 10 seconds"),
        ({"max_snoozes": "2.5"}, "max_snoozes", "Must be a whole number"),
        ({"max_level": "9"}, "max_level", "Pick one of the levels in the list"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Pick a time zone from the list"),
        ({"quiet_start": "25:00"}, "quiet_start", "Enter a time as HH:MM"),
        ({"work_tue_start": "9"}, "work_tue-start", "Enter a time as HH:MM"),
        ({"work_wed_end": "08:00"}, "work_wed-end", "Must be later than the start"),
        ({"grace_s": "300", "break_min": "2"}, "break_min",
         "A break must last at least as long as a short lift (300 seconds)"),
    ],
)  # fmt: skip
def test_bad_settings_are_told_in_words_next_to_their_field(
    logged_in: FlaskClient, three_desks: Engine, changes: dict[str, str], field: str, words: str
) -> None:
    body = _post_settings(logged_in, **changes)
    assert _error_for(body, field).startswith(words)
    text = _text(body)
    assert not re.search(r"\w_s\b|_min\b|Input should|Value error", text), "internal words"
    assert "Please correct the fields marked below." in text
    with Session(three_desks) as session:
        assert session.get(Device, "desk-a").settings is None  # nothing stored


def test_what_was_typed_stays_in_the_form_after_an_error(logged_in: FlaskClient) -> None:
    typed = {
        "sitting_limit_min": "45",
        "reprompt_min": "abc",
        "max_level": "2",
        "timezone": "Europe/Berlin",
        "quiet_end": "06:15",
        "work_mon_start": "8:0",
        "work_sat_mode": "all_day",
        "work_hours_enabled": None,
    }
    body = _post_settings(logged_in, **typed)
    assert "Must be a number" in _error_for(body, "reprompt_min")
    kept = shown_settings(body)
    for name, value in typed.items():
        assert kept.get(re.sub(r"^(work_\w{3})_", r"\1-", name)) == value, name
    assert '<option selected value="2">2 – firmer</option>' in body
    assert '<option selected value="Europe/Berlin">Berlin</option>' in body


def test_the_form_shows_the_defaults_in_minutes_and_words(logged_in: FlaskClient) -> None:
    body = logged_in.get("/devices/desk-a/settings").get_data(as_text=True)
    shown = shown_settings(body)
    assert shown["sitting_limit_min"] == "30" and shown["break_min"] == "2"
    assert shown["reprompt_min"] == "15" and shown["snooze_min"] == "10"
    assert shown["grace_s"] == "60" and shown["press_ignore_s"] == "2"
    assert shown["drill_step_s"] == "30" and shown["max_snoozes"] == "2"
    assert shown["max_level"] == "3" and shown["timezone"] == "UTC"
    assert shown["quiet_enabled"] == "y"
    assert (shown["quiet_start"], shown["quiet_end"]) == ("22:00", "07:00")
    assert shown["work_hours_enabled"] == "y"
    for day in ("mon", "tue", "wed", "thu", "fri"):
        assert shown[f"work_{day}-mode"] == "hours"
        assert (shown[f"work_{day}-start"], shown[f"work_{day}-end"]) == ("09:00", "18:00")
    assert shown["work_sat-mode"] == shown["work_sun-mode"] == "off"
    text = _text(body)
    assert "Prompt me after sitting for" in text and "minutes" in text
    assert "How insistent prompts may get" in text and "1 – gentle" in text
    assert "A lift shorter than this is not a break" in text
    assert not re.search(r"\w_s\b|_min\b", text)


def test_the_time_zone_is_picked_from_every_zone_grouped_by_region(
    logged_in: FlaskClient,
) -> None:
    from zoneinfo import available_timezones

    body = logged_in.get("/devices/desk-a/settings").get_data(as_text=True)
    picker = body.split('<select aria-describedby="timezone-hint" id="timezone" name="timezone">')
    assert len(picker) == 2, "no time-zone select"
    options = picker[1].split("</select>", 1)[0]
    assert set(re.findall(r'value="([^"]+)"', options)) == available_timezones()
    assert '<optgroup label="Europe">' in options and '<optgroup label="America">' in options
    assert '<option value="America/Argentina/Buenos_Aires">Argentina/Buenos Aires</option>' in (
        options
    )
    assert re.findall(r"<option selected[^>]*>", options) == ['<option selected value="UTC">']
    europe = options.split('<optgroup label="Europe">')[1].split("</optgroup>")[0]
    names = re.findall(r'value="Europe/([^"]+)"', europe)
    assert names == sorted(names)


def test_unknown_device_and_bad_day_are_client_errors(logged_in: FlaskClient) -> None:
    assert logged_in.get("/devices/nope").status_code == 404
    assert logged_in.get("/devices/nope/settings").status_code == 404
    response = logged_in.get("/?day=2026-13-45")
    assert response.status_code == 400
    assert "YYYY-MM-DD" in response.get_data(as_text=True)
    assert logged_in.get("/?day=<script>").status_code == 400
    for far in ("0001-01-01", "9999-12-31", "1999-12-31"):
        assert logged_in.get(f"/devices/desk-a?day={far}").status_code == 400


def test_pages_with_no_data_at_all(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    engine = make_engine_for(tmp_path / "empty")
    add_user(engine)
    try:
        client = make_app(engine).test_client()
        login(client)
        assert "No device has reported yet" in client.get("/").get_data(as_text=True)
        assert "No device has reported yet" in client.get("/devices").get_data(as_text=True)
        assert client.get("/api/v1/summary").get_json()["today"]["devices"] == 0
    finally:
        engine.dispose()


def test_quiet_device_page(logged_in: FlaskClient) -> None:
    body = logged_in.get("/devices/desk-c").get_data(as_text=True)
    assert "Not seated" in body and 'data-figure="seated_s" data-value="0"' in body


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    # Only the site's own script files (static/live.js), nothing inline.
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_overview_shows_today_and_charts(logged_in: FlaskClient) -> None:
    body = logged_in.get("/").get_data(as_text=True)
    assert "1 of 3 seated now" in body
    # Several desks are several people: the card shows the average desk that sat today
    # (desk-a 2 h 15 min and desk-b 30 min; desk-c did not sit), never their sum.
    assert "Per desk today" in body and "All devices today" not in body
    assert 'data-figure="seated_s" data-value="4950"' in body  # (8100 + 1800) / 2
    assert "1 h 22 min" in body and "2 h 45 min" not in body
    assert 'data-figure="desks_in_use" data-value="2"' in body
    assert 'data-figure="drills" data-value="1.5"' in body  # (2 + 1) / 2
    assert "the average desk that sat that day" in body
    # A drill streak is one person's: none over several people's desks.
    assert "Longest stretch on any desk" in body and 'data-figure="streak_current"' not in body
    assert body.count('class="session"') == 4  # desk-a 3 + desk-b 1 finished
    assert body.count('class="session open"') == 1  # desk-a since 14:50
    assert body.count('<rect class="bar"') == 7 + 30
    # Days with drills: 6 of the last 7 (not 11-20), 14 of the last 30 (see seed_small).
    assert body.count('class="drill-badge"') == 6 + 14


def test_device_page_and_other_days(logged_in: FlaskClient) -> None:
    body = logged_in.get("/devices/desk-a").get_data(as_text=True)
    assert "Seated now" in body and 'data-figure="current_stretch_s" data-value="2400"' in body
    assert 'data-figure="streak_current" data-value="5"' in body
    earlier = logged_in.get("/devices/desk-a?day=2026-11-24").get_data(as_text=True)
    assert "Tuesday 24 November 2026" in earlier
    assert earlier.count('class="session"') == 0  # rollups only on that day, no sessions
    assert "2026-11-25" in earlier  # a link forward to today


def test_devices_list(logged_in: FlaskClient) -> None:
    body = logged_in.get("/devices").get_data(as_text=True)
    assert body.count('class="pill online"') == 2 and body.count('class="pill offline"') == 1
    assert "2 h 00 min ago" in body  # desk-b


def test_drill_guide_lists_the_circuit(logged_in: FlaskClient) -> None:
    body = logged_in.get("/drill").get_data(as_text=True)
    for step in CIRCUIT:
        assert f'id="step-{step.key}"' in body and html.escape(step.title) in body


def test_drill_guide_shows_each_exercise_with_its_drawing(logged_in: FlaskClient) -> None:
    body = logged_in.get("/drill").get_data(as_text=True)
    pictures = re.findall(r'<img class="step-picture" src="([^"]+)" alt="([^"]+)"', body)
    assert [src for src, _ in pictures] == [f"/static/drill/{s.key}.svg" for s in CIRCUIT]
    for (src, alt), step in zip(pictures, CIRCUIT, strict=True):
        assert len(alt) > 20 and alt != step.title  # says what the drawing shows
        response = logged_in.get(src)
        assert response.status_code == 200 and response.mimetype == "image/svg+xml"
        drawing = ElementTree.fromstring(response.get_data())
        title = drawing.find("{http://www.w3.org/2000/svg}title")
        assert title is not None and title.text and step.title.split()[0] in title.text
        assert drawing.get("role") == "img" and drawing.get("aria-labelledby") == title.get("id")
        response.close()
    # The drawing comes before the step's text (a phone shows it above).
    first = body.index('id="step-glute_bridge"')
    assert body.index("glute_bridge.svg", first) < body.index("<h2>Glute bridges", first)


def test_a_drill_done_on_the_chair_is_marked_not_counted(
    logged_in: FlaskClient, three_desks: Engine
) -> None:
    with Session(three_desks) as session:
        add_drill(session, "desk-c", at(TODAY, 11, 5), verified=False)
        session.commit()
    body = logged_in.get(f"/devices/desk-c?day={TODAY.isoformat()}").get_data(as_text=True)
    assert body.count('class="drill not-counted"') == 1
    assert "not counted: the seat was taken" in body


@pytest.mark.parametrize("hours", [0, 0.5, 7, 23, 50, 999, 12_345])
def test_bar_chart_axis_has_few_gridlines_at_any_scale(hours: float) -> None:
    days = [DayFigures(day=date(2026, 11, d), seated_s=hours * 3600 * d / 30) for d in (1, 30)]
    chart = series_chart(days)
    assert 2 <= len(chart.y_ticks) <= 6
    top = int(chart.y_ticks[-1].label.removesuffix(" h"))
    assert top >= hours
    assert all(bar.height >= 0 and bar.y >= 0 for bar in chart.bars)  # inside the plot


def test_a_fleet_overview_shows_the_busiest_devices_and_links_to_all(
    logged_in: FlaskClient, three_desks: Engine
) -> None:
    from sitwatch.server.web.overview import OVERVIEW_DEVICES

    fleet = 30
    with Session(three_desks) as session:
        for n in range(fleet):
            add_device(session, f"fleet-{n:02d}", f"Fleet {n:02d}")
        session.flush()
        for n in range(fleet):
            add_rollup(session, f"fleet-{n:02d}", TODAY, seated_s=36_000 + n, sessions=1)
            add_session(session, f"fleet-{n:02d}", at(TODAY, 9), 30 + n)
        session.commit()
    body = logged_in.get("/").get_data(as_text=True)
    busiest = [f"fleet-{n:02d}" for n in range(fleet - OVERVIEW_DEVICES, fleet)]
    cards = re.findall(r'class="card device-card" href="[^"]*" data-device="([^"]+)"', body)
    assert cards == sorted(busiest)  # in the devices' own (name) order
    assert body.count('class="row-label"') == OVERVIEW_DEVICES
    assert body.count('class="session"') == OVERVIEW_DEVICES  # only their bars
    assert f'data-figure="shown_devices" data-value="{OVERVIEW_DEVICES}"' in body
    assert f"all {fleet + 3} devices" in body
    # The header's figures still cover every device.
    everyone_s = 9900 + sum(36_000 + n for n in range(fleet))
    per_desk_s = round(everyone_s / (fleet + 2))  # every desk that sat: all but desk-c
    assert f'data-figure="seated_s" data-value="{per_desk_s}"' in body
    everyone = logged_in.get("/devices").get_data(as_text=True)
    assert everyone.count('class="pill ') == fleet + 3
