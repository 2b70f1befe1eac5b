"""Every route of the dashboard as each role sees it: anonymous, a member, another member,
an admin, and an admin in office privacy mode (docs/privacy.md). The walk goes over
``app.url_map``, so a route added without a line in ROUTES fails here."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import (
    NOW,
    PASSWORD,
    TODAY,
    add_device,
    add_rollup,
    add_session,
    add_user,
    at,
    csrf_from,
    login,
    make_app,
    seeded_engine,
)

from sitwatch.server.config import PrivacyConfig
from sitwatch.server.members import link_desk
from sitwatch.server.users import find_user

DESKS = {"desk-a": "Desk A", "desk-b": "Desk B", "desk-c": "Desk C"}
OFFICE = PrivacyConfig(office_mode=True, min_group=5)

# What each route is, by endpoint: how the walk calls it and what it expects.
PUBLIC = "public"  # answers everyone
LOGOUT = "logout"
STATIC_PAGE = "static page"  # no desk's data at all
FLEET = "fleet"  # the figures of the desks the viewer may see
LISTING = "listing"  # the desks the viewer manages, by name
INSIGHTS = "insights"  # fleet figures (office mode: over enough desks only), or ?device=
DESK_FIGURES = "desk figures"  # /…/<device_id>: that desk's own figures
DESK_MANAGE = "desk manage"  # /…/<device_id>: change the desk (settings, rename, pause)
SELF = "self"  # the logged-in person's own data
ADMIN = "admin"  # admins only

ROUTES = {
    "auth.login": PUBLIC,
    "static": PUBLIC,
    "healthz": PUBLIC,
    "auth.logout": LOGOUT,
    "overview.drill": STATIC_PAGE,
    "overview.index": FLEET,
    "api.summary": FLEET,
    "api.live": FLEET,
    "api.rollups_csv": FLEET,
    "devices.index": LISTING,
    "api.devices": LISTING,
    "insights.page": INSIGHTS,
    "api.insights_view": INSIGHTS,
    "api.insights_days_csv": INSIGHTS,
    "api.insights_weeks_csv": INSIGHTS,
    "api.insights_heatmap_csv": INSIGHTS,
    "devices.device": DESK_FIGURES,
    "api.device_today": DESK_FIGURES,
    "api.device_days": DESK_FIGURES,
    "api.device_rollups_csv": DESK_FIGURES,
    "api.device_live": DESK_FIGURES,
    "settings.page": DESK_MANAGE,
    "settings.rename": DESK_MANAGE,
    "settings.pause": DESK_MANAGE,
    "my_data.page": SELF,
    "my_data.export_as_json": SELF,
    "my_data.export_as_csv": SELF,
    "my_data.share": SELF,
    "personal.page": SELF,
    "personal.set_goal": SELF,
    "personal.week": SELF,
    "api.my_day": SELF,
    "api.my_week": SELF,
    "people.index": ADMIN,
    "people.links": ADMIN,
    "audit.page": ADMIN,
}


@dataclass(frozen=True)
class Role:
    name: str
    username: str | None  # None: not logged in
    figures: frozenset[str]  # desks whose own figures it sees
    manages: frozenset[str]  # desks it lists and changes
    is_admin: bool = False
    office: bool = False


ALL = frozenset(DESKS)
ROLES = (
    Role("anonymous", None, frozenset(), frozenset()),
    Role("member", "bob", frozenset({"desk-a"}), frozenset({"desk-a"})),
    Role("other member", "carol", frozenset({"desk-b"}), frozenset({"desk-b"})),
    Role("admin", "alice", ALL, ALL, is_admin=True),
    # carol shares her desk with admins; bob does not; desk-c is nobody's.
    Role("office admin", "alice", frozenset({"desk-b"}), ALL, is_admin=True, office=True),
)


def people(engine: Engine) -> None:
    """alice the admin; bob with desk-a; carol with desk-b, shared with admins."""
    add_user(engine, "alice")
    add_user(engine, "bob", role="member")
    add_user(engine, "carol", role="member")
    with Session(engine) as session:
        link_desk(session, "bob", "desk-a")
        link_desk(session, "carol", "desk-b")
        carol = find_user(session, "carol")
        assert carol is not None
        carol.shares_with_admins = True
        session.commit()


@pytest.fixture
def three_desks(tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine("sqlite", tmp_path) as engine:
        people(engine)
        yield engine


def app_for(engine: Engine, role: Role) -> Flask:
    # No CSRF here: a POST must reach the view, which checks the desk before its form.
    return make_app(engine, privacy=OFFICE if role.office else None, WTF_CSRF_ENABLED=False)


def log_in(client: FlaskClient, username: str) -> None:
    """As web_fixtures.login, on an app without CSRF tokens."""
    form = {"username": username, "password": PASSWORD}
    assert client.post("/login", data=form).status_code == 302


def client_for(engine: Engine, role: Role) -> FlaskClient:
    client = app_for(engine, role).test_client()
    if role.username is not None:
        log_in(client, role.username)
    return client


def urls(app: Flask) -> Iterator[tuple[str, str, str, str | None]]:
    """(endpoint, method, url, desk) for every route and method, each desk for desk routes."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        assert rule.endpoint in ROUTES, f"route {rule.rule} ({rule.endpoint}) is not classified"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if "device_id" in rule.arguments:
                for desk in DESKS:
                    yield rule.endpoint, method, rule.build({"device_id": desk})[1], desk
            elif "filename" in rule.arguments:
                yield rule.endpoint, method, rule.build({"filename": "style.css"})[1], None
            else:
                yield rule.endpoint, method, rule.rule, None


def text_of(data: bytes) -> str:
    """A response's text; a zip's (the CSV export) is its members'."""
    if not data.startswith(b"PK"):
        return data.decode()
    archive = zipfile.ZipFile(io.BytesIO(data))
    return "".join(archive.read(name).decode() for name in archive.namelist())


def mentions(body: str) -> set[str]:
    return {d for d, name in DESKS.items() if d in body or name in body}


def check(client: FlaskClient, role: Role, endpoint: str, method: str, url: str) -> None:
    kind = ROUTES[endpoint]
    with client.open(url, method=method) as response:
        status, body = response.status_code, text_of(response.get_data())
    where = f"{role.name}: {method} {url}"
    if kind == PUBLIC:
        assert status == 200, where
        return
    if role.username is None:
        expected = 401 if url.startswith("/api/") else 302
        assert status == expected, where
        if status == 302:
            assert response.headers["Location"].startswith("/login"), where
        return
    if kind == LOGOUT:
        assert status == 302, where
        log_in(client, role.username)  # carry on logged in
    elif kind == STATIC_PAGE:
        assert status == 200 and not mentions(body), where
    elif kind == FLEET:
        assert status == 200, where
        assert mentions(body) <= role.figures, where
    elif kind == LISTING:
        assert status == 200, where
        assert mentions(body) == role.manages, where
    elif kind == INSIGHTS:
        # Office mode: the sample fleet has 2 desks with data, fewer than min_group.
        assert status == (403 if role.office else 200), where
        assert mentions(body) <= role.figures, where
    elif kind == SELF:
        expected = 400 if method == "POST" else 200  # no button pressed
        assert status == expected, where
        assert mentions(body) <= (role.manages if not role.is_admin else frozenset()), where
    elif kind == ADMIN:
        if not role.is_admin:
            assert status == 403, where
        else:
            assert status == (400 if method == "POST" else 200), where  # an empty form
    else:
        raise AssertionError(f"no check for {kind}")


def check_desk(
    client: FlaskClient,
    role: Role,
    endpoint: str,
    method: str,
    url: str,
    desk: str,
    shown: frozenset[str] | None = None,
) -> None:
    """``shown``: the desks the answer may name (default ``desk`` alone)."""
    kind = ROUTES[endpoint]
    with client.open(url, method=method) as response:
        status, body = response.status_code, text_of(response.get_data())
    where = f"{role.name}: {method} {url}"
    if role.username is None:
        assert status == (401 if url.startswith("/api/") else 302), where
        return
    if desk not in role.manages:
        assert status == 404, where
        return
    if kind == DESK_FIGURES:
        assert status == (200 if desk in role.figures else 403), where
    elif kind == DESK_MANAGE:
        # A POST without its form's fields stops at the form, after the desk was allowed:
        # the settings form re-renders with its errors, rename and pause answer 400.
        expected = {"GET": 200, "POST": 200 if endpoint == "settings.page" else 400}[method]
        assert status == expected, where
    else:
        raise AssertionError(f"{endpoint} has a device id but is classified {kind}")
    if status == 200:
        assert mentions(body) <= (shown or {desk}), where


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_route_answers_each_role_as_its_rule_says(three_desks: Engine, role: Role) -> None:
    client = client_for(three_desks, role)
    seen = set()
    for endpoint, method, url, desk in urls(client.application):
        seen.add(endpoint)
        if desk is None:
            check(client, role, endpoint, method, url)
        else:
            check_desk(client, role, endpoint, method, url, desk)
        if ROUTES[endpoint] == INSIGHTS and desk is None:
            for one_desk in DESKS:  # ?device= is the insights' desk argument; the page's
                query = f"{url}?device={one_desk}"  # desk picker lists the viewer's desks
                check_desk(client, role, "devices.device", "GET", query, one_desk, role.figures)
    assert seen == set(ROUTES), f"classified but not routed: {set(ROUTES) - seen}"


def test_a_route_missing_from_the_table_fails_the_walk(three_desks: Engine) -> None:
    app = make_app(three_desks)
    app.add_url_rule("/new-page", "new_page", lambda: "hello")
    with pytest.raises(AssertionError, match="/new-page"):
        list(urls(app))


def test_a_member_sees_only_their_desks_figures(three_desks: Engine) -> None:
    bob = client_for(three_desks, ROLES[1])
    summary = bob.get("/api/v1/summary").get_json()
    assert set(summary["devices"]) == {"desk-a"}
    assert summary["today"]["seated_s"] == 8100  # desk-a's rollup today (tests/test_stats.py)
    assert [d["id"] for d in bob.get("/api/v1/devices").get_json()["devices"]] == ["desk-a"]
    csv_lines = bob.get("/api/v1/rollups.csv").get_data(as_text=True).splitlines()
    assert len(csv_lines) > 1 and all(",desk-a," in line for line in csv_lines[1:])


def test_a_desk_nobody_is_linked_to_shows_only_to_admins(three_desks: Engine) -> None:
    """Any id that publishes becomes a device; it is no member's until an admin links it."""
    with Session(three_desks) as session:
        add_device(session, "stranger", "Who is this")
        session.commit()
    for role in ROLES[1:3]:
        client = client_for(three_desks, role)
        assert "stranger" not in client.get("/devices").get_data(as_text=True)
        assert client.get("/devices/stranger").status_code == 404
    admin = client_for(three_desks, ROLES[3])
    assert "stranger" in admin.get("/devices").get_data(as_text=True)


def test_office_admin_manages_every_desk_but_links_only_to_shared_figures(
    three_desks: Engine,
) -> None:
    client = client_for(three_desks, ROLES[4])
    page = client.get("/devices").get_data(as_text=True)
    assert 'href="/devices/desk-b"' in page
    assert 'href="/devices/desk-a"' not in page and 'href="/devices/desk-c"' not in page
    assert 'href="/devices/desk-a/settings"' in page
    overview = client.get("/").get_data(as_text=True)
    assert 'data-fleet="withheld"' in overview and "at least 5 desks" in overview
    assert 'data-chart="timeline"' not in overview


def test_a_member_who_stops_sharing_is_hidden_from_office_admins(three_desks: Engine) -> None:
    carol = make_app(three_desks).test_client()
    login(carol, "carol")
    token = csrf_from(carol.get("/me").get_data(as_text=True))
    assert carol.post("/me/share", data={"csrf_token": token, "stop": "1"}).status_code == 302
    assert 'data-value="false"' in carol.get("/me").get_data(as_text=True)
    office = client_for(three_desks, ROLES[4])
    assert office.get("/devices/desk-b").status_code == 403
    assert office.get("/api/v1/devices/desk-b/today").status_code == 403
    # Without office mode an admin sees it all the same: sharing only matters there.
    assert client_for(three_desks, ROLES[3]).get("/devices/desk-b").status_code == 200


def six_desks(engine: Engine) -> None:
    """Six desks seated today; only two of them yesterday."""
    with Session(engine) as s:
        for n in range(6):
            add_device(s, f"d{n}", f"Person {n}")
        s.flush()
        for n in range(6):
            add_session(s, f"d{n}", at(TODAY, 9, n), 30)
            add_rollup(s, f"d{n}", TODAY, seated_s=1800, sessions=1, longest_s=1800)
        for n in range(2):
            add_rollup(s, f"d{n}", TODAY - timedelta(days=1), seated_s=3600, sessions=1)
        s.commit()


def test_office_mode_shows_fleet_totals_over_enough_desks_only(tmp_path: Path) -> None:
    with seeded_engine("sqlite", tmp_path, seed=six_desks) as engine:
        add_user(engine, "alice")
        client = make_app(engine, privacy=OFFICE).test_client()
        login(client)
        page = client.get("/").get_data(as_text=True)
        assert 'data-fleet="totals"' in page
        # The average desk that sat (6 x 30 min / 6), not the sum over six people.
        assert 'data-figure="seated_s" data-value="1800"' in page
        assert 'data-figure="desks_in_use" data-value="6"' in page
        assert not any(f"Person {n}" in page for n in range(6))
        # Yesterday only two desks sat: that day's bar stays empty (0 h) in the week chart.
        assert "3600" not in page and "2.0 h" not in page
        insights = client.get("/api/v1/insights").get_json()
        assert insights["days"][-1]["devices_sat"] == 6
        stricter = make_app(engine, privacy=PrivacyConfig(office_mode=True, min_group=7))
        other = stricter.test_client()
        login(other)
        assert other.get("/api/v1/insights").status_code == 403
        assert 'data-fleet="withheld"' in other.get("/").get_data(as_text=True)


def test_my_data_export_holds_my_desks_and_nobody_elses(three_desks: Engine) -> None:
    bob = client_for(three_desks, ROLES[1])
    found = json.loads(bob.get("/me/export.json").get_data(as_text=True))
    assert found["account"] == {
        "username": "bob",
        "role": "member",
        "shares_with_admins": False,
        "desks": ["desk-a"],
    }
    assert {row["device_id"] for row in found["events"]} == {"desk-a"}
    assert [d["id"] for d in found["desks"]] == ["desk-a"]
    assert len(found["sessions"]) == 3 and found["daily_rollups"]
    assert "password" not in json.dumps(found)
    with bob.get("/me/export.zip") as response:
        archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert set(archive.namelist()) == {
        "account.csv",
        "desks.csv",
        "config_results.csv",
        "events.csv",
        "sessions.csv",
        "drills.csv",
        "nudges.csv",
        "daily_rollups.csv",
        "goal.csv",
        "daily_insights.csv",
    }
    events = archive.read("events.csv").decode().splitlines()
    assert events[0].startswith("event_id,device_id,") and len(events) == 1 + len(found["events"])


def test_an_admin_links_a_desk_from_the_users_page(three_desks: Engine) -> None:
    admin = make_app(three_desks).test_client()
    login(admin)
    token = csrf_from(admin.get("/users").get_data(as_text=True))
    form = {"csrf_token": token, "username": "bob", "device_id": "desk-c", "link": "Link"}
    assert admin.post("/users/links", data=form).status_code == 302
    bob = client_for(three_desks, ROLES[1])
    assert bob.get("/devices/desk-c").status_code == 200
    nobody = {**form, "username": "nobody"}
    assert admin.post("/users/links", data=nobody).status_code == 404
    unlink = {"csrf_token": token, "username": "bob", "device_id": "desk-c", "unlink": "Unlink"}
    assert admin.post("/users/links", data=unlink).status_code == 302
    assert bob.get("/devices/desk-c").status_code == 404


def test_now_is_the_sample_data_day() -> None:
    assert NOW.date() == TODAY
