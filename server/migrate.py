"""Schema migrations with Alembic, configured in code so they run from an installed package.

A new revision after changing the models (from a checkout, then review the file)::

    from alembic import command
    from sitwatch.server.db import make_engine
    from sitwatch.server.migrate import alembic_config, upgrade
    engine = make_engine("sqlite:///scratch.db"); upgrade(engine)
    command.revision(alembic_config(engine), message="what changed", autogenerate=True)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from sitwatch.calendar import Calendar
from sitwatch.server.models import POSTGRESQL_ONLY_INDEXES, Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
_LOCK_KEY = 0x5177_A7C4  # any constant shared by every sitwatch server


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at our migrations; ``engine`` is used by env.py."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head", calendar: Calendar | None = None) -> None:
    """Bring the database schema up to ``revision``. A database made by
    ``create_schema`` (all tables, no Alembic version) is stamped instead of re-created.
    Safe when several servers start at once: on PostgreSQL they take turns (advisory lock).
    ``calendar``: the server's days, for migrations that derive rows by day (0008)."""
    config = alembic_config(engine)
    config.attributes["calendar"] = calendar
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        config.attributes["connection"] = connection
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None and _has_all_tables(connection):
            log.info("database has every table but no migration record: stamping %s", revision)
            command.stamp(config, revision)
        else:
            command.upgrade(config, revision)


# Indexes on an expression (models.stand_second): SQLAlchemy cannot reflect them on SQLite
# and Alembic cannot compare them, so schema_drift checks only that they are there.
EXPRESSION_INDEXES = frozenset({"ix_nudges_day"})


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the models and the database (empty when they agree)."""
    with engine.connect() as connection:
        postgresql = connection.dialect.name == "postgresql"

        def include(item: Any, name: str | None, kind: str, *_: Any) -> bool:
            if kind == "index" and name in EXPRESSION_INDEXES:
                return False
            # Alembic ignores Index.ddl_if(): skip what create_all leaves out here too.
            return postgresql or not (kind == "index" and name in POSTGRESQL_ONLY_INDEXES)

        opts = {"compare_type": True, "include_object": include}
        context = MigrationContext.configure(connection, opts=opts)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            warnings.filterwarnings("ignore", ".*skipping metadata-specified expression-based")
            drift: list[Any] = compare_metadata(context, Base.metadata)
        if postgresql:
            named = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        else:
            named = "SELECT name FROM sqlite_master WHERE type = 'index'"
        present = set(connection.scalars(text(named)))
        drift += [("missing_index", name) for name in sorted(EXPRESSION_INDEXES - present)]
        return drift


def _has_all_tables(connection: Connection) -> bool:
    existing = set(inspect(connection).get_table_names())
    return set(Base.metadata.tables) <= existing
