"""The Flask application factory: configuration, the shared state the views read through
``context``, the blueprints (auth, overview, devices, settings, insights, api, audit log,
my data, users), error pages and the template filters."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from sitwatch.protocol import now_utc
from sitwatch.server.config import ServerConfig, WebConfig, load_server_config
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.web import (
    api,
    audit_log,
    auth,
    desk_settings,
    devices,
    insights,
    my_data,
    overview,
    people,
    personal,
)
from sitwatch.server.web.context import WebState, close_db, db
from sitwatch.server.web.filters import register_filters

log = logging.getLogger(__name__)

csrf = CSRFProtect()

# The pages' one script is a static file of this site (static/live.js, polling the API), and
# nothing inline may run: even a markup injection that slipped past escaping could not
# execute, and its requests could reach no other host.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _secret_key(web: WebConfig) -> str:
    """The key that signs session cookies: from the config, else from ``secret_key_file``
    (created with a random key on first start, mode 0600), else a random key per process
    (every restart then logs everybody out, so it is logged)."""
    if web.secret_key:
        return web.secret_key
    if web.secret_key_file:
        path = Path(web.secret_key_file)
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(key + "\n")
            log.info("created a new secret key in %s", path)
            return key
    log.warning("no web.secret_key or web.secret_key_file configured: sessions end on restart")
    return secrets.token_hex(32)


def create_app(
    config: ServerConfig | None = None,
    *,
    engine: Engine | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """The dashboard. ``config`` defaults to the SITWATCH_* environment over built-in
    defaults; ``engine`` defaults to one for ``config.database.url`` (the schema must exist:
    run the migrations); ``test_config`` overrides Flask settings last, e.g. SECRET_KEY,
    WTF_CSRF_ENABLED, SITWATCH_NOW (a callable returning the current UTC time),
    SITWATCH_PUBLISH_TIMEOUT_S or SITWATCH_LIVE_POLL_S (how often an open page asks for
    its live figures, in seconds)."""
    config = config if config is not None else load_server_config()
    engine = engine if engine is not None else make_engine(config.database.url)
    test_config = dict(test_config or {})

    app = Flask(__name__)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.web.secure_cookies,
        # A dashboard tab stays open for hours: tokens live as long as the login session.
        WTF_CSRF_TIME_LIMIT=None,
        # The largest form is a few hundred bytes; larger bodies answer 413.
        MAX_CONTENT_LENGTH=64 * 1024,
        MAX_FORM_MEMORY_SIZE=64 * 1024,
        SITWATCH_NOW=now_utc,
        SITWATCH_PUBLISH_TIMEOUT_S=5.0,
        SITWATCH_LIVE_POLL_S=5.0,
    )
    if "SECRET_KEY" not in test_config:
        app.config["SECRET_KEY"] = _secret_key(config.web)
    app.config.update(test_config)
    if config.web.trusted_proxies:
        # The client's address (logged at login), scheme and host as the proxies saw them.
        hops = config.web.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.extensions["sitwatch"] = WebState(
        config=config,
        engine=engine,
        sessions=session_factory(engine),
        calendar=config.calendar,
    )
    app.teardown_appcontext(close_db)
    csrf.init_app(app)
    auth.init_app(app)
    app.register_blueprint(auth.bp)
    for blueprint in (overview.bp, devices.bp, desk_settings.bp, insights.bp, api.bp, audit_log.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(my_data.bp)
    app.register_blueprint(personal.bp)
    app.register_blueprint(people.bp)
    register_filters(app)

    app.add_url_rule("/healthz", "healthz", healthz)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def healthz() -> tuple[Any, int]:
    """For systemd and load balancers: 200 when the database answers. No login needed."""
    try:
        db().execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.error("health check: database unreachable: %s", exc)
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok"), 200


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _csrf_error(exc: CSRFError) -> tuple[Any, int]:
    log.info("rejected %s %s: %s", request.method, request.path, exc.description)
    if _wants_json():
        return jsonify(error=exc.description), 400
    message = f"{exc.description} Reload the page and try again."
    return render_template("error.html", code=400, message=message), 400


def _http_error(exc: HTTPException) -> Any:
    if exc.code is None or exc.code < 400:
        return exc
    if _wants_json():
        return jsonify(error=exc.description), exc.code
    return render_template("error.html", code=exc.code, message=exc.description), exc.code
