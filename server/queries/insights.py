"""Insights beyond the daily figures, as SQL over tables ingest derives (nudges, daily
rollups and daily insight rows; never the raw events, so a fleet's range costs a few rows
per desk and day): the nudge funnel, sitting bouts, an hour x weekday heatmap, the
seat-time budget, goal streaks and the guided circuit's exercise counts. The dashboard's
Insights page, the JSON API and the CSV export all call ``insights()``, so they show the
same numbers.

Days are ``sitwatch.calendar.Calendar`` days (local time zone, starting at
``day_start_hour``); weeks run Monday to Sunday and are cut to the requested range.
Only the desks of the viewer's ``Scope`` count; ``device_id=None`` means all of them
together. The rules, as a user reads them:

- **Nudge funnel.** A *nudge* is one prompt cycle: the first audible prompt after the
  previous one was answered, together with its re-prompts, until a ``prompt_ack`` (the
  user stood up or did the drill off the seat). Re-prompts are the same nudge escalating,
  so they are not counted again; prompts in quiet or off-work hours (``quiet``, the buzzer stayed
  silent) are left out. A nudge counts to the day of its first audible prompt.
  A nudge also ends when the agent restarts (a new ``boot_id``): the restarted tracker has
  forgotten the prompt, and its next prompt is level 1 of a new nudge.
  *Stood up*: the seat emptied (a ``stood_up``) within ``STAND_WITHIN_S`` (5 min) of that
  prompt. *Drilled*: of those, a drill (guided or logged with the button) that counts
  (done off the seat: ``protocol.drill_counts``) was completed within ``DRILL_WITHIN_S``
  (30 min) of the prompt. Both look only until the device's next
  nudge begins, and only at events of the nudge's own boot. *Median to stand* is the
  median time from the prompt to the first stand-up, over the nudges with a stand-up
  before the next nudge (5 min or later).
  Order: within a boot, a desk's events are taken in the outbox's ``seq`` order, which
  decides between events stamped in the same millisecond (a re-prompt and the stand-up
  that answers it); never in the order rows were stored.
  A prompt more than a day after its boot's previous prompt or ack begins a nudge too.
  ``prompts`` (every prompt event, as on the Overview cards) is kept beside it.
  Nudges are derived at ingest (server/ingest/insight_rows.py), one models.Nudge row each.
- **Sitting bouts** are SittingSession rows (a lift shorter than the grace period does not
  end one), counted to the day they started, in buckets [0, 15), [15, 30), [30, 60),
  [60, 90) and [90, ...) minutes: a bout of exactly 15 min is in 15-30. A stretch still in
  progress is not a bout yet. Counted per desk and day in models.DailyInsight; the longest
  is the rollups' ``longest_s``.
- **Heatmap**: seated seconds per local clock hour and weekday, summed over the range.
  Each session is cut at hour boundaries and at DST changes, so an hour shows what was
  sat in it (the repeated hour of an autumn change can hold up to 2 h). The weekday is
  that of the stats day, so 02:00 in the night from Tuesday to Wednesday is in Tuesday's
  row when days start at 04:00; the columns start at ``day_start_hour``. Cut by
  ``Calendar.hour_pieces`` at ingest into models.DailyInsight's hour columns.
- **Budget**: a device is over budget on a day when its seated time (DailyRollup.seated_s,
  sessions counted to the day they started) is more than ``Goals.seat_budget_s``
  (6 h by default, ``[goals] seat_budget_h``). With all devices, a day is flagged when
  any device was over; ``devices_over_budget`` says how many.
- **Goal streaks**: a *desk day* is a day on which a device sat at all; it meets the goals
  when every device that sat stayed within the budget and completed at least
  ``Goals.min_drills`` drills that count (1 by default, ``[goals] min_drills``). Days nobody sat
  (weekends, holidays) neither extend nor break a streak. ``current`` is the run ending at
  the last desk day of the range; today (while it is not over budget) is still open and
  does not break it. ``best`` is the longest run in the range.
- **Exercises**: ``drill_step`` events per circuit step (sitwatch.drill.CIRCUIT), i.e.
  steps the guided circuit reached, but not those of a circuit done on the chair (its
  ``drill_completed`` unverified); step names the circuit does not know count as
  ``other``. Counted per desk and day in models.DailyInsight.

Every query reads rows keyed by (desk, local day), so the range is a range of days and no
time zone arithmetic is left to SQL; the funnel's medians are taken in Python over the
range's nudge rows (``_funnel_figures``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.orm import Session

from sitwatch.calendar import Calendar
from sitwatch.drill import CIRCUIT
from sitwatch.server.config import GoalsConfig
from sitwatch.server.models import (
    BOUT_COLUMNS,
    BOUT_EDGES_MIN,
    EXERCISE_KEYS,
    HOUR_COLUMNS,
    INSIGHT_FIGURES,
    OTHER_STEP,
    STEP_COLUMNS,
    DailyInsight,
    DailyRollup,
    Nudge,
    stand_second,
)
from sitwatch.server.queries.scope import Scope
from sitwatch.server.queries.stats import MAX_RANGE_DAYS
from sitwatch.server.sql import count_where

STAND_WITHIN_S = 5 * 60
DRILL_WITHIN_S = 30 * 60
BOUT_LABELS = tuple(f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in BOUT_EDGES_MIN)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)


@dataclass(frozen=True)
class Goals:
    """What a good day is: seated at most ``seat_budget_s`` seconds and at least
    ``min_drills`` drills."""

    seat_budget_s: float = 6 * 3600.0
    min_drills: int = 1

    @classmethod
    def from_config(cls, config: GoalsConfig) -> Goals:
        return cls(seat_budget_s=config.seat_budget_h * 3600, min_drills=config.min_drills)


@dataclass(frozen=True)
class Funnel:
    nudges: int = 0
    stood_up: int = 0  # stood up within STAND_WITHIN_S of the nudge's first prompt
    drilled: int = 0  # of those, a drill within DRILL_WITHIN_S
    median_to_stand_s: float | None = None


@dataclass(frozen=True)
class DayInsight:
    day: date
    funnel: Funnel
    prompts: int  # every prompt event (re-prompts and quiet ones too), from the rollups
    bouts: tuple[int, ...]  # counts per BOUT_LABELS bucket
    longest_bout_s: float
    seated_s: float
    drills: int
    devices_sat: int  # devices that sat at all that day
    devices_over_budget: int
    devices_meeting_goals: int
    over_budget: bool  # any device over the seat budget
    meets_goals: bool  # a desk day on which every device that sat met the goals
    exercises: dict[str, int]  # EXERCISE_KEYS -> drill steps reached


@dataclass(frozen=True)
class WeekInsight:
    week_start: date  # a Monday; the week's days outside the range are not counted
    funnel: Funnel


@dataclass(frozen=True)
class Heatmap:
    """Seated seconds summed over the range: ``seated_s[weekday][hour]``, Monday 0 and
    local clock hour 0-23. ``hours`` is the column order (from the day's start hour)."""

    seated_s: tuple[tuple[float, ...], ...]
    day_start_hour: int

    @property
    def hours(self) -> tuple[int, ...]:
        return tuple((self.day_start_hour + i) % 24 for i in range(24))

    @property
    def peak_s(self) -> float:
        return max((max(row) for row in self.seated_s), default=0.0)


@dataclass(frozen=True)
class GoalStreaks:
    current: int
    best: int
    last_day: date | None = None  # the last desk day that met the goals


@dataclass(frozen=True)
class ExerciseCount:
    key: str
    title: str
    count: int


@dataclass(frozen=True)
class Insights:
    first: date
    last: date
    device_id: str | None
    goals: Goals
    funnel: Funnel  # the whole range
    bouts: tuple[int, ...]
    longest_bout_s: float
    days_over_budget: int
    days: list[DayInsight] = field(default_factory=list)
    weeks: list[WeekInsight] = field(default_factory=list)
    heatmap: Heatmap = field(default_factory=lambda: Heatmap(_empty_grid(), 4))
    streaks: GoalStreaks = field(default_factory=lambda: GoalStreaks(0, 0))
    exercises: list[ExerciseCount] = field(default_factory=list)


def _empty_grid() -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(0.0 for _ in range(24)) for _ in WEEKDAYS)


@dataclass(frozen=True)
class _Range:
    """Everything the queries share for one call."""

    calendar: Calendar
    first: date
    last: date
    start: datetime  # UTC bounds of [first, last]
    end: datetime
    scope: Scope
    device_id: str | None

    @classmethod
    def of(
        cls, scope: Scope, calendar: Calendar, first: date, last: date, device_id: str | None
    ) -> _Range:
        if last < first:
            raise ValueError(f"from ({first}) is after to ({last})")
        if (last - first).days >= MAX_RANGE_DAYS:
            raise ValueError(f"range too long: {first} to {last} (at most {MAX_RANGE_DAYS} days)")
        if first < EARLIEST_DAY or last > LATEST_DAY:
            raise ValueError(f"dates must be between {EARLIEST_DAY} and {LATEST_DAY}")
        start, end = calendar.bounds(first)[0], calendar.bounds(last)[1]
        return cls(calendar, first, last, start, end, scope, device_id)

    def on(self, column: Any) -> tuple[Any, ...]:
        """WHERE terms for the call's device (or all) among the scope's desks."""
        return self.scope.on(column, self.device_id)


# --- nudge funnel ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _FunnelFigures:
    days: dict[date, Funnel]
    weeks: dict[date, Funnel]  # by the week's Monday
    total: Funnel


def _funnel_figures(session: Session, r: _Range) -> _FunnelFigures:
    """Nudge counts and medians per day, per week and for the range, from the range's
    models.Nudge rows (derived at ingest; a few per desk and day).

    The medians (the middle time to stand, or the mean of the two middle ones, of the
    nudges with a stand-up) are exact without reading every time to stand: one statement
    counts the nudges per day and whole second to stand (``models.stand_second``, in the
    order of the ``ix_nudges_day`` index); the counts say in which second each median's
    middle times lie and at which place among that second's times, and one statement of a
    lookup per middle time reads just those (``_middle_times``). Reading every time instead,
    about a million for a fleet of 10,000 desks over four weeks, took over a second; SQLite
    has no median, and its window functions sorted a fleet's rows three times over. If the rows
    changed between the statements and a lookup finds nothing, all are read again."""
    where = (Nudge.day >= r.first, Nudge.day <= r.last, *r.on(Nudge.device_id))
    stood = and_(Nudge.stand_s.is_not(None), Nudge.stand_s <= STAND_WITHIN_S)
    counts = (
        select(
            Nudge.day,
            stand_second(Nudge.stand_s),
            func.count(),
            func.count(Nudge.stand_s),
            count_where(stood),
            count_where(and_(stood, Nudge.drill_s.is_not(None), Nudge.drill_s <= DRILL_WITHIN_S)),
        )
        .where(*where)
        .group_by(Nudge.day, stand_second(Nudge.stand_s))
        .order_by(Nudge.day, stand_second(Nudge.stand_s))
    )
    for _attempt in range(3):  # several statements: a commit between them must not mix them
        days: dict[date, _Tally] = {}
        for day, second, *counted in session.execute(counts):
            days.setdefault(day, _Tally()).add(day, second, tuple(counted))
        weeks: dict[date, _Tally] = {}
        for day, tally in days.items():
            weeks.setdefault(r.calendar.week_start(day), _Tally()).merge(tally)
        total = _Tally()
        for tally in weeks.values():
            total.merge(tally)
        groups = [*days.values(), *weeks.values(), total]
        if sum(total.buckets.values()) <= _READ_ALL_UP_TO:  # a desk or a few: one read
            by_day = _all_times(session, where)
            if all([tally.take_all(by_day) for tally in groups]):
                break
            continue
        wanted = [(tally, place) for tally in groups for place in tally.middle()]
        found = _middle_times(session, where, [place for _tally, place in wanted])
        taken: dict[int, list[float | None]] = {id(tally): [] for tally in groups}
        for (tally, _place), value in zip(wanted, found, strict=True):
            taken[id(tally)].append(value)
        if all([tally.take_median(taken[id(tally)]) for tally in groups]):  # each its own
            break
    return _FunnelFigures(
        {day: tally.funnel() for day, tally in days.items()},
        {monday: tally.funnel() for monday, tally in weeks.items()},
        total.funnel(),
    )


def _middle_times(
    session: Session, where: tuple[Any, ...], places: list[tuple[int, list[date], int]]
) -> list[float | None]:
    """The time to stand at each (second, days, place) of ``places`` (None where there is
    none), each read from the index by its place among its second's times, all in one
    statement (UNION ALL; a lookup each was a round trip each: one desk's four weeks are
    some fifty medians' times)."""
    found: list[float | None] = [None] * len(places)
    for at in range(0, len(places), _LOOKUPS_PER_QUERY):
        parts = []
        for n, (second, days, place) in enumerate(places[at : at + _LOOKUPS_PER_QUERY], at):
            one = (
                select(literal(n).label("n"), Nudge.stand_s)
                .where(*where, Nudge.day.in_(days), stand_second(Nudge.stand_s) == second)
                .order_by(Nudge.stand_s)
                .offset(place)
                .limit(1)
                .subquery()
            )
            parts.append(select(one.c.n, one.c.stand_s))
        for n, stand_s in session.execute(union_all(*parts)):
            found[n] = stand_s
    return found


# Lookups in one UNION ALL: SQLite's default limit on a compound SELECT is 500 terms.
_LOOKUPS_PER_QUERY = 200
# Up to this many times to stand in the range, they are all read in one statement instead:
# planning some fifty lookups cost one desk's four weeks more (PostgreSQL: 20 ms against
# 7 ms) than reading its few hundred times.
_READ_ALL_UP_TO = 5000


def _all_times(session: Session, where: tuple[Any, ...]) -> dict[date, list[float]]:
    """Every time to stand in the range, by day."""
    found: dict[date, list[float]] = {}
    stmt = select(Nudge.day, Nudge.stand_s).where(*where, Nudge.stand_s.is_not(None))
    for day, stand_s in session.execute(stmt):
        found.setdefault(day, []).append(stand_s)
    return found


@dataclass
class _Tally:
    """A group of nudges (a day, a week, the range): how many, stood up in time, drilled in
    time, and how many times to stand fall in each whole second (``models.stand_second``)
    on each day; ``take_median`` then reads the middle times."""

    nudges: int = 0
    stood_up: int = 0
    drilled: int = 0
    # (second, day) -> nudges with a stand-up then; the second is the bucket's order
    buckets: dict[tuple[int, date], int] = field(default_factory=dict)
    median_s: float | None = None

    def add(self, day: date, second: int | None, counted: tuple[int, int, int, int]) -> None:
        """One row of the counts statement: nudges, those with a stand-up, stood up in time
        and drilled in time, of ``day`` with their stand-up in ``second`` (None: none)."""
        nudges, with_stand, stood_up, drilled = counted
        self.nudges += nudges
        self.stood_up += stood_up
        self.drilled += drilled
        if second is not None and with_stand:
            self.buckets[(second, day)] = self.buckets.get((second, day), 0) + with_stand

    def merge(self, other: _Tally) -> None:
        self.nudges += other.nudges
        self.stood_up += other.stood_up
        self.drilled += other.drilled
        for key, count in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + count

    def middle(self) -> list[tuple[int, list[date], int]]:
        """Where the middle time (or the two middle ones) lies: per middle time, its whole
        second, that second's days in the group, and its place (from 0) among that
        second's times of those days in order."""
        n = sum(self.buckets.values())
        ranks = sorted({(n - 1) // 2, n // 2}) if n else []
        days_of: dict[int, list[date]] = {}
        for second, day in sorted(self.buckets):
            days_of.setdefault(second, []).append(day)
        found: list[tuple[int, list[date], int]] = []
        below = 0
        for second, days in days_of.items():
            count = sum(self.buckets[(second, day)] for day in days)
            while ranks and ranks[0] < below + count:
                found.append((second, days, ranks.pop(0) - below))
            below += count
        return found

    def take_all(self, by_day: dict[date, list[float]]) -> bool:
        """The median from every time of the group's days; False if they are not as many
        as counted (the rows changed since)."""
        times = sorted(t for day in {day for _s, day in self.buckets} for t in by_day.get(day, []))
        if len(times) != sum(self.buckets.values()):
            return False
        n = len(times)
        self.median_s = None if n == 0 else (times[(n - 1) // 2] + times[n // 2]) / 2
        return True

    def take_median(self, values: list[float | None]) -> bool:
        """The median from the middle times read for ``middle()``; False if one was not
        there (the rows changed since they were counted)."""
        if any(value is None for value in values):
            return False
        times = [value for value in values if value is not None]
        self.median_s = sum(times) / len(times) if times else None
        return True

    def funnel(self) -> Funnel:
        if not self.nudges:
            return Funnel()
        return Funnel(self.nudges, self.stood_up, self.drilled, self.median_s)


# --- bouts, budget, exercises, heatmap ------------------------------------------------------


def _daily_insights(session: Session, r: _Range) -> dict[date, dict[str, float]]:
    """Per day, the DailyInsight figures (bouts, seated seconds per hour, drill steps)
    summed over the devices."""
    table = DailyInsight.__table__
    stmt = (
        select(table.c.day, *(func.sum(table.c[name]).label(name) for name in INSIGHT_FIGURES))
        .where(table.c.day >= r.first, table.c.day <= r.last, *r.on(table.c.device_id))
        .group_by(table.c.day)
    )
    return {
        row.day: {name: row._mapping[name] or 0 for name in INSIGHT_FIGURES}
        for row in session.execute(stmt)
    }


@dataclass(frozen=True)
class _BudgetRow:
    seated_s: float
    longest_s: float
    drills: int
    prompts: int
    devices_sat: int
    devices_over: int
    devices_met: int


def _budget_rows(session: Session, r: _Range, goals: Goals) -> dict[date, _BudgetRow]:
    """Per day, from the rollups: seated time, the longest session (bout), drills, prompts
    and how many devices sat, went over budget and met the goals."""
    sat = DailyRollup.sessions > 0
    over = and_(sat, DailyRollup.seated_s > goals.seat_budget_s)
    met = and_(
        sat,
        DailyRollup.seated_s <= goals.seat_budget_s,
        DailyRollup.drills >= goals.min_drills,
    )
    stmt = (
        select(
            DailyRollup.day,
            func.sum(DailyRollup.seated_s),
            func.max(DailyRollup.longest_s),
            func.sum(DailyRollup.drills),
            func.sum(DailyRollup.prompts),
            count_where(sat),
            count_where(over),
            count_where(met),
        )
        .where(
            DailyRollup.day >= r.first,
            DailyRollup.day <= r.last,
            *r.on(DailyRollup.device_id),
        )
        .group_by(DailyRollup.day)
    )
    return {
        row[0]: _BudgetRow(float(row[1] or 0), float(row[2] or 0), *(int(n or 0) for n in row[3:]))
        for row in session.execute(stmt)
    }


def heatmap(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    first: date,
    last: date,
    device_id: str | None = None,
) -> Heatmap:
    """Seated seconds per weekday and local clock hour over [first, last]."""
    return _heatmap(session, _Range.of(scope, calendar, first, last, device_id))


def _heatmap(
    session: Session, r: _Range, daily: dict[date, dict[str, float]] | None = None
) -> Heatmap:
    """From the DailyInsight rows: each day's seated seconds per clock hour, in the row of
    the day's weekday."""
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for day, figures in (_daily_insights(session, r) if daily is None else daily).items():
        row = grid[day.weekday()]
        for hour, name in enumerate(HOUR_COLUMNS):
            row[hour] += float(figures[name])
    return Heatmap(tuple(tuple(row) for row in grid), r.calendar.day_start_hour)


# --- streaks and the whole report -----------------------------------------------------------


def goal_streaks(days: Sequence[DayInsight], today: date | None = None) -> GoalStreaks:
    """Runs of desk days meeting the goals (see the module docstring); a walk over days,
    which are already aggregated."""
    best = run = 0
    last_day: date | None = None
    for day in days:
        if day.devices_sat == 0:
            continue  # nobody sat: neither extends nor breaks a run
        if day.meets_goals:
            run += 1
            best = max(best, run)
            last_day = day.day
        elif day.day == today and not day.over_budget:
            continue  # today can still meet them
        else:
            run = 0
    return GoalStreaks(current=run, best=best, last_day=last_day)


def insights(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    first: date,
    last: date,
    *,
    device_id: str | None = None,
    goals: Goals | None = None,
    today: date | None = None,
) -> Insights:
    """Every insight over the days ``first`` to ``last`` inclusive. ``today`` keeps an
    unfinished day from breaking the current goal streak. Raises ValueError for a range
    that is reversed, too long or outside 2000-2199."""
    goals = goals or Goals()
    r = _Range.of(scope, calendar, first, last, device_id)
    funnels = _funnel_figures(session, r)
    budget = _budget_rows(session, r, goals)
    daily = _daily_insights(session, r)

    days: list[DayInsight] = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        spent = budget.get(day, _BudgetRow(0.0, 0.0, 0, 0, 0, 0, 0))
        figures = daily.get(day, {})
        days.append(
            DayInsight(
                day=day,
                funnel=funnels.days.get(day, Funnel()),
                prompts=spent.prompts,
                bouts=tuple(int(figures.get(name, 0)) for name in BOUT_COLUMNS),
                longest_bout_s=spent.longest_s,
                seated_s=spent.seated_s,
                drills=spent.drills,
                devices_sat=spent.devices_sat,
                devices_over_budget=spent.devices_over,
                devices_meeting_goals=spent.devices_met,
                over_budget=spent.devices_over > 0,
                meets_goals=spent.devices_sat > 0 and spent.devices_met == spent.devices_sat,
                exercises={
                    key: int(figures.get(name, 0))
                    for key, name in zip(EXERCISE_KEYS, STEP_COLUMNS, strict=True)
                },
            )
        )
    weeks = []
    week = calendar.week_start(first)
    while week <= last:
        weeks.append(WeekInsight(week, funnels.weeks.get(week, Funnel())))
        week += timedelta(days=7)
    titles = {step.key: step.title for step in CIRCUIT} | {OTHER_STEP: "Other steps"}
    return Insights(
        first=first,
        last=last,
        device_id=device_id,
        goals=goals,
        funnel=funnels.total,
        bouts=tuple(sum(d.bouts[i] for d in days) for i in range(len(BOUT_EDGES_MIN))),
        longest_bout_s=max((d.longest_bout_s for d in days), default=0.0),
        days_over_budget=sum(d.over_budget for d in days),
        days=days,
        weeks=weeks,
        heatmap=_heatmap(session, r, daily),
        streaks=goal_streaks(days, today),
        exercises=[
            ExerciseCount(key, titles[key], sum(d.exercises[key] for d in days))
            for key in EXERCISE_KEYS
        ],
    )
