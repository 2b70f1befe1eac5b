"""Insights over HTTP: the JSON API, the CSV files and the Insights page show the same
numbers (the week of web_fixtures.seed_week); login required; stored strings escaped."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import HOSTILE_STEP, WEEK_NOW, login, make_app, seed_week, seeded_engine

from sitwatch.server.config import GoalsConfig
from sitwatch.server.models import Device
from sitwatch.server.web.api import HEATMAP_COLUMNS, INSIGHT_DAY_COLUMNS, INSIGHT_WEEK_COLUMNS

WEEK = "from=2026-11-16&to=2026-11-22"
FIGURE = re.compile(r'data-figure="([a-z_]+)" data-value="([^"]*)"')
DAY_ROW = re.compile(r'<tr data-day="([0-9-]+)"[^>]*>(.*?)</tr>', re.S)
CELL = re.compile(r'data-col="([a-z_0-9]+)" data-value="([^"]*)"')
HEAT_CELL = re.compile(r'data-weekday="(\d)" data-hour="(\d+)" data-value="(\d+)"')
CHART = r'<svg[^>]*data-chart="{}"(.*?)</svg>'


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded_week(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, with_user=True, seed=seed_week) as engine:
        yield engine


@pytest.fixture
def client(seeded_week: Engine) -> FlaskClient:
    client = make_app(seeded_week, now=WEEK_NOW).test_client()
    assert login(client).status_code == 302
    return client


def page(client: FlaskClient, query: str) -> str:
    response = client.get(f"/insights?{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def chart(html: str, name: str) -> str:
    found = re.search(CHART.format(name), html, re.S)
    assert found, f"no {name} chart"
    return found.group(1)


def read_csv(client: FlaskClient, path: str) -> list[dict[str, str]]:
    with client.get(path) as response:
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_insights_need_login(seeded_week: Engine) -> None:
    anonymous = make_app(seeded_week, now=WEEK_NOW).test_client()
    for path in (
        "/api/v1/insights",
        "/api/v1/insights/days.csv",
        "/api/v1/insights/weeks.csv",
        "/api/v1/insights/heatmap.csv",
    ):
        assert anonymous.get(path).status_code == 401
    response = anonymous.get("/insights")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("device", ["", "desk-a", "desk-b"])
def test_api_numbers_equal_page_numbers(client: FlaskClient, device: str) -> None:
    query = WEEK + (f"&device={device}" if device else "")
    body = client.get(f"/api/v1/insights?{query}").get_json()
    html = page(client, query)
    shown = dict(FIGURE.findall(html))
    funnel = body["funnel"]
    assert int(shown["funnel_nudges"]) == funnel["nudges"]
    assert int(shown["funnel_stood_up"]) == funnel["stood_up"]
    assert int(shown["funnel_drilled"]) == funnel["drilled"]
    assert shown["median_to_stand_s"] == str(round(funnel["median_to_stand_s"]))
    assert int(shown["longest_bout_s"]) == round(body["bouts"]["longest_s"])
    assert int(shown["days_over_budget"]) == body["days_over_budget"]
    assert int(shown["goal_streak_current"]) == body["streaks"]["current"]
    assert int(shown["goal_streak_best"]) == body["streaks"]["best"]
    # The funnel bars, the histogram bars and every heatmap cell.
    bars = dict(re.findall(r'data-key="([a-z_]+)" data-value="(\d+)"', chart(html, "funnel")))
    assert bars == {k: str(funnel[k]) for k in ("nudges", "stood_up", "drilled")}
    histogram = chart(html, "histogram")
    assert histogram.count('class="bar"') == len(body["bouts"]["counts"]) == 5
    assert re.findall(r'class="value"[^>]*>(\d+)<', histogram) == [
        str(n) for n in body["bouts"]["counts"]
    ]
    cells = HEAT_CELL.findall(chart(html, "heatmap"))
    assert len(cells) == 7 * 24
    for weekday, hour, value in cells:
        assert int(value) == round(body["heatmap"]["seated_s"][int(weekday)][int(hour)])
    # The day table, row by row.
    rows = {day: dict(CELL.findall(cells_html)) for day, cells_html in DAY_ROW.findall(html)}
    assert sorted(rows) == [d["day"] for d in body["days"]]
    for d in body["days"]:
        row = rows[d["day"]]
        assert int(row["seated_s"]) == round(d["seated_s"])
        assert row["over_budget"] == str(d["over_budget"]).lower()
        assert row["meets_goals"] == str(d["meets_goals"]).lower()
        assert int(row["drills"]) == d["drills"]
        for key in ("nudges", "stood_up", "drilled"):
            assert int(row[key]) == d["funnel"][key]
        median = d["funnel"]["median_to_stand_s"]
        assert row["median_to_stand_s"] == ("" if median is None else str(round(median)))
        assert [int(row[f"bouts_{i}"]) for i in range(5)] == d["bouts"]
        assert int(row["longest_bout_s"]) == round(d["longest_bout_s"])


def test_api_figures(client: FlaskClient) -> None:
    body = client.get(f"/api/v1/insights?{WEEK}").get_json()
    assert (body["from"], body["to"], body["device_id"]) == ("2026-11-16", "2026-11-22", None)
    assert body["funnel"] == {"nudges": 11, "stood_up": 4, "drilled": 3, "median_to_stand_s": 1350}
    assert body["bouts"]["counts"] == [2, 3, 6, 1, 6]
    assert body["bouts"]["buckets_min"] == ["0-15", "15-30", "30-60", "60-90", "90+"]
    assert body["goals"] == {"seat_budget_s": 21600, "min_drills": 1}
    assert body["streaks"] == {"current": 0, "best": 1, "last_day": "2026-11-16"}
    assert body["heatmap"]["seated_s"][0][9] == 90 * 60  # Monday 09:00-10:00
    assert body["heatmap"]["hours"][0] == 4
    assert [w["week_start"] for w in body["weeks"]] == ["2026-11-16"]
    tuesday = body["days"][1]
    assert tuesday["over_budget"] is True and tuesday["devices_over_budget"] == 1
    assert [e["count"] for e in body["exercises"]] == [2, 2, 2, 2, 2, 2, 1]
    # The default range: this week and the three before it, up to today (Friday 20th).
    default = client.get("/api/v1/insights").get_json()
    assert (default["from"], default["to"]) == ("2026-10-26", "2026-11-20")


def test_goals_come_from_the_config(seeded_week: Engine) -> None:
    client = make_app(
        seeded_week, now=WEEK_NOW, goals=GoalsConfig(seat_budget_h=3, min_drills=2)
    ).test_client()
    login(client)
    body = client.get(f"/api/v1/insights?{WEEK}&device=desk-a").get_json()
    assert body["goals"] == {"seat_budget_s": 10800, "min_drills": 2}
    assert [d["day"] for d in body["days"] if d["over_budget"]] == ["2026-11-16", "2026-11-17"]
    assert "budget 3 h 00 min" in page(client, WEEK)


def test_days_csv_equals_the_json(client: FlaskClient) -> None:
    body = client.get(f"/api/v1/insights?{WEEK}").get_json()
    rows = read_csv(client, f"/api/v1/insights/days.csv?{WEEK}")
    assert tuple(rows[0]) == INSIGHT_DAY_COLUMNS
    assert [r["day"] for r in rows] == [d["day"] for d in body["days"]]
    for row, d in zip(rows, body["days"], strict=True):
        median = d["funnel"]["median_to_stand_s"]
        assert row["nudges"] == str(d["funnel"]["nudges"])
        assert row["stood_up_5min"] == str(d["funnel"]["stood_up"])
        assert row["drilled"] == str(d["funnel"]["drilled"])
        assert row["median_to_stand_s"] == ("" if median is None else f"{median:.0f}")
        assert row["over_budget"] == str(int(d["over_budget"]))
        assert row["meets_goals"] == str(int(d["meets_goals"]))
        assert row["seated_s"] == f"{d['seated_s']:.0f}"
        assert row["longest_bout_s"] == f"{d['longest_bout_s']:.0f}"
        bouts = [row[c] for c in INSIGHT_DAY_COLUMNS if c.startswith("bouts_")]
        assert bouts == [str(n) for n in d["bouts"]]
        assert row["steps_other"] == str(d["exercises"]["other"])
    assert rows[0] == {
        **rows[0],
        "day": "2026-11-16",
        "nudges": "3",
        "stood_up_5min": "2",
        "drilled": "2",
        "median_to_stand_s": "240",
        "bouts_0_15": "1",
        "bouts_30_60": "3",
        "bouts_90_plus": "1",
        "longest_bout_s": "6000",
        "steps_glute_bridge": "2",
    }


def test_weeks_csv_equals_the_json(client: FlaskClient) -> None:
    query = "from=2026-11-02&to=2026-11-22"  # three weeks, the generated one last
    body = client.get(f"/api/v1/insights?{query}").get_json()
    rows = read_csv(client, f"/api/v1/insights/weeks.csv?{query}")
    assert tuple(rows[0]) == INSIGHT_WEEK_COLUMNS
    assert [r["week_start"] for r in rows] == ["2026-11-02", "2026-11-09", "2026-11-16"]
    assert [r["week_start"] for r in rows] == [w["week_start"] for w in body["weeks"]]
    for row, week in zip(rows, body["weeks"], strict=True):
        funnel = week["funnel"]
        median = funnel["median_to_stand_s"]
        assert (row["nudges"], row["stood_up_5min"], row["drilled"]) == (
            str(funnel["nudges"]),
            str(funnel["stood_up"]),
            str(funnel["drilled"]),
        )
        assert row["median_to_stand_s"] == ("" if median is None else f"{median:.0f}")
    assert int(rows[-1]["nudges"]) > 0  # the generated week has nudges
    assert rows[0]["nudges"] == "0" and rows[0]["median_to_stand_s"] == ""


def test_heatmap_csv(client: FlaskClient) -> None:
    rows = read_csv(client, f"/api/v1/insights/heatmap.csv?{WEEK}&device=desk-a")
    assert tuple(rows[0]) == HEATMAP_COLUMNS and len(rows) == 7 * 24
    assert (rows[0]["weekday"], rows[0]["hour"]) == ("Mon", "04:00")
    by_cell = {(r["weekday"], r["hour"]): r for r in rows}
    assert by_cell[("Mon", "09:00")]["seated_min"] == "60.0"  # desk-a alone
    assert by_cell[("Thu", "00:00")]["seated_s"] == "3600"
    with client.get(f"/api/v1/insights/heatmap.csv?{WEEK}&device=desk-a") as response:
        disposition = response.headers["Content-Disposition"]
    assert 'filename="sitwatch-desk-a-insights-heatmap-2026-11-16-2026-11-22.csv"' in disposition


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("from=yesterday", 400),
        ("from=2026-11-20&to=2026-11-01", 400),
        ("from=1999-12-01&to=2000-01-10", 400),
        ("from=2000-01-01&to=2026-01-01", 400),
        ("device=nope", 404),
    ],
)
def test_bad_requests(client: FlaskClient, query: str, status: int) -> None:
    for path in ("/api/v1/insights", "/api/v1/insights/days.csv"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == status and "error" in response.get_json()
    assert client.get(f"/insights?{query}").status_code == status


def test_page_is_linked_escapes_names_and_runs_no_script(
    client: FlaskClient, seeded_week: Engine
) -> None:
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    with Session(seeded_week) as session:
        session.get(Device, "desk-b").name = hostile
        session.commit()
    html = page(client, WEEK + "&device=desk-b")
    assert "<script" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text (the select option)
    assert HOSTILE_STEP not in html and "&lt;script&gt;alert(1)" not in html  # "other"
    assert 'href="/insights"' in client.get("/").get_data(as_text=True)  # the nav link
    headers: Any = client.get("/insights").headers
    assert "script-src 'self';" in headers["Content-Security-Policy"]  # no inline script
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
