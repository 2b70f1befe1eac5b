"""The funnel's medians are read from counts per whole second to stand and the middle times
only, or (a few thousand times or fewer) from every time in one read (queries/insights.py):
both ways against statistics.median over every time, per day, per week and for the range,
on SQLite and PostgreSQL, with ties, sub-second neighbours, days without a stand-up and
many desks."""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import add_device, seeded_engine

from sitwatch.calendar import Calendar
from sitwatch.server.models import Nudge
from sitwatch.server.queries import insights
from sitwatch.server.queries.insights import STAND_WITHIN_S
from sitwatch.server.queries.scope import ALL_DESKS

CAL = Calendar("UTC", 4)
FIRST = date(2026, 11, 2)  # a Monday
DAYS = 17  # three weeks cut short: the last week has three days


def _nothing(_engine: Engine) -> None:
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=_nothing) as engine:
        yield engine


def _times(rng: random.Random, day: int) -> list[float | None]:
    """A day's nudges' times to stand: clustered (many in one second, as a copied fleet
    has), spread with sub-second parts, a few far out, some without a stand-up; day 3 has
    none with a stand-up, day 5 no nudges at all."""
    if day == 5:
        return []
    if day == 3:
        return [None] * 4
    times: list[float | None] = [round(rng.uniform(0, 900), 3) for _ in range(rng.randint(1, 40))]
    times += [120.25] * rng.randint(0, 6) + [120.75] * rng.randint(0, 3)  # one second, tied
    times += [rng.choice([0.0, 0.4, 299.999, 300.0, 300.5, 7200.0])]
    times += [None] * rng.randint(0, 3)
    return times


@pytest.mark.parametrize("way", ["lookups", "one read"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_medians_equal_the_median_of_every_time(
    engine: Engine, seed: int, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if way == "lookups":  # what a fleet's range takes: more times than one read is for
        monkeypatch.setattr(insights, "_READ_ALL_UP_TO", 0)
    rng = random.Random(seed)
    expected: dict[date, list[float]] = {}
    with Session(engine) as session:
        for desk in ("desk-a", "desk-b", "desk-c"):
            add_device(session, desk, desk)
        session.flush()
        n = 0
        for offset in range(DAYS):
            day = FIRST + timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
            for stand_s in _times(rng, offset):
                n += 1
                session.add(
                    Nudge(
                        event_id=f"nudge-{n:06d}",
                        device_id=rng.choice(["desk-a", "desk-b", "desk-c"]),
                        boot_id="boot",
                        seq=n,
                        started_at=start + timedelta(seconds=n),
                        day=day,
                        stand_s=stand_s,
                        drill_s=None,
                    )
                )
                if stand_s is not None:
                    expected.setdefault(day, []).append(stand_s)
                else:
                    expected.setdefault(day, [])
        session.commit()

        last = FIRST + timedelta(days=DAYS - 1)
        found = insights.insights(session, ALL_DESKS, CAL, FIRST, last, today=last)

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    by_day = {d.day: d.funnel for d in found.days}
    for day, values in expected.items():
        assert by_day[day].median_to_stand_s == median(values), day
        assert by_day[day].stood_up == sum(v <= STAND_WITHIN_S for v in values), day
    weeks: dict[date, list[float]] = {}
    for day, values in expected.items():
        weeks.setdefault(CAL.week_start(day), []).extend(values)
    assert {w.week_start: w.funnel.median_to_stand_s for w in found.weeks} == {
        monday: median(values) for monday, values in weeks.items()
    }
    every = [v for values in expected.values() for v in values]
    assert found.funnel.median_to_stand_s == median(every)
    assert found.funnel.nudges == n
