"""Dashboard users: created, listed, reset, disabled and deleted from the CLI, passwords kept
as werkzeug hashes; the first user is an admin (server/members.py holds roles and desk links).
A new password or a disable ends the user's sessions (``end_sessions``)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from sitwatch.server.models import ADMIN, MEMBER, ROLES, User

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
# Checked when the user does not exist, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("sitwatch-no-such-user")


class UserError(ValueError):
    """A username or password that cannot be used; the message says why."""


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise UserError(f"bad username {username!r}: use 1-64 of A-Z a-z 0-9 _ . @ -")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"password too short: use at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"password too long: at most {MAX_PASSWORD_CHARS} characters")
    return password


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def create_user(session: Session, username: str, password: str, role: str | None = None) -> User:
    """Add a user (flushed, not committed: the caller commits). ``role`` defaults to admin
    for the first user, so a home install needs no more, and member after. Raises
    UserError."""
    check_username(username)
    check_password(password)
    if find_user(session, username) is not None:
        raise UserError(f"user {username!r} already exists")
    if role is None:
        role = MEMBER if session.scalars(select(User.id).limit(1)).first() else ADMIN
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        shares_with_admins=False,
    )
    session.add(user)
    session.flush()
    return user


def existing_user(session: Session, username: str) -> User:
    """The user called ``username``. Raises UserError if there is none."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.username)).all()


def end_sessions(user: User) -> None:
    """Every login session of ``user`` stops working at its next request (the session's id
    carries the version; auth's user loader compares it)."""
    user.session_version += 1


def set_password(session: Session, username: str, password: str) -> User:
    """Replace a user's password and end their sessions (flushed, not committed). Raises
    UserError."""
    check_password(password)
    user = existing_user(session, username)
    user.password_hash = generate_password_hash(password)
    end_sessions(user)
    session.flush()
    return user


def set_disabled(session: Session, username: str, disabled: bool) -> User:
    """Disable a user (no login, sessions ended) or enable them again (flushed, not
    committed). Raises UserError."""
    user = existing_user(session, username)
    user.disabled = disabled
    if disabled:
        end_sessions(user)
    session.flush()
    return user


def delete_user(session: Session, username: str) -> None:
    """Remove a user (flushed, not committed); their audit entries stay. Raises UserError."""
    session.delete(existing_user(session, username))
    session.flush()


def verify_user(session: Session, username: str, password: str) -> User | None:
    """The user if ``password`` is theirs and they are not disabled, else None (unknown
    users cost the same time)."""
    user = find_user(session, username) if USERNAME.match(username) else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or user.disabled:
        return None
    return user
