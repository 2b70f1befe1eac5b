"""The audit log: one row per thing done (who, when, what, to what, from which address), the
action names, and the latest entries for the /audit page and ``sitwatch-server audit``."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sitwatch.calendar import as_utc
from sitwatch.server.models import AuditEntry

LOGIN = "login"
LOGIN_FAILED = "login.failed"  # counted by the login throttle
LOGIN_LOCKED = "login.locked"  # refused unchecked during a lock-out; not counted again
LOGOUT = "logout"
DEVICE_RENAME = "device.rename"
DEVICE_SETTINGS = "device.settings"
DEVICE_PAUSE = "device.pause"
DEVICE_RESUME = "device.resume"
USER_CREATE = "user.create"
USER_RESET = "user.reset"
USER_DISABLE = "user.disable"
USER_ENABLE = "user.enable"
USER_DELETE = "user.delete"
USER_ROLE = "user.role"
USER_LINK = "user.link"
USER_UNLINK = "user.unlink"
DATA_EXPORT = "data.export"
DATA_ERASE = "data.erase"
EVENTS_PRUNE = "events.prune"
DESK_ADD = "desk.add"
DESK_REVOKE = "desk.revoke"

ACTOR_CHARS = AuditEntry.__table__.columns["actor"].type.length
TARGET_CHARS = AuditEntry.__table__.columns["target"].type.length


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    address: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to ``session`` (not committed: it lands with the change it describes)."""
    entry = AuditEntry(
        at=at,
        actor=actor[:ACTOR_CHARS],
        address=address,
        action=action,
        target=None if target is None else target[:TARGET_CHARS],
        detail=detail,
    )
    session.add(entry)
    return entry


def cli_actor() -> str:
    """Who ran a ``sitwatch-server`` command: the system user, as ``cli:<name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # no name for this uid (a container)
        return "cli:?"


def latest(session: Session, limit: int = 100) -> Sequence[AuditEntry]:
    """The newest ``limit`` entries, newest first."""
    return session.scalars(
        select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    ).all()


def last_logins(session: Session) -> dict[str, datetime]:
    """Each username's latest successful login."""
    rows = session.execute(
        select(AuditEntry.actor, func.max(AuditEntry.at))
        .where(AuditEntry.action == LOGIN)
        .group_by(AuditEntry.actor)
    )
    return {actor: as_utc(at) for actor, at in rows}


def describe(detail: dict[str, Any] | None) -> str:
    """An entry's detail on one line: ``key=value`` pairs in the order written."""
    return " ".join(f"{key}={value}" for key, value in (detail or {}).items())
