"""The live figures the pages poll (/api/v1/live, /api/v1/devices/<id>/live): their shape
and numbers (those of the page), login and the viewer's scope; and the pages' script is a
static file under a policy that runs nothing inline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import add_device, add_user, login, make_app, seeded_engine

from sitwatch.server.members import link_desk

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


@pytest.fixture
def three_desks(tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine("sqlite", tmp_path, with_user=True) as engine:
        yield engine


@pytest.fixture
def client(three_desks: Engine) -> FlaskClient:
    client = make_app(three_desks, SITWATCH_LIVE_POLL_S=0.5).test_client()
    assert login(client).status_code == 302
    return client


def test_live_figures_of_every_desk(client: FlaskClient) -> None:
    """seed_small at 15:30: desk-a seated since 14:50, desk-b offline, desk-c idle."""
    body = client.get("/api/v1/live").get_json()
    assert body["now"] == "2026-11-25T15:30:00Z"
    today = body["today"]
    assert today["seated_since"] == "2026-11-25T14:50:00Z" and today["seated_now"] is True
    assert (today["devices"], today["devices_online"], today["devices_seated"]) == (3, 2, 1)
    assert today["seated_s"] == 9900 and today["current_stretch_s"] == 2400
    assert (today["sessions"], today["breaks"], today["drills"]) == (4, 2, 3)
    assert (today["prompts"], today["prompts_answered"], today["answered_by_drill"]) == (3, 2, 1)
    assert sorted(body["devices"]) == ["desk-a", "desk-b", "desk-c"]
    a, b = body["devices"]["desk-a"], body["devices"]["desk-b"]
    assert a["label"] == "Desk A" and a["is_online"] is True and a["seated_now"] is True
    assert a["seated_since"] == "2026-11-25T14:50:00Z" and a["seated_s"] == 8100
    assert a["last_seen_at"] == "2026-11-25T15:29:00Z"
    # desk-b's last seat event is "seated", but it is offline: not seated now.
    assert b["is_online"] is False and b["seated_now"] is False and b["seated_since"] is None
    assert b["last_seen_at"] == "2026-11-25T13:30:00Z"


def test_live_names_only_the_cards_asked_for(client: FlaskClient) -> None:
    body = client.get("/api/v1/live?device=desk-b&device=desk-c&device=nobody").get_json()
    assert sorted(body["devices"]) == ["desk-b", "desk-c"]
    assert body["today"]["devices"] == 3  # the header still covers every desk


def test_one_desks_live_figures(client: FlaskClient) -> None:
    body = client.get("/api/v1/devices/desk-c/live").get_json()
    assert list(body["devices"]) == ["desk-c"]
    assert body["today"]["devices"] == 1 and body["today"]["seated_since"] is None
    assert body["today"]["devices_online"] == 1 and body["devices"]["desk-c"]["seated_s"] == 0
    assert client.get("/api/v1/devices/nobody/live").status_code == 404


def test_live_agrees_with_the_summary(client: FlaskClient) -> None:
    live = client.get("/api/v1/live").get_json()
    summary = client.get("/api/v1/summary").get_json()
    assert {k: v for k, v in live["today"].items() if k != "seated_since"} == summary["today"]
    for device_id, figures in summary["devices"].items():
        shown = live["devices"][device_id]
        assert {k: shown[k] for k in figures} == figures


def test_live_needs_login(three_desks: Engine) -> None:
    anonymous = make_app(three_desks).test_client()
    for path in ("/api/v1/live", "/api/v1/devices/desk-a/live"):
        response = anonymous.get(path)
        assert response.status_code == 401
        assert response.get_json() == {"error": "login required"}


def test_live_keeps_to_the_viewers_scope(three_desks: Engine) -> None:
    """A member linked to desk-b sees desk-b's figures only, however the page asks."""
    add_user(three_desks, "bob", role="member")
    with Session(three_desks) as session:
        link_desk(session, "bob", "desk-b")
        session.commit()
    client = make_app(three_desks).test_client()
    assert login(client, "bob").status_code == 302
    body = client.get("/api/v1/live?device=desk-a&device=desk-b").get_json()
    assert list(body["devices"]) == ["desk-b"]
    assert body["today"]["devices"] == 1 and body["today"]["seated_s"] == 1800
    assert body["today"]["seated_since"] is None
    assert client.get("/api/v1/devices/desk-a/live").status_code == 404
    assert client.get("/api/v1/devices/desk-b/live").status_code == 200


@pytest.mark.parametrize(
    ("page", "url", "title_device"),
    [
        ("/", "/api/v1/live?device=desk-a&amp;device=desk-b&amp;device=desk-c", None),
        ("/devices/desk-a", "/api/v1/devices/desk-a/live", "desk-a"),
    ],
)
def test_pages_load_the_static_script_and_nothing_inline(
    client: FlaskClient, page: str, url: str, title_device: str | None
) -> None:
    response = client.get(page)
    html = response.get_data(as_text=True)
    scripts = SCRIPT_TAG.findall(html)
    assert len(scripts) == 1
    attributes, inline = scripts[0]
    assert inline.strip() == ""
    assert 'src="/static/live.js" defer' in attributes
    assert f'data-live-url="{url}"' in attributes and 'data-poll-s="0.5"' in attributes
    assert ("data-title-device" in attributes) is (title_device is not None)
    if title_device:
        assert f'data-title-device="{title_device}"' in attributes
    # No inline handlers (onclick=...) and no javascript: links anywhere.
    assert not re.search(r"\son[a-z]+\s*=", html) and "javascript:" not in html
    header = response.headers["Content-Security-Policy"]
    policy = dict(part.strip().split(" ", 1) for part in header.split(";"))
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert "unsafe-inline" not in header and "unsafe-eval" not in header


def test_the_only_desk_is_the_one_the_title_follows(tmp_path: Path) -> None:
    with seeded_engine("sqlite", tmp_path, with_user=True, seed=lambda _engine: None) as engine:
        client = make_app(engine).test_client()
        login(client)
        html = client.get("/").get_data(as_text=True)
        assert 'data-poll-s="5.0"' in html and "data-title-device" not in html  # no desk yet
    (tmp_path / "one").mkdir()
    with seeded_engine("sqlite", tmp_path / "one", with_user=True, seed=one_desk) as engine:
        client = make_app(engine).test_client()
        login(client)
        assert 'data-title-device="desk-solo"' in client.get("/").get_data(as_text=True)


def one_desk(engine: Engine) -> None:
    with Session(engine) as session:
        add_device(session, "desk-solo", "Solo")
        session.commit()


def test_the_script_is_served_as_javascript(client: FlaskClient) -> None:
    with client.get("/static/live.js") as response:  # a file response: close it
        assert response.status_code == 200
        assert response.mimetype in ("text/javascript", "application/javascript")
        assert "fetch(" in response.get_data(as_text=True)
