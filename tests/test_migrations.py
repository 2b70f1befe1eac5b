"""Alembic migrations: an empty database upgrades to exactly the models' schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from server_helpers import postgres_schema
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session
from web_fixtures import WEEK_FIRST, WEEK_LAST, seed_week_rows

from sitwatch.calendar import Calendar
from sitwatch.server.db import create_schema, make_engine
from sitwatch.server.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    schema_drift,
    upgrade,
)
from sitwatch.server.models import Base
from sitwatch.server.queries import insights
from sitwatch.server.queries.scope import ALL_DESKS


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'sitwatch.db'}")
    yield engine
    engine.dispose()


def test_upgrade_on_empty_sqlite_file_creates_the_models_tables(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    tables = set(inspect(sqlite_engine).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert current_revision(sqlite_engine) == head_revision()


def test_models_and_migrations_agree(sqlite_engine: Engine) -> None:
    """Like `alembic check`: autogenerate finds nothing to change after upgrade."""
    upgrade(sqlite_engine)
    assert schema_drift(sqlite_engine) == []


def test_drift_check_notices_a_missing_index(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    with sqlite_engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_events_device_ts"))
    assert [diff[0] for diff in schema_drift(sqlite_engine)] == ["add_index"]


def test_a_database_of_the_first_release_upgrades_with_its_rows(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine, "0001")
    with sqlite_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO devices (id, name, online, first_seen_at, last_seen_at)"
                " VALUES ('desk-1', 'Desk', 0, '2026-03-02 09:00:00', '2026-03-02 09:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO daily_rollups"
                " VALUES ('desk-1', '2026-03-02', 60, 1, 60, 0, 0, 0, 0, 1)"
            )
        )
    assert "ix_rollups_day" not in {
        i["name"] for i in inspect(sqlite_engine).get_indexes("daily_rollups")
    }
    upgrade(sqlite_engine)
    assert current_revision(sqlite_engine) == head_revision() != "0001"
    assert schema_drift(sqlite_engine) == []
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT seated_s, drills FROM daily_rollups")).all() == [
            (60.0, 1)
        ]


def test_drills_stored_before_the_seat_check_count_as_they_did(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine, "0004")
    with sqlite_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO devices (id, name, online, first_seen_at, last_seen_at)"
                " VALUES ('desk-1', 'Desk', 0, '2026-03-02 09:00:00', '2026-03-02 09:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO drills (event_id, device_id, ts, guided)"
                " VALUES ('drill0001', 'desk-1', '2026-03-02 09:30:00', 1)"
            )
        )
    upgrade(sqlite_engine)
    assert schema_drift(sqlite_engine) == []
    with sqlite_engine.connect() as connection:
        rows = connection.execute(text("SELECT event_id, verified FROM drills")).all()
    assert rows == [("drill0001", 1)]


def test_upgrade_twice_is_harmless(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    upgrade(sqlite_engine)
    assert current_revision(sqlite_engine) == head_revision()


def test_database_made_by_create_schema_is_stamped_not_recreated(sqlite_engine: Engine) -> None:
    create_schema(sqlite_engine)
    upgrade(sqlite_engine)
    assert current_revision(sqlite_engine) == head_revision()
    assert schema_drift(sqlite_engine) == []


@pytest.mark.postgres
def test_upgrade_on_postgres_matches_models() -> None:
    with postgres_schema() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {
                "alembic_version"
            }
            assert schema_drift(engine) == []
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'sitwatch.db'}")
        yield engine
        engine.dispose()
        return
    with postgres_schema() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_an_upgrade_derives_the_nudges_and_daily_insights_of_stored_events(
    any_engine: Engine,
) -> None:
    """0008 back-fills from the events, sessions and drills a server already holds, so the
    Insights page shows what it showed before (tests/test_insights.py's week), and 0010
    each desk's seat state. The week is stored at head (the fixtures write today's rows),
    then the schema goes down to 0006, which drops what 0008 to 0010 derive."""
    upgrade(any_engine)
    seed_week_rows(any_engine)
    seats = "SELECT id, seat_type, seat_at FROM devices ORDER BY id"
    with any_engine.connect() as connection:
        stored_seats = connection.execute(text(seats)).all()
    assert len(stored_seats) == 2 and all(row.seat_type and row.seat_at for row in stored_seats)
    command.downgrade(alembic_config(any_engine), "0006")
    assert not inspect(any_engine).has_table("nudges")
    assert "seat_at" not in {c["name"] for c in inspect(any_engine).get_columns("devices")}
    upgrade(any_engine, calendar=Calendar("UTC", 4))
    with any_engine.connect() as connection:
        assert connection.execute(text(seats)).all() == stored_seats
    with Session(any_engine) as session:
        found = insights.insights(session, ALL_DESKS, Calendar("UTC", 4), WEEK_FIRST, WEEK_LAST)
    assert found.funnel == insights.Funnel(11, 4, 3, 22.5 * 60)
    assert found.bouts == (2, 3, 6, 1, 6)
    assert sum(e.count for e in found.exercises) == 13
    assert sum(map(sum, found.heatmap.seated_s)) == (223 + 451 + 183 + 160) * 60
