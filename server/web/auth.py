"""Login and logout (Flask-Login): every page needs a logged-in user except /login, static
files and /healthz. Users are created from the CLI (``sitwatch-server create-user``) and
checked by users.verify_user; repeated failures lock an account or an address out for a
while (login_throttle). A session's id carries the user's session version, so logout, a new
password or a disabled account ends it on the server, even in a copied cookie. Logins,
failed ones and logouts go to the audit log."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length

from sitwatch.server.audit import LOGIN, LOGIN_FAILED, LOGIN_LOCKED, LOGOUT
from sitwatch.server.login_throttle import locked_until
from sitwatch.server.models import ADMIN, User
from sitwatch.server.users import end_sessions, verify_user
from sitwatch.server.web.context import db, now, record, viewer

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

PUBLIC_ENDPOINTS = frozenset({"auth.login", "static", "healthz"})

P = ParamSpec("P")
R = TypeVar("R")


class DashboardUser(UserMixin):
    """The logged-in user as Flask-Login sees it (the session stores only ``get_id()``)."""

    def __init__(self, user: User) -> None:
        self.id = str(user.id)
        self.username = user.username
        self.session_version = user.session_version

    def get_id(self) -> str:
        """What the session keeps: the user's id and session version, ``"<id>:<version>"``."""
        return f"{self.id}:{self.session_version}"


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    submit = SubmitField("Log out")


@login_manager.user_loader
def _load_user(session_id: str) -> DashboardUser | None:
    """The session's user while its version is the user's current one and they are enabled;
    otherwise the session has been ended (logout, new password, disabled, deleted)."""
    user_id, _, version = session_id.partition(":")
    try:
        key, session_version = int(user_id), int(version)
    except ValueError:  # garbage, or a session from before versions existed
        return None
    user = db().get(User, key)
    if user is None or user.disabled or user.session_version != session_version:
        return None
    return DashboardUser(user)


def admin_only(view: Callable[P, R]) -> Callable[P, R]:
    """For views only admins may use (the audit log): 401 before login, 403 for a member."""

    @wraps(view)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user.is_authenticated:
            abort(401)
        if not viewer().is_admin:
            abort(403, "only an admin may do this")
        return view(*args, **kwargs)

    return checked


def _safe_next(target: str | None, home: str | None = None) -> str:
    """Only a path on this site: never an open redirect to another host, and nothing a
    Location header cannot carry (a CR or LF would be a header injection); else ``home``
    (default the overview)."""
    home = home or url_for("overview.index")
    if not target or not target.startswith("/") or target.startswith("//"):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return home
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target):
        return home
    return target


def _require_login() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.path.startswith("/api/"):
        return jsonify(error="login required"), 401
    wanted = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    return redirect(url_for("auth.login", next=wanted))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    app.before_request(_require_login)

    @app.context_processor
    def _logout_form() -> dict[str, Any]:
        # formdata=None: the header's form never reads the request's body, so an error page
        # about that body (413: too large) can still be drawn.
        logged_in = current_user.is_authenticated
        return {"logout_form": LogoutForm(formdata=None) if logged_in else None}


def _lock_message(until: datetime, current: datetime) -> str:
    minutes = math.ceil((until - current).total_seconds() / 60)
    return (
        "Too many failed logins for this account or from this address: "
        f"try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form)
    username, address, current = form.username.data or "", request.remote_addr, now()
    until = locked_until(db(), username, address, current)
    if until is not None:
        record(LOGIN_LOCKED, actor=username)
        db().commit()
        log.warning("locked out login for %r from %s until %s", username, address, until)
        flash(_lock_message(until, current), "error")
        response = make_response(render_template("login.html", form=form), 429)
        response.headers["Retry-After"] = str(math.ceil((until - current).total_seconds()))
        return response
    user = verify_user(db(), username, form.password.data or "")
    if user is None:
        record(LOGIN_FAILED, actor=username)
        db().commit()
        log.warning("failed login for %r from %s", username, address)
        flash("Wrong username or password.", "error")
        until = locked_until(db(), username, address, current)
        if until is not None:
            flash(_lock_message(until, current), "error")
        return render_template("login.html", form=form), 401
    login_user(DashboardUser(user))
    record(LOGIN, actor=user.username)
    db().commit()
    log.info("user %r logged in from %s", user.username, address)
    # A member lands on their own day; an admin on the fleet's overview.
    home = url_for("overview.index" if user.role == ADMIN else "personal.page")
    return redirect(_safe_next(request.args.get("next"), home))


@bp.post("/logout")
def logout() -> Any:
    """Ends every session of the user, on the server: a copy of the cookie stops working."""
    form = LogoutForm()
    if form.validate_on_submit():
        user = db().get(User, int(current_user.id))
        if user is not None:
            end_sessions(user)
        record(LOGOUT)
        db().commit()
        logout_user()
        flash("Logged out.", "info")
    return redirect(url_for("auth.login"))
