"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sitwatch.server.models import Base


class DatabaseError(RuntimeError):
    """The database URL is unusable or the server cannot be reached."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _postgres_settings(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # No JIT compilation: the dashboard's queries are short aggregates over indexed ranges,
    # which PostgreSQL's cost model still sends to LLVM at a fleet's size. Compiling took
    # about 150 ms a query, more than the query itself (10,000 desks: Insights 1.61 s with
    # JIT, 1.26 s without; bench/README.md, "Office scale").
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; raises DatabaseError with a readable reason."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(
            f"bad database URL {url!r}: expected e.g. sqlite:///sitwatch.db or "
            "postgresql+psycopg://user@host/dbname"
        ) from None
    try:
        engine = create_engine(parsed, pool_pre_ping=True)
    except Exception as exc:  # missing driver, unknown dialect
        raise DatabaseError(f"cannot use database URL {parsed!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgres_settings)
    return engine


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot connect to database {url}: {exc.orig}") from None


def create_schema(engine: Engine) -> None:
    """Create missing tables directly (tests, demo); deployments use Alembic migrations."""
    Base.metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
