"""Insights against figures worked out by hand from the week in web_fixtures.seed_week, on
SQLite and PostgreSQL; and the heatmap and day cut across DST changes."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session
from web_fixtures import (
    HOSTILE_STEP,
    WEEK_FIRST,
    WEEK_LAST,
    WEEK_TODAY,
    add_device,
    add_drill,
    add_event,
    add_session,
    seed_week,
    seeded_engine,
)

from sitwatch.calendar import Calendar
from sitwatch.server.config import ServerConfig, ServerConfigError, load_server_config
from sitwatch.server.ingest.derive import rebuild_all_rollups
from sitwatch.server.queries import insights
from sitwatch.server.queries.insights import Funnel, Goals
from sitwatch.server.queries.scope import ALL_DESKS, Scope

CAL = Calendar("UTC", 4)
MON, TUE, WED, THU, FRI, SAT, SUN = (WEEK_FIRST + timedelta(days=n) for n in range(7))
MIN = 60


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded_week(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=seed_week) as engine:
        yield engine


@pytest.fixture
def session(seeded_week: Engine) -> Iterator[Session]:
    with Session(seeded_week) as session:
        yield session


def week(session: Session, device_id: str | None, **kwargs: object) -> insights.Insights:
    kwargs.setdefault("today", WEEK_TODAY)
    return insights.insights(
        session, ALL_DESKS, CAL, WEEK_FIRST, WEEK_LAST, device_id=device_id, **kwargs
    )  # type: ignore[arg-type]


# --- the week by hand -------------------------------------------------------------------------
#
# Delay from a nudge's first audible prompt to the first stand-up before the next nudge:
# desk-a  Mon 08:30 -> 08:34 (4 min, drill 08:35)   Mon 09:30 -> 10:40 (70; re-prompts 09:45,
#         10:00, 10:15 are the same nudge)          Mon 13:45 -> 13:49 (4; the 13:30 prompt
#         was silent; drill 14:10, 25 min after)    Tue 08:30, 10:35, 13:30 -> 90 min each
#         Thu: only a silent prompt (none)          Fri 08:30 -> 08:40 (10)
# desk-b  Tue 10:30 -> 10:31 (1, drill 10:40)       Thu 09:30 -> 09:34 (4; the circuit from
#         09:31 was done on the chair: not verified, so not drilled, no drill that day and
#         its steps are no exercises)             Fri 10:30: answered by a drill while
#         seated (an older desk: it counts), no stand-up before the next nudge at 11:05 ->
#         11:40 (35)
# Bouts (minutes) desk-a: Mon 34 100 10 49 | Tue 120 120 120 60 | Thu 20 15 14 100 | Fri 40
#                 desk-b: Mon 30 | Tue 31 | Thu 34 | Fri 20 100
# Drills (that count) desk-a: Mon 2, Tue 1, Thu 1 | desk-b: Mon 1, Tue 1, Fri 2.
# Prompt events (all, as the rollups count them) desk-a: Mon 7, Tue 4, Thu 1 (midnight
# counts to Thursday), Fri 1 | desk-b: Tue 1, Thu 1, Fri 2.

# (nudges, stood up, drilled, median s, bouts, longest s, seated s, drills, prompts,
#  devices sat, over budget, meets goals)
ZERO = (0, 0, 0, None, (0, 0, 0, 0, 0), 0, 0, 0, 0, 0, False, False)
DESK_A = {
    MON: (3, 2, 2, 4 * MIN, (1, 0, 2, 0, 1), 100 * MIN, 193 * MIN, 2, 7, 1, False, True),
    TUE: (3, 0, 0, 90 * MIN, (0, 0, 0, 1, 3), 120 * MIN, 420 * MIN, 1, 4, 1, True, False),
    WED: ZERO,
    THU: (0, 0, 0, None, (1, 2, 0, 0, 1), 100 * MIN, 149 * MIN, 1, 1, 1, False, True),
    FRI: (1, 0, 0, 10 * MIN, (0, 0, 1, 0, 0), 40 * MIN, 40 * MIN, 0, 1, 1, False, False),
    SAT: ZERO,
    SUN: ZERO,
}
DESK_B = {
    MON: (0, 0, 0, None, (0, 0, 1, 0, 0), 30 * MIN, 30 * MIN, 1, 0, 1, False, True),
    TUE: (1, 1, 1, 1 * MIN, (0, 0, 1, 0, 0), 31 * MIN, 31 * MIN, 1, 1, 1, False, True),
    WED: ZERO,
    THU: (1, 1, 0, 4 * MIN, (0, 0, 1, 0, 0), 34 * MIN, 34 * MIN, 0, 1, 1, False, False),
    FRI: (2, 0, 0, 35 * MIN, (0, 1, 0, 0, 1), 100 * MIN, 120 * MIN, 2, 2, 1, False, True),
    SAT: ZERO,
    SUN: ZERO,
}
ALL = {
    MON: (3, 2, 2, 4 * MIN, (1, 0, 3, 0, 1), 100 * MIN, 223 * MIN, 3, 7, 2, False, True),
    # Delays 90, 90, 90 and 1 min: the median is the mean of the middle two.
    TUE: (4, 1, 1, 90 * MIN, (0, 0, 1, 1, 3), 120 * MIN, 451 * MIN, 2, 5, 2, True, False),
    WED: ZERO,
    # desk-b sat and did no drill that counts: the day does not meet the goals.
    THU: (1, 1, 0, 4 * MIN, (1, 2, 1, 0, 1), 100 * MIN, 183 * MIN, 1, 2, 2, False, False),
    # 10 and 35 min -> 22.5; desk-a has no drill yet, so the day does not meet the goals.
    FRI: (3, 0, 0, 22.5 * MIN, (0, 1, 1, 0, 1), 100 * MIN, 160 * MIN, 2, 3, 2, False, False),
    SAT: ZERO,
    SUN: ZERO,
}
EXPECTED = {"desk-a": DESK_A, "desk-b": DESK_B, None: ALL}


def as_tuple(d: insights.DayInsight) -> tuple[object, ...]:
    f = d.funnel
    return (
        f.nudges,
        f.stood_up,
        f.drilled,
        f.median_to_stand_s,
        d.bouts,
        d.longest_bout_s,
        d.seated_s,
        d.drills,
        d.prompts,
        d.devices_sat,
        d.over_budget,
        d.meets_goals,
    )


@pytest.mark.parametrize("device_id", ["desk-a", "desk-b", None])
def test_each_day_of_the_week(session: Session, device_id: str | None) -> None:
    found = week(session, device_id)
    assert [d.day for d in found.days] == list(EXPECTED[device_id])
    for day in found.days:
        assert as_tuple(day) == EXPECTED[device_id][day.day], day.day


def test_funnel_for_the_week(session: Session) -> None:
    # All delays: 1 4 4 4 [10 35] 70 90 90 90 -> the median is 22.5 min; Thursday's
    # seated circuit is no drill.
    assert week(session, None).funnel == Funnel(11, 4, 3, 22.5 * MIN)
    # desk-a: 4 4 10 [70] 90 90 90.
    assert week(session, "desk-a").funnel == Funnel(7, 2, 2, 70 * MIN)
    assert week(session, "desk-b").funnel == Funnel(4, 2, 1, 4 * MIN)  # 1 [4] 35
    weeks = week(session, None).weeks
    assert [(w.week_start, w.funnel) for w in weeks] == [(MON, Funnel(11, 4, 3, 22.5 * MIN))]


def test_weeks_are_cut_to_the_range(session: Session) -> None:
    found = insights.insights(session, ALL_DESKS, CAL, date(2026, 11, 12), TUE)
    assert [(w.week_start, w.funnel) for w in found.weeks] == [
        (date(2026, 11, 9), Funnel()),  # Thursday 12 to Sunday 15: nothing
        (MON, Funnel(7, 3, 3, 70 * MIN)),  # Monday and Tuesday only: 1 4 4 [70] 90 90 90
    ]


def test_a_stretch_in_progress_is_not_a_bout(session: Session) -> None:
    # desk-a has been seated since 14:00 on Friday: Friday holds only the 40 min bout.
    friday = week(session, "desk-a").days[4]
    assert friday.bouts == (0, 0, 1, 0, 0) and friday.longest_bout_s == 40 * MIN


def test_bout_histogram_and_budget_totals(session: Session) -> None:
    found = week(session, None)
    # 10 14 | 15 20 20 | 30 31 34 34 40 49 | 60 | 100 100 100 120 120 120 (18 bouts)
    assert found.bouts == (2, 3, 6, 1, 6)
    assert found.longest_bout_s == 120 * MIN
    assert found.days_over_budget == 1  # Tuesday, desk-a's 7 h
    assert found.days[1].devices_over_budget == 1 and found.days[1].devices_meeting_goals == 1


def test_the_budget_comes_from_the_goals(session: Session) -> None:
    # A 3 h budget: desk-a's Monday (3 h 13 min) is over too; a 2-drill goal leaves
    # desk-b only Friday.
    tight = week(session, "desk-a", goals=Goals(seat_budget_s=3 * 3600))
    assert [d.day for d in tight.days if d.over_budget] == [MON, TUE]
    picky = week(session, "desk-b", goals=Goals(min_drills=2))
    assert [d.day for d in picky.days if d.meets_goals] == [FRI]
    assert picky.streaks == insights.GoalStreaks(current=1, best=1, last_day=FRI)


def test_goal_streaks(session: Session) -> None:
    # desk-b: Monday, Tuesday, (nobody sat Wednesday), not Thursday (its circuit was done
    # on the chair: no drill that counts), Friday.
    assert week(session, "desk-b").streaks == insights.GoalStreaks(1, 2, FRI)
    # desk-a: Monday met, Tuesday over budget, Thursday met; Friday (today) has no drill
    # yet but is under budget, so it is still open.
    assert week(session, "desk-a").streaks == insights.GoalStreaks(1, 1, THU)
    # Looking back from next week, Friday is over and missed the drill goal.
    assert week(session, "desk-a", today=date(2026, 11, 27)).streaks == insights.GoalStreaks(
        0, 1, THU
    )
    # All devices: every device that sat must meet them (Tuesday and Thursday break,
    # Friday is open).
    assert week(session, None).streaks == insights.GoalStreaks(0, 1, MON)


def test_exercise_counts(session: Session) -> None:
    found = week(session, None)
    counts = {e.key: e.count for e in found.exercises}
    # Two guided circuits (desk-a and desk-b on Monday) and one unknown step name; desk-b's
    # circuit on the chair on Thursday is left out.
    assert counts == {
        "setup": 2,
        "glute_bridge": 2,
        "clams": 2,
        "reverse_clams": 2,
        "athletic_stance": 2,
        "band_walks": 2,
        "other": 1,
    }
    assert found.days[2].exercises["other"] == 1  # Wednesday
    assert {e.key: e.count for e in week(session, "desk-a").exercises}["other"] == 0
    assert HOSTILE_STEP not in {e.key for e in found.exercises}
    assert [e.title for e in found.exercises][:2] == ["Bands on", "Glute bridges"]


def test_heatmap_splits_sessions_at_hour_boundaries(session: Session) -> None:
    found = week(session, None).heatmap
    minutes = {
        (weekday, hour): round(found.seated_s[weekday][hour] / 60, 3)
        for weekday in range(7)
        for hour in range(24)
        if found.seated_s[weekday][hour]
    }
    assert minutes == {
        # Monday: 08:00-08:34, 09:00-10:40 and desk-b 09:00-09:30, 11:00-11:10, 13:00-13:49
        (0, 8): 34, (0, 9): 90, (0, 10): 40, (0, 11): 10, (0, 13): 49,
        # Tuesday: 08-10, 10:05-12:05 and desk-b 10:00-10:31, 13-15, 15:10-16:10
        (1, 8): 60, (1, 9): 60, (1, 10): 86, (1, 11): 60, (1, 12): 5,
        (1, 13): 60, (1, 14): 60, (1, 15): 50, (1, 16): 10,
        # Thursday: 09:00-09:20, 09:30-09:45, desk-b 09:00-09:34, 10:00-10:14 and
        # 23:30-01:10, whose hours after midnight stay in Thursday's row (days start 04:00)
        (3, 9): 69, (3, 10): 14, (3, 23): 30, (3, 0): 60, (3, 1): 10,
        # Friday: 08:00-08:40, desk-b 09:00-09:20 and 10:00-11:40
        (4, 8): 40, (4, 9): 20, (4, 10): 60, (4, 11): 40,
    }  # fmt: skip
    assert found.hours[0] == 4 and found.hours[-1] == 3
    assert found.peak_s == 90 * MIN


def test_ranges_are_checked(session: Session) -> None:
    with pytest.raises(ValueError, match="after"):
        insights.insights(session, ALL_DESKS, CAL, TUE, MON)
    with pytest.raises(ValueError, match="too long"):
        insights.insights(session, ALL_DESKS, CAL, date(2000, 1, 1), date(2010, 1, 1))
    with pytest.raises(ValueError, match="between"):
        insights.insights(session, ALL_DESKS, CAL, date(1999, 12, 30), date(2000, 1, 2))


def test_an_empty_range_is_all_zeros(session: Session) -> None:
    found = insights.insights(session, ALL_DESKS, CAL, date(2026, 1, 5), date(2026, 1, 11))
    assert found.funnel == Funnel() and found.bouts == (0, 0, 0, 0, 0)
    assert found.streaks == insights.GoalStreaks(0, 0, None)
    assert found.heatmap.peak_s == 0 and len(found.days) == 7


# --- time zones ---------------------------------------------------------------------------------


def test_hour_pieces_are_cut_at_hour_boundaries_and_dst_changes() -> None:
    """What ingest files under each clock hour of a day (models.DailyInsight)."""
    berlin = Calendar("Europe/Berlin", 4)

    def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, month, day, hour, minute, tzinfo=UTC)

    saturday = date(2026, 10, 24)
    # Autumn: 02:30-03:00 CEST, 02:00-03:00 CET (the hour again), 03:00-03:30 CET.
    assert berlin.hour_pieces(utc(10, 25, 0, 30), utc(10, 25, 2, 30)) == [
        (saturday, 2, 30 * MIN),
        (saturday, 2, 60 * MIN),
        (saturday, 3, 30 * MIN),
    ]
    # Spring: 01:30-02:00 CET, then 03:00-03:30 CEST; hour 2 never was.
    assert berlin.hour_pieces(utc(3, 29, 0, 30), utc(3, 29, 1, 30)) == [
        (date(2026, 3, 28), 1, 30 * MIN),
        (date(2026, 3, 28), 3, 30 * MIN),
    ]
    # A zone 5 h 45 min ahead cuts at its own hours; from 04:00 on is the next day.
    nepal = Calendar("Asia/Kathmandu", 4)
    assert nepal.hour_pieces(utc(3, 28, 22, 0), utc(3, 28, 22, 30)) == [
        (date(2026, 3, 28), 3, 15 * MIN),
        (date(2026, 3, 29), 4, 15 * MIN),
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=lambda engine: None) as engine:
        yield engine


def test_heatmap_and_days_across_dst_changes(empty_engine: Engine) -> None:
    """Berlin, days from 04:00: clocks go forward on Sunday 29 March 2026 (02:00 CET ->
    03:00 CEST, 01:00 UTC) and back on Sunday 25 October (03:00 CEST -> 02:00 CET,
    01:00 UTC)."""
    berlin = Calendar("Europe/Berlin", 4)

    def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, month, day, hour, minute, tzinfo=UTC)

    with Session(empty_engine) as s:
        add_device(s, "desk-z", "Desk Z", last_seen=utc(10, 26, 12))
        s.flush()
        # Spring: 00:30-01:30 UTC is 01:30-02:00 CET then 03:00-03:30 CEST; hour 2 never was.
        add_session(s, "desk-z", utc(3, 29, 0, 30), 60)
        # Autumn: 00:30-02:30 UTC is 02:30-03:00 CEST, 02:00-03:00 CET (the hour again),
        # 03:00-03:30 CET: 90 min in hour 2. Before 04:00, so Saturday's row.
        add_session(s, "desk-z", utc(10, 25, 0, 30), 120)
        # 08:00 UTC is 10:00 in summer (Friday 23 October) and 09:00 in winter (Monday 26).
        add_session(s, "desk-z", utc(10, 23, 8), 30)
        add_session(s, "desk-z", utc(10, 26, 8), 30)
        # Prompts either side of Sunday's 04:00 (CET): 02:40 UTC = 03:40 -> Saturday,
        # 03:40 UTC = 04:40 -> Sunday; stood up 2 and 3 min later, a drill after the second.
        add_session(s, "desk-z", utc(10, 25, 2, 35), 7)
        add_event(s, "desk-z", "prompt", utc(10, 25, 2, 40), level=1, seated_s=1800, quiet=False)
        add_event(s, "desk-z", "prompt_ack", utc(10, 25, 2, 42), how="stood_up", response_s=120)
        add_session(s, "desk-z", utc(10, 25, 3, 35), 8)
        add_event(s, "desk-z", "prompt", utc(10, 25, 3, 40), level=1, seated_s=1800, quiet=False)
        add_event(s, "desk-z", "prompt_ack", utc(10, 25, 3, 43), how="stood_up", response_s=180)
        add_drill(s, "desk-z", utc(10, 25, 3, 50))
        s.commit()
        with empty_engine.begin() as connection:  # what ingest derives from these rows
            rebuild_all_rollups(connection, berlin)
        spring = insights.heatmap(s, ALL_DESKS, berlin, date(2026, 3, 27), date(2026, 3, 29))
        assert spring.seated_s[5][1] == 30 * MIN and spring.seated_s[5][3] == 30 * MIN
        assert spring.seated_s[5][2] == 0 and spring.peak_s == 30 * MIN

        autumn = insights.insights(s, ALL_DESKS, berlin, date(2026, 10, 19), date(2026, 10, 26))
        grid = autumn.heatmap.seated_s
        # Saturday's late night: the 120 min, and 03:35-03:42 CET (02:35 UTC).
        assert grid[5][2] == 90 * MIN and grid[5][3] == (30 + 7) * MIN
        assert grid[4][10] == 30 * MIN and grid[0][9] == 30 * MIN  # summer and winter time
        assert grid[6][4] == 8 * MIN  # 03:35 UTC is 04:35 CET: Sunday
        assert sum(map(sum, grid)) == (120 + 30 + 30 + 7 + 8) * MIN
        by_day = {d.day: d for d in autumn.days}
        saturday, sunday = by_day[date(2026, 10, 24)], by_day[date(2026, 10, 25)]
        assert saturday.funnel == Funnel(1, 1, 0, 2 * MIN)
        assert sunday.funnel == Funnel(1, 1, 1, 3 * MIN)  # stood at 03:43, drill 03:50
        assert saturday.bouts == (1, 0, 0, 0, 1)  # 7 min, and the 120 min across the change

        # A range from Sunday 25 October starts at 04:00 CET (03:00 UTC): the night before
        # is left out, Sunday's 8 min and Monday's 30 min are in.
        sunday_on = insights.heatmap(s, ALL_DESKS, berlin, date(2026, 10, 25), date(2026, 10, 26))
        assert sum(map(sum, sunday_on.seated_s)) == (8 + 30) * MIN

        # A range ending on Saturday 24 October ends at 04:00 CET on Sunday: the 120 min
        # session is all in (it ended 02:30 UTC = 03:30 CET).
        up_to_saturday = insights.heatmap(
            s, ALL_DESKS, berlin, date(2026, 10, 24), date(2026, 10, 24)
        )
        assert sum(map(sum, up_to_saturday.seated_s)) == (120 + 7) * MIN


# --- configuration ------------------------------------------------------------------------------


def test_goals_in_the_server_config(tmp_path: Path) -> None:
    assert ServerConfig().goals.seat_budget_h == 6 and ServerConfig().goals.min_drills == 1
    path = tmp_path / "server.toml"
    path.write_text("[goals]\nseat_budget_h = 7.5\nmin_drills = 2\n", encoding="utf-8")
    goals = Goals.from_config(load_server_config(path, environ={}).goals)
    assert goals == Goals(seat_budget_s=7.5 * 3600, min_drills=2)
    path.write_text("[goals]\nseat_budget_h = 0\nmin_drills = -1\nbogus = 1\n", encoding="utf-8")
    with pytest.raises(ServerConfigError) as failed:
        load_server_config(path, environ={})
    message = str(failed.value)
    assert "goals.seat_budget_h" in message and "goals.min_drills" in message
    assert "goals.bogus" in message


@pytest.mark.parametrize("seeded_week", ["sqlite"], indirect=True)  # SQLite's EXPLAIN QUERY PLAN
def test_queries_seek_the_time_indexes(seeded_week: Engine, session: Session) -> None:
    """All devices over a range must seek each device's (device_id, time) index, never scan
    the events or sessions tables (a fleet has millions of rows)."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    event.listen(seeded_week, "before_cursor_execute", capture)
    try:
        week(session, None)
    finally:
        event.remove(seeded_week, "before_cursor_execute", capture)
    with seeded_week.connect() as connection:
        for statement, parameters in seen:
            plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            details = " | ".join(str(row[-1]) for row in plan)
            assert "SCAN events" not in details, details
            assert "SCAN sitting_sessions" not in details, details
            assert "SCAN drills" not in details, details
            # Every lookup of one desk's rows goes through its device: an index on time
            # alone (or kind and time) walks every desk's rows after that time.
            for step in details.split(" | "):
                if re.match(r"SEARCH (events|sitting_sessions|drills)\w*", step):
                    assert "device_id=" in step or "IN-OPERATOR" in step, details


def test_a_scope_of_one_desk_hides_the_other_desks(session: Session) -> None:
    """The insights of a viewer who may see only desk-b are desk-b's, as if asked for it."""
    seen = insights.insights(
        session, Scope.of(["desk-b"]), CAL, WEEK_FIRST, WEEK_LAST, today=WEEK_TODAY
    )
    assert dataclasses.replace(seen, device_id="desk-b") == week(session, "desk-b")
    assert seen != week(session, None)
    hidden = insights.insights(
        session, Scope.of(["desk-b"]), CAL, WEEK_FIRST, WEEK_LAST, device_id="desk-a"
    )
    assert hidden.funnel == Funnel() and sum(map(sum, hidden.heatmap.seated_s)) == 0
    assert all(day.seated_s == 0 and day.drills == 0 for day in hidden.days)
