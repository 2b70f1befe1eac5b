"""Login throttling, counted from the audit log's failed logins so every web process (and
every worker of one) sees the same count: an account is locked for a while after
``ACCOUNT_FAILURES`` failures within ``WINDOW`` since its last successful login, an address
after ``ADDRESS_FAILURES`` failures within ``WINDOW`` whatever their accounts. During a
lock-out the password is not even checked, so a right guess then tells an attacker nothing.

A lock ends when the failures that caused it age out of the window (refused attempts are
not failures, so hammering a locked account does not extend it)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from sitwatch.server.audit import LOGIN, LOGIN_FAILED
from sitwatch.server.models import AuditEntry

WINDOW = timedelta(minutes=15)
ACCOUNT_FAILURES = 5
# Higher: several people of one office may share an address (a NAT, a proxy not trusted).
ADDRESS_FAILURES = 20


def locked_until(
    session: Session, username: str, address: str | None, at: datetime
) -> datetime | None:
    """When the lock-out on ``username`` or ``address`` ends, or None if neither is locked."""
    since = at - WINDOW
    last_login = session.scalar(
        select(func.max(AuditEntry.at)).where(
            AuditEntry.action == LOGIN, AuditEntry.actor == username
        )
    )
    ends = [_lock_end(session, AuditEntry.actor == username, max(since, last_login or since))]
    if address is not None:
        ends.append(_lock_end(session, AuditEntry.address == address, since, ADDRESS_FAILURES))
    ends_after_now = [end for end in ends if end is not None and end > at]
    return max(ends_after_now, default=None)


def _lock_end(
    session: Session,
    whose: ColumnElement[bool],
    since: datetime,
    limit: int = ACCOUNT_FAILURES,
) -> datetime | None:
    """The end of the lock that the newest ``limit`` failures (``whose``) after ``since``
    make: when the oldest of them leaves the window. None if there are fewer."""
    times = session.scalars(
        select(AuditEntry.at)
        .where(whose, AuditEntry.action == LOGIN_FAILED, AuditEntry.at > since)
        .order_by(AuditEntry.at.desc())
        .limit(limit)
    ).all()
    return times[-1] + WINDOW if len(times) == limit else None
