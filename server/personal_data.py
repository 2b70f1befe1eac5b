"""A person's data, for the GDPR's access and erasure (docs/privacy.md): everything stored
about the desks linked to a user (desk rows and settings, the desks' answers to them, raw
events, sessions, drills, nudges, daily rollups and daily insight figures) and the account
itself with its daily goal, exported as JSON or as CSV files in a zip; and erased, by desk
or by person."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from sitwatch.calendar import as_utc
from sitwatch.server import fleet_days
from sitwatch.server.members import desks_of, members_of
from sitwatch.server.models import (
    ConfigResult,
    DailyInsight,
    DailyRollup,
    DeskLink,
    Device,
    Drill,
    Event,
    Nudge,
    PersonalGoal,
    SittingSession,
    User,
)

EXPORT_FORMAT = 1  # bumped if the export's shape changes
# A desk's rows, table by table, in the order they are erased (devices last: the others
# refer to it).
DESK_TABLES: tuple[type[Any], ...] = (
    Event,
    SittingSession,
    Drill,
    Nudge,
    DailyRollup,
    DailyInsight,
    ConfigResult,
    DeskLink,
    Device,
)
# Columns never exported: the password hash is no one's business, not even its owner's.
ACCOUNT_COLUMNS = ("username", "role", "shares_with_admins")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _rows(session: Session, model: type[Any], device_ids: Iterable[str]) -> list[dict[str, Any]]:
    table: Table = model.__table__
    column = table.c.id if model is Device else table.c.device_id
    keys = [c for c in table.c if not (c.primary_key and c.name == "id" and model is not Device)]
    query = select(*keys).where(column.in_(sorted(device_ids))).order_by(*table.primary_key)
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in session.execute(query)]


def export_of(session: Session, user: User) -> dict[str, Any]:
    """Everything stored about ``user`` and their desks, as JSON-ready tables."""
    desks = desks_of(session, user.id)
    found: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "account": {name: getattr(user, name) for name in ACCOUNT_COLUMNS},
        "desks": _rows(session, Device, desks),
        "config_results": _rows(session, ConfigResult, desks),
        "events": _rows(session, Event, desks),
        "sessions": _rows(session, SittingSession, desks),
        "drills": _rows(session, Drill, desks),
        "nudges": _rows(session, Nudge, desks),
        "daily_rollups": _rows(session, DailyRollup, desks),
        "daily_insights": _rows(session, DailyInsight, desks),
    }
    found["account"]["desks"] = sorted(desks)
    found["goal"] = _goal_rows(session, user)
    return found


def _goal_rows(session: Session, user: User) -> list[dict[str, Any]]:
    """The daily goal the user chose (none: an empty table)."""
    table: Table = PersonalGoal.__table__
    keys = [c for c in table.c if c.name != "user_id"]
    query = select(*keys).where(table.c.user_id == user.id)
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in session.execute(query)]


def export_json(found: dict[str, Any]) -> str:
    return json.dumps(found, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def _csv_cell(value: Any) -> Any:
    """JSON columns as JSON text; text starting like a formula made inert for spreadsheets."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_zip(found: dict[str, Any]) -> bytes:
    """The export as one CSV file per table (and account.csv), in a zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        account = {**found["account"], "desks": " ".join(found["account"]["desks"])}
        tables = {"account": [account]}
        tables.update({k: v for k, v in found.items() if isinstance(v, list)})
        for name, rows in tables.items():
            text = io.StringIO()
            if rows:
                writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\r\n")
                writer.writeheader()
                writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
            archive.writestr(f"{name}.csv", text.getvalue())
    return buffer.getvalue()


@dataclass(frozen=True)
class Erased:
    """What an erasure removed: rows per table, and desks left alone (linked to others)."""

    rows: dict[str, int]
    desks: tuple[str, ...]
    kept_desks: tuple[str, ...] = ()
    user: str | None = None


def erase_desk(session: Session, device_id: str) -> dict[str, int]:
    """Delete every row about one desk (flushed, not committed); rows deleted per table."""
    counts: dict[str, int] = {}
    days = set(session.scalars(select(DailyRollup.day).where(DailyRollup.device_id == device_id)))
    for model in DESK_TABLES:
        table: Table = model.__table__
        column = table.c.id if model is Device else table.c.device_id
        result = session.execute(delete(table).where(column == device_id))
        counts[table.name] = result.rowcount  # type: ignore[attr-defined]
    fleet_days.refresh(session.connection(), days)  # the fleet's records without the desk
    session.flush()
    return counts


def erase_user(session: Session, user: User) -> Erased:
    """Delete a person: their account, and every desk linked to them alone. A desk linked to
    someone else too is kept (its link to this user goes with the account); erase it by
    desk if it must go (flushed, not committed)."""
    totals: dict[str, int] = {}
    erased, kept = [], []
    for device_id in sorted(desks_of(session, user.id)):
        if any(other.id != user.id for other in members_of(session, device_id)):
            kept.append(device_id)
            continue
        for table, count in erase_desk(session, device_id).items():
            totals[table] = totals.get(table, 0) + count
        erased.append(device_id)
    name = user.username
    session.execute(delete(DeskLink).where(DeskLink.user_id == user.id))
    session.execute(delete(PersonalGoal).where(PersonalGoal.user_id == user.id))
    session.delete(user)
    session.flush()
    totals["users"] = 1
    return Erased(rows=totals, desks=tuple(erased), kept_desks=tuple(kept), user=name)
