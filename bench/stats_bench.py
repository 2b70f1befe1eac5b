"""Dashboard figure benchmarks: one desk's page over a year of history, and the overview of
a 1000-desk fleet, timed as the dashboard computes them (``overview.page_figures``: every
stats query a page makes plus the chart geometry, without the HTML).

One desk: a year of events made by the real tracker (sitwatch.device.history) and stored through
``ingest.store_batch``, so sessions, drills and rollups come from the real derive path.

The fleet: running 1000 desk-years through the tracker takes too long, so a few desk-years
are made that way and their derived rows (``derive.session_rows``, ``drill_rows``,
``rollup_deltas``: the functions ingest uses) are copied to every desk under its own device
id and event ids, then bulk-inserted (SQLite: executemany of values already converted by
the columns' own SQLAlchemy types; PostgreSQL: COPY). Per desk: a year of DailyRollup,
SittingSession, Drill, Nudge and DailyInsight rows (``insight_rows.nudges_of`` and
``daily_insight_rows``, as ingest derives them), the Event rows of the last ``event_days``
days (four weeks in the full run: the Insights page's default range) and a Device row (nine
in ten online). The fleet's Insights page and one desk's are timed too (numbers and HTML).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from common import timed_runs
from sqlalchemy import Engine, Table, func, select, text, update
from workload import last_weekday

from sitwatch.device.history import history
from sitwatch.protocol import Event, EventType
from sitwatch.server import fleet_days, seat
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import (
    check_event,
    drill_rows,
    rollup_deltas,
    session_rows,
)
from sitwatch.server.ingest.insight_rows import (
    NUDGE_TYPES,
    StoredEvent,
    daily_insight_rows,
    nudges_of,
)
from sitwatch.server.ingest.worker import Batch, store_batch
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import (
    DailyInsight,
    DailyRollup,
    Device,
    Drill,
    Nudge,
    SittingSession,
)
from sitwatch.server.models import Event as EventRow

YEAR_DAYS = 365
STATS_TABLES = (DailyRollup, SittingSession, Drill, Nudge, DailyInsight, EventRow)
FLEET_TABLES = ("daily_rollups", "sitting_sessions", "drills", "nudges", "daily_insights", "events")
TEMPLATE_SEED = 11


def reference_now(today: date) -> datetime:
    """A weekday afternoon: the time the dashboard is looked at (some desks are seated)."""
    return datetime.combine(last_weekday(today + timedelta(days=1)), datetime.min.time(), UTC) + (
        timedelta(hours=15)
    )


def server_config(url: str) -> ServerConfig:
    return ServerConfig.model_validate(
        {"database": {"url": url}, "timezone": "UTC", "day_start_hour": 4}
    )


@lru_cache(maxsize=16)  # the SQLite and PostgreSQL runs load the same desk-years
def desk_year(device_id: str, now: datetime, seed: int) -> list[Event]:
    """A year of the real tracker's events up to ``now`` (today's afternoon included)."""
    end = now.date() + timedelta(days=1)
    return [e for e in history(device_id, YEAR_DAYS, end=end, seed=seed) if e.ts <= now]


# --- pages ------------------------------------------------------------------------------


def page_timer(engine: Engine, url: str, now: datetime) -> Callable[[str | None], None]:
    """A function computing what ``/`` (None) or ``/devices/<id>`` shows, as a request would."""
    from sitwatch.server.web.app import create_app
    from sitwatch.server.web.overview import page_figures

    app = create_app(
        server_config(url),
        engine=engine,
        test_config={"TESTING": True, "SECRET_KEY": "bench", "SITWATCH_NOW": lambda: now},
    )

    from flask_login import login_user
    from sqlalchemy.orm import Session

    from sitwatch.server.models import User
    from sitwatch.server.web.auth import DashboardUser

    # As an admin (every desk): with nobody logged in the page's scope holds no desk.
    with Session(engine, expire_on_commit=False) as session:
        admin = session.scalar(select(User).where(User.username == "bench-pages"))
        if admin is None:
            admin = User(username="bench-pages", password_hash="-", role="admin")
            session.add(admin)
            session.commit()

    def page(device_id: str | None) -> None:
        path = "/" if device_id is None else f"/devices/{device_id}"
        with app.test_request_context(path):
            login_user(DashboardUser(admin))
            page_figures(device_id)

    return page


def bench_client(engine: Engine, url: str, now: datetime) -> Any:
    """Flask's test client of a dashboard on ``engine``, logged in as the admin "bench"
    (made on first use)."""
    from sqlalchemy.orm import Session
    from werkzeug.security import generate_password_hash

    from sitwatch.server.models import User
    from sitwatch.server.web.app import create_app

    with Session(engine) as session:
        if session.scalar(select(User).where(User.username == "bench")) is None:
            session.add(
                User(
                    username="bench",
                    password_hash=generate_password_hash("bench-pass"),
                    role="admin",  # sees every desk
                )
            )
            session.commit()
    app = create_app(
        server_config(url),
        engine=engine,
        test_config={
            "TESTING": True,
            "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False,
            "SITWATCH_NOW": lambda: now,
        },
    )
    client = app.test_client()
    client.post("/login", data={"username": "bench", "password": "bench-pass"})
    return client


def html_timer(engine: Engine, url: str, now: datetime) -> Callable[[str], int]:
    """GET of the rendered page (or a download) through Flask's test client, logged in; the
    body is read whole, and its size returned."""
    client = bench_client(engine, url, now)

    def get(path: str) -> int:
        answer = client.get(path)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}")
        return len(answer.get_data())

    return get


def time_runs(
    work: Callable[[], object], runs: int, budget_s: float, least: int = 5
) -> list[float]:
    """Up to ``runs`` timed calls after one warm-up; fewer (but at least ``least``) if they
    would take more than ``budget_s``."""
    start = time.perf_counter()
    work()
    first = time.perf_counter() - start
    runs = max(least, min(runs, int(budget_s / max(first, 1e-6))))
    return timed_runs(work, runs, warmup=0)


# --- one desk, through the real ingest path ---------------------------------------------


def load_desk(engine: Engine, device_id: str, now: datetime) -> dict[str, Any]:
    events = desk_year(device_id, now, seed=3)
    rules = server_config("sqlite://").calendar
    start = time.perf_counter()
    for first in range(0, len(events), 500):
        batch = Batch()
        for event in events[first : first + 500]:
            batch.events[event.id] = (event, check_event(event))
            batch.event_messages += 1
        with engine.begin() as connection:
            store_batch(connection, batch, rules, now)
    with engine.begin() as connection:
        connection.execute(  # as its retained "online" status would
            update(Device)
            .where(Device.id == device_id)
            .values(name="Bench desk", online=True, last_seen_at=now)
        )
    seconds = time.perf_counter() - start
    with engine.connect() as connection:
        counts = {
            table.__tablename__: connection.scalar(select(func.count()).select_from(table))
            for table in (EventRow, SittingSession, Drill, DailyRollup)
        }
    return {"events": len(events), "store_seconds": seconds, "rows": counts}


# --- the fleet, bulk-inserted -----------------------------------------------------------


def _converter(table: Table, engine: Engine, columns: list[str]) -> Callable[[dict], tuple]:
    """Row dict -> the tuple the driver gets, converted by each column's own type (SQLite),
    or as psycopg takes it for COPY (JSON as text)."""
    if engine.dialect.name == "sqlite":
        procs = [table.c[name].type.bind_processor(engine.dialect) for name in columns]
        return lambda row: tuple(
            p(row[name]) if p else row[name] for p, name in zip(procs, columns, strict=True)
        )
    json_columns = {name for name in columns if table.c[name].type.__class__.__name__ == "JSON"}
    return lambda row: tuple(
        json.dumps(row[name]) if name in json_columns else row[name] for name in columns
    )


def template_nudges(events: list[Event], calendar: Any) -> list[dict[str, Any]]:
    """A desk-year's nudges, as ingest derives them (``insight_rows.nudges_of``)."""
    stored = [
        StoredEvent(e.id, e.boot_id, e.seq, e.type.value, e.ts, e.data)
        for e in events
        if e.type in NUDGE_TYPES
    ]
    return nudges_of(events[0].device_id, stored, calendar)


def template_insights(events: list[Event], calendar: Any) -> list[dict[str, Any]]:
    """A desk-year's DailyInsight rows, as ingest counts them (``daily_insight_rows``)."""
    sessions = [(r["started_at"], r["ended_at"], r["duration_s"]) for r in session_rows(events)]
    drills = sorted(
        (e for e in events if e.type in (EventType.DRILL_STEP, EventType.DRILL_COMPLETED)),
        key=lambda e: (e.ts, e.seq or 0),
    )
    days = {calendar.day_of(e.ts) for e in drills}
    for started, ended, _length in sessions:
        days.add(calendar.day_of(started))
        days |= {day for day, _hour, _s in calendar.hour_pieces(started, ended)}
    return daily_insight_rows(events[0].device_id, days, sessions, drills, calendar)


class TemplateRows:
    """One tracker-made desk-year as converted tuples, ready to copy to other device ids."""

    def __init__(self, engine: Engine, events: list[Event], now: datetime, event_days: int):
        rules = server_config("sqlite://").calendar
        since = now - timedelta(days=event_days)
        recent = [
            {
                "event_id": e.id,
                "device_id": e.device_id,
                "boot_id": e.boot_id,
                "seq": None,
                "type": e.type.value,
                "ts": e.ts,
                "mono": e.mono,
                "clock_synced": e.clock_synced,
                "data": check_event(e),
                "received_at": e.ts,
            }
            for e in events
            if e.ts >= since
        ]
        self.tables: dict[str, tuple[Table, list[str], list[tuple]]] = {}
        for model, rows in (
            (DailyRollup, rollup_deltas(events, rules)),
            (SittingSession, session_rows(events)),
            (Drill, drill_rows(events)),
            (Nudge, template_nudges(events, rules)),
            (DailyInsight, template_insights(events, rules)),
            (EventRow, recent),
        ):
            table: Table = model.__table__  # type: ignore[assignment]
            columns = list(rows[0])
            convert = _converter(table, engine, columns)
            self.tables[table.name] = (table, columns, [convert(row) for row in rows])

    def rows_for(self, name: str, device_id: str, suffix: str) -> list[tuple]:
        _table, columns, rows = self.tables[name]
        at_device = columns.index("device_id")
        at_id = columns.index("event_id") if "event_id" in columns else None
        out = []
        for row in rows:
            values = list(row)
            values[at_device] = device_id
            if at_id is not None:  # desk first: one chunk of desks fills one index range
                values[at_id] = f"{suffix}-{values[at_id]}"
            out.append(tuple(values))
        return out


def _bulk_insert(engine: Engine, table: Table, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    if engine.dialect.name == "sqlite":
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
        with engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MB while loading
            connection.exec_driver_sql(sql, rows)
        return
    raw = engine.raw_connection()
    try:
        sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def fleet_templates(
    engine: Engine, templates: int, now: datetime, event_days: int
) -> list[TemplateRows]:
    """``templates`` tracker-made desk-years, converted for ``engine``'s driver."""
    return [
        TemplateRows(engine, desk_year(f"tpl-{n}", now, seed=TEMPLATE_SEED + n), now, event_days)
        for n in range(templates)
    ]


def load_fleet(
    engine: Engine,
    desks: int,
    templates: int,
    now: datetime,
    event_days: int,
    first: int = 0,
    models: list[TemplateRows] | None = None,
) -> dict[str, Any]:
    """Desks ``first`` .. ``desks - 1`` (``fleet-0000`` ...), each a copy of one of the
    template desk-years (made here unless ``models`` are given)."""
    start = time.perf_counter()
    if models is None:
        models = fleet_templates(engine, templates, now, event_days)
    templates = len(models)
    generated_s = time.perf_counter() - start
    rng = random.Random(5 + first)
    device_rows = [
        {
            "id": f"fleet-{n:04d}",
            "name": f"Desk {n:04d}",
            "online": n % 10 != 0,
            "first_seen_at": now - timedelta(days=YEAR_DAYS),
            "last_seen_at": now - timedelta(seconds=rng.uniform(0, 300)),
            "version": "0.1.0",
        }
        for n in range(first, desks)
    ]
    device_table: Table = Device.__table__  # type: ignore[assignment]
    columns = list(device_rows[0])
    convert = _converter(device_table, engine, columns)
    _bulk_insert(engine, device_table, columns, [convert(row) for row in device_rows])
    chunk = 50
    for low in range(first, desks, chunk):
        for name in FLEET_TABLES:
            table, columns, _rows = models[0].tables[name]
            rows: list[tuple] = []
            for n in range(low, min(desks, low + chunk)):
                rows += models[n % templates].rows_for(name, f"fleet-{n:04d}", f"{n:04d}")
            _bulk_insert(engine, table, columns, rows)
    with engine.begin() as connection:  # as ingest keeps them (server/seat.py, fleet_days.py)
        seat.refresh(connection, [row["id"] for row in device_rows])
        fleet_days.refresh(connection, None)
    if engine.dialect.name == "postgresql":
        # What autovacuum soon does to tables that only grow (PostgreSQL 13 and later vacuum
        # them after inserts too): statistics for the planner, and the visibility map that
        # lets index-only scans skip the table (without it the fleet's year of rollups read
        # as an index-only scan took 190 ms instead of 75 ms). Our tables only.
        with engine.connect() as connection:
            names = ", ".join(table.__table__.name for table in (Device, *STATS_TABLES))
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text(f"VACUUM ANALYZE {names}")
            )
    with engine.connect() as connection:
        counts = {
            table.__table__.name: connection.scalar(select(func.count()).select_from(table))
            for table in (Device, *STATS_TABLES)
        }
    return {
        "desks": desks,
        "templates": templates,
        "event_days": event_days,
        "generate_seconds": generated_s,
        "load_seconds": time.perf_counter() - start - generated_s,
        "rows": counts,
    }


def insights_runs(
    engine: Engine, now: datetime, get: Callable[[str], None], runs: int, budget_s: float
) -> dict[str, Any]:
    """The Insights page's default range (four weeks to today) for the fleet and for one desk
    in it: its numbers (``queries.insights.insights``) and the whole page over HTTP."""
    from sqlalchemy.orm import Session

    from sitwatch.server.queries.insights import insights
    from sitwatch.server.queries.scope import ALL_DESKS

    calendar = server_config("sqlite://").calendar
    last = calendar.day_of(now)
    first = last - timedelta(days=27)

    def numbers(device_id: str | None) -> Callable[[], object]:
        def work() -> object:
            with Session(engine) as session:
                return insights(
                    session, ALL_DESKS, calendar, first, last, device_id=device_id, today=last
                )

        return work

    found = numbers(None)()
    return {
        "fleet_insights": time_runs(numbers(None), runs, budget_s),
        "fleet_insights_html": time_runs(lambda: get("/insights"), runs, budget_s),
        "desk_insights": time_runs(numbers("fleet-0001"), runs, budget_s),
        "desk_insights_html": time_runs(lambda: get("/insights?device=fleet-0001"), runs, budget_s),
        "fleet_insights_figures": {
            "nudges": found.funnel.nudges,
            "stood_up": found.funnel.stood_up,
            "bouts": sum(found.bouts),
            "exercise_steps": sum(e.count for e in found.exercises),
        },
    }


def query_plans(engine: Engine, now: datetime) -> dict[str, str]:
    """SQLite's plan for the fleet-wide range queries (whether they use an index)."""
    if engine.dialect.name != "sqlite":
        return {}
    since = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    queries = {
        "sessions_of_today": "SELECT * FROM sitting_sessions WHERE started_at >= ?",
        "drills_of_today": "SELECT * FROM drills WHERE ts >= ?",
        "seat_events": "SELECT * FROM events WHERE type IN ('seated','stood_up') AND ts >= ?",
    }
    plans = {}
    with engine.connect() as connection:
        for name, sql in queries.items():
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (since,)).all()
            plans[name] = "; ".join(str(row[-1]) for row in rows)
    return plans


def run(
    url: str, *, desks: int, templates: int, runs: int, event_days: int, budget_s: float
) -> dict[str, Any]:
    """Both stats benchmarks on the empty database at ``url``: the desk alone first, then
    the fleet loaded around it (the overview then covers ``desks`` + 1 devices)."""
    engine = make_engine(url)
    upgrade(engine)
    now = reference_now(datetime.now(UTC).date())
    result: dict[str, Any] = {"now": now.isoformat()}
    result["desk_load"] = load_desk(engine, "bench-desk", now)
    page = page_timer(engine, url, now)
    result["desk_page"] = time_runs(lambda: page("bench-desk"), runs, budget_s)
    get = html_timer(engine, url, now)
    result["desk_html"] = time_runs(lambda: get("/devices/bench-desk"), runs, budget_s)
    result["fleet_load"] = load_fleet(engine, desks, templates, now, event_days)
    page = page_timer(engine, url, now)
    result["fleet_overview"] = time_runs(lambda: page(None), runs, budget_s)
    result["fleet_desk_page"] = time_runs(lambda: page("fleet-0001"), runs, budget_s)
    result["fleet_html"] = time_runs(lambda: get("/"), 3, budget_s / 3, least=3)
    result.update(insights_runs(engine, now, get, runs, budget_s))
    result["plans"] = query_plans(engine, now)
    engine.dispose()
    return result
