"""A person's own figures: their desks' sitting stretches read from SittingSession (plus a
stretch in progress from the seat's state), combined into one timeline and measured by
``server.queries.progress`` (today against the same weekday last week, this week against
last week, the daily goal and its streak), and the goal they chose (PersonalGoal).

The scope given is the person's own desks (``Viewer.own_scope``): these figures are one
person's, never a sum over people. Sessions rather than daily rollups, because combining
desks honestly needs the stretches' times (a rollup cannot tell two desks' overlapping
stretches apart) and a fair comparison cuts an earlier day at a time of day. One person's
sessions over a year are a few thousand rows at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from sitwatch.calendar import Calendar, as_utc
from sitwatch.server.models import PersonalGoal, SittingSession
from sitwatch.server.queries import stats
from sitwatch.server.queries.progress import (
    BREAK_HOURS_RANGE,
    DEFAULT_GOAL,
    STRETCH_MIN_RANGE,
    DayProgress,
    Delta,
    Goal,
    GoalDay,
    GoalStreak,
    Stretch,
    WeekComparison,
    by_day,
    compare_weeks,
    day_progress,
    goal_streak,
    merge,
    same_time_on,
)
from sitwatch.server.queries.scope import Scope

# How far back a goal streak is counted, in days.
STREAK_DAYS = 366


def stretches(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    first: date,
    last: date,
    now: datetime,
    offline_after_s: float,
) -> list[Stretch]:
    """The scope's desks' stretches that started from ``first`` to ``last`` (local days,
    inclusive) and the ones in progress, merged into one timeline."""
    now = as_utc(now)
    start, _ = calendar.bounds(first)
    _, end = calendar.bounds(last)
    rows = session.execute(
        select(SittingSession.started_at, SittingSession.ended_at).where(
            SittingSession.started_at >= start,
            SittingSession.started_at < end,
            SittingSession.started_at <= now,
            *scope.on(SittingSession.device_id),
        )
    )
    found = [Stretch(as_utc(row.started_at), min(as_utc(row.ended_at), now)) for row in rows]
    for state in stats.seat_states(session, scope, now, offline_after_s).values():
        if state.seated_since is not None and start <= state.seated_since < end:
            found.append(Stretch(as_utc(state.seated_since), now, is_open=True))
    return merge(found)


@dataclass(frozen=True)
class PersonalView:
    """What the personal page shows: today so far against the same weekday last week up to
    the same time (``same_time_last_week``), this week against last, the goal and streak."""

    today: GoalDay
    same_day_last_week: DayProgress  # up to the same local clock time
    same_time_last_week: datetime
    today_vs_last_week: Delta
    week: WeekComparison
    streak: GoalStreak
    goal: Goal
    seated_now: bool


def personal_view(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    offline_after_s: float,
    goal: Goal,
) -> PersonalView:
    now = as_utc(now)
    today = calendar.day_of(now)
    first = today - timedelta(days=STREAK_DAYS)
    timeline = stretches(session, scope, calendar, first, today, now, offline_after_s)
    grouped = by_day(calendar, timeline)
    last_week_day = today - timedelta(days=7)
    cutoff = same_time_on(calendar, now, last_week_day)
    today_progress = day_progress(calendar, today, grouped.get(today, ()), now)
    then = day_progress(calendar, last_week_day, grouped.get(last_week_day, ()), cutoff)
    days = [
        GoalDay(day_progress(calendar, day, grouped[day], now if day == today else None), goal)
        for day in sorted(grouped)
    ]
    return PersonalView(
        today=GoalDay(today_progress, goal),
        same_day_last_week=then,
        same_time_last_week=cutoff,
        today_vs_last_week=Delta(today_progress.seated_s, then.seated_s),
        week=compare_weeks(calendar, calendar.week_start(today), grouped, now, goal),
        streak=goal_streak(days, today),
        goal=goal,
        seated_now=any(s.is_open for s in timeline),
    )


def week_comparison(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    offline_after_s: float,
    goal: Goal,
    week_start: date,
) -> WeekComparison:
    """The week from ``week_start`` (a Monday) against the week before it."""
    last = min(week_start + timedelta(days=6), calendar.day_of(now))
    timeline = stretches(
        session, scope, calendar, week_start - timedelta(days=7), last, now, offline_after_s
    )
    return compare_weeks(calendar, week_start, by_day(calendar, timeline), now, goal)


# --- the goal a person chose ------------------------------------------------------------


def goal_of(session: Session, user_id: int) -> Goal:
    """The user's goal, or the default one if they have not chosen yet."""
    row = session.get(PersonalGoal, user_id)
    if row is None:
        return DEFAULT_GOAL
    return Goal(max_stretch_min=row.max_stretch_min, break_hours=row.break_hours)


class GoalError(ValueError):
    """A goal outside what may be chosen."""


def set_goal(session: Session, user_id: int, goal: Goal, now: datetime) -> None:
    """Store the user's goal (flushed, not committed); raises GoalError outside the ranges
    the form offers."""
    low, high = STRETCH_MIN_RANGE
    if not low <= goal.max_stretch_min <= high:
        raise GoalError(f"the longest stretch must be {low} to {high} minutes")
    low, high = BREAK_HOURS_RANGE
    if not low <= goal.break_hours <= high:
        raise GoalError(f"the hours with a break must be {low} to {high}")
    row = session.get(PersonalGoal, user_id)
    if row is None:
        row = PersonalGoal(user_id=user_id)
        session.add(row)
    row.max_stretch_min = goal.max_stretch_min
    row.break_hours = goal.break_hours
    row.updated_at = as_utc(now)
    session.flush()
