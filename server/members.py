"""Roles and desk links: which users are admins, which desks are a member's own, and whose
desks are shared with admins. The web layer turns these into what a viewer may see
(server/web/access.py); the CLI and the admins' Users page change them."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from sitwatch.server.models import ADMIN, ROLES, DeskLink, Device, User
from sitwatch.server.users import UserError, find_user


def existing_user(session: Session, username: str) -> User:
    """The user ``username``; raises UserError if there is none."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def set_role(session: Session, username: str, role: str) -> User:
    """Make ``username`` a member or an admin (flushed, not committed). Refuses to demote
    the last admin, who alone could undo it from the dashboard."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    user = existing_user(session, username)
    if user.role == ADMIN and role != ADMIN and len(admins(session)) == 1:
        raise UserError(f"{username!r} is the only admin: make another user admin first")
    user.role = role
    session.flush()
    return user


def admins(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.role == ADMIN).order_by(User.id)))


def desks_of(session: Session, user_id: int) -> frozenset[str]:
    """The desk ids linked to the user."""
    rows = session.scalars(select(DeskLink.device_id).where(DeskLink.user_id == user_id))
    return frozenset(rows)


def members_of(session: Session, device_id: str) -> list[User]:
    """The users a desk is linked to."""
    query = select(User).join(DeskLink, DeskLink.user_id == User.id)
    return list(session.scalars(query.where(DeskLink.device_id == device_id).order_by(User.id)))


def shared_desks(session: Session) -> frozenset[str]:
    """Desks linked to a user who shares their desks with admins (office privacy mode)."""
    query = select(DeskLink.device_id).join(User, DeskLink.user_id == User.id)
    return frozenset(session.scalars(query.where(User.shares_with_admins.is_(True))))


def link_desk(session: Session, username: str, device_id: str) -> bool:
    """Link a desk to a user (flushed, not committed); False if it already was. The desk
    need not have reported yet: it shows once it does."""
    user = existing_user(session, username)
    if device_id in desks_of(session, user.id):
        return False
    session.add(DeskLink(user_id=user.id, device_id=device_id))
    session.flush()
    return True


def unlink_desk(session: Session, username: str, device_id: str) -> bool:
    """Remove a desk from a user's own (flushed, not committed); False if it was not linked."""
    user = existing_user(session, username)
    found = session.execute(
        delete(DeskLink).where(DeskLink.user_id == user.id, DeskLink.device_id == device_id)
    )
    session.flush()
    return bool(found.rowcount)  # type: ignore[attr-defined]


def is_known_desk(session: Session, device_id: str) -> bool:
    return session.get(Device, device_id) is not None
