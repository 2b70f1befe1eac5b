"""Stats queries against hand-computed figures (tests/web_fixtures.py: seed_small)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session
from web_fixtures import NOW, TODAY, add_device, add_event, add_rollup, at, seeded_engine

from sitwatch.calendar import Calendar
from sitwatch.server import seat
from sitwatch.server.models import Device
from sitwatch.server.queries import stats
from sitwatch.server.queries.scope import ALL_DESKS, Scope
from sitwatch.server.retention import prune_events

CAL = Calendar("UTC", 4)
OFFLINE_S = 900


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def three_desks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """SQLite and PostgreSQL (the same numbers on both)."""
    with seeded_engine(request.param, tmp_path, with_user=False) as engine:
        yield engine


@pytest.fixture
def session(three_desks: Engine) -> Iterator[Session]:
    with Session(three_desks) as session:
        yield session


def test_calendar_days_start_at_the_start_hour() -> None:
    assert CAL.day_of(datetime(2026, 11, 25, 3, 59, tzinfo=UTC)) == date(2026, 11, 24)
    assert CAL.day_of(datetime(2026, 11, 25, 4, 0, tzinfo=UTC)) == date(2026, 11, 25)
    assert CAL.bounds(TODAY) == (at(TODAY, 4), at(TODAY + timedelta(days=1), 4))
    assert CAL.week_start(TODAY) == date(2026, 11, 23)


def test_calendar_day_across_a_dst_change_is_23_hours() -> None:
    berlin = Calendar("Europe/Berlin", 4)
    # Clocks go forward at 02:00 on Sunday 29 March: Saturday's day is one hour short.
    start, end = berlin.bounds(date(2026, 3, 28))
    assert start == datetime(2026, 3, 28, 3, 0, tzinfo=UTC)  # 04:00 CET
    assert end == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # 04:00 CEST
    assert end - start == timedelta(hours=23)
    # 03:30 CEST on Sunday is still Saturday's late night.
    assert berlin.day_of(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) == date(2026, 3, 28)


def test_today_for_one_device(session: Session) -> None:
    t = stats.today(session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-a")
    assert t.day == TODAY
    assert t.seated_now and t.devices_seated == 1
    assert t.current_stretch_s == 40 * 60  # seated since 14:50, now 15:30
    # From today's rollup row, as ingest keeps it: 40 + 70 + 25 min; prompts at 10:30 and
    # 15:20 (the 03:30 one belongs to yesterday); acks at 10:31 (by drill) and 13:26.
    assert t.seated_s == 135 * 60
    assert (t.sessions, t.breaks, t.drills) == (3, 2, 2)
    assert (t.prompts, t.prompts_answered, t.prompts_answered_by_drill) == (2, 2, 1)


def test_offline_device_is_not_seated_even_if_its_last_event_says_so(session: Session) -> None:
    t = stats.today(session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-b")
    assert not t.seated_now and t.current_stretch_s == 0
    assert t.devices_online == 0  # online flag set, but last heard 2 h ago > 900 s
    assert (t.seated_s, t.sessions, t.prompts, t.prompts_answered, t.drills) == (1800, 1, 1, 0, 1)


def test_today_for_all_devices_adds_up(session: Session) -> None:
    t = stats.today(session, ALL_DESKS, CAL, NOW, OFFLINE_S)
    assert (t.devices, t.devices_online, t.devices_seated) == (3, 2, 1)
    assert t.current_stretch_s == 2400
    assert t.seated_s == 8100 + 1800
    assert (t.sessions, t.breaks, t.drills) == (4, 2, 3)
    assert (t.prompts, t.prompts_answered, t.prompts_answered_by_drill) == (3, 2, 1)
    per_device = stats.today_by_device(session, ALL_DESKS, CAL, NOW, OFFLINE_S)
    assert sorted(per_device) == ["desk-a", "desk-b", "desk-c"]
    assert per_device["desk-c"].seated_s == 0 and per_device["desk-c"].devices_online == 1


def test_week_series_fills_missing_days(session: Session) -> None:
    week = stats.daily_series(session, ALL_DESKS, date(2026, 11, 19), TODAY, "desk-a")
    assert [d.day.day for d in week] == [19, 20, 21, 22, 23, 24, 25]
    assert [d.seated_s for d in week] == [15000, 25000, 3000, 3600, 18000, 20000, 8100]
    assert [d.drills for d in week] == [1, 0, 2, 1, 1, 1, 2]
    assert week[-1].prompts_answered_by_drill == 1
    together = stats.daily_series(session, ALL_DESKS, date(2026, 11, 24), date(2026, 11, 26))
    assert [(d.seated_s, d.drills, d.longest_s) for d in together] == [
        (29000, 2, 5400),  # desk-a 20000 + desk-b 9000; longest is desk-b's 5400
        (9900, 3, 4200),
        (0, 0, 0),  # tomorrow: no row, zeros
    ]


def test_longest_stretch_today_week_ever(session: Session) -> None:
    assert stats.longest_stretch(
        session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-a"
    ) == stats.LongestStretch(today_s=4200, week_s=5000, ever_s=7200)
    # All devices: desk-b's 5400 on Tuesday is this week's longest.
    assert stats.longest_stretch(session, ALL_DESKS, CAL, NOW, OFFLINE_S) == stats.LongestStretch(
        today_s=4200, week_s=5400, ever_s=7200
    )


def test_a_stretch_in_progress_counts_as_longest(session: Session) -> None:
    add_event(session, "desk-c", "seated", at(TODAY, 6, 0))  # 9.5 h ago, still seated
    session.commit()
    longest = stats.longest_stretch(session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-c")
    assert longest == stats.LongestStretch(today_s=34200, week_s=34200, ever_s=34200)


def test_days_after_today_count_for_nothing_yet(session: Session) -> None:
    """A desk whose clock ran ahead stores rollups for days to come: they must not become
    today's longest stretch or end the current drill streak."""
    before = (
        stats.longest_stretch(session, ALL_DESKS, CAL, NOW, OFFLINE_S),
        stats.drill_streaks(session, ALL_DESKS, CAL, NOW, "desk-a"),
    )
    for days_ahead in (1, 2, 400):
        add_rollup(session, "desk-a", TODAY + timedelta(days=days_ahead), longest_s=99999, drills=5)
    session.commit()
    after = (
        stats.longest_stretch(session, ALL_DESKS, CAL, NOW, OFFLINE_S),
        stats.drill_streaks(session, ALL_DESKS, CAL, NOW, "desk-a"),
    )
    assert after == before


def test_drill_streaks(session: Session) -> None:
    assert stats.drill_streaks(session, ALL_DESKS, CAL, NOW, "desk-a") == stats.Streaks(
        current=5, best=6, goal_drills=1, last_day=TODAY
    )
    # Tomorrow morning before any drill: the run is still alive (the day is not over) ...
    assert (
        stats.drill_streaks(session, ALL_DESKS, CAL, NOW + timedelta(hours=20), "desk-a").current
        == 5
    )
    # ... but a whole day without a drill ends it.
    assert (
        stats.drill_streaks(session, ALL_DESKS, CAL, NOW + timedelta(days=2), "desk-a").current == 0
    )
    # A goal of two drills a day: desk-a alone has only isolated days (11-21, 11-25).
    assert stats.drill_streaks(session, ALL_DESKS, CAL, NOW, "desk-a", goal_drills=2).best == 1
    # Together desk-a and desk-b reach two on 11-24 (1 + 1) and 11-25 (2 + 1).
    both = stats.drill_streaks(session, ALL_DESKS, CAL, NOW, goal_drills=2)
    assert (both.current, both.best) == (2, 2)


def test_day_timeline(session: Session) -> None:
    line = stats.day_timeline(session, ALL_DESKS, CAL, TODAY, NOW, OFFLINE_S, "desk-a")
    assert [(b.start.hour, b.start.minute, b.duration_s, b.is_open) for b in line.bars] == [
        (9, 0, 2400, False),
        (10, 0, 4200, False),
        (13, 0, 1500, False),
        (14, 50, 2400, True),
    ]
    assert [(m.kind, m.ts.hour, m.ts.minute) for m in line.marks] == [
        ("prompt", 10, 30),
        ("drill", 10, 31),
        ("drill", 13, 27),
        ("prompt", 15, 20),
    ]
    yesterday = stats.day_timeline(
        session, ALL_DESKS, CAL, TODAY - timedelta(days=1), NOW, OFFLINE_S
    )
    assert [m.ts.hour for m in yesterday.marks] == [3]  # the 03:30 prompt
    assert yesterday.bars == []


def _statements(engine: Engine, run: Callable[[], object]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


@pytest.mark.parametrize("three_desks", ["sqlite"], indirect=True)  # SQLite's EXPLAIN QUERY PLAN
def test_the_seat_state_is_read_off_the_devices_and_kept_through_the_index(
    three_desks: Engine, session: Session
) -> None:
    """ "Seated now" reads one devices row per desk, no event (a fleet has millions); the
    lookup that keeps it (at ingest, for the desks a batch touched) walks the (device_id,
    ts) index per desk, never scans the events table."""
    read = _statements(three_desks, lambda: stats.seat_states(session, ALL_DESKS, NOW, OFFLINE_S))
    assert len(read) == 1 and "events" not in read[0][0], read
    kept = _statements(three_desks, lambda: seat.refresh(session.connection(), ["desk-a"]))
    statement, parameters = kept[0]
    with three_desks.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    details = " | ".join(str(row[-1]) for row in plan)
    assert "ix_events_device_ts" in details, details
    assert "SCAN events" not in details, details


def test_a_seat_event_dated_ahead_of_now_does_not_pin_the_state(session: Session) -> None:
    """The devices row keeps the latest stored seat event, even one a clock slightly ahead
    dated after now; until then the state is the latest up to now (and a stand-up dated
    ahead does not end a stretch in progress yet)."""
    before = stats.seat_states(session, ALL_DESKS, NOW, OFFLINE_S)["desk-a"]
    assert before.is_seated
    add_event(session, "desk-a", "stood_up", NOW + timedelta(seconds=30), session_s=60.0)
    session.commit()
    assert stats.seat_states(session, ALL_DESKS, NOW, OFFLINE_S)["desk-a"] == before
    later = NOW + timedelta(minutes=1)
    assert not stats.seat_states(session, ALL_DESKS, later, OFFLINE_S)["desk-a"].is_seated


def test_pruned_seat_events_leave_no_seat_state(session: Session) -> None:
    """Retention that deletes a desk's latest seat event deletes every earlier one too: the
    devices row keeps nothing of them (as a rebuild from the events would)."""
    prune_events(session, NOW + timedelta(days=30), keep_days=7)
    session.commit()
    kept = session.execute(select(Device.id, Device.seat_type, Device.seat_at)).all()
    assert kept and all(row.seat_type is None and row.seat_at is None for row in kept)
    seat.refresh(session.connection())
    assert session.execute(select(Device.id, Device.seat_type, Device.seat_at)).all() == kept


def test_device_statuses_offline_after_silence(session: Session) -> None:
    rows = {d.id: d for d in stats.device_statuses(session, ALL_DESKS, NOW, OFFLINE_S)}
    assert rows["desk-a"].is_online and rows["desk-c"].is_online
    assert not rows["desk-b"].is_online
    add_device(session, "desk-d", "", online=False)
    session.commit()
    assert stats.device_statuses(session, ALL_DESKS, NOW, OFFLINE_S, "desk-d")[0].label == "desk-d"


def test_overview_combines_the_three(session: Session) -> None:
    found = stats.overview(session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-a")
    assert found.today == stats.today(session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-a")
    assert found.longest.ever_s == 7200 and found.streaks.current == 5


def test_rollup_rows_for_export(session: Session) -> None:
    rows = list(stats.rollup_rows(session, ALL_DESKS, date(2026, 11, 24), TODAY))
    assert [(r.day.day, r.device_id) for r in rows] == [
        (24, "desk-a"),
        (24, "desk-b"),
        (25, "desk-a"),
        (25, "desk-b"),
    ]
    assert rows[0].device_name == "Desk A" and rows[0].seated_s == 20000


def test_the_typed_rollup_figures_are_the_models_columns() -> None:
    """stats.RollupFigures spells the figures with their types; the model names them."""
    from dataclasses import fields

    from sitwatch.server.models import ROLLUP_FIGURES

    assert tuple(f.name for f in fields(stats.RollupFigures)) == ROLLUP_FIGURES
    # Today's figures and the export's row are made from the selected columns in this order.
    today = tuple(f.name for f in fields(stats.TodayFigures))
    assert today[:5] == ("day", "devices", "devices_online", "devices_seated", "current_stretch_s")
    assert today[5:] == tuple(name for name in ROLLUP_FIGURES if name != "longest_s")
    assert stats.RollupRow._fields == ("day", "device_id", "device_name", *ROLLUP_FIGURES)


def test_a_scope_of_one_desk_hides_the_other_desks(session: Session) -> None:
    """Everything a viewer who may see only desk-b is shown is desk-b's, as if asked for it."""
    only_b = Scope.of(["desk-b"])
    first = TODAY - timedelta(days=6)
    assert [d.id for d in stats.device_statuses(session, only_b, NOW, OFFLINE_S)] == ["desk-b"]
    assert set(stats.seat_states(session, only_b, NOW, OFFLINE_S)) == {"desk-b"}
    assert set(stats.today_by_device(session, only_b, CAL, NOW, OFFLINE_S)) == {"desk-b"}
    assert stats.overview(session, only_b, CAL, NOW, OFFLINE_S) == stats.overview(
        session, ALL_DESKS, CAL, NOW, OFFLINE_S, "desk-b"
    )
    assert stats.daily_series(session, only_b, first, TODAY) == stats.daily_series(
        session, ALL_DESKS, first, TODAY, "desk-b"
    )
    assert {row.device_id for row in stats.rollup_rows(session, only_b)} == {"desk-b"}
    timeline = stats.day_timeline(session, only_b, CAL, TODAY, NOW, OFFLINE_S)
    assert timeline.bars and {item.device_id for item in timeline.bars + timeline.marks} == {
        "desk-b"
    }
    # A desk outside the scope, asked for by id, shows nothing.
    hidden = stats.today(session, only_b, CAL, NOW, OFFLINE_S, "desk-a")
    assert (hidden.devices, hidden.seated_s, hidden.prompts) == (0, 0.0, 0)
    assert stats.daily_series(session, only_b, TODAY, TODAY, "desk-a") == [stats.DayFigures(TODAY)]
