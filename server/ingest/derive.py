"""Derived tables from raw events: sitting sessions, drills and per-day rollups, and (through
server/ingest/insight_rows.py) the Insights page's nudges and daily insight rows.

A drill row keeps whether it counts (``verified``, ``protocol.drill_counts``); the rollups
count only those that do.

Only events that were newly inserted are passed here, so a replayed event never counts twice;
rollups are kept by adding each new event's share to its (device, local day) row, which is
also correct when events arrive out of order. ``recompute_rollups`` rebuilds rows from the
base tables (for repairs, to check the incremental path, and for the days an event left
when a synced copy corrected its time: ``take_synced_times``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, select, update

from sitwatch.calendar import Calendar
from sitwatch.clock import PLAUSIBLE_SINCE
from sitwatch.protocol import (
    DATA_SCHEMA,
    OPTIONAL_DATA,
    Event,
    EventType,
    ProtocolError,
    drill_counts,
)
from sitwatch.server import fleet_days, seat
from sitwatch.server.ingest.insight_rows import (
    NUDGE_TYPES,
    derive_nudges,
    insight_pairs,
    nudge_starts,
    rebuild_insights,
    recount_insights,
)
from sitwatch.server.models import (
    ROLLUP_FIGURES,
    ROLLUP_SUMS,
    DailyRollup,
    Drill,
    SittingSession,
    empty_figures,
)
from sitwatch.server.models import Event as EventRow
from sitwatch.server.sql import count_where, greatest, insert_rows

# Guards beyond the wire schema, so one odd event cannot poison a batch or a chart.
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_SEQ = 2**31 - 1  # an INTEGER column on PostgreSQL
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(2200, 1, 1, tzinfo=UTC)
# Inside those, a time the server believes (docs/protocol.md, "Plausible time"): not before
# the date before which a device itself takes its clock as unset, and not more than the
# config's ``future_margin_s`` ahead of the server's clock.
PLAUSIBLE_FLOOR = PLAUSIBLE_SINCE
_DURATION_KEYS = ("session_s", "away_s", "response_s", "snooze_s", "pause_s", "seated_s")


def check_event(event: Event) -> dict[str, Any]:
    """Checks the wire schema cannot express; returns the ``data`` to store (schema keys only,
    so arbitrary extra keys from a hostile sender never reach the database)."""
    if not EARLIEST_TS <= event.ts < LATEST_TS:
        raise ProtocolError(
            f"ts {event.ts.isoformat()} outside {EARLIEST_TS.year}-{LATEST_TS.year}"
        )
    if event.seq is not None and event.seq > MAX_SEQ:
        raise ProtocolError(f"seq {event.seq} too large")
    data = {key: event.data[key] for key in DATA_SCHEMA[event.type]}
    data |= {key: event.data[key] for key in OPTIONAL_DATA.get(event.type, {}) if key in event.data}
    for key, value in data.items():
        if key in _DURATION_KEYS and not 0 <= value <= MAX_DURATION_S:
            raise ProtocolError(
                f"data field {key!r} must be 0..{MAX_DURATION_S:.0f} s, got {value}"
            )
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SEQ:
            raise ProtocolError(f"data field {key!r} out of range")
    return data


def plausible(event: Event, now: datetime, future_margin_s: float) -> Event:
    """``event``, or, when its time cannot be right (before PLAUSIBLE_FLOOR or more than
    ``future_margin_s`` after the server's ``now``), a copy dated ``now`` (when it arrived)
    with ``clock_synced`` false. Kept and acked rather than refused: a refused event is never
    acked, so the desk would send it again forever, and its sitting time would be lost."""
    if PLAUSIBLE_FLOOR <= event.ts <= now + timedelta(seconds=future_margin_s):
        return event
    return replace(event, ts=now, clock_synced=False)


def session_start(event: Event) -> datetime:
    return event.ts - timedelta(seconds=float(event.data["session_s"]))


def session_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": e.id,
            "device_id": e.device_id,
            "started_at": session_start(e),
            "ended_at": e.ts,
            "duration_s": float(e.data["session_s"]),
        }
        for e in events
        if e.type is EventType.STOOD_UP
    ]


def drill_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": e.id,
            "device_id": e.device_id,
            "ts": e.ts,
            "guided": e.data["guided"],
            "verified": drill_counts(e),
        }
        for e in events
        if e.type is EventType.DRILL_COMPLETED
    ]


def _empty_rollup(device_id: str, day: date) -> dict[str, Any]:
    return {"device_id": device_id, "day": day, **empty_figures()}


def rollup_deltas(events: Iterable[Event], calendar: Calendar) -> list[dict[str, Any]]:
    """Each (device, day)'s share of ``events``, sorted by key (a stable lock order)."""
    rows: dict[tuple[str, date], dict[str, Any]] = {}

    def row_for(device_id: str, ts: datetime) -> dict[str, Any]:
        key = (device_id, calendar.day_of(ts))
        if key not in rows:
            rows[key] = _empty_rollup(*key)
        return rows[key]

    for e in events:
        if e.type is EventType.STOOD_UP:
            length = float(e.data["session_s"])
            row = row_for(e.device_id, session_start(e))
            row["seated_s"] += length
            row["sessions"] += 1
            row["longest_s"] = max(row["longest_s"], length)
        elif e.type is EventType.BREAK:
            row_for(e.device_id, e.ts)["breaks"] += 1
        elif e.type is EventType.PROMPT:
            row_for(e.device_id, e.ts)["prompts"] += 1
        elif e.type is EventType.PROMPT_ACK:
            row = row_for(e.device_id, e.ts)
            row["prompts_answered"] += 1
            row["prompts_answered_by_drill"] += int(e.data.get("how") == "drill")
        elif e.type is EventType.DRILL_COMPLETED and drill_counts(e):
            row_for(e.device_id, e.ts)["drills"] += 1
    return [rows[key] for key in sorted(rows)]


def add_to_rollups(connection: Connection, deltas: list[dict[str, Any]]) -> None:
    if not deltas:
        return
    table: Table = DailyRollup.__table__  # type: ignore[assignment]

    def add(stmt: Any) -> Any:
        new = stmt.excluded
        updates = {name: table.c[name] + new[name] for name in ROLLUP_SUMS}
        updates["longest_s"] = greatest(table.c.longest_s, new.longest_s)
        return stmt.on_conflict_do_update(index_elements=["device_id", "day"], set_=updates)

    insert_rows(connection, table, deltas, add)


def _keep_first(stmt: Any) -> Any:
    return stmt.on_conflict_do_nothing(index_elements=["event_id"])


def derive(
    connection: Connection,
    new_events: list[Event],
    calendar: Calendar,
    recount: Iterable[tuple[str, date]] = (),
) -> None:
    """Sessions, drills, rollup figures (and the fleet's per day), nudges, daily insight
    rows and the seat state for events that were just inserted; ``recount``: (device, day)
    rows to count again from the base tables (``take_synced_times``)."""
    for model, rows in (
        (SittingSession, session_rows(new_events)),
        (Drill, drill_rows(new_events)),
    ):
        if rows:
            insert_rows(connection, model.__table__, rows, _keep_first)
    deltas = rollup_deltas(new_events, calendar)
    add_to_rollups(connection, deltas)
    # Last, from the base tables as they now are. Another worker cannot change a desk's rows
    # meanwhile: a batch with a desk's events first updates its devices row (store_batch), which
    # holds off any other batch with that desk's events until this one commits.
    recount = set(recount)
    recompute_rollups(connection, calendar, recount)
    recount_insights(connection, calendar, recount | insight_pairs(new_events, calendar))
    since = nudge_starts(new_events, calendar)
    for device_id, day in recount:
        start = calendar.bounds(day)[0]
        since[device_id] = min(start, since.get(device_id, start))
    derive_nudges(connection, calendar, since)
    seat.refresh(connection, seat.touched_by(new_events) | {device_id for device_id, _ in recount})
    # Last: every batch locks its fleet rows after all its other rows (server/fleet_days.py).
    fleet_days.update(connection, deltas, {day for _, day in recount})


def take_synced_times(
    connection: Connection, copies: Iterable[Event], calendar: Calendar
) -> tuple[int, list[tuple[str, date]]]:
    """Events stored with ``clock_synced`` false take the time of these synced copies (a
    desk re-stamps an event once its clock has synced: docs/protocol.md), and so do their
    session and drill rows. Returns how many were corrected and the (device, day) rollups
    the corrections left or joined, for ``derive`` to recount."""
    by_id = {copy.id: copy for copy in copies if copy.clock_synced}
    if not by_id:
        return 0, []
    stored = connection.execute(
        select(EventRow.event_id, EventRow.device_id, EventRow.type, EventRow.ts, EventRow.data)
        .where(EventRow.event_id.in_(sorted(by_id)), EventRow.clock_synced.is_(False))
        .order_by(EventRow.event_id)
    ).all()
    corrected: list[Event] = []
    recount: set[tuple[str, date]] = set()
    for event_id, device_id, kind, ts, data in stored:
        copy = by_id[event_id]
        if copy.device_id != device_id:  # an event id is a desk's own: others cannot move it
            continue
        new = replace(copy, type=EventType(kind), data=data)  # the stored event, re-timed
        old = replace(new, ts=ts)
        days = [
            {(row["device_id"], row["day"]) for row in rollup_deltas([e], calendar)}
            for e in (old, new)
        ]
        if days[0] != days[1] or new.type in NUDGE_TYPES:
            recount |= days[0] | days[1]
        recount |= insight_pairs([old, new], calendar)  # hours and steps: the exact times
        corrected.append(new)
    if not corrected:
        return 0, []
    events: Table = EventRow.__table__  # type: ignore[assignment]
    connection.execute(
        update(events)
        .where(events.c.event_id == bindparam("b_id"))
        .values(ts=bindparam("b_ts"), clock_synced=True),
        [{"b_id": e.id, "b_ts": e.ts} for e in corrected],
    )
    sessions: Table = SittingSession.__table__  # type: ignore[assignment]
    stood = [e for e in corrected if e.type is EventType.STOOD_UP]
    if stood:
        connection.execute(
            update(sessions)
            .where(sessions.c.event_id == bindparam("b_id"))
            .values(started_at=bindparam("b_start"), ended_at=bindparam("b_end")),
            [{"b_id": e.id, "b_start": session_start(e), "b_end": e.ts} for e in stood],
        )
    drills: Table = Drill.__table__  # type: ignore[assignment]
    done = [e for e in corrected if e.type is EventType.DRILL_COMPLETED]
    if done:
        connection.execute(
            update(drills)
            .where(drills.c.event_id == bindparam("b_id"))
            .values(ts=bindparam("b_ts")),
            [{"b_id": e.id, "b_ts": e.ts} for e in done],
        )
    return len(corrected), sorted(recount)


def recompute_rollups(
    connection: Connection, calendar: Calendar, days: Iterable[tuple[str, date]]
) -> None:
    """Rebuild the rollup rows of ``days`` ((device_id, day) pairs) from the base tables."""
    rollups: Table = DailyRollup.__table__  # type: ignore[assignment]
    for device_id, day in sorted(set(days)):
        start, end = calendar.bounds(day)
        row = _empty_rollup(device_id, day)
        sessions = connection.execute(
            select(
                func.count(),
                func.sum(SittingSession.duration_s),
                func.max(SittingSession.duration_s),
            ).where(
                SittingSession.device_id == device_id,
                SittingSession.started_at >= start,
                SittingSession.started_at < end,
            )
        ).one()
        row["sessions"] = sessions[0]
        row["seated_s"] = sessions[1] or 0.0
        row["longest_s"] = sessions[2] or 0.0
        by_drill = (EventRow.type == EventType.PROMPT_ACK.value) & (
            EventRow.data["how"].as_string() == "drill"
        )
        counts = connection.execute(
            select(
                count_where(EventRow.type == EventType.BREAK.value),
                count_where(EventRow.type == EventType.PROMPT.value),
                count_where(EventRow.type == EventType.PROMPT_ACK.value),
                count_where(by_drill),
            ).where(
                EventRow.device_id == device_id,
                EventRow.ts >= start,
                EventRow.ts < end,
                EventRow.type.in_(
                    [EventType.BREAK.value, EventType.PROMPT.value, EventType.PROMPT_ACK.value]
                ),
            )
        ).one()
        row["breaks"], row["prompts"], row["prompts_answered"] = counts[0], counts[1], counts[2]
        row["prompts_answered_by_drill"] = counts[3]
        row["drills"] = connection.execute(
            select(func.count()).where(
                Drill.device_id == device_id, Drill.ts >= start, Drill.ts < end, Drill.verified
            )
        ).scalar_one()
        connection.execute(
            rollups.delete().where(rollups.c.device_id == device_id, rollups.c.day == day)
        )
        if any(row[name] for name in ROLLUP_FIGURES):
            connection.execute(rollups.insert(), row)


def rebuild_all_rollups(
    connection: Connection, calendar: Calendar, since: date | None = None
) -> int:
    """Recompute every rollup, fleet day, nudge and daily insight row and every seat state
    (after changing the time zone or day start); returns the rollup rows. ``since``: only
    days from then on, as earlier days' events may have been pruned (server/retention.py)
    and their rollups are all that is left of them."""
    pairs: set[tuple[str, date]] = set()
    for device_id, started in connection.execute(
        select(SittingSession.device_id, SittingSession.started_at)
    ):
        pairs.add((device_id, calendar.day_of(started)))
    counted = [EventType.BREAK, EventType.PROMPT, EventType.PROMPT_ACK, EventType.DRILL_COMPLETED]
    for device_id, ts in connection.execute(
        select(EventRow.device_id, EventRow.ts).where(EventRow.type.in_([k.value for k in counted]))
    ):
        pairs.add((device_id, calendar.day_of(ts)))
    rollups = DailyRollup.__table__
    if since is None:
        connection.execute(rollups.delete())
    else:
        pairs = {(device_id, day) for device_id, day in pairs if day >= since}
        connection.execute(rollups.delete().where(rollups.c.day >= since))
    recompute_rollups(connection, calendar, pairs)
    rebuild_insights(connection, calendar, since)
    seat.refresh(connection)
    fleet_days.refresh(connection, None)
    return len(pairs)
