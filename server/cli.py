"""The ``sitwatch-server`` command: ingest and dashboard together or apart, database set-up,
users (each change written to the audit log), their roles and desks, personal data
(retention, export, erasure), the audit log and desks' broker logins. Errors a user can fix
(config, database URL, unreachable database) end with one line on stderr and exit code 2;
an unreachable MQTT broker is retried, never fatal, but a broker that does not deliver the
configured shared subscription is (exit code 2)."""

from __future__ import annotations

import _thread
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sitwatch.server import audit
from sitwatch.server.config import (
    DEFAULT_PATH,
    ServerConfig,
    ServerConfigError,
    load_server_config,
    missing_files,
)
from sitwatch.server.db import DatabaseError, check_connection, make_engine
from sitwatch.server.desks import DEFAULT_PASSWORD_FILE

if TYPE_CHECKING:
    from sitwatch.server.ingest.worker import IngestWorker

log = logging.getLogger("sitwatch.server")
SUPPORTED_DATABASES = ("sqlite", "postgresql")


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2 (a list of problems is joined with "; ")."""
    lines = [" ".join(line.split()) for line in message.splitlines() if line.strip()]
    head, rest = (lines[0], lines[1:]) if lines else ("failed", [])
    if rest:
        head = f"{head} {'; '.join(rest)}" if head.endswith(":") else "; ".join([head, *rest])
    click.echo(f"sitwatch-server: error: {head}", err=True)
    sys.exit(2)


def load_config(path: str | None, *, web: bool = False, mqtt: bool = False) -> ServerConfig:
    """--config if given, else /etc/sitwatch/server.toml if present, else defaults; the
    SITWATCH_* environment overrides either. ``web``/``mqtt``: the files the dashboard or
    the ingest will open are checked too."""
    if path is None and DEFAULT_PATH.is_file():
        path = str(DEFAULT_PATH)
    try:
        config = load_server_config(path)
    except ServerConfigError as exc:
        fail(str(exc))
    for key, value, why in missing_files(config, web=web, mqtt=mqtt):
        fail(f"{path or 'server config'}: {key} = {value!r}: {why}")
    return config


@contextmanager
def open_database(config: ServerConfig) -> Iterator[Engine]:
    """An engine on the configured database with the schema migrated to the latest
    revision; exits with a clear message if that is impossible."""
    from sitwatch.server.migrate import upgrade

    try:
        engine = make_engine(config.database.url)
    except DatabaseError as exc:
        fail(str(exc))
    backend = engine.url.get_backend_name()
    if backend not in SUPPORTED_DATABASES:
        engine.dispose()
        fail(f"database {backend!r} is not supported: use sqlite:/// or postgresql+psycopg://")
    try:
        check_connection(engine)
        upgrade(engine, calendar=config.calendar)
    except DatabaseError as exc:
        engine.dispose()
        fail(str(exc))
    except SQLAlchemyError as exc:
        engine.dispose()
        fail(f"cannot migrate the database schema: {getattr(exc, 'orig', None) or exc}")
    try:
        yield engine
    finally:
        engine.dispose()


def _stop_on_sigterm() -> None:
    """systemd stops services with SIGTERM: end like Ctrl-C, so queued events are stored."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, interrupt)


def _ingest_worker(config: ServerConfig, engine: Engine) -> IngestWorker:
    """The ingest worker, or one clear line if its TLS files exist but ssl cannot load them
    (a missing file was reported before: ``missing_files``)."""
    from sitwatch.mqtt import CertificateError
    from sitwatch.server.ingest.worker import IngestWorker

    try:
        return IngestWorker(config, engine)
    except CertificateError as exc:
        fail(str(exc))


def _serve_web(config: ServerConfig, engine: Engine) -> None:
    """Serve the dashboard with waitress (pure Python, production-grade, runs on a Pi) until
    Ctrl-C or SIGTERM."""
    import waitress

    from sitwatch.server.web.app import create_app

    web = config.web
    app = create_app(config, engine=engine)
    try:
        server = waitress.create_server(
            app,
            host=web.host,
            port=web.port,
            threads=web.threads,
            # waitress drops X-Forwarded-* itself unless told to keep them; the app's ProxyFix
            # reads them when web.trusted_proxies says which to believe.
            clear_untrusted_proxy_headers=not web.trusted_proxies,
        )
    except OSError as exc:  # port taken, address not available
        fail(f"cannot serve the dashboard on {web.host}:{web.port}: {exc.strerror}")
    log.info("dashboard on http://%s:%d/", web.host, web.port)
    try:
        server.run()  # returns on KeyboardInterrupt
    finally:
        server.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sitwatch", prog_name="sitwatch-server")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="SITWATCH_CONFIG",
    help=f"TOML config file (default {DEFAULT_PATH} if it exists; SITWATCH_* variables override).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """sitwatch server: MQTT ingest and the web dashboard."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # Alembic narrates every plugin and step at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ctx.obj = config_path


def _config(ctx: click.Context, *, web: bool = False, mqtt: bool = False) -> ServerConfig:
    return load_config(ctx.obj, web=web, mqtt=mqtt)


def _config_here(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj = value


# ``--config`` is taken before the sub-command (``sitwatch-server --config F run``) and after
# it (``sitwatch-server run --config F``, as the systemd units write it).
config_option = click.option(
    "--config",
    type=click.Path(dir_okay=False),
    expose_value=False,
    is_eager=True,
    callback=_config_here,
    help="TOML config file (overrides one given before the sub-command).",
)


@main.command()
@config_option
@click.pass_context
def run(ctx: click.Context) -> None:
    """Ingest and dashboard in one process."""
    config = _config(ctx, web=True, mqtt=True)
    with open_database(config) as engine:
        worker = _ingest_worker(config, engine)
        # A worker that gives up (no shared subscriptions) stops the dashboard as Ctrl-C would.
        worker.when_failed = lambda _reason: _thread.interrupt_main()
        _stop_on_sigterm()
        worker.start()
        try:
            _serve_web(config, engine)
        except KeyboardInterrupt:
            pass
        finally:
            worker.stop()
        if worker.failure:
            fail(worker.failure)


@main.command()
@config_option
@click.pass_context
def ingest(ctx: click.Context) -> None:
    """Only the MQTT ingest worker."""
    config = _config(ctx, mqtt=True)
    with open_database(config) as engine:
        _stop_on_sigterm()
        worker = _ingest_worker(config, engine)
        worker.run_forever()
        if worker.failure:
            fail(worker.failure)


@main.command()
@config_option
@click.pass_context
def web(ctx: click.Context) -> None:
    """Only the dashboard."""
    config = _config(ctx, web=True)
    with open_database(config) as engine:
        _stop_on_sigterm()
        with suppress(KeyboardInterrupt):
            _serve_web(config, engine)


@main.command("init-db")
@config_option
@click.pass_context
def init_db(ctx: click.Context) -> None:
    """Create or upgrade the database schema (Alembic upgrade to the latest revision)."""
    from sitwatch.server.migrate import current_revision

    config = _config(ctx)
    with open_database(config) as engine:
        url = engine.url.render_as_string(hide_password=True)
        click.echo(f"database {url} is at schema revision {current_revision(engine)}")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@contextmanager
def user_change(ctx: click.Context, action: str, username: str) -> Iterator[Session]:
    """A session on the migrated database for one change to ``username``, committed with
    its audit entry (``action``) if the body returns; a UserError it raises ends the
    command with its message."""
    from sitwatch.protocol import now_utc
    from sitwatch.server.db import session_factory
    from sitwatch.server.users import UserError

    config = _config(ctx)
    with open_database(config) as engine, session_factory(engine)() as session:
        try:
            yield session
        except UserError as exc:
            fail(str(exc))
        audit.record(session, at=now_utc(), actor=audit.cli_actor(), action=action, target=username)
        session.commit()


@main.command("create-user")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--reset", is_flag=True, help="Set a new password for an existing user.")
@click.option(
    "--role",
    type=click.Choice(["member", "admin"]),
    help="A new user's role (default: admin for the first user, member after).",
)
@click.pass_context
def create_user_command(
    ctx: click.Context, username: str, password_stdin: bool, reset: bool, role: str | None
) -> None:
    """Add a dashboard user (or, with --reset, change a user's password)."""
    from sitwatch.server.audit import USER_CREATE, USER_RESET
    from sitwatch.server.users import UserError, check_username, create_user, set_password

    try:
        check_username(username)
    except UserError as exc:
        fail(str(exc))
    password = _read_password(password_stdin)
    with user_change(ctx, USER_RESET if reset else USER_CREATE, username) as session:
        if reset:
            set_password(session, username, password)
        else:
            create_user(session, username, password, role)
    click.echo(f"{'updated' if reset else 'created'} user {username}")


@main.group()
def user() -> None:
    """List, reset, disable, enable or delete dashboard users (create them with
    create-user), set their role and link their desks. A reset, disable or delete ends the
    user's sessions at once."""


@user.command("list")
@config_option
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """Every user, whether enabled, and their last login."""
    from sitwatch.server.audit import last_logins
    from sitwatch.server.db import session_factory
    from sitwatch.server.users import list_users

    config = _config(ctx)
    with open_database(config) as engine, session_factory(engine)() as session:
        users, logins = list_users(session), last_logins(session)
        for row in users:
            state = "disabled" if row.disabled else "enabled"
            last = logins.get(row.username)
            when = f"last login {last:%Y-%m-%d %H:%M} UTC" if last else "never logged in"
            click.echo(f"{row.username}\t{state}\t{when}")
    if not users:
        click.echo("no users: add one with sitwatch-server create-user NAME", err=True)


@user.command("reset")
@config_option
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_reset(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password; the user's sessions end."""
    from sitwatch.server.audit import USER_RESET
    from sitwatch.server.users import set_password

    password = _read_password(password_stdin)
    with user_change(ctx, USER_RESET, username) as session:
        set_password(session, username, password)
    click.echo(f"updated user {username}; their sessions have ended")


@user.command("disable")
@config_option
@click.argument("username")
@click.pass_context
def user_disable(ctx: click.Context, username: str) -> None:
    """Refuse the user's logins and end their sessions (undo with enable)."""
    from sitwatch.server.audit import USER_DISABLE
    from sitwatch.server.users import set_disabled

    with user_change(ctx, USER_DISABLE, username) as session:
        set_disabled(session, username, True)
    click.echo(f"disabled user {username}; their sessions have ended")


@user.command("enable")
@config_option
@click.argument("username")
@click.pass_context
def user_enable(ctx: click.Context, username: str) -> None:
    """Let a disabled user log in again."""
    from sitwatch.server.audit import USER_ENABLE
    from sitwatch.server.users import set_disabled

    with user_change(ctx, USER_ENABLE, username) as session:
        set_disabled(session, username, False)
    click.echo(f"enabled user {username}")


@user.command("delete")
@config_option
@click.argument("username")
@click.pass_context
def user_delete(ctx: click.Context, username: str) -> None:
    """Remove the user; their sessions end, their audit entries stay."""
    from sitwatch.server.audit import USER_DELETE
    from sitwatch.server.users import delete_user

    with user_change(ctx, USER_DELETE, username) as session:
        delete_user(session, username)
    click.echo(f"deleted user {username}")


@main.command("audit")
@config_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Entries shown."
)
@click.pass_context
def audit_command(ctx: click.Context, limit: int) -> None:
    """The latest audit log entries, newest first (times in UTC)."""
    from sitwatch.server.audit import describe, latest
    from sitwatch.server.db import session_factory

    config = _config(ctx)
    with open_database(config) as engine, session_factory(engine)() as session:
        for entry in latest(session, limit):
            fields = (
                f"{entry.at:%Y-%m-%d %H:%M:%S}",
                entry.actor,
                entry.address or "-",
                entry.action,
                entry.target or "-",
                describe(entry.detail),
            )
            click.echo("\t".join(fields).rstrip())


@main.group()
def desk() -> None:
    """Desks' broker logins: add (provision) or revoke a desk."""


password_file_option = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=str(DEFAULT_PASSWORD_FILE),
    show_default=True,
    help="The desks' Mosquitto password file (examples/mosquitto-sitwatch.conf names it).",
)
RELOAD_HINT = "reload Mosquitto to apply it: sudo systemctl reload mosquitto (or SIGHUP)"


@desk.command("add")
@config_option
@click.argument("desk_id")
@click.option("--name", help="The name the dashboard shows (default: the desk id).")
@password_file_option
@click.option(
    "--broker-host",
    default=socket.getfqdn,
    show_default="this machine's name",
    help="The broker's name as the desk reaches it (and its TLS certificate says).",
)
@click.option("--broker-port", default=8883, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--ca-certs",
    default="/etc/sitwatch/sitwatch-ca.crt",
    show_default=True,
    help="Where the desk keeps the broker's CA certificate; '' for no TLS.",
)
@click.option("--new-password", is_flag=True, help="Replace an existing login's password.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the device.toml lines to this file (mode 0600) instead of printing.",
)
@click.pass_context
def desk_add(
    ctx: click.Context,
    desk_id: str,
    name: str | None,
    password_file: Path,
    broker_host: str,
    broker_port: int,
    ca_certs: str,
    new_password: bool,
    output: Path | None,
) -> None:
    """Create DESK_ID's broker login (a random password), register the desk on the server
    and give the [mqtt] lines of its device.toml."""
    from sitwatch.protocol import now_utc
    from sitwatch.server.db import session_factory
    from sitwatch.server.desks import DeskError, PasswordFile, add_desk, check_desk_id

    try:
        check_desk_id(desk_id)
    except DeskError as exc:
        fail(str(exc))
    config = _config(ctx)
    with open_database(config) as engine, session_factory(engine)() as session:
        try:
            login = add_desk(
                session,
                PasswordFile(password_file),
                desk_id,
                now_utc(),
                name,
                new_password=new_password,
            )
        except DeskError as exc:
            fail(str(exc))
        except (OSError, subprocess.CalledProcessError) as exc:
            fail(f"cannot write {password_file}: {_why(exc)}")
        audit.record(
            session, at=now_utc(), actor=audit.cli_actor(), action=audit.DESK_ADD, target=desk_id
        )
        session.commit()
    snippet = login.device_toml(broker_host, broker_port, ca_certs or None)
    if output is None:
        click.echo(f"# {desk_id}'s /etc/sitwatch/device.toml (keep it mode 0640):")
        click.echo(snippet)
    else:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(snippet)
        click.echo(f"wrote {desk_id}'s device.toml lines to {output}")
    click.echo(f"desk {desk_id} added; {RELOAD_HINT}", err=True)


@desk.command("revoke")
@config_option
@click.argument("desk_id")
@password_file_option
@click.pass_context
def desk_revoke(ctx: click.Context, desk_id: str, password_file: Path) -> None:
    """Take DESK_ID's broker login away (its history stays on the server)."""
    from sitwatch.protocol import now_utc
    from sitwatch.server.db import session_factory
    from sitwatch.server.desks import DeskError, PasswordFile, revoke_desk

    config = _config(ctx)
    with open_database(config) as engine, session_factory(engine)() as session:
        try:
            revoke_desk(PasswordFile(password_file), desk_id)
        except DeskError as exc:
            fail(str(exc))
        except (OSError, subprocess.CalledProcessError) as exc:
            fail(f"cannot write {password_file}: {_why(exc)}")
        action = audit.DESK_REVOKE
        audit.record(session, at=now_utc(), actor=audit.cli_actor(), action=action, target=desk_id)
        session.commit()
    click.echo(f"desk {desk_id} revoked; {RELOAD_HINT}", err=True)


def _why(exc: OSError | subprocess.CalledProcessError) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return (exc.stderr or exc.stdout or f"mosquitto_passwd exit code {exc.returncode}").strip()
    return exc.strerror or str(exc)


@main.command("rebuild-rollups")
@config_option
@click.pass_context
def rebuild_rollups(ctx: click.Context) -> None:
    """Recompute every daily rollup, nudge and daily insight row from the stored events
    (after changing the time zone or day_start_hour)."""
    from sitwatch.protocol import now_utc
    from sitwatch.server.ingest.derive import rebuild_all_rollups
    from sitwatch.server.retention import first_kept_day

    config = _config(ctx)
    since = first_kept_day(now_utc(), config.privacy.keep_events_days, config.calendar)
    with open_database(config) as engine, engine.begin() as connection:
        days = rebuild_all_rollups(connection, config.calendar, since)
    kept = "" if since is None else f" from {since} (earlier days' events are pruned)"
    click.echo(f"rebuilt {days} device-days{kept}")


# --- roles, desk links and personal data (docs/privacy.md) -------------------------------


def _audit(session: Session, action: str, target: str | None, detail: dict[str, Any]) -> None:
    """An audit entry for a command's change, by ``cli:<system user>``."""
    from sitwatch.protocol import now_utc

    actor = audit.cli_actor()
    audit.record(session, at=now_utc(), actor=actor, action=action, target=target, detail=detail)


@contextmanager
def _session(ctx: click.Context) -> Iterator[Any]:
    """A database session on the configured database, migrated; UserError ends with exit 2."""
    from sitwatch.server.db import session_factory
    from sitwatch.server.users import UserError

    config = _config(ctx)
    with open_database(config) as engine, session_factory(engine)() as session:
        try:
            yield session
        except UserError as exc:
            fail(str(exc))


@user.command("role")
@config_option
@click.argument("username")
@click.argument("role", type=click.Choice(["member", "admin"]))
@click.pass_context
def user_role(ctx: click.Context, username: str, role: str) -> None:
    """Make USERNAME a member (sees only their own desks) or an admin (manages all)."""
    from sitwatch.server.members import set_role

    with _session(ctx) as session:
        set_role(session, username, role)
        _audit(session, audit.USER_ROLE, username, {"role": role})
        session.commit()
    log.info("user %r is now %s", username, role)
    click.echo(f"{username} is now {role}")


@user.command("link")
@config_option
@click.argument("username")
@click.argument("desk_ids", nargs=-1, required=True)
@click.pass_context
def user_link(ctx: click.Context, username: str, desk_ids: tuple[str, ...]) -> None:
    """Link desks to USERNAME: their own, which they see and change."""
    from sitwatch.server.members import is_known_desk, link_desk

    with _session(ctx) as session:
        for desk_id in desk_ids:
            added = link_desk(session, username, desk_id)
            note = "" if is_known_desk(session, desk_id) else " (not reported yet)"
            click.echo(
                f"{desk_id}{note}: {'linked to' if added else 'already linked to'} {username}"
            )
        _audit(session, audit.USER_LINK, username, {"desks": list(desk_ids)})
        session.commit()
    log.info("linked %s to user %r", ", ".join(desk_ids), username)


@user.command("unlink")
@config_option
@click.argument("username")
@click.argument("desk_ids", nargs=-1, required=True)
@click.pass_context
def user_unlink(ctx: click.Context, username: str, desk_ids: tuple[str, ...]) -> None:
    """Unlink desks from USERNAME (the desks' data stays)."""
    from sitwatch.server.members import unlink_desk

    with _session(ctx) as session:
        for desk_id in desk_ids:
            removed = unlink_desk(session, username, desk_id)
            click.echo(
                f"{desk_id}: {'unlinked from' if removed else 'was not linked to'} {username}"
            )
        _audit(session, audit.USER_UNLINK, username, {"desks": list(desk_ids)})
        session.commit()
    log.info("unlinked %s from user %r", ", ".join(desk_ids), username)


@main.command()
@config_option
@click.pass_context
def prune(ctx: click.Context) -> None:
    """Delete raw events older than [privacy] keep_events_days (rollups, sessions and drills
    stay); sitwatch-prune.timer runs this daily."""
    from sitwatch.protocol import now_utc
    from sitwatch.server.retention import events_cutoff, prune_events

    keep_days = _config(ctx).privacy.keep_events_days
    with _session(ctx) as session:
        deleted = prune_events(session, now_utc(), keep_days)
        _audit(session, audit.EVENTS_PRUNE, None, {"deleted": deleted, "keep_days": keep_days})
        session.commit()
    cutoff = events_cutoff(now_utc(), keep_days)
    if cutoff is None:
        click.echo("keep_events_days = 0: every event is kept")
        return
    log.info("pruned %d events dated before %s", deleted, cutoff.isoformat(timespec="seconds"))
    click.echo(f"deleted {deleted} events older than {keep_days} days")


@main.command("export")
@config_option
@click.option("--user", "username", required=True, help="Whose data.")
@click.option("--format", "form", type=click.Choice(["json", "csv"]), default="json",
              show_default=True, help="csv: one CSV file per table, in a zip.")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (mode 0600); json goes to stdout without it.")  # fmt: skip
@click.pass_context
def export_command(ctx: click.Context, username: str, form: str, output: Path | None) -> None:
    """Everything stored about a user and their desks (a GDPR access request)."""
    from sitwatch.server.members import existing_user
    from sitwatch.server.personal_data import export_json, export_of, export_zip

    if form == "csv" and output is None:
        fail("--format csv writes a zip: give --output FILE")
    with _session(ctx) as session:
        found = export_of(session, existing_user(session, username))
        _audit(session, audit.DATA_EXPORT, username, {"format": form})
        session.commit()
    body = export_json(found).encode() if form == "json" else export_zip(found)
    log.info("exported the data of user %r (%s)", username, form)
    if output is None:
        click.echo(body.decode(), nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    click.echo(f"wrote the data of {username} to {output}", err=True)


@main.command()
@config_option
@click.option("--user", "username", help="Erase this user and the desks linked to them alone.")
@click.option("--desk", "desk_id", help="Erase this desk's data (and its links).")
@click.option("--yes", is_flag=True, help="Really erase; without it, only say what would go.")
@click.pass_context
def erase(ctx: click.Context, username: str | None, desk_id: str | None, yes: bool) -> None:
    """Erase a person's or a desk's data for good (a GDPR erasure request): events,
    sessions, drills, rollups, settings answers, the desk rows, the account."""
    from sitwatch.server.members import desks_of, existing_user, members_of
    from sitwatch.server.personal_data import erase_desk, erase_user

    if (username is None) == (desk_id is None):
        fail("give --user NAME or --desk ID")
    with _session(ctx) as session:
        if username is not None:
            account = existing_user(session, username)
            desks = ", ".join(sorted(desks_of(session, account.id))) or "(none)"
            what = f"user {username} and desks {desks}"
        else:
            assert desk_id is not None
            linked = ", ".join(u.username for u in members_of(session, desk_id)) or "nobody"
            what = f"desk {desk_id} (linked to {linked})"
        if not yes:
            fail(f"would erase {what}: add --yes to erase it for good")
        if username is not None:
            erased = erase_user(session, account)
            rows, kept = erased.rows, erased.kept_desks
        else:
            rows, kept = erase_desk(session, desk_id), ()
        target = f"desk {desk_id}" if username is None else username
        _audit(session, audit.DATA_ERASE, target, {"rows": rows})
        session.commit()
    counts = ", ".join(f"{count} {table}" for table, count in rows.items() if count)
    log.warning("erased %s: %s", what, counts or "no rows")
    click.echo(f"erased {what}: {counts or 'no rows'}")
    for kept_desk in kept:
        click.echo(f"kept desk {kept_desk}: linked to other users too (erase it with --desk)")


if __name__ == "__main__":
    main()
