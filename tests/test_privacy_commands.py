"""Roles, desk links and personal data from the command line (docs/privacy.md):
``create-user --role``, ``user role/link/unlink``, ``prune``, ``export`` and ``erase``, on a
real SQLite file; and the migration that gives older databases their roles."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from test_ingest import assert_fleet_days_agree
from web_fixtures import add_device, add_drill, add_event, add_rollup, add_session

from sitwatch.calendar import Calendar
from sitwatch.server.cli import main
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import rebuild_all_rollups
from sitwatch.server.members import desks_of
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import (
    ConfigResult,
    DailyInsight,
    DailyRollup,
    DeskLink,
    Device,
    Drill,
    Event,
    Nudge,
    SittingSession,
    User,
)
from sitwatch.server.retention import first_kept_day, prune_events
from sitwatch.server.users import find_user

PASSWORD = "s3cret-password\n"
# The prune command reads the real clock: the rows are dated relative to it.
REAL_NOW = datetime.now(UTC)
# At noon, so that a stretch and its day's rollup fall on one local day whenever this runs
# (the days start at 04:00: a stretch begun at 03:40 would straddle two).
NOON = REAL_NOW.replace(hour=12, minute=0, second=0, microsecond=0)
OLD = NOON - timedelta(days=500)
CALENDAR = Calendar("UTC", 4)
RECENT = NOON - timedelta(days=10)


def invoke(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], input=input)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/sw.db"\n[privacy]\nkeep_events_days = 400\n',
        encoding="utf-8",
    )
    assert invoke(path, "init-db").exit_code == 0
    return path


@pytest.fixture
def cli_database(config: Path, tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path}/sw.db")
    yield made
    made.dispose()


def count(cli_database: Engine, model: type, **where: str) -> int:
    query = select(func.count()).select_from(model)
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    with Session(cli_database) as session:
        return session.execute(query).scalar_one()


def two_desks(cli_database: Engine) -> None:
    """desk-1 and desk-2, each with a stretch, a drill and a rollup 500 days ago and 10 days
    ago, and an answer to its settings."""
    with Session(cli_database) as s:
        for desk in ("desk-1", "desk-2"):
            add_device(s, desk, desk.title(), last_seen=RECENT)
            s.flush()
            for when in (OLD, RECENT):
                add_session(s, desk, when, 30)
                add_drill(s, desk, when + timedelta(minutes=31))
                add_event(s, desk, "prompt", when + timedelta(minutes=20), level=1)
                add_rollup(
                    s, desk, CALENDAR.day_of(when), seated_s=1800, sessions=1, drills=1, prompts=1
                )
            s.add(ConfigResult(device_id=desk, accepted=True, received_at=RECENT))
        s.commit()


def add_users(config: Path, *names: str) -> None:
    for name in names:
        result = invoke(config, "create-user", name, "--password-stdin", input=PASSWORD)
        assert result.exit_code == 0, result.output


def role_of(cli_database: Engine, username: str) -> str:
    with Session(cli_database) as session:
        user = find_user(session, username)
        assert user is not None
        return user.role


def test_the_first_user_is_admin_and_later_ones_members(config: Path, cli_database: Engine) -> None:
    add_users(config, "alice", "bob")
    result = invoke(config, "create-user", "carl", "--password-stdin", "--role", "admin",
                    input=PASSWORD)  # fmt: skip
    assert result.exit_code == 0
    assert [role_of(cli_database, n) for n in ("alice", "bob", "carl")] == [
        "admin",
        "member",
        "admin",
    ]


def test_roles_and_links_from_the_command_line(config: Path, cli_database: Engine) -> None:
    two_desks(cli_database)
    add_users(config, "alice", "bob")
    result = invoke(config, "user", "link", "bob", "desk-1", "desk-9")
    assert result.exit_code == 0, result.output
    assert "desk-1: linked to bob" in result.output
    assert "desk-9 (not reported yet): linked to bob" in result.output
    assert "already linked" in invoke(config, "user", "link", "bob", "desk-1").output
    with Session(cli_database) as session:
        bob = find_user(session, "bob")
        assert bob is not None and desks_of(session, bob.id) == {"desk-1", "desk-9"}
    assert invoke(config, "user", "unlink", "bob", "desk-9").exit_code == 0
    assert count(cli_database, DeskLink) == 1

    assert invoke(config, "user", "role", "bob", "admin").output == "bob is now admin\n"
    assert invoke(config, "user", "role", "alice", "member").exit_code == 0
    last = invoke(config, "user", "role", "bob", "member")
    assert last.exit_code == 2 and "only admin" in last.output
    nobody = invoke(config, "user", "link", "nobody", "desk-1")
    assert nobody.exit_code == 2 and "no user 'nobody'" in nobody.output


def test_prune_deletes_old_events_and_keeps_the_history(config: Path, cli_database: Engine) -> None:
    two_desks(cli_database)
    with cli_database.begin() as connection:  # as ingest derived them: nudges, insight rows
        rebuild_all_rollups(connection, CALENDAR)
    derived = (count(cli_database, Nudge), count(cli_database, DailyInsight))
    assert derived == (4, 4)
    before = count(cli_database, Event)
    result = invoke(config, "prune")
    assert result.exit_code == 0, result.output
    # Each desk's old stretch: seated, stood_up, prompt, drill_completed.
    assert result.output == "deleted 8 events older than 400 days\n"
    assert count(cli_database, Event) == before - 8
    with Session(cli_database) as session:
        oldest = session.execute(select(func.min(Event.ts))).scalar_one()
    assert oldest.replace(tzinfo=UTC) > REAL_NOW - timedelta(days=400)
    # Sessions, drills and rollups of those days stay.
    assert (
        count(cli_database, SittingSession),
        count(cli_database, Drill),
        count(cli_database, DailyRollup),
    ) == (
        4,
        4,
        4,
    )
    assert (count(cli_database, Nudge), count(cli_database, DailyInsight)) == derived
    # A rebuild recomputes only the days whose events are still all there.
    rebuilt = invoke(config, "rebuild-rollups")
    assert rebuilt.exit_code == 0 and "earlier days' events are pruned" in rebuilt.output
    assert (count(cli_database, Nudge), count(cli_database, DailyInsight)) == derived
    with Session(cli_database) as session:
        prompts = session.execute(select(DailyRollup.day, DailyRollup.prompts)).all()
    assert sorted(p for _, p in prompts) == [1, 1, 1, 1]


def test_prune_keeps_everything_when_told_to(cli_database: Engine) -> None:
    two_desks(cli_database)
    with Session(cli_database) as session:
        assert prune_events(session, REAL_NOW, 0) == 0
    assert first_kept_day(REAL_NOW, 0, CALENDAR) is None


def test_rebuild_since_leaves_earlier_rollups_alone(cli_database: Engine) -> None:
    two_desks(cli_database)
    with Session(cli_database) as session:
        prune_events(session, REAL_NOW, 400)
        session.commit()
    since = first_kept_day(REAL_NOW, 400, CALENDAR)
    with cli_database.begin() as connection:
        rebuild_all_rollups(connection, CALENDAR, since)
    assert count(cli_database, DailyRollup) == 4


def test_export_gives_a_users_desks_as_json_and_csv(
    config: Path, cli_database: Engine, tmp_path: Path
) -> None:
    two_desks(cli_database)
    add_users(config, "alice", "bob")
    invoke(config, "user", "link", "bob", "desk-2")
    result = invoke(config, "export", "--user", "bob")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["account"]["desks"] == ["desk-2"]
    assert {row["device_id"] for row in found["events"]} == {"desk-2"}
    assert len(found["events"]) == 8 and len(found["sessions"]) == 2
    assert found["config_results"][0]["accepted"] is True
    out = tmp_path / "bob.zip"
    assert (
        invoke(config, "export", "--user", "bob", "--format", "csv", "--output", str(out)).exit_code
        == 0
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    archive = zipfile.ZipFile(io.BytesIO(out.read_bytes()))
    assert "desk-2" in archive.read("desks.csv").decode()
    assert "desk-1" not in "".join(archive.read(n).decode() for n in archive.namelist())
    no_file = invoke(config, "export", "--user", "bob", "--format", "csv")
    assert no_file.exit_code == 2 and "--output" in no_file.output


def test_erase_asks_for_yes_then_removes_a_desk(config: Path, cli_database: Engine) -> None:
    two_desks(cli_database)
    add_users(config, "alice")
    invoke(config, "user", "link", "alice", "desk-1")
    dry = invoke(config, "erase", "--desk", "desk-1")
    assert dry.exit_code == 2 and "would erase desk desk-1 (linked to alice)" in dry.output
    assert count(cli_database, Event, device_id="desk-1") == 8
    result = invoke(config, "erase", "--desk", "desk-1", "--yes")
    assert result.exit_code == 0, result.output
    for model in (Event, SittingSession, Drill, DailyRollup, ConfigResult, DeskLink):
        assert count(cli_database, model, device_id="desk-1") == 0, model
        assert model is DeskLink or count(cli_database, model, device_id="desk-2") > 0
    assert count(cli_database, Device, id="desk-1") == 0 and count(cli_database, User) == 1
    # The fleet's records hold nothing of the erased desk: its days were counted again.
    assert [d.drills for d in assert_fleet_days_agree(cli_database)] == [1, 1]


def test_erase_a_person_keeps_a_desk_shared_with_someone_else(
    config: Path, cli_database: Engine
) -> None:
    two_desks(cli_database)
    add_users(config, "alice", "bob", "carol")
    invoke(config, "user", "link", "bob", "desk-1", "desk-2")
    invoke(config, "user", "link", "carol", "desk-2")
    result = invoke(config, "erase", "--user", "bob", "--yes")
    assert result.exit_code == 0, result.output
    assert "kept desk desk-2: linked to other users too" in result.output
    assert (
        count(cli_database, Device, id="desk-1") == 0
        and count(cli_database, Event, device_id="desk-1") == 0
    )
    assert count(cli_database, Event, device_id="desk-2") == 8
    assert count(cli_database, User, username="bob") == 0
    assert [link.device_id for link in _links(cli_database)] == ["desk-2"]  # carol's
    neither = invoke(config, "erase", "--yes")
    assert neither.exit_code == 2 and "--user NAME or --desk ID" in neither.output


def _links(cli_database: Engine) -> list[DeskLink]:
    with Session(cli_database) as session:
        return list(session.scalars(select(DeskLink)))


def test_users_of_an_older_database_become_admins(tmp_path: Path) -> None:
    """Before roles every user could see and change every desk: the upgrade keeps that."""
    cli_database = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(cli_database, "0005")
        with cli_database.begin() as connection:
            connection.execute(
                text("INSERT INTO users (username, password_hash) VALUES ('old', 'x')")
            )
        upgrade(cli_database)
        with Session(cli_database) as session:
            old = find_user(session, "old")
            assert old is not None and (old.role, old.shares_with_admins) == ("admin", False)
    finally:
        cli_database.dispose()
