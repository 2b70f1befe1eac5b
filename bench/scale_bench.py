"""Office scale (issue 16, item 2): one PostgreSQL database grown from 100 to 1000 to
10,000 desks, each with a year of derived rows and four weeks of raw events (the fleet of
stats_bench, copied from tracker-made template desk-years). At each size the dashboard's
answers are timed as a logged-in admin computes them:

- the fleet overview (``overview.page_figures``: today per desk, the month's average
  desk, records, the busiest desks' timeline),
- the fleet's Insights for the default four weeks (``queries.insights.insights``),
- one desk's page inside the fleet,
- the CSV export: the fleet's last 7 days and one desk's year, whole downloads through
  the Flask test client, and the time to the first chunk of the fleet's whole export.

Beside each, a *raw* figure: the same numbers computed without the tables ingest derives
for them (daily rollups, nudges, daily insight rows), from the rows they summarise (sitting
sessions, drills and raw events), which is what each page would cost without that design.
The raw queries are PostgreSQL's SQL (days are UTC days starting at 04:00, as the bench's
server config says), except the funnel's, which reads the range's raw prompt, ack,
stand-up and drill events and runs ingest's own nudge derivation (``nudges_of``) on them.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from stats_bench import (
    bench_client,
    fleet_templates,
    html_timer,
    load_fleet,
    page_timer,
    reference_now,
    server_config,
    time_runs,
)

from sitwatch.server.db import make_engine
from sitwatch.server.ingest.insight_rows import NUDGE_TYPES, StoredEvent, nudges_of
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import Event as EventRow
from sitwatch.server.queries.insights import STAND_WITHIN_S, insights
from sitwatch.server.queries.scope import ALL_DESKS

SIZES = (100, 1000, 10_000)
DESK = "fleet-0001"
INSIGHT_DAYS = 28
CSV_DAYS = 7

# Day of a timestamp in the bench's calendar (UTC, days start at 04:00), in SQL.
_DAY = "(({column}) - interval '4 hours')::date"


def _sessions_by_day(engine: Engine, since: datetime, device_id: str | None) -> list[Any]:
    """Seated seconds, sessions and the longest per desk and day from sitting_sessions, and
    verified drills per desk and day from drills: what daily_rollups hold."""
    desk = "" if device_id is None else "AND device_id = :desk"
    sql = f"""
        SELECT s.device_id, s.day, s.seated, s.sessions, s.longest, coalesce(d.drills, 0)
        FROM (SELECT device_id, {_DAY.format(column="started_at")} AS day,
                     sum(duration_s) AS seated, count(*) AS sessions,
                     max(duration_s) AS longest
              FROM sitting_sessions WHERE started_at >= :since {desk}
              GROUP BY 1, 2) s
        LEFT JOIN (SELECT device_id, {_DAY.format(column="ts")} AS day, count(*) AS drills
                   FROM drills WHERE verified AND ts >= :since {desk}
                   GROUP BY 1, 2) d
          ON d.device_id = s.device_id AND d.day = s.day
        ORDER BY s.day, s.device_id"""
    with engine.connect() as connection:
        return connection.execute(text(sql), {"since": since, "desk": device_id}).all()


def raw_overview(engine: Engine, now: datetime) -> object:
    """The overview's month of the average desk, its longest stretch ever and drill streaks,
    from a year of sessions and drills instead of the rollups."""
    rows = _sessions_by_day(engine, now - timedelta(days=365), None)
    by_day: dict[Any, list[float]] = defaultdict(lambda: [0.0, 0, 0])
    longest = 0.0
    for _desk, day, seated, _sessions, top, drills in rows:
        figures = by_day[day]
        figures[0] += seated
        figures[1] += 1 if seated > 0 else 0
        figures[2] += drills
        longest = max(longest, top)
    return by_day, longest


def raw_desk_page(engine: Engine, now: datetime) -> object:
    """One desk's year of day figures from its sessions and drills."""
    return _sessions_by_day(engine, now - timedelta(days=365), DESK)


def raw_csv(engine: Engine, now: datetime) -> object:
    """The fleet's last CSV_DAYS days per desk and day, with the prompt, ack and break counts
    from raw events, instead of the rollups."""
    since = now - timedelta(days=CSV_DAYS)
    sessions = _sessions_by_day(engine, since, None)
    sql = f"""
        SELECT device_id, {_DAY.format(column="ts")} AS day,
               count(*) FILTER (WHERE type = 'break'),
               count(*) FILTER (WHERE type = 'prompt'),
               count(*) FILTER (WHERE type = 'prompt_ack')
        FROM events WHERE ts >= :since AND type IN ('break', 'prompt', 'prompt_ack')
        GROUP BY 1, 2"""
    with engine.connect() as connection:
        counts = connection.execute(text(sql), {"since": since}).all()
    return len(sessions), len(counts)


def raw_funnel(engine: Engine, now: datetime) -> tuple[int, int, float | None]:
    """The fleet's four-week nudge funnel from raw events: the range's prompt, ack,
    stand-up and drill events (the derivation's inputs) through ingest's ``nudges_of``:
    nudges, stood up in time, and the median time to stand over every time."""
    calendar = server_config("sqlite://").calendar
    last = calendar.day_of(now)
    start = calendar.bounds(last - timedelta(days=INSIGHT_DAYS - 1))[0]
    stmt = (
        select(
            EventRow.device_id,
            EventRow.event_id,
            EventRow.boot_id,
            EventRow.seq,
            EventRow.type,
            EventRow.ts,
            EventRow.data,
        )
        .where(EventRow.ts >= start, EventRow.type.in_([t.value for t in NUDGE_TYPES]))
        .order_by(EventRow.device_id, EventRow.ts)
    )
    nudges = stood = 0
    stands: list[float] = []
    with Session(engine) as session:
        desk: str | None = None
        events: list[StoredEvent] = []

        def count() -> None:
            nonlocal nudges, stood
            if desk is None:
                return
            for row in nudges_of(desk, events, calendar):
                nudges += 1
                stand = row["stand_s"]
                stood += stand is not None and stand <= STAND_WITHIN_S
                if stand is not None:
                    stands.append(stand)

        for device_id, *fields in session.execute(stmt.execution_options(yield_per=5000)):
            if device_id != desk:
                count()
                desk, events = device_id, []
            events.append(StoredEvent(*fields))
        count()
    return nudges, stood, statistics.median(stands) if stands else None


def _once(work: Callable[[], object]) -> list[float]:
    """One timed call: the raw queries take seconds at the larger sizes."""
    return _timed(work)[0]


def _timed(work: Callable[[], Any]) -> tuple[list[float], Any]:
    """One timed call and its answer."""
    start = time.perf_counter()
    answer = work()
    return [time.perf_counter() - start], answer


def first_chunk(engine: Engine, url: str, now: datetime) -> Callable[[], None]:
    """Seconds to the first chunk of the fleet's whole CSV export (what a user waits for
    before the download starts); the rest of the stream is dropped."""
    client = bench_client(engine, url, now)

    def work() -> None:
        answer = client.get("/api/v1/rollups.csv", buffered=False)
        if answer.status_code != 200:
            raise RuntimeError(f"CSV export answered {answer.status_code}")
        chunks = iter(answer.response)
        next(chunks)
        answer.close()

    return work


def run(
    url: str,
    *,
    sizes: tuple[int, ...] = SIZES,
    templates: int,
    runs: int,
    event_days: int,
    budget_s: float,
) -> dict[str, Any]:
    """Grow one fleet through ``sizes`` in the empty database at ``url``, timing every page
    and its raw figure at each size."""
    engine = make_engine(url)
    upgrade(engine)
    now = reference_now(datetime.now().date())
    models = fleet_templates(engine, templates, now, event_days)
    page = page_timer(engine, url, now)
    get = html_timer(engine, url, now)
    first = first_chunk(engine, url, now)
    calendar = server_config("sqlite://").calendar
    today = calendar.day_of(now)
    week_csv = f"/api/v1/rollups.csv?from={today - timedelta(days=CSV_DAYS - 1)}&to={today}"
    desk_csv = f"/api/v1/devices/{DESK}/rollups.csv"
    last = today
    start = last - timedelta(days=INSIGHT_DAYS - 1)

    def fleet_insights() -> object:
        with Session(engine) as session:
            return insights(session, ALL_DESKS, calendar, start, last, today=last)

    steps = []
    loaded = 0
    for size in sizes:
        load = load_fleet(engine, size, templates, now, event_days, first=loaded, models=models)
        loaded = size
        found = fleet_insights()
        funnel_raw_s, raw_found = _timed(lambda: raw_funnel(engine, now))
        step: dict[str, Any] = {
            "desks": size,
            "load": load,
            "overview": time_runs(lambda: page(None), runs, budget_s),
            "overview_raw": _once(lambda: raw_overview(engine, now)),
            "insights": time_runs(fleet_insights, runs, budget_s),
            "insights_raw": funnel_raw_s,
            "desk_page": time_runs(lambda: page(DESK), runs, budget_s),
            "desk_page_raw": time_runs(lambda: raw_desk_page(engine, now), runs, budget_s),
            "csv_week": time_runs(lambda: get(week_csv), runs, budget_s),
            "csv_week_raw": _once(lambda: raw_csv(engine, now)),
            "csv_desk": time_runs(lambda: get(desk_csv), runs, budget_s),
            "csv_first_chunk": time_runs(first, runs, budget_s),
            "checks": {  # the funnel from the derived table and from raw events
                "funnel_nudges": (found.funnel.nudges, raw_found[0]),
                "funnel_stood_up": (found.funnel.stood_up, raw_found[1]),
                "funnel_median_to_stand_s": (found.funnel.median_to_stand_s, raw_found[2]),
            },
        }
        steps.append(step)
    engine.dispose()
    return {"now": now.isoformat(), "steps": steps}
