"""Login and logout (Flask-Login): every page needs a logged-in user except /login, static
files and /healthz. Users are created from the CLI (``sitwatch-server create-user``) and
checked by users.verify_user."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, jsonify, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired, Length

from sitwatch.server.models import User
from sitwatch.server.queries.scope import ALL_DESKS, Scope
from sitwatch.server.users import verify_user
from sitwatch.server.web.app import db

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

PUBLIC_ENDPOINTS = frozenset({"auth.login", "static", "healthz"})


class DashboardUser(UserMixin):
    """The logged-in user as Flask-Login sees it (the session stores only the id)."""

    def __init__(self, user_id: int, username: str) -> None:
        self.id = str(user_id)
        self.username = username


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[InputRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])
    submit = SubmitField("Log in")


class LogoutForm(FlaskForm):
    submit = SubmitField("Log out")


@login_manager.user_loader
def _load_user(user_id: str) -> DashboardUser | None:
    try:
        key = int(user_id)
    except ValueError:
        return None
    user = db().get(User, key)
    return DashboardUser(user.id, user.username) if user is not None else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not target:
        return url_for("dashboard.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    if "\\" in target:
        return url_for("dashboard.index")
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
        return {"logout_form": LogoutForm() if current_user.is_authenticated else None}


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        user = verify_user(db(), form.username.data or "", form.password.data or "")
        if user is not None:
            login_user(DashboardUser(user.id, user.username))
            log.info("user %r logged in from %s", user.username, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")))
        log.warning("failed login for %r from %s", form.username.data, request.remote_addr)
        flash("Wrong username or password.", "error")
        return render_template("login.html", form=form), 401
    return render_template("login.html", form=form)


@bp.post("/logout")
def logout() -> Any:
    form = LogoutForm()
    if form.validate_on_submit():
        logout_user()
        flash("Logged out.", "info")
    return redirect(url_for("auth.login"))


def viewer_scope() -> Scope:
    """The desks the logged-in viewer may see, which every query is given: all of them, as
    every user may see every desk."""
    return ALL_DESKS
