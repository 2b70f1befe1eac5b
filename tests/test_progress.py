"""A person's progress (server/queries/progress.py), pure: desks combined into one
timeline, a day's figures, the fair comparison with last week (across summer time too),
the daily goal and its streak, and the deltas in words. Every figure is worked out by hand
in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sitwatch.calendar import Calendar
from sitwatch.server.queries.progress import (
    DayProgress,
    Delta,
    Goal,
    GoalDay,
    Stretch,
    by_day,
    compare_weeks,
    day_progress,
    goal_streak,
    merge,
    same_time_on,
)
from sitwatch.server.web.personal import delta_words

UTC_CAL = Calendar("UTC", 4)
BERLIN = Calendar("Europe/Berlin", 4)
TODAY = date(2026, 11, 25)  # a Wednesday
NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    local = datetime(year, month, day, hour, minute, fold=fold, tzinfo=ZoneInfo("Europe/Berlin"))
    return local.astimezone(UTC)


def stretch(
    day: date, start: tuple[int, int], end: tuple[int, int], is_open: bool = False
) -> Stretch:
    return Stretch(utc(day, *start), utc(day, *end), is_open)


# --- desks combined -------------------------------------------------------------------------


def test_two_desks_at_once_count_once() -> None:
    desk_a = [stretch(TODAY, (9, 0), (9, 40)), stretch(TODAY, (11, 0), (12, 0))]
    desk_b = [
        stretch(TODAY, (9, 30), (10, 0)),  # overlaps 09:00-09:40: one stretch 09:00-10:00
        stretch(TODAY, (11, 15), (11, 30)),  # inside 11:00-12:00
        stretch(TODAY, (12, 0), (12, 20)),  # touches it: moved desks without getting up
    ]
    merged = merge(desk_a + desk_b)
    assert [(s.start.time().isoformat("minutes"), s.duration_s / 60) for s in merged] == [
        ("09:00", 60),  # not 40 + 30 = 70
        ("11:00", 80),  # 11:00-12:20, not 60 + 15 + 20 = 95
    ]


def test_a_stretch_still_going_on_one_desk_keeps_the_merged_one_open() -> None:
    merged = merge([stretch(TODAY, (13, 50), (14, 10)), stretch(TODAY, (14, 0), (15, 30), True)])
    assert merged == [Stretch(utc(TODAY, 13, 50), utc(TODAY, 15, 30), is_open=True)]


# --- a day ----------------------------------------------------------------------------------


def test_a_day_so_far_from_the_merged_timeline() -> None:
    merged = merge(
        [
            stretch(TODAY, (9, 0), (9, 40)),  # 40 min, stood up in hour 09
            stretch(TODAY, (10, 0), (11, 10)),  # desk A
            stretch(TODAY, (11, 5), (11, 30)),  # desk B: with A, 10:00-11:30 = 90 min, hour 11
            stretch(TODAY, (13, 0), (13, 25)),  # 25 min, hour 13
            stretch(TODAY, (14, 50), (15, 30), True),  # 40 min so far, no stand-up yet
        ]
    )
    found = day_progress(UTC_CAL, TODAY, merged)
    assert found == DayProgress(
        TODAY, seated_s=195 * 60, longest_s=90 * 60, stretches=4, break_hours=3
    )
    # Up to 11:00: 40 min, and 60 of the 90; the stand-up at 11:30 has not happened yet.
    early = day_progress(UTC_CAL, TODAY, merged, until=utc(TODAY, 11))
    assert early == DayProgress(
        TODAY, seated_s=100 * 60, longest_s=60 * 60, stretches=2, break_hours=1
    )


def test_a_late_night_counts_to_the_day_it_started() -> None:
    merged = [
        Stretch(utc(TODAY, 23, 30), utc(TODAY + timedelta(days=1), 1, 10)),  # 100 min
        Stretch(utc(TODAY + timedelta(days=1), 3, 30), utc(TODAY + timedelta(days=1), 3, 50)),
    ]
    grouped = by_day(UTC_CAL, merged)
    assert list(grouped) == [TODAY]  # both before 04:00 of the next day
    found = day_progress(UTC_CAL, TODAY, grouped[TODAY])
    assert (found.seated_s, found.break_hours) == (120 * 60, 2)  # stood up at 01:10 and 03:50


def test_the_hour_repeated_when_the_clocks_go_back_counts_twice() -> None:
    # Sunday 25 October 2026, 03:00 CEST -> 02:00 CET: the local day of Saturday the 24th
    # (04:00 to 04:00) lasts 25 hours. 02:00-02:30 CEST, then 02:10-02:30 CET: two stand-ups
    # at 02:30 local, in two different hours.
    saturday = date(2026, 10, 24)
    start, end = BERLIN.bounds(saturday)
    assert end - start == timedelta(hours=25)
    first = Stretch(berlin(2026, 10, 25, 2, 0), berlin(2026, 10, 25, 2, 30))
    second = Stretch(berlin(2026, 10, 25, 2, 10, fold=1), berlin(2026, 10, 25, 2, 30, fold=1))
    assert second.start - first.end == timedelta(minutes=40)
    found = day_progress(BERLIN, saturday, merge([first, second]))
    assert found == DayProgress(
        saturday, seated_s=50 * 60, longest_s=30 * 60, stretches=2, break_hours=2
    )


# --- the fair comparison --------------------------------------------------------------------


def test_same_time_last_week() -> None:
    last_week = TODAY - timedelta(days=7)
    assert same_time_on(UTC_CAL, NOW, last_week) == utc(last_week, 15, 30)
    # 02:00 after midnight still belongs to the day before (days start at 04:00).
    late = utc(TODAY + timedelta(days=1), 2)
    assert same_time_on(UTC_CAL, late, last_week) == utc(last_week + timedelta(days=1), 2)


def test_same_time_last_week_across_summer_time() -> None:
    # Autumn: Monday 26 October 15:30 CET (14:30 UTC) -> Monday 19th 15:30 CEST (13:30 UTC).
    now = berlin(2026, 10, 26, 15, 30)
    assert now == datetime(2026, 10, 26, 14, 30, tzinfo=UTC)
    assert same_time_on(BERLIN, now, date(2026, 10, 19)) == datetime(
        2026, 10, 19, 13, 30, tzinfo=UTC
    )
    # Spring: Monday 30 March 10:00 CEST (08:00 UTC) -> Monday 23rd 10:00 CET (09:00 UTC).
    spring = berlin(2026, 3, 30, 10)
    assert spring == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert same_time_on(BERLIN, spring, date(2026, 3, 23)) == datetime(
        2026, 3, 23, 9, 0, tzinfo=UTC
    )


def test_this_week_so_far_against_last_week_up_to_the_same_time() -> None:
    mon, tue, wed, thu = (date(2026, 11, 23) + timedelta(days=n) for n in range(4))
    week_ago = timedelta(days=7)
    timeline = [
        stretch(mon - week_ago, (9, 0), (10, 0)),  # 60
        stretch(wed - week_ago, (9, 0), (10, 0)),  # 60
        stretch(wed - week_ago, (14, 0), (16, 0)),  # 120, of which 90 by 15:30
        stretch(thu - week_ago, (9, 0), (11, 0)),  # 120: Thursday has not come yet
        stretch(mon, (9, 0), (9, 45)),  # 45
        stretch(tue, (9, 0), (9, 30)),  # 30
        stretch(wed, (9, 0), (9, 40)),  # 40
        stretch(wed, (15, 0), (15, 30), True),  # 30 so far
    ]
    found = compare_weeks(UTC_CAL, mon, by_day(UTC_CAL, timeline), NOW, Goal(50, 1))
    assert found.elapsed_days == 3 and not found.is_complete
    # 45 + 30 + 70 = 145 min against 60 + 0 + (60 + 90) = 210 min.
    assert found.so_far == Delta(145 * 60, 210 * 60)
    assert found.so_far.direction == "less"
    assert delta_words(found.so_far, "last week") == "1 h 05 min less than last week"
    wednesday = found.days[2]
    assert (wednesday.last.seated_s, wednesday.last_so_far.seated_s) == (180 * 60, 150 * 60)
    assert wednesday.change == Delta(70 * 60, 150 * 60)
    thursday = found.days[3]
    assert thursday.is_future and thursday.last.seated_s == 120 * 60
    assert thursday.last_so_far.seated_s == 0
    # Each day: longest at most 50 min and a stand-up in one hour (the open one has none).
    assert (found.goal_days, found.used_days) == (3, 3)


def test_a_week_across_the_end_of_summer_time() -> None:
    # Monday 26 October 2026 15:30 CET against Monday 19th up to 15:30 CEST.
    now = berlin(2026, 10, 26, 15, 30)
    timeline = [
        Stretch(berlin(2026, 10, 19, 14), berlin(2026, 10, 19, 16)),  # 90 min by 15:30
        Stretch(berlin(2026, 10, 26, 9), berlin(2026, 10, 26, 10)),  # 60 min
    ]
    found = compare_weeks(BERLIN, date(2026, 10, 26), by_day(BERLIN, timeline), now, Goal())
    assert found.so_far == Delta(60 * 60, 90 * 60)
    assert delta_words(found.so_far, "last Monday") == "30 min less than last Monday"


def test_deltas_in_words() -> None:
    assert delta_words(Delta(3600, 5000), "last Tuesday") == "23 min less than last Tuesday"
    assert delta_words(Delta(7200, 3600), "last week") == "1 h 00 min more than last week"
    assert delta_words(Delta(100, 130), "last week") == "about the same as last week"


# --- the goal and its streak ----------------------------------------------------------------

GOAL = Goal(max_stretch_min=50, break_hours=2)


def goal_day(day: date, longest_min: float, hours: int, stretches: int = 3) -> GoalDay:
    progress = DayProgress(day, longest_min * 60 * 2, longest_min * 60, stretches, hours)
    return GoalDay(progress, GOAL)


def test_a_goal_day_needs_both_parts() -> None:
    assert goal_day(TODAY, 50, 2).met  # at most 50 min: exactly 50 is fine
    assert not goal_day(TODAY, 51, 5).met  # one stretch too long
    assert not goal_day(TODAY, 20, 1).met  # too few hours with a stand-up
    assert not goal_day(TODAY, 0, 0, stretches=0).met  # no sitting: not a goal day
    half = goal_day(TODAY, 25, 1)
    assert (half.break_share, half.stretch_share) == (0.5, 0.5)
    assert goal_day(TODAY, 80, 4).stretch_share == 1.0


def test_streak_skips_days_off_and_counts_today_once_met() -> None:
    first = date(2026, 11, 16)
    days = [
        goal_day(first, 40, 3),  # Mon met
        goal_day(first + timedelta(days=1), 45, 2),  # Tue met
        goal_day(first + timedelta(days=2), 0, 0, 0),  # Wed at home: skipped
        goal_day(first + timedelta(days=3), 50, 2),  # Thu met: a run of 3
        goal_day(first + timedelta(days=4), 70, 4),  # Fri too long a stretch: broken
        goal_day(first + timedelta(days=5), 30, 2),  # Sat met
        goal_day(first + timedelta(days=6), 30, 6),  # Sun met: 2
    ]
    today = first + timedelta(days=7)
    so_far = goal_streak([*days, goal_day(today, 30, 1)], today)  # today: not yet
    assert (so_far.current, so_far.best, so_far.today_met) == (2, 3, False)
    met = goal_streak([*days, goal_day(today, 30, 2)], today)
    assert (met.current, met.best, met.today_met) == (3, 3, True)
    # A day after today (a desk whose clock ran ahead) is left out.
    ahead = goal_streak([*days, goal_day(today + timedelta(days=1), 30, 2)], today)
    assert (ahead.current, ahead.best) == (2, 3)
    assert goal_streak([], today).current == 0
