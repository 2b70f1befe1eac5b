"""The personal page (/my-day), the weekly summary (/my-week) and their JSON, over real
HTTP on SQLite and PostgreSQL: one person's desks combined, today and this week against
last week, the goal they choose and its streak, and who sees what. Figures worked out by
hand next to the data (``web_fixtures.seed_personal``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import PASSWORD, csrf_from, login, make_app, seed_personal, seeded_engine

from sitwatch.server.config import PrivacyConfig
from sitwatch.server.models import PersonalGoal
from sitwatch.server.personal_data import erase_user
from sitwatch.server.users import find_user


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def people(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=seed_personal) as engine:
        yield engine


def client_of(engine: Engine, username: str, office: bool = False) -> FlaskClient:
    privacy = PrivacyConfig(office_mode=True, min_group=5) if office else None
    client = make_app(engine, privacy=privacy).test_client()
    login(client, username)
    return client


def test_a_member_sees_their_desks_combined_against_last_week(people: Engine) -> None:
    bob = client_of(people, "bob")
    page = bob.get("/my-day").get_data(as_text=True)
    assert 'data-figure="seated_s" data-value="11700"' in page  # 3 h 15 min, not 3 h 40
    assert 'data-figure="longest_s" data-value="5400"' in page
    assert "45 min more than last Wednesday by this time" in page
    assert "2 h 30 min by 15:30 on Wed 18 Nov" in page
    assert "1 h 00 min more than last week by this time" in page
    assert "count as one" in page
    # One chart: last week's 7 days, this week's 3 so far, each bar labelled.
    chart = page[
        page.index('data-chart="week-pair"') : page.index("</svg>", page.index("week-pair"))
    ]
    assert chart.count('class="bar last-week"') == 7 and chart.count('class="bar this-week"') == 3
    assert '<text class="value"' in chart and ">3.2</text>" in chart  # today 3.25 h
    assert ">3</text>" in chart  # all of last Wednesday: 3 h
    assert 'class="so-far"' in chart  # last Wednesday by this time: 2.5 h of 3
    assert "viewBox" not in chart  # drawn in % across and px down, as every chart
    # A day's two values (about 17 px apart on a phone) never share a line: at close
    # heights one is set above the other.
    values = re.findall(r'<text class="value" x="([\d.]+)%" y="([\d.]+)"', chart)
    slot = 100 / 7
    for (x_a, y_a), (x_b, y_b) in zip(values, values[1:], strict=False):
        if int(float(x_a) // slot) == int(float(x_b) // slot):
            assert abs(float(y_a) - float(y_b)) >= 14, (x_a, y_a, x_b, y_b)
    # Its values in words under it, each day with the week before's.
    assert (
        "<li>Wed 25 Nov: 3 h 15 min seated; the week before, Wed 18 Nov: 3 h 00 min"
        " (2 h 30 min by this time)</li>" in page
    )
    assert "<li>Thu 26 Nov: not yet; the week before, Thu 19 Nov: 0 s</li>" in page
    # The default goal (50 min, 6 hours): 3 of 6 hours, the 90 min stretch is over.
    assert 'data-chart="goal-ring" data-share="0.50"' in page
    assert "over the limit" in page and 'data-goal-met="false"' in page
    assert "Desk C" not in page and "desk-c" not in page  # alice's

    found = bob.get("/api/v1/my-day").get_json()
    assert found["desks"] == ["desk-a", "desk-b"]
    assert found["today"] == {
        "day": "2026-11-25",
        "seated_s": 11700,
        "longest_s": 5400,
        "break_hours": 3,
        "goal_met": False,
        "seated_now": True,
    }
    assert found["same_day_last_week"] == {
        "day": "2026-11-18",
        "until": "2026-11-18T15:30:00Z",
        "seated_s": 9000,
    }
    assert (found["change_s"], found["trend"]) == (2700, "more")
    week = found["week"]
    assert (week["seated_s"], week["last_week_seated_s"], week["trend"]) == (16200, 12600, "more")


def test_the_weekly_summary_page_and_json(people: Engine) -> None:
    bob = client_of(people, "bob")
    week = bob.get("/api/v1/my-week").get_json()["week"]
    assert week["week_start"] == "2026-11-23" and week["elapsed_days"] == 3
    assert [(d["day"], d["seated_s"], d["last_week_so_far_s"]) for d in week["days"][:4]] == [
        ("2026-11-23", 2700, 3600),
        ("2026-11-24", 1800, 0),
        ("2026-11-25", 11700, 9000),  # last Wednesday up to 15:30
        ("2026-11-26", 0, 0),  # not yet
    ]
    assert week["days"][2]["last_week_seated_s"] == 10800  # all of last Wednesday
    assert [d["trend"] for d in week["days"][:3]] == ["less", "more", "more"]
    assert week["days"][3]["future"] is True
    # Last week is over: all of it, against the week before (one Monday hour).
    last = bob.get("/api/v1/my-week?week=2026-11-18").get_json()["week"]
    assert last["week_start"] == "2026-11-16" and last["complete"] is True
    assert (last["seated_s"], last["last_week_seated_s"]) == (14400, 0)
    page = bob.get("/my-week?week=2026-11-18").get_data(as_text=True)
    assert "Week of 16 November 2026" in page and 'data-chart="week-pair"' in page
    assert "4 h 00 min more than the week before" in page
    assert bob.get("/my-week?week=someday").status_code == 400
    # A week to come is this week.
    future = bob.get("/api/v1/my-week?week=2027-01-04").get_json()["week"]
    assert future["week_start"] == "2026-11-23"


def test_a_person_chooses_their_goal_with_plain_errors(people: Engine) -> None:
    bob = client_of(people, "bob")
    token = csrf_from(bob.get("/my-day").get_data(as_text=True))
    wrong = {"csrf_token": token, "max_stretch_min": "5", "break_hours": "three"}
    response = bob.post("/my-day/goal", data=wrong)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert re.search(r'data-error-for="max_stretch_min">Choose 10 to 240 minutes<', page)
    assert re.search(r'data-error-for="break_hours">Enter a whole number<', page)
    assert "Traceback" not in page
    assert 'aria-invalid="true"' in page
    no_token = {"max_stretch_min": "100", "break_hours": "3"}
    assert bob.post("/my-day/goal", data=no_token).status_code == 400

    good = {"csrf_token": token, "max_stretch_min": "100", "break_hours": "3"}
    response = bob.post("/my-day/goal", data=good)
    assert response.status_code == 302 and response.headers["Location"] == "/my-day"
    page = bob.get("/my-day").get_data(as_text=True)
    # Longest 90 min <= 100, 3 of 3 hours: today met, a streak of 1 (Monday: 1 hour).
    assert 'data-goal-met="true"' in page and 'data-share="1.00"' in page
    assert 'data-figure="goal_streak" data-value="1"' in page and "today included" in page
    assert 'value="100"' in page and 'value="3"' in page
    streak = bob.get("/api/v1/my-day").get_json()["streak"]
    assert streak == {"current": 1, "best": 1, "today_met": True}
    # The goal is bob's alone.
    carol = client_of(people, "carol")
    carol_page = carol.get("/my-day").get_data(as_text=True)
    assert 'value="50"' in carol_page and 'value="6"' in carol_page


def test_a_viewer_without_a_desk_is_told_how_to_link_one(people: Engine) -> None:
    carol = client_of(people, "carol")
    page = carol.get("/my-day").get_data(as_text=True)
    assert 'data-personal="no-desk"' in page and "sitwatch-server user link carol" in page
    assert "Desk A" not in page and "11700" not in page
    assert carol.get("/api/v1/my-day").get_json() == {"desks": [], "today": None}
    assert carol.get("/api/v1/my-week").get_json() == {"desks": [], "week": None}
    assert 'data-personal="no-desk"' in carol.get("/my-week").get_data(as_text=True)


@pytest.mark.parametrize("office", [False, True], ids=["admin", "office admin"])
def test_an_admin_sees_only_their_own_desk_here(people: Engine, office: bool) -> None:
    alice = client_of(people, "alice", office=office)
    found = alice.get("/api/v1/my-day").get_json()
    assert found["desks"] == ["desk-c"] and found["today"]["seated_s"] == 18000
    page = alice.get("/my-day").get_data(as_text=True)
    assert "Desk C" in page and "Desk A" not in page and "Desk B" not in page
    assert 'data-figure="seated_s" data-value="18000"' in page


def test_a_member_lands_on_their_day_and_an_admin_on_the_overview(people: Engine) -> None:
    for username, home in (("bob", "/my-day"), ("alice", "/")):
        client = make_app(people).test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        form = {"csrf_token": token, "username": username, "password": PASSWORD}
        response = client.post("/login", data=form)
        assert response.headers["Location"] == home, username
    bob = make_app(people).test_client()
    token = csrf_from(bob.get("/login").get_data(as_text=True))
    form = {"csrf_token": token, "username": "bob", "password": PASSWORD}
    assert bob.post("/login?next=/devices", data=form).headers["Location"] == "/devices"


def test_the_goal_goes_with_its_person(people: Engine) -> None:
    bob = client_of(people, "bob")
    token = csrf_from(bob.get("/my-day").get_data(as_text=True))
    good = {"csrf_token": token, "max_stretch_min": "45", "break_hours": "4"}
    assert bob.post("/my-day/goal", data=good).status_code == 302
    with Session(people) as session:
        user = find_user(session, "bob")
        assert user is not None and session.get(PersonalGoal, user.id) is not None
        assert bob.get("/me/export.json").get_json()["goal"] == [
            {"max_stretch_min": 45, "break_hours": 4, "updated_at": "2026-11-25T15:30:00Z"}
        ]
        erase_user(session, user)
        session.commit()
        assert session.query(PersonalGoal).count() == 0


def test_the_overview_averages_only_over_other_peoples_desks(people: Engine) -> None:
    # bob's two desks are his own: his overview adds them up (My day combines them);
    # alice sees three desks, two of them bob's: per desk, never a sum over people.
    bob = client_of(people, "bob").get("/").get_data(as_text=True)
    assert "All devices today" in bob and 'data-per-desk="average"' not in bob
    alice = client_of(people, "alice").get("/").get_data(as_text=True)
    assert "Per desk today" in alice and 'data-per-desk="average"' in alice
    live = client_of(people, "alice").get("/api/v1/live").get_json()
    assert set(live["today_per_desk"]) >= {"seated_s", "desks", "answered_by_drill"}
    assert "seated_s" in live["today"]  # the existing fields stay
