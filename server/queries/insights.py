"""Insights beyond the daily figures, as SQL over the events, sessions, drills and rollups:
the nudge funnel, sitting bouts, an hour x weekday heatmap, the seat-time budget, goal
streaks and the guided circuit's exercise counts. The dashboard's Insights page, the JSON
API and the CSV export all call ``insights()``, so they show the same numbers.

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
  ``prompts`` (every prompt event, as on the Overview cards) is kept beside it.
- **Sitting bouts** are SittingSession rows (a lift shorter than the grace period does not
  end one), counted to the day they started, in buckets [0, 15), [15, 30), [30, 60),
  [60, 90) and [90, ...) minutes: a bout of exactly 15 min is in 15-30. A stretch still in
  progress is not a bout yet.
- **Heatmap**: seated seconds per local clock hour and weekday, summed over the range.
  Each session is cut at hour boundaries and at DST changes, so an hour shows what was
  sat in it (the repeated hour of an autumn change can hold up to 2 h). The weekday is
  that of the stats day, so 02:00 in the night from Tuesday to Wednesday is in Tuesday's
  row when days start at 04:00; the columns start at ``day_start_hour``.
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
  ``other``.

How the SQL stays portable (SQLite and PostgreSQL) and DST-safe: timestamps become epoch
milliseconds in SQL (``sql.epoch_ms``, compiled for each dialect); the range is cut in Python
into the few stretches over which the zone's UTC offset is constant (``offset_spans``, a
new one at each DST change), and SQL adds the right offset to get local wall-clock
milliseconds, whose integer division gives local days and hours. Expressions that hold
bound parameters are grouped on from a subquery, because PostgreSQL does not match
``$1`` and ``$2`` as the same GROUP BY expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from sitwatch.calendar import Calendar
from sitwatch.drill import CIRCUIT
from sitwatch.protocol import EventType
from sitwatch.server import sql
from sitwatch.server.config import GoalsConfig
from sitwatch.server.ingest.derive import LATEST_TS, MAX_DURATION_S
from sitwatch.server.models import DailyRollup, Event, SittingSession
from sitwatch.server.queries.scope import Scope
from sitwatch.server.queries.stats import MAX_RANGE_DAYS
from sitwatch.server.sql import count_where

STAND_WITHIN_S = 5 * 60
DRILL_WITHIN_S = 30 * 60
# The guided circuit's longest run: its steps at the longest drill_step_s (300 s).
LONGEST_CIRCUIT_S = len(CIRCUIT) * 300
# Bout buckets as [low, high) in minutes; the last one is open-ended.
BOUT_EDGES_MIN: tuple[tuple[int, int | None], ...] = (
    (0, 15),
    (15, 30),
    (30, 60),
    (60, 90),
    (90, None),
)
BOUT_LABELS = tuple(f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in BOUT_EDGES_MIN)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
OTHER_STEP = "other"
EXERCISE_KEYS = (*(step.key for step in CIRCUIT), OTHER_STEP)
# The epoch arithmetic below assumes day numbers >= 0 (SQL integer division truncates).
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2199, 12, 31)

# Prompts and acks read either side of the range, to know whether the range's first prompt
# continues an earlier nudge and when the range's last nudge is followed by another.
CYCLE_MARGIN = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = _EPOCH.date()  # a Thursday: day number n is weekday (n + 3) % 7, Monday 0
_MS_HOUR = 3_600_000
_MS_DAY = 24 * _MS_HOUR
_OFFSET_SAMPLE = timedelta(hours=6)  # zones change offset at most twice a year


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


# --- local time in SQL ----------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetSpan:
    """[start_ms, end_ms) in epoch milliseconds, over which local = UTC + offset_ms."""

    start_ms: int
    end_ms: int
    offset_ms: int


def epoch_ms(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(milliseconds=1)


def offset_spans(zone: ZoneInfo, start: datetime, end: datetime) -> list[OffsetSpan]:
    """Cut [start, end) where the zone's UTC offset changes (found by sampling every 6 h
    and bisecting to the second; offsets change on whole seconds)."""

    def offset_ms(seconds: int) -> int:
        local = datetime.fromtimestamp(seconds, UTC).astimezone(zone)
        return int(local.utcoffset().total_seconds()) * 1000  # type: ignore[union-attr]

    step = int(_OFFSET_SAMPLE.total_seconds())
    first, stop = epoch_ms(start) // 1000, -(-epoch_ms(end) // 1000)
    spans: list[OffsetSpan] = []
    span_start, current = first, offset_ms(first)
    probe_from = first
    while probe_from < stop:
        probe = min(probe_from + step, stop)
        if offset_ms(probe) == current:
            probe_from = probe
            continue
        low, high = probe_from, probe  # current offset at low, another at high
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if offset_ms(middle) == current else (low, middle)
        if high >= stop:
            break
        spans.append(OffsetSpan(span_start * 1000, high * 1000, current))
        span_start, current, probe_from = high, offset_ms(high), high
    spans.append(OffsetSpan(span_start * 1000, stop * 1000, current))
    spans[0] = OffsetSpan(epoch_ms(start), spans[0].end_ms, spans[0].offset_ms)
    spans[-1] = OffsetSpan(spans[-1].start_ms, epoch_ms(end), spans[-1].offset_ms)
    return spans


def _local_ms(utc_ms: ColumnElement[int], spans: Sequence[OffsetSpan]) -> ColumnElement[int]:
    if len(spans) == 1:
        return utc_ms + spans[0].offset_ms
    offset = case(
        *((utc_ms < span.end_ms, span.offset_ms) for span in spans[:-1]),
        else_=spans[-1].offset_ms,
    )
    return utc_ms + offset


def _day_number(
    utc_ms: ColumnElement[int], spans: Sequence[OffsetSpan], calendar: Calendar
) -> ColumnElement[int]:
    """The stats day (days since 1970-01-01) a UTC instant counts to."""
    return _local_day_number(_local_ms(utc_ms, spans), calendar)


def _local_day_number(local_ms: ColumnElement[int], calendar: Calendar) -> ColumnElement[int]:
    """The stats day of a local wall-clock time in epoch milliseconds: the time minus the
    day's start, as Calendar.day_of."""
    return (local_ms - calendar.day_start // timedelta(milliseconds=1)) // _MS_DAY


def _day_of_number(number: int) -> date:
    return _EPOCH_DAY + timedelta(days=int(number))


def _number_of_day(day: date) -> int:
    return (day - _EPOCH_DAY).days


@dataclass(frozen=True)
class _Range:
    """Everything the queries share for one call."""

    calendar: Calendar
    first: date
    last: date
    start: datetime  # UTC bounds of [first, last]
    end: datetime
    spans: list[OffsetSpan]
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
        spans = offset_spans(calendar.zone, start, end)
        return cls(calendar, first, last, start, end, spans, scope, device_id)

    def day_number(self, column: Any) -> ColumnElement[int]:
        return _day_number(sql.epoch_ms(column), self.spans, self.calendar)

    def on(self, column: Any, *, seek_each: bool = False) -> tuple[ColumnElement[bool], ...]:
        """WHERE terms for the call's device (or all) among the scope's desks."""
        return self.scope.on(column, self.device_id, seek_each=seek_each)


# --- nudge funnel ---------------------------------------------------------------------------


def _nudge_rows(r: _Range) -> Select[Any]:
    """One row per nudge that began in the range: its day number and the milliseconds from
    its first prompt to the first stand-up and to the first drill (NULL when none came in
    its boot before the device's next nudge).

    Within a boot a desk's events are taken in ``seq`` order (the outbox's numbering,
    docs/protocol.md), so a re-prompt and the stand-up that answers it in the same
    millisecond stay in the order they happened; the row id, the order ingest stored them
    in, says nothing (a batch is inserted sorted by its random event ids). Events without a
    ``seq`` (a sender with no outbox) keep time order."""
    prompt, ack = EventType.PROMPT.value, EventType.PROMPT_ACK.value
    quiet = Event.data["quiet"].as_boolean()
    cycle = (
        select(
            Event.id,
            Event.device_id,
            Event.boot_id,
            Event.seq,
            Event.ts,
            Event.type,
            # Per boot: a restarted agent has forgotten its prompt, so the first prompt of a
            # boot always begins a nudge.
            func.lag(Event.type)
            .over(
                partition_by=(Event.device_id, Event.boot_id),
                order_by=(Event.seq.asc().nulls_last(), Event.ts, Event.id),
            )
            .label("previous"),
        )
        .where(
            Event.type.in_((prompt, ack)),
            Event.ts >= r.start - CYCLE_MARGIN,
            Event.ts < r.end + CYCLE_MARGIN,
            or_(Event.type == ack, quiet.is_not(true())),
            *r.on(Event.device_id, seek_each=True),
        )
        .subquery("cycle")
    )
    starts = (
        select(cycle.c.id, cycle.c.device_id, cycle.c.boot_id, cycle.c.seq, cycle.c.ts)
        .where(
            cycle.c.type == prompt,
            or_(cycle.c.previous.is_(None), cycle.c.previous != prompt),
        )
        .subquery("starts")
    )

    def following(column: Any) -> Any:
        order = (starts.c.ts, starts.c.seq.asc().nulls_last(), starts.c.id)
        return func.lead(column).over(partition_by=starts.c.device_id, order_by=order)

    nudges = select(
        starts.c.device_id,
        starts.c.boot_id,
        starts.c.seq,
        starts.c.ts,
        following(starts.c.ts).label("next_ts"),
        following(starts.c.seq).label("next_seq"),
    ).subquery("nudges")

    def in_nudge(row: Any) -> tuple[ColumnElement[bool], ...]:
        # The nudge's own boot (it ended with it), from its first prompt to the next nudge
        # of the device, in seq order where times are equal. The last nudge has no next
        # one: no stored time reaches LATEST_TS. A bound on time on both sides lets the
        # (device_id, time) index stop at the next nudge; with "next_ts IS NULL OR ts <
        # next_ts" SQLite read each nudge's device to its last event (a fleet's four weeks:
        # 2.6 s for this query).
        next_ts = func.coalesce(nudges.c.next_ts, LATEST_TS)
        return (
            row.device_id == nudges.c.device_id,
            row.boot_id == nudges.c.boot_id,
            row.ts >= nudges.c.ts,
            row.ts <= next_ts,
            or_(
                row.ts > nudges.c.ts,
                row.seq > nudges.c.seq,
                row.seq.is_(None),
                nudges.c.seq.is_(None),
            ),
            or_(row.ts < next_ts, row.seq < nudges.c.next_seq),
        )

    def first_of(kind: EventType, counts: Any = None) -> Any:
        # Drills from their drill_completed events, which carry boot and seq (the Drill
        # rows made from them do not).
        row = aliased(Event)
        also = () if counts is None else (counts(row),)
        return (
            select(func.min(row.ts))
            .where(row.type == kind.value, *in_nudge(row), *also)
            .scalar_subquery()
        )

    start_ms = sql.epoch_ms(nudges.c.ts)
    first_drill = first_of(EventType.DRILL_COMPLETED, _drill_counts)
    return select(
        _day_number(start_ms, r.spans, r.calendar).label("day_no"),
        (sql.epoch_ms(first_of(EventType.STOOD_UP)) - start_ms).label("stand_ms"),
        (sql.epoch_ms(first_drill) - start_ms).label("drill_ms"),
    ).where(nudges.c.ts >= r.start, nudges.c.ts < r.end)


def _drill_counts(completed: Any) -> ColumnElement[bool]:
    """protocol.drill_counts in SQL, for a drill_completed row: not said to be unverified."""
    return completed.data["verified"].as_boolean().is_not(false())


@dataclass(frozen=True)
class _FunnelFigures:
    days: dict[int, Funnel]  # by day number
    weeks: dict[int, Funnel]  # by the day number of the week's Monday
    total: Funnel


def _funnel_figures(session: Session, r: _Range) -> _FunnelFigures:
    """Nudge counts and medians per day, per week and for the range, in one statement: the
    nudge rows are computed once (a CTE used three times is materialized by SQLite and
    PostgreSQL alike), numbered by time to stand within their day, week and the range, and
    grouped three ways. The median is the middle row, or the mean of the two middle rows,
    of those with a stand-up."""
    # Used once, so PostgreSQL would inline it and run the per-nudge lookups again in every
    # window below (six times: 10x slower on 100 desks); on SQLite the hint measured slower,
    # so it is left to its planner there.
    rows = _nudge_rows(r).cte("nudge_rows").prefix_with("MATERIALIZED", dialect="postgresql")
    stood = rows.c.stand_ms <= STAND_WITHIN_S * 1000
    drilled = and_(stood, rows.c.drill_ms <= DRILL_WITHIN_S * 1000)
    week_no = rows.c.day_no - (rows.c.day_no + 3) % 7  # the Monday's day number
    fastest_first = rows.c.stand_ms.asc().nulls_last()

    def numbered(name: str, partition: Any) -> tuple[Any, Any]:
        return (
            func.row_number()
            .over(partition_by=partition, order_by=fastest_first)
            .label(f"rn_{name}"),
            func.count(rows.c.stand_ms).over(partition_by=partition).label(f"n_{name}"),
        )

    ranked = select(
        rows.c.day_no,
        week_no.label("week_no"),
        rows.c.stand_ms,
        case((stood, 1), else_=0).label("stood"),
        case((drilled, 1), else_=0).label("drilled"),
        *numbered("day", rows.c.day_no),
        *numbered("week", week_no),
        *numbered("all", None),
    ).cte("ranked")

    def grouped(kind: str, key: Any, name: str) -> Select[Any]:
        rn, n = ranked.c[f"rn_{name}"], ranked.c[f"n_{name}"]
        middle = and_(ranked.c.stand_ms.is_not(None), rn >= (n + 1) // 2, rn <= (n + 2) // 2)
        return select(
            literal(kind).label("kind"),
            key.label("k"),
            func.count(),
            func.coalesce(func.sum(ranked.c.stood), 0),
            func.coalesce(func.sum(ranked.c.drilled), 0),
            func.avg(case((middle, ranked.c.stand_ms))),
        )

    stmt = union_all(
        grouped("day", ranked.c.day_no, "day").group_by(ranked.c.day_no),
        grouped("week", ranked.c.week_no, "week").group_by(ranked.c.week_no),
        grouped("all", literal(0, BigInteger), "all"),
    )
    found: dict[str, dict[int, Funnel]] = {"day": {}, "week": {}, "all": {}}
    for kind, key, nudges, stood_up, drills, median_ms in session.execute(stmt):
        median_s = None if median_ms is None else float(median_ms) / 1000
        found[kind][int(key)] = Funnel(int(nudges), int(stood_up), int(drills), median_s)
    return _FunnelFigures(found["day"], found["week"], found["all"].get(0, Funnel()))


# --- bouts, budget, exercises, heatmap ------------------------------------------------------


def _bout_rows(session: Session, r: _Range) -> dict[int, tuple[tuple[int, ...], float]]:
    """Per day number: bout counts per bucket and the longest bout in seconds."""
    inner = (
        select(
            r.day_number(SittingSession.started_at).label("day_no"),
            SittingSession.duration_s.label("length_s"),
        )
        .where(
            SittingSession.started_at >= r.start,
            SittingSession.started_at < r.end,
            *r.on(SittingSession.device_id, seek_each=True),
        )
        .subquery("bouts")
    )
    length = inner.c.length_s
    buckets = [
        count_where(length >= lo * 60 if hi is None else and_(length >= lo * 60, length < hi * 60))
        for lo, hi in BOUT_EDGES_MIN
    ]
    stmt = select(inner.c.day_no, func.max(length), *buckets).group_by(inner.c.day_no)
    return {
        int(row[0]): (tuple(int(n) for n in row[2:]), float(row[1] or 0))
        for row in session.execute(stmt)
    }


@dataclass(frozen=True)
class _BudgetRow:
    seated_s: float
    drills: int
    prompts: int
    devices_sat: int
    devices_over: int
    devices_met: int


def _budget_rows(session: Session, r: _Range, goals: Goals) -> dict[date, _BudgetRow]:
    """Per day, from the rollups: seated time, drills, prompts and how many devices sat,
    went over budget and met the goals."""
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
        row[0]: _BudgetRow(float(row[1] or 0), *(int(n or 0) for n in row[2:]))
        for row in session.execute(stmt)
    }


def _exercise_rows(session: Session, r: _Range) -> dict[int, dict[str, int]]:
    step = Event.data["step"].as_string()
    known = [key for key in EXERCISE_KEYS if key != OTHER_STEP]
    # A step's circuit ends with the boot's next drill_completed, within a circuit's longest
    # time; one said to be unverified (done on the chair) takes its steps out of the counts.
    completed = aliased(Event)
    its_circuit = (
        select(completed.data["verified"].as_boolean())
        .where(
            completed.device_id == Event.device_id,
            completed.boot_id == Event.boot_id,
            completed.type == EventType.DRILL_COMPLETED.value,
            completed.ts >= Event.ts,
            sql.epoch_ms(completed.ts) <= sql.epoch_ms(Event.ts) + LONGEST_CIRCUIT_S * 1000,
        )
        .order_by(completed.ts, completed.seq)
        .limit(1)
        .scalar_subquery()
    )
    inner = (
        select(
            r.day_number(Event.ts).label("day_no"),
            case((step.in_(known), step), else_=literal(OTHER_STEP)).label("step"),
        )
        .where(
            Event.type == EventType.DRILL_STEP.value,
            Event.ts >= r.start,
            Event.ts < r.end,
            *r.on(Event.device_id, seek_each=True),
            its_circuit.is_not(false()),
        )
        .subquery("steps")
    )
    found: dict[int, dict[str, int]] = {}
    stmt = select(inner.c.day_no, inner.c.step, func.count()).group_by(inner.c.day_no, inner.c.step)
    for day_no, key, count in session.execute(stmt):
        found.setdefault(int(day_no), {})[str(key)] = int(count)
    return found


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


def _heatmap(session: Session, r: _Range) -> Heatmap:
    spans_rows = [
        select(
            literal(span.start_ms, BigInteger).label("t0"),
            literal(span.end_ms, BigInteger).label("t1"),
            literal(span.offset_ms, BigInteger).label("off"),
        )
        for span in r.spans
    ]
    spans = (spans_rows[0] if len(spans_rows) == 1 else union_all(*spans_rows)).cte("spans")
    start_ms, end_ms = (
        sql.epoch_ms(SittingSession.started_at),
        sql.epoch_ms(SittingSession.ended_at),
    )
    # Each session's part inside one offset span (the spans cover exactly the range), in
    # local wall-clock milliseconds.
    pieces = (
        select(
            (sql.greatest(start_ms, spans.c.t0) + spans.c.off).label("a"),
            (sql.least(end_ms, spans.c.t1) + spans.c.off).label("b"),
        )
        .select_from(SittingSession)
        .join(spans, and_(start_ms < spans.c.t1, end_ms > spans.c.t0))
        .where(
            SittingSession.started_at >= r.start - timedelta(seconds=MAX_DURATION_S),
            SittingSession.started_at < r.end,
            SittingSession.ended_at > r.start,
            *r.on(SittingSession.device_id, seek_each=True),
        )
        .subquery("pieces")
    )
    # Cut at each local hour boundary: one row per hour a piece touches, from ``a``.
    split = select(pieces.c.a, pieces.c.b).cte("split", recursive=True)
    next_hour = (split.c.a // _MS_HOUR + 1) * _MS_HOUR
    split = split.union_all(select(next_hour, split.c.b).where(next_hour < split.c.b))
    hour = split.c.a // _MS_HOUR  # a local hour, counted from 1970
    cells = select(
        (hour % 24).label("clock_hour"),
        ((_local_day_number(hour * _MS_HOUR, r.calendar) + 3) % 7).label("weekday"),
        (sql.least(split.c.b, (hour + 1) * _MS_HOUR) - split.c.a).label("ms"),
    ).subquery("cells")
    stmt: Select[Any] = select(cells.c.weekday, cells.c.clock_hour, func.sum(cells.c.ms)).group_by(
        cells.c.weekday, cells.c.clock_hour
    )
    grid = [[0.0] * 24 for _ in WEEKDAYS]
    for weekday, clock_hour, ms in session.execute(stmt):
        grid[int(weekday)][int(clock_hour)] = float(ms) / 1000
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
    bouts = _bout_rows(session, r)
    budget = _budget_rows(session, r, goals)
    exercises = _exercise_rows(session, r)

    days: list[DayInsight] = []
    no_bouts = (tuple(0 for _ in BOUT_EDGES_MIN), 0.0)
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        number = _number_of_day(day)
        buckets, longest_s = bouts.get(number, no_bouts)
        spent = budget.get(day, _BudgetRow(0.0, 0, 0, 0, 0, 0))
        steps = exercises.get(number, {})
        days.append(
            DayInsight(
                day=day,
                funnel=funnels.days.get(number, Funnel()),
                prompts=spent.prompts,
                bouts=buckets,
                longest_bout_s=longest_s,
                seated_s=spent.seated_s,
                drills=spent.drills,
                devices_sat=spent.devices_sat,
                devices_over_budget=spent.devices_over,
                devices_meeting_goals=spent.devices_met,
                over_budget=spent.devices_over > 0,
                meets_goals=spent.devices_sat > 0 and spent.devices_met == spent.devices_sat,
                exercises={key: steps.get(key, 0) for key in EXERCISE_KEYS},
            )
        )
    weeks = []
    week = calendar.week_start(first)
    while week <= last:
        weeks.append(WeekInsight(week, funnels.weeks.get(_number_of_day(week), Funnel())))
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
        heatmap=_heatmap(session, r),
        streaks=goal_streaks(days, today),
        exercises=[
            ExerciseCount(key, titles[key], sum(d.exercises[key] for d in days))
            for key in EXERCISE_KEYS
        ],
    )
