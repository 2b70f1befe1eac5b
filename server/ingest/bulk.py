"""Many rows in one ``INSERT ... ON CONFLICT`` on SQLite or PostgreSQL.

On PostgreSQL the rows travel as one JSON document unpacked by ``json_to_recordset``: one
statement whatever the batch size, its text the same every time, and the values are encoded
by the C JSON encoder (psycopg's per-row ``executemany`` and its Python array dumpers were
most of an ingest worker's time). SQLite takes the rows through the DB-API ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, Table, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.types import Text


def dialect_insert(connection: Connection, table: Any) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (SQLite or PostgreSQL)."""
    name = connection.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"database {name!r} is not supported (use SQLite or PostgreSQL)")
    return insert(table)


def _json_value(value: object) -> str:
    """ISO 8601 for what the JSON encoder does not know; a datetime as UTC, naive taken as
    UTC, as ``models.UTCDateTime`` stores it."""
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} through JSON")


def insert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    finish: Callable[[Any], Any] = lambda stmt: stmt,
) -> CursorResult[Any]:
    """Insert ``rows`` (dicts with the same keys, named after ``table``'s columns) in one
    statement; ``finish`` adds the ``ON CONFLICT`` clause and any ``RETURNING`` to the
    dialect's insert."""
    stmt = dialect_insert(connection, table)
    if connection.dialect.name != "postgresql":
        return connection.execute(finish(stmt), list(rows))
    names = list(rows[0])
    document = json.dumps(rows, default=_json_value, separators=(",", ":"))
    source = (
        func.json_to_recordset(cast(bindparam("rows", document, type_=Text), JSON))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(name="r", with_types=True)
    )
    return connection.execute(finish(stmt.from_select(names, select(*source.c))))
