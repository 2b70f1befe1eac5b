"""Sitting statistics as SQL queries: the one source of the figures that the dashboard pages,
the JSON API and the CSV export show.

Every query takes a SQLAlchemy Session and the viewer's ``Scope`` (the desks the viewer may
see: ``scope.ALL_DESKS`` or a set) and aggregates in the database: days, weeks and
months come from DailyRollup (one row per device and local day, kept by ingest), a day's
timeline from SittingSession and prompts from Event, the seat's current state from Device
(kept by ingest: server/seat.py). Python only walks results that are already small (one
row per device or per day), never raw rows.

A "day" is a local day in ``Calendar.timezone`` that starts at ``Calendar.day_start_hour``
(04:00 by default, so a late night counts to the day it started); a session counts to the
day it started on, as DailyRollup.day does.

``device_id=None`` everywhere means all devices of the scope together. Further insights
(prompt funnel, bout histogram, hour x weekday heatmap) fit the same shape: a frozen
dataclass of figures and one function ``(session, scope, calendar, ..., device_id=None)``
that the dashboard, the API and the CSV call alike; ``Scope.on`` and ``Calendar.bounds``
are the pieces to reuse.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from sitwatch.calendar import Calendar, as_utc
from sitwatch.protocol import EventType
from sitwatch.server import seat
from sitwatch.server.models import (
    ROLLUP_FIGURES,
    ROLLUP_SUMS,
    DailyRollup,
    Device,
    Drill,
    Event,
    FleetDay,
    SittingSession,
    empty_figures,
)
from sitwatch.server.queries.scope import Scope
from sitwatch.server.sql import count_where

# A "seated" event older than this no longer makes a device "seated now": a seat that has
# reported nobody standing up for two days is a stuck sensor, not a person.
STATE_LOOKBACK = timedelta(days=2)
# Longest range the per-day queries accept (the API rejects more), about 5 years.
MAX_RANGE_DAYS = 5 * 366


# --- devices and the seat's current state ---------------------------------------------------


@dataclass(frozen=True)
class DeviceStatus:
    id: str
    name: str
    is_online: bool
    last_seen_at: datetime
    first_seen_at: datetime
    version: str | None
    settings: dict[str, Any] | None

    @property
    def label(self) -> str:
        """What to call the device: its name, else its id."""
        return self.name or self.id


def is_online(
    online_flag: bool, last_seen_at: datetime, now: datetime, offline_after_s: float
) -> bool:
    """Online by its own last status, and heard from within ``offline_after_s`` seconds: a
    device whose network died never got to publish its Last Will."""
    return online_flag and (now - last_seen_at).total_seconds() <= offline_after_s


def device_statuses(
    session: Session,
    scope: Scope,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
) -> list[DeviceStatus]:
    """Devices ordered by name then id."""
    now = as_utc(now)  # a caller's naive time is UTC
    # Columns, not Device objects: a fleet's 10,000 rows cost half as much.
    rows = session.execute(
        select(
            Device.id,
            Device.name,
            Device.online,
            Device.last_seen_at,
            Device.first_seen_at,
            Device.version,
            Device.settings,
        )
        .where(*scope.on(Device.id, device_id))
        .order_by(Device.name, Device.id)
    )
    return [
        DeviceStatus(
            id=d.id,
            name=d.name or "",
            is_online=is_online(bool(d.online), d.last_seen_at, now, offline_after_s),
            last_seen_at=d.last_seen_at,
            first_seen_at=d.first_seen_at,
            version=d.version,
            settings=d.settings,
        )
        for d in rows
    ]


@dataclass(frozen=True)
class SeatState:
    device_id: str
    is_online: bool
    is_seated: bool  # last seated/stood_up event is "seated", and the device is online
    seated_since: datetime | None  # that seated event's time, when is_seated

    def stretch_s(self, now: datetime) -> float:
        """Seconds of the current stretch (0 when not seated)."""
        if not self.is_seated or self.seated_since is None:
            return 0.0
        return max(0.0, (now - self.seated_since).total_seconds())


def seat_states(
    session: Session,
    scope: Scope,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
) -> dict[str, SeatState]:
    """Whether each device's seat is occupied now, from its latest seated/stood_up event.

    That event's type and time are on the devices row (kept by ingest: server/seat.py), so
    a fleet costs one row per desk. A desk whose latest is dated after now (its clock
    slightly ahead) takes the latest up to now from its events instead: a stored future
    event must not pin the state. An event older than ``STATE_LOOKBACK`` sets nothing."""
    now = as_utc(now)  # a caller's naive time is UTC
    rows = session.execute(
        select(Device.id, Device.online, Device.last_seen_at, Device.seat_type, Device.seat_at)
        .where(*scope.on(Device.id, device_id))
        .order_by(Device.id)
    ).all()
    ahead = [row.id for row in rows if row.seat_at is not None and row.seat_at > now]
    latest = {row.id: (row.seat_type, row.seat_at) for row in rows}
    if ahead:
        latest.update(
            (row.id, (row.type, row.ts))
            for row in session.execute(
                select(
                    Device.id,
                    seat.latest(Event.type, until=now).label("type"),
                    seat.latest(Event.ts, until=now).label("ts"),
                ).where(Device.id.in_(ahead))
            )
        )
    states = {}
    for row in rows:
        online = is_online(bool(row.online), row.last_seen_at, now, offline_after_s)
        kind, ts = latest[row.id]
        seated = (
            online
            and kind == EventType.SEATED.value
            and ts is not None
            and ts >= now - STATE_LOOKBACK
        )
        states[row.id] = SeatState(
            device_id=row.id,
            is_online=online,
            is_seated=seated,
            seated_since=ts if seated else None,
        )
    return states


# --- today at a glance ----------------------------------------------------------------------


@dataclass(frozen=True)
class TodayFigures:
    """One local day so far, from the day's DailyRollup rows (so today's card and today's bar
    in the week and month charts always agree): ``seated_s`` and ``sessions`` count finished
    sessions, a stretch in progress is ``current_stretch_s``; ``prompts_answered`` counts
    prompt_ack events, ``prompts_answered_by_drill`` those with ``data.how == "drill"``;
    ``drills`` only drills that count (done off the seat: ``Drill.verified``). The rollup's
    figures but ``longest_s`` (``longest_stretch`` counts open stretches)."""

    day: date
    devices: int
    devices_online: int
    devices_seated: int
    current_stretch_s: float  # the longest stretch in progress (0 if nobody is seated)
    seated_s: float
    sessions: int
    breaks: int
    prompts: int
    prompts_answered: int
    prompts_answered_by_drill: int
    drills: int

    @property
    def seated_now(self) -> bool:
        return self.devices_seated > 0


def today_by_device(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
    states: Mapping[str, SeatState] | None = None,
) -> dict[str, TodayFigures]:
    """Today's figures for each device (every device is present, with zeros if quiet);
    ``states``: seat_states' answer for the same devices and time, if at hand."""
    now = as_utc(now)  # a caller's naive time is UTC
    day = calendar.day_of(now)
    # A stored row's figures have their column's type and no NULL; they are passed in
    # TodayFigures' own order (test_stats checks it): a fleet's today is 10,000 of them.
    columns = [DailyRollup.__table__.c[name] for name in _TODAY_FIGURES]
    rollups = {
        row[0]: tuple(row[1:])
        for row in session.execute(
            select(DailyRollup.device_id, *columns).where(
                DailyRollup.day == day, *scope.on(DailyRollup.device_id, device_id)
            )
        )
    }
    zeros = tuple(empty_figures()[name] for name in _TODAY_FIGURES)
    if states is None:
        states = seat_states(session, scope, now, offline_after_s, device_id)
    return {
        dev_id: TodayFigures(
            day,
            1,
            int(state.is_online),
            int(state.is_seated),
            state.stretch_s(now),
            *rollups.get(dev_id, zeros),
        )
        for dev_id, state in states.items()
    }


def combine_today(day: date, per_device: Sequence[TodayFigures]) -> TodayFigures:
    """All devices together: counts add up, the current stretch is the longest one."""
    return TodayFigures(
        day=day,
        devices=len(per_device),
        devices_online=sum(f.devices_online for f in per_device),
        devices_seated=sum(f.devices_seated for f in per_device),
        current_stretch_s=max((f.current_stretch_s for f in per_device), default=0.0),
        **{name: sum(getattr(f, name) for f in per_device) for name in _TODAY_FIGURES},
    )


def today(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
) -> TodayFigures:
    """Today's figures for one device, or for all devices together."""
    per_device = today_by_device(session, scope, calendar, now, offline_after_s, device_id)
    return combine_today(calendar.day_of(now), list(per_device.values()))


@dataclass(frozen=True)
class PerDesk:
    """Today's figures of the average desk in use (one that sat today: a finished or a
    running stretch), for a page that shows several desks, where a sum over desks would
    add up different people. ``desks``: how many desks the average is over (0: none sat,
    all figures 0)."""

    day: date
    desks: int
    seated_s: float = 0.0
    sessions: float = 0.0
    breaks: float = 0.0
    prompts: float = 0.0
    prompts_answered: float = 0.0
    prompts_answered_by_drill: float = 0.0
    drills: float = 0.0


def per_desk_today(day: date, per_device: Sequence[TodayFigures]) -> PerDesk:
    """The average of ``per_device`` over the desks that sat today (to 0.1)."""
    used = [f for f in per_device if f.seated_s > 0 or f.current_stretch_s > 0]
    if not used:
        return PerDesk(day=day, desks=0)
    return PerDesk(
        day=day,
        desks=len(used),
        **{
            name: round(sum(getattr(f, name) for f in used) / len(used), 1)
            for name in _TODAY_FIGURES
        },
    )


# --- days, weeks, months --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RollupFigures:
    """The figures of DailyRollup rows (``models.ROLLUP_FIGURES``, typed), of one device or
    added up over several: sums, but ``longest_s`` is the longest."""

    seated_s: float = 0.0
    sessions: int = 0
    longest_s: float = 0.0
    breaks: int = 0
    prompts: int = 0
    prompts_answered: int = 0
    prompts_answered_by_drill: int = 0
    drills: int = 0


@dataclass(frozen=True)
class DayFigures(RollupFigures):
    day: date


# What today's card shows of a day's rollup (its longest stretch comes from longest_stretch).
_TODAY_FIGURES = tuple(name for name in ROLLUP_FIGURES if name != "longest_s")


# The rollup figures' columns: selected as columns, a fleet's rows load without an ORM object
# each (10,000 desks' today: about a third of the time).
_ROLLUP_COLUMNS = tuple(DailyRollup.__table__.c[name] for name in ROLLUP_FIGURES)


def _figures_of(row: Any) -> dict[str, Any]:
    """A rollup row's (or a sum's) figures by name, zeros where it has none."""
    zeros = empty_figures()
    if row is None:
        return zeros
    return {name: type(zero)(getattr(row, name) or 0) for name, zero in zeros.items()}


def _rollup_sums(*group_by: Any) -> Select[Any]:
    columns = DailyRollup.__table__.c
    figures = [
        (func.sum if name in ROLLUP_SUMS else func.max)(columns[name]).label(name)
        for name in ROLLUP_FIGURES
    ]
    return select(*group_by, *figures).group_by(*group_by)


def daily_series(
    session: Session, scope: Scope, first: date, last: date, device_id: str | None = None
) -> list[DayFigures]:
    """One entry per day from ``first`` to ``last`` inclusive (days without data are zeros),
    summed over devices when ``device_id`` is None (``longest_s`` is then the longest)."""
    days = _days_of(first, last)
    stmt = _rollup_sums(DailyRollup.day).where(
        DailyRollup.day >= first,
        DailyRollup.day <= last,
        *scope.on(DailyRollup.device_id, device_id),
    )
    found = {row.day: DayFigures(day=row.day, **_figures_of(row)) for row in session.execute(stmt)}
    return [found.get(day, DayFigures(day=day)) for day in days]


def _days_of(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive (none if ``last`` is before ``first``);
    ValueError past MAX_RANGE_DAYS."""
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValueError(f"range too long: {first} to {last} (at most {MAX_RANGE_DAYS} days)")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def desks_with_data(session: Session, scope: Scope, first: date, last: date) -> int:
    """How many desks have a daily rollup from ``first`` to ``last`` inclusive: the desks a
    fleet total over those days covers (office privacy mode shows it only over enough)."""
    stmt = select(func.count(func.distinct(DailyRollup.device_id))).where(
        DailyRollup.day >= first, DailyRollup.day <= last, *scope.on(DailyRollup.device_id)
    )
    return session.execute(stmt).scalar_one()


@dataclass(frozen=True)
class AverageDay:
    """A day's seated time and drills of the average desk that sat that day (``desks`` of
    them; 0: none, figures 0)."""

    day: date
    desks: int
    seated_s: float = 0.0
    drills: float = 0.0


def daily_average_series(
    session: Session, scope: Scope, first: date, last: date
) -> list[AverageDay]:
    """daily_series over the scope's desks, per desk that sat each day (seated_s > 0): one
    read of the range's rollups for the sums and the desks that sat."""
    days = _days_of(first, last)
    stmt = (
        select(
            DailyRollup.day,
            func.sum(DailyRollup.seated_s),
            func.sum(DailyRollup.drills),
            count_where(DailyRollup.seated_s > 0),
        )
        .where(
            DailyRollup.day >= first,
            DailyRollup.day <= last,
            *scope.on(DailyRollup.device_id),
        )
        .group_by(DailyRollup.day)
    )
    found = {day: (seated, drills, desks) for day, seated, drills, desks in session.execute(stmt)}
    averages = []
    for day in days:
        seated, drills, desks = found.get(day, (0, 0, 0))
        if not desks:
            averages.append(AverageDay(day=day, desks=0))
            continue
        averages.append(
            AverageDay(
                day=day,
                desks=desks,
                seated_s=float(seated) / desks,
                drills=round(int(drills) / desks, 1),
            )
        )
    return averages


class RollupRow(NamedTuple):
    """One stored DailyRollup row, as exported to CSV: a named tuple in the order the
    export reads it, made as cheaply as a row (a fleet's week is 50,000 of them). The
    figures are RollupFigures' (test_stats checks that they agree)."""

    day: date
    device_id: str
    device_name: str
    seated_s: float
    sessions: int
    longest_s: float
    breaks: int
    prompts: int
    prompts_answered: int
    prompts_answered_by_drill: int
    drills: int


_DEVICE_NAME = func.coalesce(Device.name, "").label("device_name")


def rollup_rows(
    session: Session,
    scope: Scope,
    first: date | None = None,
    last: date | None = None,
    device_id: str | None = None,
) -> Iterator[RollupRow]:
    """Stored rollups ordered by day and device, streamed in batches (for CSV export)."""
    conditions: list[ColumnElement[bool]] = list(scope.on(DailyRollup.device_id, device_id))
    if first is not None:
        conditions.append(DailyRollup.day >= first)
    if last is not None:
        conditions.append(DailyRollup.day <= last)
    stmt = (
        select(DailyRollup.day, DailyRollup.device_id, _DEVICE_NAME, *_ROLLUP_COLUMNS)
        .join(Device, Device.id == DailyRollup.device_id)
        .where(*conditions)
        .order_by(DailyRollup.day, DailyRollup.device_id)
        .execution_options(yield_per=1000)
    )
    # Core rows through the session's connection: the ORM's row processing was about a
    # third of a fleet's export. A stored row's figures have their column's type, no NULL.
    for row in session.connection().execute(stmt):
        yield RollupRow._make(row)


# --- records: longest stretch and streaks ---------------------------------------------------


@dataclass(frozen=True)
class LongestStretch:
    """Longest single sitting stretch in seconds: today, this week (Monday to Sunday), ever.
    A stretch in progress counts (to the day it started), so sitting for 2 h right now shows
    at least 2 h."""

    today_s: float
    week_s: float
    ever_s: float


@dataclass(frozen=True)
class RecordDay:
    """One day of the scope's rollups, what the records are made of: drills that count
    (summed over the desks) and the longest session (of any desk)."""

    day: date
    drills: int
    longest_s: float


def record_days(session: Session, scope: Scope, device_id: str | None = None) -> list[RecordDay]:
    """Every stored day of the scope, in order, shared by the longest stretch and the
    streaks: for every desk the fleet's rows (models.FleetDay, kept by ingest), otherwise
    one row per day from the rollups (the (day, drills, longest_s) index for a team, the
    primary key for a desk)."""
    if scope.device_ids is None and device_id is None:
        stmt = select(FleetDay.day, FleetDay.drills, FleetDay.longest_s).order_by(FleetDay.day)
    else:
        stmt = (
            select(DailyRollup.day, func.sum(DailyRollup.drills), func.max(DailyRollup.longest_s))
            .where(*scope.on(DailyRollup.device_id, device_id))
            .group_by(DailyRollup.day)
            .order_by(DailyRollup.day)
        )
    return [
        RecordDay(day, int(drills or 0), float(longest or 0))
        for day, drills, longest in session.execute(stmt)
    ]


def longest_stretch(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
    states: Mapping[str, SeatState] | None = None,
    days: Sequence[RecordDay] | None = None,
) -> LongestStretch:
    """``days``: record_days' answer for the same scope, if at hand."""
    now = as_utc(now)
    day = calendar.day_of(now)
    week = calendar.week_start(day)
    if days is None:
        days = record_days(session, scope, device_id)
    # Days after today (a desk whose clock ran ahead) are left out.
    today_s = week_s = ever_s = 0.0
    for found in days:
        if found.day > day:
            break
        ever_s = max(ever_s, found.longest_s)
        if found.day >= week:
            week_s = max(week_s, found.longest_s)
        if found.day == day:
            today_s = found.longest_s
    if states is None:
        states = seat_states(session, scope, now, offline_after_s, device_id)
    for state in states.values():
        if state.seated_since is None:
            continue
        open_s = state.stretch_s(now)
        started = calendar.day_of(state.seated_since)
        ever_s = max(ever_s, open_s)
        if started >= week:
            week_s = max(week_s, open_s)
        if started == day:
            today_s = max(today_s, open_s)
    return LongestStretch(today_s=today_s, week_s=week_s, ever_s=ever_s)


@dataclass(frozen=True)
class Streaks:
    """Runs of consecutive days meeting the goal: at least ``goal_drills`` drills that count
    (verified: done off the seat) that day (summed over the selected devices). ``current``
    ends today, or yesterday while today has not met the goal yet (the day is not over);
    ``best`` is the longest run ever."""

    current: int
    best: int
    goal_drills: int
    last_day: date | None = None  # the last day that met the goal


def drill_streaks(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    device_id: str | None = None,
    goal_drills: int = 1,
    days: Sequence[RecordDay] | None = None,
) -> Streaks:
    """``days``: record_days' answer for the same scope, if at hand."""
    day = calendar.day_of(now)
    if days is None:
        days = record_days(session, scope, device_id)
    best = run = 0
    previous: date | None = None
    # The walk is over days, not over stored rows; days after today are left out.
    for good in (d.day for d in days if d.drills >= goal_drills and d.day <= day):
        run = run + 1 if previous is not None and good - previous == timedelta(days=1) else 1
        best = max(best, run)
        previous = good
    current = run if previous is not None and (day - previous).days <= 1 else 0
    return Streaks(current=current, best=best, goal_drills=goal_drills, last_day=previous)


# --- a day's timeline -----------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineBar:
    device_id: str
    start: datetime
    end: datetime
    duration_s: float
    is_open: bool = False  # a stretch still in progress (ends "now")


@dataclass(frozen=True)
class TimelineMark:
    device_id: str
    ts: datetime
    kind: str  # "prompt" or "drill"
    detail: str = ""
    counted: bool = True  # False: a drill done on the chair, shown as not counted


_Item = TypeVar("_Item", TimelineBar, TimelineMark)


@dataclass(frozen=True)
class Timeline:
    day: date
    start: datetime  # UTC bounds of the local day
    end: datetime
    bars: list[TimelineBar] = field(default_factory=list)
    marks: list[TimelineMark] = field(default_factory=list)

    def bars_of(self, device_id: str) -> list[TimelineBar]:
        return self._bars_by_device.get(device_id, [])

    def marks_of(self, device_id: str) -> list[TimelineMark]:
        return self._marks_by_device.get(device_id, [])

    @cached_property
    def _bars_by_device(self) -> dict[str, list[TimelineBar]]:
        return _by_device(self.bars)

    @cached_property
    def _marks_by_device(self) -> dict[str, list[TimelineMark]]:
        return _by_device(self.marks)


def _by_device(items: list[_Item]) -> dict[str, list[_Item]]:
    grouped: dict[str, list[_Item]] = {}
    for item in items:
        grouped.setdefault(item.device_id, []).append(item)
    return grouped


def day_timeline(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    day: date,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
    among: Collection[str] | None = None,
    states: Mapping[str, SeatState] | None = None,
) -> Timeline:
    """Sitting sessions that started on ``day`` (plus a stretch in progress), prompts and
    drills, in time order; for one device, all, or only those ``among`` a set."""
    now = as_utc(now)
    start, end = calendar.bounds(day)
    bars = [
        TimelineBar(s.device_id, s.started_at, s.ended_at, s.duration_s)
        for s in session.scalars(
            select(SittingSession)
            .where(
                SittingSession.started_at >= start,
                SittingSession.started_at < end,
                *scope.on(SittingSession.device_id, device_id, among),
            )
            .order_by(SittingSession.started_at)
        )
    ]
    if start <= now < end + STATE_LOOKBACK:
        if states is None:
            states = seat_states(session, scope, now, offline_after_s, device_id)
        for state in states.values():
            if among is not None and state.device_id not in among:
                continue
            if state.seated_since is not None and start <= state.seated_since < end:
                bars.append(
                    TimelineBar(
                        state.device_id, state.seated_since, now, state.stretch_s(now), True
                    )
                )
    marks = [
        TimelineMark(row.device_id, row.ts, "prompt", f"level {row.level}")
        for row in session.execute(
            select(Event.device_id, Event.ts, Event.data["level"].as_integer().label("level"))
            .where(
                Event.type == EventType.PROMPT.value,
                Event.ts >= start,
                Event.ts < end,
                *scope.on(Event.device_id, device_id, among),
            )
            .order_by(Event.ts)
        )
    ]
    marks += [
        TimelineMark(
            row.device_id,
            row.ts,
            "drill",
            ("guided" if row.guided else "on one's own")
            + ("" if row.verified else ", not counted: the seat was taken"),
            row.verified,
        )
        for row in session.execute(
            select(Drill.device_id, Drill.ts, Drill.guided, Drill.verified)
            .where(
                Drill.ts >= start,
                Drill.ts < end,
                *scope.on(Drill.device_id, device_id, among),
            )
            .order_by(Drill.ts)
        )
    ]
    marks.sort(key=lambda mark: mark.ts)
    return Timeline(day=day, start=start, end=end, bars=bars, marks=marks)


# --- everything a page header shows ---------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    today: TodayFigures
    longest: LongestStretch
    streaks: Streaks


def overview(
    session: Session,
    scope: Scope,
    calendar: Calendar,
    now: datetime,
    offline_after_s: float,
    device_id: str | None = None,
    per_device: Mapping[str, TodayFigures] | None = None,
    states: Mapping[str, SeatState] | None = None,
) -> Overview:
    """Today's figures, longest stretches and drill streaks: what the dashboard's header
    cards and /api/v1/summary show (``per_device``: today_by_device's answer, ``states``:
    seat_states', if at hand)."""
    if states is None:
        states = seat_states(session, scope, now, offline_after_s, device_id)
    if per_device is None:
        per_device = today_by_device(
            session, scope, calendar, now, offline_after_s, device_id, states
        )
    figures = combine_today(calendar.day_of(now), list(per_device.values()))
    days = record_days(session, scope, device_id)  # once for both records
    return Overview(
        today=figures,
        longest=longest_stretch(
            session, scope, calendar, now, offline_after_s, device_id, states, days
        ),
        streaks=drill_streaks(session, scope, calendar, now, device_id, days=days),
    )
