"""JSON API and CSV export: same numbers as the pages, login required, safe CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import login, make_app, seeded_engine

from sitwatch.server.models import Device
from sitwatch.server.web.api import CSV_COLUMNS

FIGURE = re.compile(r'data-figure="([a-z_]+)" data-value="([^"]*)"')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def three_desks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """SQLite and PostgreSQL (the same numbers on both)."""
    with seeded_engine(request.param, tmp_path, with_user=True) as engine:
        yield engine


@pytest.fixture
def client(three_desks: Engine) -> FlaskClient:
    client = make_app(three_desks).test_client()
    assert login(client).status_code == 302
    return client


def page_figures(client: FlaskClient, path: str) -> dict[str, str]:
    """The first value of each data-figure on a page (the header cards come first)."""
    found: dict[str, str] = {}
    for name, value in FIGURE.findall(client.get(path).get_data(as_text=True)):
        found.setdefault(name, value)
    return found


def test_api_needs_login(three_desks: Engine) -> None:
    anonymous = make_app(three_desks).test_client()
    for path in ("/api/v1/devices", "/api/v1/summary", "/api/v1/rollups.csv"):
        response = anonymous.get(path)
        assert response.status_code == 401
        assert response.get_json() == {"error": "login required"}


def test_devices(client: FlaskClient) -> None:
    devices = client.get("/api/v1/devices").get_json()["devices"]
    assert [(d["id"], d["name"], d["is_online"]) for d in devices] == [
        ("desk-a", "Desk A", True),
        ("desk-b", "Desk B", False),
        ("desk-c", "Desk C", True),
    ]
    assert devices[1]["last_seen_at"] == "2026-11-25T13:30:00Z"


@pytest.mark.parametrize(
    ("api", "page"),
    [("/api/v1/summary", "/"), ("/api/v1/devices/desk-a/today", "/devices/desk-a")],
)
def test_api_numbers_equal_page_numbers(client: FlaskClient, api: str, page: str) -> None:
    body = client.get(api).get_json()
    shown = page_figures(client, page)
    today, longest, streaks = body["today"], body["longest"], body["streaks"]
    # Several desks: the page shows the average desk that sat (today_per_desk), not sums.
    figures = body.get("today_per_desk", today)
    assert shown["seated_now"] == str(today["seated_now"]).lower()
    for name in ("breaks", "prompts", "prompts_answered", "answered_by_drill", "drills"):
        assert float(shown[name]) == figures[name], name
    assert int(shown["seated_s"]) == round(figures["seated_s"])
    assert int(shown["current_stretch_s"]) == round(today["current_stretch_s"])
    assert int(shown["longest_today_s"]) == round(longest["today_s"])
    assert int(shown["longest_week_s"]) == round(longest["week_s"])
    assert int(shown["longest_ever_s"]) == round(longest["ever_s"])
    if "today_per_desk" in body:  # several people's desks: no streak of their sum
        assert "streak_current" not in shown and "streak_best" not in shown
    else:
        assert int(shown["streak_current"]) == streaks["current"]
        assert int(shown["streak_best"]) == streaks["best"]


def test_summary_figures(client: FlaskClient) -> None:
    body = client.get("/api/v1/summary").get_json()
    assert body["now"] == "2026-11-25T15:30:00Z" and body["day_start_hour"] == 4
    assert body["today"]["seated_s"] == 9900 and body["today"]["devices_seated"] == 1
    assert body["longest"] == {"today_s": 4200, "week_s": 5400, "ever_s": 7200}
    assert body["streaks"]["current"] == 5 and body["streaks"]["best"] == 6
    assert body["devices"]["desk-a"]["current_stretch_s"] == 2400
    assert body["devices"]["desk-b"]["seated_now"] is False


def test_days_range(client: FlaskClient) -> None:
    body = client.get("/api/v1/devices/desk-a/days?from=2026-11-23&to=2026-11-25").get_json()
    assert [(d["day"], d["seated_s"], d["drills"]) for d in body["days"]] == [
        ("2026-11-23", 18000, 1),
        ("2026-11-24", 20000, 1),
        ("2026-11-25", 8100, 2),
    ]
    default = client.get("/api/v1/devices/desk-a/days").get_json()["days"]
    assert len(default) == 30 and default[-1]["day"] == "2026-11-25"


@pytest.mark.parametrize(
    "query",
    ["from=yesterday", "to=2026-02-30", "from=2026-11-25&to=2026-11-01", "from=1900-01-01"],
)
def test_days_rejects_bad_ranges(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/devices/desk-a/days?{query}")
    assert response.status_code == 400
    assert "error" in response.get_json()


def test_unknown_device_is_404_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/devices/nope/today")
    assert response.status_code == 404 and "nope" in response.get_json()["error"]


def _csv(client: FlaskClient, path: str) -> list[dict[str, str]]:
    engine = client.application.extensions["sitwatch"].engine
    with client.get(path) as response:
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        text = response.get_data(as_text=True)
    # The streamed rows were read on a session of their own, and it was given back.
    assert engine.pool.checkedout() == 0
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_csv_export_all_devices(client: FlaskClient) -> None:
    rows = _csv(client, "/api/v1/rollups.csv?from=2026-11-24")
    assert [(r["day"], r["device_id"]) for r in rows] == [
        ("2026-11-24", "desk-a"),
        ("2026-11-24", "desk-b"),
        ("2026-11-25", "desk-a"),
        ("2026-11-25", "desk-b"),
    ]
    assert rows[2] == {
        "day": "2026-11-25",
        "device_id": "desk-a",
        "device_name": "Desk A",
        "seated_s": "8100",
        "seated_min": "135.0",
        "sessions": "3",
        "longest_s": "4200",
        "breaks": "2",
        "prompts": "2",
        "prompts_answered": "2",
        "prompts_answered_by_drill": "1",
        "drills": "2",
    }
    assert len(_csv(client, "/api/v1/rollups.csv")) == 17  # every stored row


def test_csv_download_abandoned_midway_gives_its_connection_back(
    client: FlaskClient, three_desks: Engine
) -> None:
    app_engine = client.application.extensions["sitwatch"].engine
    response = client.get("/api/v1/rollups.csv")
    chunks = iter(response.response)
    assert next(chunks).startswith(b"day,")  # the header row: the query has run
    assert app_engine.pool.checkedout() == 1  # the stream holds its session ...
    response.close()  # ... until the client hangs up
    assert app_engine.pool.checkedout() == 0


def test_csv_export_one_device_and_formula_names(client: FlaskClient, three_desks: Engine) -> None:
    with Session(three_desks) as session:
        session.get(Device, "desk-b").name = '=HYPERLINK("http://x")'
        session.commit()
    rows = _csv(client, "/api/v1/devices/desk-b/rollups.csv")
    assert [r["day"] for r in rows] == ["2026-11-24", "2026-11-25"]
    assert rows[0]["device_name"] == '\'=HYPERLINK("http://x")'  # not a formula
    with client.get("/api/v1/devices/desk-b/rollups.csv") as response:
        assert 'filename="sitwatch-desk-b-daily.csv"' in response.headers["Content-Disposition"]
