"""Dashboard accounts through Flask's test client: login throttling per account and per
address (time moved by a FakeClock), sessions ended on the server (a copied cookie stops
working after logout, a new password, a disable, a delete), the audit log of logins and
desk changes with the client's address, the /audit page, and two requests that once
answered 500 (a CR/LF in ``next``, a 200 kB form)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from web_fixtures import (
    NOW,
    PASSWORD,
    add_user,
    csrf_from,
    login,
    make_app,
    seeded_engine,
    settings_form,
)

from sitwatch.broker import Mosquitto
from sitwatch.clock import FakeClock
from sitwatch.server import audit
from sitwatch.server.login_throttle import ACCOUNT_FAILURES, ADDRESS_FAILURES, WINDOW
from sitwatch.server.models import AuditEntry
from sitwatch.server.users import delete_user, set_disabled, set_password

pytestmark = pytest.mark.timeout(120)

LOCKED = "Too many failed logins for this account or from this address"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def three_desks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, with_user=True) as three_desks:
        yield three_desks


@pytest.fixture
def three_desks_sqlite(tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine("sqlite", tmp_path, with_user=True) as three_desks:
        yield three_desks


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_time=NOW)


def app_on(three_desks: Engine, clock: FakeClock, **extra: object) -> Flask:
    return make_app(three_desks, SITWATCH_NOW=clock.wall, **extra)


def client_from(app: Flask, address: str = "10.0.0.1") -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def is_logged_in(client: FlaskClient) -> bool:
    return client.get("/devices").status_code == 200


def entries(three_desks: Engine) -> list[AuditEntry]:
    with Session(three_desks) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


# --- throttling -------------------------------------------------------------------------------


def test_failures_lock_the_account_until_they_age_out(
    three_desks: Engine, clock: FakeClock
) -> None:
    client = client_from(app_on(three_desks, clock))
    for _ in range(ACCOUNT_FAILURES):
        assert login(client, password="not the password").status_code == 401
        clock.advance(60)
    # The last failure already says so; now even the right password is refused, unchecked.
    response = login(client)
    assert response.status_code == 429
    assert LOCKED in response.get_data(as_text=True)
    assert "try again in 10 minutes" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) == 10 * 60
    assert not is_logged_in(client)
    # Refused attempts do not extend the lock: it ends WINDOW after the first failure.
    clock.advance(WINDOW.total_seconds() - ACCOUNT_FAILURES * 60 - 1)
    assert login(client).status_code == 429
    clock.advance(1)
    assert login(client).status_code == 302
    assert is_logged_in(client)


def test_the_lock_is_per_account_and_a_login_clears_its_count(
    three_desks_sqlite: Engine, clock: FakeClock
) -> None:
    add_user(three_desks_sqlite, "bob")
    app = app_on(three_desks_sqlite, clock)
    client = client_from(app)
    for _ in range(ACCOUNT_FAILURES):
        login(client, "bob", "not the password")
    assert login(client, "bob").status_code == 429
    assert login(client, "alice").status_code == 302  # same address, other account

    carol = client_from(app, "10.0.0.2")
    add_user(three_desks_sqlite, "carol")
    for _ in range(ACCOUNT_FAILURES - 1):
        login(carol, "carol", "not the password")
    assert login(carol, "carol").status_code == 302
    for _ in range(ACCOUNT_FAILURES - 1):
        login(carol, "carol", "not the password")
    assert login(carol, "carol").status_code == 302  # 4 since the last login, not 8


def test_failures_from_one_address_lock_every_account_from_it(
    three_desks: Engine, clock: FakeClock
) -> None:
    app = app_on(three_desks, clock)
    attacker = client_from(app, "203.0.113.9")
    for number in range(ADDRESS_FAILURES):
        assert login(attacker, f"guess{number}", "not the password").status_code == 401
    response = login(attacker)
    assert response.status_code == 429 and LOCKED in response.get_data(as_text=True)
    assert login(client_from(app, "10.0.0.7")).status_code == 302  # alice from her own desk
    clock.advance(WINDOW.total_seconds())
    assert login(attacker).status_code == 302


# --- sessions ended on the server -------------------------------------------------------------


def copy_of(client: FlaskClient, app: Flask) -> FlaskClient:
    """A second browser holding the same session cookie, as a thief would."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def test_a_copied_cookie_stops_working_after_logout(three_desks_sqlite: Engine) -> None:
    app = make_app(three_desks_sqlite)
    client = app.test_client()
    assert login(client).status_code == 302
    thief = copy_of(client, app)
    assert is_logged_in(thief)
    token = csrf_from(client.get("/devices").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not is_logged_in(thief)
    assert not is_logged_in(client)
    assert login(client).status_code == 302  # and a new login works


@pytest.mark.parametrize(
    "change",
    [
        lambda session: set_password(session, "alice", "a whole new password"),
        lambda session: set_disabled(session, "alice", True),
        lambda session: delete_user(session, "alice"),
    ],
    ids=["reset", "disable", "delete"],
)
def test_a_copied_cookie_stops_working_after_a_user_change(three_desks: Engine, change) -> None:  # type: ignore[no-untyped-def]
    app = make_app(three_desks)
    client = app.test_client()
    assert login(client).status_code == 302
    thief = copy_of(client, app)
    with Session(three_desks) as session:
        change(session)
        session.commit()
    assert not is_logged_in(thief)
    assert not is_logged_in(client)


def test_a_disabled_user_cannot_log_in_until_enabled(three_desks_sqlite: Engine) -> None:
    client = make_app(three_desks_sqlite).test_client()
    with Session(three_desks_sqlite) as session:
        set_disabled(session, "alice", True)
        session.commit()
    assert login(client).status_code == 401
    with Session(three_desks_sqlite) as session:
        set_disabled(session, "alice", False)
        session.commit()
    assert login(client).status_code == 302


# --- the audit log ----------------------------------------------------------------------------


def test_logins_and_desk_changes_are_audited_with_the_address(
    broker: Mosquitto, three_desks: Engine, clock: FakeClock
) -> None:
    app = app_on(three_desks, clock, mqtt_port=broker.port, SITWATCH_PUBLISH_TIMEOUT_S=2.0)
    client = client_from(app, "198.51.100.4")
    login(client, password="not the password")
    assert login(client).status_code == 302
    clock.advance(60)
    token = csrf_from(client.get("/devices/desk-a/settings").get_data(as_text=True))
    assert client.post("/devices/desk-a/rename", data={"csrf_token": token, "name": "Window"})
    form = settings_form(client, "desk-a", sitting_limit_min="40", timezone="UTC")
    response = client.post("/devices/desk-a/settings", data=form)
    assert response.status_code == 302
    for span in ("hour", "resume"):
        response = client.post("/devices/desk-a/pause", data={"csrf_token": token, "span": span})
        assert response.status_code == 302
    client.post("/logout", data={"csrf_token": token})

    rows = entries(three_desks)
    assert [(e.action, e.actor, e.address, e.target) for e in rows] == [
        (audit.LOGIN_FAILED, "alice", "198.51.100.4", None),
        (audit.LOGIN, "alice", "198.51.100.4", None),
        (audit.DEVICE_RENAME, "alice", "198.51.100.4", "desk-a"),
        (audit.DEVICE_SETTINGS, "alice", "198.51.100.4", "desk-a"),
        (audit.DEVICE_PAUSE, "alice", "198.51.100.4", "desk-a"),
        (audit.DEVICE_RESUME, "alice", "198.51.100.4", "desk-a"),
        (audit.LOGOUT, "alice", "198.51.100.4", None),
    ]
    assert rows[0].at == NOW and rows[2].at == NOW + timedelta(seconds=60)
    assert rows[2].detail == {"from": "Desk A", "to": "Window"}
    assert rows[3].detail is not None and rows[3].detail["sitting_limit_s"] == 2400
    assert rows[4].detail == {"until": (NOW + timedelta(seconds=3660)).isoformat()}


def test_the_audit_page_shows_the_entries_as_text(three_desks_sqlite: Engine) -> None:
    client = make_app(three_desks_sqlite).test_client()
    assert client.get("/audit").status_code == 302  # login first
    login(client, "<script>alert(1)</script>", "not the password")
    login(client)
    page = client.get("/audit")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    assert "login.failed" in text and "127.0.0.1" in text
    assert 'href="/audit"' in text  # in the menu


# --- two requests that answered 500 -----------------------------------------------------------


def test_a_newline_in_next_redirects_home(three_desks_sqlite: Engine) -> None:
    client = make_app(three_desks_sqlite).test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    form = {"csrf_token": token, "username": "alice", "password": PASSWORD}
    response = client.post("/login?next=/%0D%0ASet-Cookie:x", data=form)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert all(cookie.split("=")[0] != "x" for cookie in response.headers.getlist("Set-Cookie"))


def test_a_200_kb_form_is_a_clean_413(three_desks_sqlite: Engine) -> None:
    client = make_app(three_desks_sqlite).test_client()
    login(client)
    token = csrf_from(client.get("/devices/desk-a/settings").get_data(as_text=True))
    response = client.post(
        "/devices/desk-a/rename", data={"csrf_token": token, "name": "x" * 200_000}
    )
    assert response.status_code == 413
    assert "413" in response.get_data(as_text=True)
    with Session(three_desks_sqlite) as session:
        assert session.scalars(select(AuditEntry.action)).all() == [audit.LOGIN]
