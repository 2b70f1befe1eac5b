"""The fleet's records per day (``models.FleetDay``): every desk's drills that count summed,
and the longest session of any desk, kept beside the rollups they are made of.

Ingest adds a batch's rollup changes (``add``) and counts again the days whose rollups it
recomputed (``refresh``); an erased desk's days are counted again too. Both start by
locking the batch's fleet rows, in day order and after every other row the batch writes:
two ingest workers then take turns on a day, and a recount reads the rollups only once no
other worker holds a change to them that its own row does not show yet.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import Connection, Table, func, select

from sitwatch.server.models import DailyRollup, FleetDay
from sitwatch.server.sql import greatest, insert_rows

_TABLE: Table = FleetDay.__table__  # type: ignore[assignment]


def _add(stmt: Any) -> Any:
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["day"],
        set_={
            "drills": _TABLE.c.drills + new.drills,
            "longest_s": greatest(_TABLE.c.longest_s, new.longest_s),
        },
    )


def _replace(stmt: Any) -> Any:
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["day"], set_={"drills": new.drills, "longest_s": new.longest_s}
    )


def update(
    connection: Connection,
    deltas: Iterable[Mapping[str, Any]],
    recounted: Collection[date] = (),
) -> None:
    """Add the rollup ``deltas`` (rows of ``derive.rollup_deltas``) to their days, except
    days in ``recounted``: their rollups were recomputed, so they are counted again."""
    days: dict[date, dict[str, Any]] = {
        day: {"day": day, "drills": 0, "longest_s": 0.0} for day in recounted
    }
    for delta in deltas:
        day = delta["day"]
        row = days.setdefault(day, {"day": day, "drills": 0, "longest_s": 0.0})
        if day not in recounted:
            row["drills"] += delta["drills"]
            row["longest_s"] = max(row["longest_s"], delta["longest_s"])
    if not days:
        return
    # One statement for every day of the batch, in day order: it adds the deltas and locks
    # the rows the recount below writes.
    insert_rows(connection, _TABLE, [days[day] for day in sorted(days)], _add)
    refresh(connection, recounted, locked=True)


def refresh(connection: Connection, days: Collection[date] | None, locked: bool = False) -> None:
    """Count ``days`` again from the rollups (every day: None). ``locked``: their rows are
    already this transaction's (``update``)."""
    if days is not None and not days:
        return
    if days is not None and not locked:
        rows = [{"day": day, "drills": 0, "longest_s": 0.0} for day in sorted(days)]
        insert_rows(connection, _TABLE, rows, _add)  # adds nothing: takes the row locks
    stmt = select(DailyRollup.day, func.sum(DailyRollup.drills), func.max(DailyRollup.longest_s))
    if days is not None:
        stmt = stmt.where(DailyRollup.day.in_(sorted(days)))
    found = {
        day: {"day": day, "drills": int(drills or 0), "longest_s": float(longest or 0.0)}
        for day, drills, longest in connection.execute(stmt.group_by(DailyRollup.day))
    }
    gone = _TABLE.delete()
    if days is not None:
        gone = gone.where(_TABLE.c.day.in_(sorted(set(days) - set(found))))
    elif found:
        gone = gone.where(_TABLE.c.day.not_in(sorted(found)))
    connection.execute(gone)
    if found:
        insert_rows(connection, _TABLE, [found[day] for day in sorted(found)], _replace)
