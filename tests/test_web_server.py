"""The dashboard as served in production: waitress over real HTTP, behind a reverse proxy
(``[web] trusted_proxies``) with a ``Secure`` session cookie (``[web] secure_cookies``)."""

from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_helpers import migrated_engine
from sqlalchemy import Engine
from support.waiting import wait_until
from test_server_cli import invoke, server_process, sqlite_config, stop

from sitwatch.broker import free_port
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import session_factory
from sitwatch.server.users import create_user
from sitwatch.server.web.app import create_app

pytestmark = pytest.mark.timeout(60)
PASSWORD = "s3cret-pass"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def request(
    port: int, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, str]:
    """One request on a connection of its own; redirects are not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response, response.read().decode()
    finally:
        connection.close()


def healthy(port: int) -> bool:
    try:
        return request(port, "GET", "/healthz")[0].status == 200
    except OSError:
        return False


def test_waitress_serves_the_dashboard_behind_a_tls_proxy(tmp_path: Path) -> None:
    """``sitwatch-server web`` answers over real HTTP from waitress (not Flask's development
    server); with the proxy settings its cookie is Secure and the login log line names the
    address the proxy saw."""
    port = free_port()
    config = sqlite_config(
        tmp_path,
        f"[web]\nport = {port}\ntrusted_proxies = 1\nsecure_cookies = true\n"
        f'secret_key = "{"k" * 32}"\n',
    )
    assert (
        invoke(
            "--config", str(config), "create-user", "ana", "--password-stdin", input=f"{PASSWORD}\n"
        ).exit_code
        == 0
    )
    log = tmp_path / "web.log"
    process = server_process(config, "web", log=log)
    try:
        assert wait_until(lambda: healthy(port), 30), log.read_text()
        page, html = request(port, "GET", "/login")
        assert page.getheader("Server") == "waitress"
        cookie = page.getheader("Set-Cookie") or ""
        token = CSRF.search(html)
        assert token, html
        proxy = {
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
            # Flask-WTF checks the Referer of an HTTPS form post against the host.
            "Referer": f"https://127.0.0.1:{port}/login",
            "Cookie": cookie.split(";", 1)[0],
            "Content-Type": "application/x-www-form-urlencoded",
        }
        form = f"csrf_token={token.group(1)}&username=ana&password={PASSWORD}"
        answer, _ = request(port, "POST", "/login", form, proxy)
        assert answer.status == 302, answer.status
        session = answer.getheader("Set-Cookie") or ""
        assert "; Secure" in session and "; HttpOnly" in session, session
        assert wait_until(lambda: "logged in from 203.0.113.7" in log.read_text(), 5)
    finally:
        assert stop(process) == 0, log.read_text()
    assert "development server" not in log.read_text()


@pytest.fixture
def migrated_with_ana(tmp_path: Path) -> Iterator[Engine]:
    with migrated_engine("sqlite", tmp_path) as engine:
        with session_factory(engine)() as session:
            create_user(session, "ana", PASSWORD)
            session.commit()
        yield engine


def test_without_the_proxy_settings_forwarded_headers_are_ignored_and_cookies_not_secure(
    migrated_with_ana: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    config = ServerConfig.model_validate({"web": {"secret_key": "k" * 32}})
    app = create_app(config, engine=migrated_with_ana, test_config={"WTF_CSRF_ENABLED": False})
    client = app.test_client()
    with caplog.at_level(logging.INFO):
        answer = client.post(
            "/login",
            data={"username": "ana", "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert answer.status_code == 302
    assert "Secure" not in answer.headers["Set-Cookie"]
    assert "logged in from 127.0.0.1" in caplog.text and "203.0.113.7" not in caplog.text
