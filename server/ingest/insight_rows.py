"""The Insights page's derived rows, kept by ingest as sessions are (server/ingest/derive.py
calls them): nudges (models.Nudge) and each desk's daily insight figures
(models.DailyInsight: bouts, seated time per clock hour, drill steps).

Both are recomputed from the base tables, never added to, so a replayed, late or re-timed
event changes them exactly as it would a rebuild:

- **Nudges** of a desk are recomputed from the start of its last stored nudge before the
  earliest new event onwards (that nudge is the one a new event can extend; every earlier
  one ended before it), unless that nudge's prompt was pruned (then from the new event).
  A prompt's place in a cycle depends only on its boot's previous prompt or ack within
  ``CYCLE_MARGIN`` (a day), so without such a nudge the events read start a day earlier.
  The rules are the funnel's (server/queries/insights.py's docstring); within a boot,
  events are taken in ``seq`` order, which assumes a desk's ``seq`` and times agree except
  between events stamped in the same millisecond.
- **Daily insight rows** are recounted for each (desk, day) a new event touches: the days a
  new session's hours fall on, a drill step's day, and the days whose steps a
  ``drill_completed`` decides (up to a circuit's longest run before it).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, bindparam, delete, func, select

from sitwatch.calendar import Calendar, as_utc
from sitwatch.drill import CIRCUIT
from sitwatch.protocol import Event, EventType
from sitwatch.server.models import (
    BOUT_COLUMNS,
    BOUT_EDGES_MIN,
    EXERCISE_KEYS,
    HOUR_COLUMNS,
    INSIGHT_FIGURES,
    OTHER_STEP,
    STEP_COLUMNS,
    DailyInsight,
    Nudge,
    SittingSession,
)
from sitwatch.server.models import Event as EventRow
from sitwatch.server.sql import DeskStatement, desk_terms

# A prompt more than this after its boot's previous prompt or ack begins a new nudge.
CYCLE_MARGIN = timedelta(days=1)
# The guided circuit's longest run: its steps at the longest drill_step_s (300 s).
LONGEST_CIRCUIT_S = len(CIRCUIT) * 300
# The longest session stored (derive.MAX_DURATION_S): how far back a session may start and
# still reach into a day.
LONGEST_SESSION = timedelta(days=7)
NUDGE_TYPES = (
    EventType.PROMPT,
    EventType.PROMPT_ACK,
    EventType.STOOD_UP,
    EventType.DRILL_COMPLETED,
)
_KNOWN_STEPS = frozenset(key for key in EXERCISE_KEYS if key != OTHER_STEP)


# --- nudges ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    """What the nudge rules read of an event row."""

    event_id: str
    boot_id: str
    seq: int | None
    type: str
    ts: datetime
    data: Mapping[str, Any]

    def in_boot_order(self) -> tuple[bool, int, datetime, str]:
        return (self.seq is None, self.seq or 0, self.ts, self.event_id)


def nudges_of(device_id: str, events: Sequence[StoredEvent], calendar: Calendar) -> list[dict]:
    """The nudge rows of one desk's ``events`` (prompts, acks, stand-ups, drills; any
    order), as the funnel defines them."""
    cycles: dict[str, list[StoredEvent]] = defaultdict(list)
    outcomes: dict[str, list[StoredEvent]] = defaultdict(list)
    for e in events:
        if e.type == EventType.PROMPT_ACK or (
            e.type == EventType.PROMPT and e.data.get("quiet") is not True
        ):
            cycles[e.boot_id].append(e)
        elif e.type == EventType.STOOD_UP or (
            e.type == EventType.DRILL_COMPLETED and e.data.get("verified") is not False
        ):
            outcomes[e.boot_id].append(e)
    starts: list[StoredEvent] = []
    for rows in cycles.values():
        previous: StoredEvent | None = None
        for row in sorted(rows, key=StoredEvent.in_boot_order):
            if row.type == EventType.PROMPT and (
                previous is None
                or previous.type != EventType.PROMPT
                or previous.ts < row.ts - CYCLE_MARGIN
            ):
                starts.append(row)
            previous = row
    starts.sort(key=lambda e: (e.ts, e.seq is None, e.seq or 0, e.event_id))
    found = []
    for index, start in enumerate(starts):
        following = starts[index + 1] if index + 1 < len(starts) else None
        first: dict[str, datetime] = {}
        for row in outcomes[start.boot_id]:
            if _within(row, start, following) and (
                row.type not in first or row.ts < first[row.type]
            ):
                first[row.type] = row.ts

        def after(
            kind: EventType, first: dict[str, datetime] = first, start: StoredEvent = start
        ) -> float | None:
            ts = first.get(kind.value)
            return None if ts is None else (ts - start.ts).total_seconds()

        found.append(
            {
                "event_id": start.event_id,
                "device_id": device_id,
                "boot_id": start.boot_id,
                "seq": start.seq,
                "started_at": start.ts,
                "day": calendar.day_of(start.ts),
                "stand_s": after(EventType.STOOD_UP),
                "drill_s": after(EventType.DRILL_COMPLETED),
            }
        )
    return found


def _within(row: StoredEvent, start: StoredEvent, following: StoredEvent | None) -> bool:
    """Whether ``row`` (of ``start``'s boot) came after ``start`` and before the next nudge
    (in seq order where their times are equal)."""
    if row.ts < start.ts:
        return False
    same_time = row.ts == start.ts and start.seq is not None and row.seq is not None
    if same_time and row.seq <= start.seq:  # type: ignore[operator]
        return False
    if following is None or row.ts < following.ts:
        return True
    if row.ts > following.ts:
        return False
    return row.seq is not None and following.seq is not None and row.seq < following.seq


def derive_nudges(connection: Connection, calendar: Calendar, since: Mapping[str, datetime]) -> int:
    """Recompute the nudges of each desk in ``since`` that its events from that time on can
    change; returns how many rows were written. A few statements for all the desks (one per
    desk and step cost an ingest batch of 20 desks three times its other work), each kept
    per number of desks (``sql.DeskStatement``)."""
    if not since:
        return 0
    start, anchored = _recompute_from(connection, {d: as_utc(ts) for d, ts in since.items()})
    # From a stored nudge on, its first prompt begins the list (it began a nudge before and
    # still does: nothing earlier changed); else a day before, for the prompt's predecessor.
    read_from = {d: ts if d in anchored else ts - CYCLE_MARGIN for d, ts in start.items()}
    found = _nudge_events.execute(
        connection, [{"desk": d, "from": ts} for d, ts in sorted(read_from.items())]
    )
    events: dict[str, list[StoredEvent]] = defaultdict(list)
    for device_id, *rest in found:
        events[device_id].append(StoredEvent(*rest))
    rows = [
        row
        for device_id in sorted(start)
        for row in nudges_of(device_id, events[device_id], calendar)
        if row["started_at"] >= start[device_id]
    ]
    connection.execute(
        _DELETE_NUDGES, [{"b_desk": d, "b_from": ts} for d, ts in sorted(start.items())]
    )
    if rows:
        connection.execute(Nudge.__table__.insert(), rows)
    return len(rows)


_nudges = Nudge.__table__.c
_events = EventRow.__table__.c
_DELETE_NUDGES = delete(Nudge.__table__).where(
    _nudges.device_id == bindparam("b_desk"), _nudges.started_at >= bindparam("b_from")
)


@DeskStatement
def _nudge_events(desks: int) -> Select[Any]:
    """What the nudge rules read of each desk's events from a time on."""
    return select(
        _events.device_id,
        _events.event_id,
        _events.boot_id,
        _events.seq,
        _events.type,
        _events.ts,
        _events.data,
    ).where(
        desk_terms(desks, lambda p: and_(_events.device_id == p("desk"), _events.ts >= p("from"))),
        _events.type.in_([kind.value for kind in NUDGE_TYPES]),
    )


@DeskStatement
def _last_nudges(desks: int) -> Select[Any]:
    """Each desk's last nudge before a time."""
    return (
        select(_nudges.device_id, func.max(_nudges.started_at))
        .where(
            desk_terms(
                desks,
                lambda p: and_(_nudges.device_id == p("desk"), _nudges.started_at < p("before")),
            )
        )
        .group_by(_nudges.device_id)
    )


@DeskStatement
def _kept_nudges(desks: int) -> Select[Any]:
    """Which of these nudges (a desk's, started at a time) still have their prompt."""
    return (
        select(_nudges.device_id, _nudges.started_at)
        .join(EventRow.__table__, _events.event_id == _nudges.event_id)
        .where(
            desk_terms(
                desks, lambda p: and_(_nudges.device_id == p("desk"), _nudges.started_at == p("at"))
            )
        )
    )


def _recompute_from(
    connection: Connection, earliest: Mapping[str, datetime]
) -> tuple[dict[str, datetime], set[str]]:
    """Per desk, where its nudges must be recomputed from for events from ``earliest`` on:
    the start of its last nudge before then, unless that nudge's events were pruned (it
    stays as it is: server/retention.py); and the desks where that is such a nudge."""
    last = dict(
        _last_nudges.execute(
            connection, [{"desk": d, "before": ts} for d, ts in sorted(earliest.items())]
        ).all()
    )
    start = dict(earliest)
    if not last:
        return start, set()
    kept = _kept_nudges.execute(
        connection, [{"desk": d, "at": ts} for d, ts in sorted(last.items())]
    ).all()
    for device_id, started in kept:
        start[device_id] = as_utc(started)
    return start, {device_id for device_id, _ in kept}


def nudge_starts(events: Iterable[Event], calendar: Calendar) -> dict[str, datetime]:
    """Per desk, the earliest of ``events`` that can change its nudges."""
    since: dict[str, datetime] = {}
    for e in events:
        if e.type in NUDGE_TYPES:
            since[e.device_id] = min(e.ts, since.get(e.device_id, e.ts))
    return since


# --- daily insight rows ---------------------------------------------------------------------


def insight_days(event: Event, calendar: Calendar) -> set[date]:
    """The days whose insight row ``event`` can change."""
    if event.type is EventType.STOOD_UP:
        start = event.ts - timedelta(seconds=float(event.data["session_s"]))
        return {calendar.day_of(start)} | {
            day for day, _hour, _s in calendar.hour_pieces(start, event.ts)
        }
    if event.type is EventType.DRILL_STEP:
        return {calendar.day_of(event.ts)}
    if event.type is EventType.DRILL_COMPLETED:
        earliest = calendar.day_of(event.ts - timedelta(seconds=LONGEST_CIRCUIT_S))
        last = calendar.day_of(event.ts)
        return {earliest + timedelta(days=n) for n in range((last - earliest).days + 1)}
    return set()


def bout_column(length_s: float) -> str:
    for name, (low, high) in zip(BOUT_COLUMNS, BOUT_EDGES_MIN, strict=True):
        if length_s >= low * 60 and (high is None or length_s < high * 60):
            return name
    return BOUT_COLUMNS[0]  # a negative length cannot be stored (derive.check_event)


def recount_insights(
    connection: Connection, calendar: Calendar, pairs: Iterable[tuple[str, date]]
) -> int:
    """Recount the daily insight rows of ``pairs`` ((device_id, day)) from the sessions and
    drill events, in a few statements for all the desks (``sql.DeskStatement``); returns how
    many rows hold something."""
    days_of: dict[str, set[date]] = defaultdict(set)
    for device_id, day in pairs:
        days_of[device_id].add(day)
    if not days_of:
        return 0
    spans = [
        (d, calendar.bounds(min(days))[0], calendar.bounds(max(days))[1])
        for d, days in sorted(days_of.items())
    ]
    sessions: dict[str, list[Any]] = defaultdict(list)
    for device_id, *row in _sessions_reaching.execute(
        connection,
        [
            {"desk": d, "earliest": start - LONGEST_SESSION, "start": start, "end": end}
            for d, start, end in spans
        ],
    ):
        sessions[device_id].append(row)
    drills: dict[str, list[Any]] = defaultdict(list)
    circuit = timedelta(seconds=LONGEST_CIRCUIT_S)
    for row in _drill_events.execute(
        connection, [{"desk": d, "start": start, "end": end + circuit} for d, start, end in spans]
    ):
        drills[row.device_id].append(row)
    full = [
        row
        for d, days in sorted(days_of.items())
        for row in daily_insight_rows(d, days, sessions[d], drills[d], calendar)
    ]
    connection.execute(
        _DELETE_INSIGHTS,
        [
            {"b_desk": d, "b_day": day}
            for d, days in sorted(days_of.items())
            for day in sorted(days)
        ],
    )
    if full:
        connection.execute(DailyInsight.__table__.insert(), full)
    return len(full)


_insights = DailyInsight.__table__.c
# Every figure at zero, of its column's type (0.0 for seconds, 0 for counts).
_ZEROS = {name: _insights[name].type.python_type() for name in INSIGHT_FIGURES}
_sessions = SittingSession.__table__.c
_DELETE_INSIGHTS = delete(DailyInsight.__table__).where(
    _insights.device_id == bindparam("b_desk"), _insights.day == bindparam("b_day")
)


@DeskStatement
def _sessions_reaching(desks: int) -> Select[Any]:
    """Each desk's sessions reaching into [start, end) (none is longer than
    LONGEST_SESSION, so none began before ``earliest``)."""
    return select(
        _sessions.device_id, _sessions.started_at, _sessions.ended_at, _sessions.duration_s
    ).where(
        desk_terms(
            desks,
            lambda p: and_(
                _sessions.device_id == p("desk"),
                _sessions.started_at >= p("earliest"),
                _sessions.started_at < p("end"),
                _sessions.ended_at > p("start"),
            ),
        )
    )


@DeskStatement
def _drill_events(desks: int) -> Select[Any]:
    """Each desk's drill_step and drill_completed events in [start, end), by time."""
    return (
        select(
            _events.device_id,
            _events.boot_id,
            _events.seq,
            _events.type,
            _events.ts,
            _events.data,
        )
        .where(
            desk_terms(
                desks,
                lambda p: and_(
                    _events.device_id == p("desk"),
                    _events.ts >= p("start"),
                    _events.ts < p("end"),
                ),
            ),
            _events.type.in_((EventType.DRILL_STEP.value, EventType.DRILL_COMPLETED.value)),
        )
        .order_by(_events.ts, _events.seq)
    )


def daily_insight_rows(
    device_id: str,
    days: Iterable[date],
    sessions: Iterable[Sequence[Any]],
    drill_events: Sequence[Any],
    calendar: Calendar,
) -> list[dict[str, Any]]:
    """The DailyInsight rows of a desk's ``days`` that hold something, by day: from its
    sessions ((started_at, ended_at, duration_s), those reaching into the days) and its
    drill_step and drill_completed events (with ``boot_id``, ``type``, ``ts``, ``data``;
    sorted by time, and those up to a circuit's longest run after the days)."""
    rows = {day: {"device_id": device_id, "day": day, **_ZEROS} for day in days}
    for started, ended, length in sessions:
        first_day = calendar.day_of(started)
        if first_day in rows:
            rows[first_day][bout_column(length)] += 1
        for day, hour, seconds in calendar.hour_pieces(started, ended):
            if day in rows:
                rows[day][HOUR_COLUMNS[hour]] += seconds
    _count_steps(calendar, drill_events, rows)
    full = [row for row in rows.values() if any(row[name] for name in INSIGHT_FIGURES)]
    return sorted(full, key=lambda row: row["day"])


def _count_steps(
    calendar: Calendar, events: Sequence[Any], rows: dict[date, dict[str, Any]]
) -> None:
    """Drill steps per day into ``rows``: each step but those whose circuit (the boot's next
    drill_completed within a circuit's longest run) was done on the chair."""
    circuits: dict[str, list[Any]] = defaultdict(list)  # per boot, by time (and seq)
    for e in events:
        if e.type == EventType.DRILL_COMPLETED:
            circuits[e.boot_id].append(e)
    ends = {boot: [as_utc(c.ts) for c in rows] for boot, rows in circuits.items()}
    longest = timedelta(seconds=LONGEST_CIRCUIT_S)
    for step in events:
        if step.type != EventType.DRILL_STEP:
            continue
        at = as_utc(step.ts)
        day = calendar.day_of(at)
        if day not in rows:
            continue
        times = ends.get(step.boot_id, [])
        index = bisect_left(times, at)
        circuit = circuits[step.boot_id][index] if index < len(times) else None
        on_the_chair = circuit is not None and circuit.data.get("verified") is False
        if on_the_chair and times[index] <= at + longest:
            continue
        key = step.data.get("step")
        column = STEP_COLUMNS[EXERCISE_KEYS.index(key if key in _KNOWN_STEPS else OTHER_STEP)]
        rows[day][column] += 1


def insight_pairs(events: Iterable[Event], calendar: Calendar) -> set[tuple[str, date]]:
    return {(e.device_id, day) for e in events for day in insight_days(e, calendar)}


# --- rebuilding -----------------------------------------------------------------------------


def rebuild_insights(connection: Connection, calendar: Calendar, since: date | None = None) -> int:
    """Recompute every nudge and daily insight row (from ``since`` on, as earlier days'
    events may have been pruned); returns the daily rows kept."""
    start = None if since is None else calendar.bounds(since)[0]
    devices = set(connection.execute(select(SittingSession.device_id).distinct()).scalars())
    devices |= set(connection.execute(select(EventRow.device_id).distinct()).scalars())
    nudges: Table = Nudge.__table__  # type: ignore[assignment]
    table: Table = DailyInsight.__table__  # type: ignore[assignment]
    if start is None:
        connection.execute(nudges.delete())
        connection.execute(table.delete())
    kept = 0
    for device_id in sorted(devices):
        first = connection.execute(
            select(func.min(EventRow.ts)).where(EventRow.device_id == device_id)
        ).scalar_one()
        if first is not None:
            derive_nudges(
                connection, calendar, {device_id: max(as_utc(first), start or as_utc(first))}
            )
        pairs = _stored_days(connection, calendar, device_id, start)
        if start is not None:
            connection.execute(
                delete(table).where(table.c.device_id == device_id, table.c.day >= since)
            )
        kept += recount_insights(connection, calendar, pairs)
    return kept


def _stored_days(
    connection: Connection, calendar: Calendar, device_id: str, start: datetime | None
) -> set[tuple[str, date]]:
    """The (device, day) pairs a desk's stored sessions and drill events touch."""
    sessions = select(SittingSession.started_at, SittingSession.ended_at).where(
        SittingSession.device_id == device_id
    )
    steps = select(EventRow.ts).where(
        EventRow.device_id == device_id, EventRow.type == EventType.DRILL_STEP.value
    )
    if start is not None:
        sessions = sessions.where(SittingSession.ended_at > start)
        steps = steps.where(EventRow.ts >= start)
    days: set[date] = set()
    for started, ended in connection.execute(sessions):
        days.add(calendar.day_of(started))
        days |= {day for day, _hour, _s in calendar.hour_pieces(started, ended)}
    days |= {calendar.day_of(ts) for (ts,) in connection.execute(steps)}
    if start is not None:
        first = calendar.day_of(start)
        days = {day for day in days if day >= first}
    return {(device_id, day) for day in days}
