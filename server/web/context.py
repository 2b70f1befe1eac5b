"""What a request's views share, as Flask's tutorial keeps it in ``db.py``: the app's
``WebState`` (config, engine, sessions, calendar), the request's database session, the
current time, the viewer (what the logged-in user may see, server/web/access.py) and the
audit entry for what the request does. Blueprints import these, never the factory module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, g, request
from flask_login import current_user
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sitwatch.calendar import Calendar, as_utc
from sitwatch.server import audit
from sitwatch.server.config import ServerConfig
from sitwatch.server.members import desks_of, shared_desks
from sitwatch.server.models import ADMIN, User
from sitwatch.server.queries.scope import Scope
from sitwatch.server.web.access import Viewer


@dataclass(frozen=True)
class WebState:
    """What the views need besides the request: kept in ``app.extensions["sitwatch"]``."""

    config: ServerConfig
    engine: Engine
    sessions: sessionmaker[Session]
    calendar: Calendar


def web_state() -> WebState:
    return current_app.extensions["sitwatch"]


def db() -> Session:
    """The request's database session, closed when the request ends."""
    if "db" not in g:
        g.db = web_state().sessions()
    return g.db


def close_db(_exc: BaseException | None) -> None:
    """Registered with ``teardown_appcontext``: closes the session ``db`` opened, if any."""
    session = g.pop("db", None)
    if session is not None:
        session.close()


def record(
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> None:
    """An audit entry in the request's session, committed with the change it describes:
    by ``actor`` (default the logged-in user) from the client's address."""
    audit.record(
        db(),
        at=now(),
        actor=actor if actor is not None else current_user.username,
        action=action,
        address=request.remote_addr,
        target=target,
        detail=detail,
    )


def now() -> datetime:
    """The current UTC time (tests freeze it with ``SITWATCH_NOW``)."""
    clock: Callable[[], datetime] = current_app.config["SITWATCH_NOW"]
    return as_utc(clock())


def current_account() -> User | None:
    """The logged-in user's row (None when nobody is logged in)."""
    if not current_user.is_authenticated:
        return None
    return db().get(User, int(current_user.id))


def viewer() -> Viewer:
    """What the logged-in user may see and change (once per request); nobody logged in
    sees no desk."""
    if "viewer" not in g:
        account = current_account()
        privacy = web_state().config.privacy
        if account is None:
            g.viewer = Viewer(is_admin=False)
        else:
            is_admin = account.role == ADMIN
            g.viewer = Viewer(
                is_admin=is_admin,
                own_desks=desks_of(db(), account.id),
                shared_desks=shared_desks(db()) if is_admin else frozenset(),
                office_mode=privacy.office_mode,
                min_group=privacy.min_group,
            )
    return g.viewer


def viewer_scope() -> Scope:
    """The desks whose figures the logged-in viewer may see, which every query is given."""
    return viewer().scope
