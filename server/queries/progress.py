"""A person's progress, as pure functions of their sitting stretches (no I/O): one person's
desks combined into one timeline, a day's figures, the fair comparison with an earlier day
or week, the daily goal and its streak. ``server.queries.personal`` reads the stretches and
calls these; the personal page and its JSON show the answers.

What "combined" means: a person sits on one chair at a time, so the stretches of all their
desks are merged into one timeline first. Two stretches that overlap or touch (a move from
one desk to the other without getting up) are one stretch; seated time is the length of the
union, never the sum of desks seated at the same time; the longest stretch and the hours
with a stand-up are taken from the merged timeline. As everywhere in sitwatch, a stretch
counts to the local day it started on (``Calendar.day_of``).

What "fair" means: today so far is compared with the same weekday last week up to the same
local clock time (``same_time_on``), this week so far with last week up to the same weekday
and time; an earlier day's stretch that was still going at that time counts up to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sitwatch.calendar import Calendar, as_utc

# A difference smaller than this is "about the same": a minute is what the pages show.
SAME_WITHIN_S = 60.0


@dataclass(frozen=True)
class Stretch:
    """One sitting stretch, UTC; ``is_open``: still going (its end is "now")."""

    start: datetime
    end: datetime
    is_open: bool = False

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


def merge(stretches: Iterable[Stretch]) -> list[Stretch]:
    """One person's stretches on any of their desks as one timeline, in time order:
    stretches that overlap or touch become one (open if any part of it is)."""
    merged: list[Stretch] = []
    for item in sorted(stretches, key=lambda s: (s.start, s.end)):
        if merged and item.start <= merged[-1].end:
            last = merged[-1]
            if item.end > last.end:
                merged[-1] = Stretch(last.start, item.end, item.is_open)
            elif item.is_open and item.end == last.end:
                merged[-1] = Stretch(last.start, last.end, True)
            continue
        merged.append(item)
    return merged


@dataclass(frozen=True)
class DayProgress:
    """A person's day (so far, up to ``until`` if given): seconds seated, the longest
    stretch, the number of stretches and of local clock hours with a stand-up in them."""

    day: date
    seated_s: float = 0.0
    longest_s: float = 0.0
    stretches: int = 0
    break_hours: int = 0

    @property
    def used(self) -> bool:
        """Whether the person sat at a desk that day at all."""
        return self.stretches > 0


def by_day(calendar: Calendar, stretches: Iterable[Stretch]) -> dict[date, list[Stretch]]:
    """Merged stretches grouped by the local day each started on."""
    grouped: dict[date, list[Stretch]] = {}
    for item in stretches:
        grouped.setdefault(calendar.day_of(item.start), []).append(item)
    return grouped


def _hour_of(calendar: Calendar, ts: datetime) -> datetime:
    """The start of the local clock hour ``ts`` falls in, as a UTC instant (so the hour
    repeated when the clocks go back counts as two hours, as it lasts two). Taken off the
    UTC instant: wall-clock arithmetic on the local time would lose which of the two it
    was."""
    local = as_utc(ts).astimezone(calendar.zone)
    into_hour = timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    return as_utc(ts) - into_hour


def day_progress(
    calendar: Calendar, day: date, stretches: Iterable[Stretch], until: datetime | None = None
) -> DayProgress:
    """``day``'s figures from the merged stretches that started on it (and before ``until``,
    each counted up to ``until``). A stand-up is the end of a finished stretch; an hour of
    the day "has a break" when the person stood up in it at least once."""
    start, end = calendar.bounds(day)
    if until is not None:
        end = min(end, as_utc(until))
    seated = longest = 0.0
    count = 0
    hours: set[datetime] = set()
    for item in stretches:
        if not start <= item.start < end:
            continue
        stop = item.end if until is None else min(item.end, as_utc(until))
        length = max(0.0, (stop - item.start).total_seconds())
        seated += length
        longest = max(longest, length)
        count += 1
        if not item.is_open and (until is None or item.end <= as_utc(until)):
            hours.add(_hour_of(calendar, item.end))
    return DayProgress(day, seated, longest, count, len(hours))


def same_time_on(calendar: Calendar, now: datetime, other: date) -> datetime:
    """The instant on local day ``other`` at the same local clock time as ``now`` on its
    own day (Tuesday 15:30 -> last Tuesday 15:30, across a change to or from summer time
    too), kept inside ``other``'s bounds."""
    zone = calendar.zone
    local = as_utc(now).astimezone(zone).replace(tzinfo=None)
    day_start = time(calendar.day_start_hour)
    offset = local - datetime.combine(calendar.day_of(now), day_start)
    target = as_utc((datetime.combine(other, day_start) + offset).replace(tzinfo=zone))
    first, last = calendar.bounds(other)
    return min(max(target, first), last)


@dataclass(frozen=True)
class Delta:
    """A figure now against the same figure then (seconds); ``change_s`` is now - then."""

    now_s: float
    then_s: float

    @property
    def change_s(self) -> float:
        return self.now_s - self.then_s

    @property
    def direction(self) -> str:
        """ "less", "more" or "same" (within a minute)."""
        if abs(self.change_s) < SAME_WITHIN_S:
            return "same"
        return "less" if self.change_s < 0 else "more"


# --- the daily goal ---------------------------------------------------------------------

STRETCH_MIN_RANGE = (10, 240)  # minutes a person may choose as their longest stretch
BREAK_HOURS_RANGE = (1, 16)  # hours of a day with a stand-up a person may aim for


@dataclass(frozen=True)
class Goal:
    """A person's own daily goal: no stretch longer than ``max_stretch_min`` minutes, and a
    stand-up in at least ``break_hours`` different hours of the day (as Apple's stand hours
    count an hour in which one stood for a minute)."""

    max_stretch_min: int = 50
    break_hours: int = 6


DEFAULT_GOAL = Goal()


@dataclass(frozen=True)
class GoalDay:
    """A day against the goal. ``met``: both parts; a day without sitting is not ``used``
    and neither meets nor breaks a streak (weekends, days off)."""

    progress: DayProgress
    goal: Goal

    @property
    def day(self) -> date:
        return self.progress.day

    @property
    def used(self) -> bool:
        return self.progress.used

    @property
    def stretch_ok(self) -> bool:
        return self.progress.longest_s <= self.goal.max_stretch_min * 60

    @property
    def breaks_ok(self) -> bool:
        return self.progress.break_hours >= self.goal.break_hours

    @property
    def met(self) -> bool:
        return self.used and self.stretch_ok and self.breaks_ok

    @property
    def break_share(self) -> float:
        """How far the stand-up hours are, 0 to 1 (for the ring)."""
        return min(1.0, self.progress.break_hours / max(self.goal.break_hours, 1))

    @property
    def stretch_share(self) -> float:
        """The longest stretch as a share of the limit, 0 to 1 (for the bar; 1: at or past
        it)."""
        return min(1.0, self.progress.longest_s / max(self.goal.max_stretch_min * 60, 1))


@dataclass(frozen=True)
class GoalStreak:
    """Runs of days that met the goal, counting only days with sitting (a day off neither
    adds nor breaks). ``current`` runs up to the last such day before today, plus today once
    it has met the goal (the day is not over); ``best`` is the longest run."""

    current: int
    best: int
    today_met: bool


def goal_streak(days: Sequence[GoalDay], today: date) -> GoalStreak:
    """``days`` in day order (any gaps: days without data are not used); days after
    ``today`` are left out."""
    best = run = 0
    today_met = False
    for item in days:
        if item.day > today or not item.used:
            continue
        if item.day == today:
            today_met = item.met
            if item.met:
                run += 1
                best = max(best, run)
            continue
        run = run + 1 if item.met else 0
        best = max(best, run)
    return GoalStreak(current=run, best=best, today_met=today_met)


# --- a week against the one before ------------------------------------------------------


@dataclass(frozen=True)
class WeekDay:
    """One day of a week beside the same weekday of the week before: ``last`` that day in
    full, ``last_so_far`` as much of it as has passed of this one (all of it for a past
    day, up to the same clock time for today, nothing for a day to come)."""

    this: GoalDay
    last: DayProgress
    last_so_far: DayProgress
    is_future: bool  # after today: nothing yet

    @property
    def change(self) -> Delta:
        return Delta(self.this.progress.seated_s, self.last_so_far.seated_s)


@dataclass(frozen=True)
class WeekComparison:
    """A week (Monday to Sunday) so far beside the week before: ``elapsed_days`` days have
    begun; ``so_far`` compares this week up to now with last week up to the same weekday
    and local clock time (all of both weeks once the week is over)."""

    week_start: date
    days: list[WeekDay]
    elapsed_days: int
    so_far: Delta
    goal_days: int  # days that met the goal
    used_days: int  # days with sitting

    @property
    def is_complete(self) -> bool:
        return self.elapsed_days == 7


def compare_weeks(
    calendar: Calendar,
    week_start: date,
    stretches_by_day: Mapping[date, Sequence[Stretch]],
    now: datetime,
    goal: Goal,
) -> WeekComparison:
    """The week from ``week_start`` (a Monday) against the one before, from merged
    stretches grouped by ``by_day``."""
    today = calendar.day_of(now)
    days = []
    for offset in range(7):
        day = week_start + timedelta(days=offset)
        before = day - timedelta(days=7)
        this_stretches, last_stretches = (
            stretches_by_day.get(day, ()),
            stretches_by_day.get(before, ()),
        )
        this = day_progress(calendar, day, this_stretches, now if day == today else None)
        last = day_progress(calendar, before, last_stretches)
        if day < today:
            so_far = last
        elif day == today:
            so_far = day_progress(
                calendar, before, last_stretches, same_time_on(calendar, now, before)
            )
        else:
            so_far = DayProgress(before)
        days.append(WeekDay(GoalDay(this, goal), last, so_far, day > today))
    counted = [d for d in days if not d.is_future]
    return WeekComparison(
        week_start=week_start,
        days=days,
        elapsed_days=len(counted),
        so_far=Delta(
            sum(d.this.progress.seated_s for d in counted),
            sum(d.last_so_far.seated_s for d in counted),
        ),
        goal_days=sum(1 for d in counted if d.this.met),
        used_days=sum(1 for d in counted if d.this.used),
    )
