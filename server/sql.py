"""The SQL toolkit the ingest and the queries share, with each difference between SQLite
and PostgreSQL written once: as a construct compiled per dialect with SQLAlchemy's
``@compiles`` (``epoch_ms``, ``greatest``, ``least``), or as one small function (the
dialect's ``INSERT ... ON CONFLICT`` and how many rows travel in it). Also the reusable
criteria: counting rows where a condition holds, and the per-device filter.

Bulk inserts: on PostgreSQL the rows travel as one JSON document unpacked by
``json_to_recordset``: one statement whatever the batch size, its text the same every time,
and the values are encoded by the C JSON encoder (psycopg's per-row ``executemany`` and its
Python array dumpers were most of an ingest worker's time). SQLite takes the rows through
the DB-API ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    CursorResult,
    Executable,
    Table,
    bindparam,
    case,
    cast,
    column,
    extract,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Text

from sitwatch.calendar import as_utc
from sitwatch.server.models import Device

_JULIAN_EPOCH = 2440587.5  # SQLite's julianday() of 1970-01-01 00:00 UTC


class epoch_ms(FunctionElement[int]):
    """A stored UTC timestamp as whole epoch milliseconds (SQLite keeps text, PostgreSQL
    timestamptz)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_ms, "postgresql")
def _epoch_ms_postgresql(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    (ts,) = element.clauses
    return compiler.process(cast(func.round(extract("epoch", ts) * 1000), BigInteger), **kw)


@compiles(epoch_ms, "sqlite")
def _epoch_ms_sqlite(element: epoch_ms, compiler: SQLCompiler, **kw: Any) -> str:
    (ts,) = element.clauses
    seconds = (func.julianday(ts) - _JULIAN_EPOCH) * 86400.0
    return compiler.process(cast(func.round(seconds * 1000), BigInteger), **kw)


class _Extreme(FunctionElement[Any]):
    """The largest or smallest of its arguments, of the first one's type: SQL's
    ``greatest``/``least``, which SQLite spells as the many-argument ``max``/``min``."""

    sqlite_name: str
    inherit_cache = True

    def __init__(self, *arguments: Any) -> None:
        super().__init__(*arguments)
        self.type = next(iter(self.clauses)).type


class greatest(_Extreme):
    name, sqlite_name = "greatest", "max"
    inherit_cache = True


class least(_Extreme):
    name, sqlite_name = "least", "min"
    inherit_cache = True


@compiles(_Extreme)
def _extreme(element: _Extreme, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.visit_function(element, **kw)  # type: ignore[arg-type]


@compiles(_Extreme, "sqlite")
def _extreme_sqlite(element: _Extreme, compiler: SQLCompiler, **kw: Any) -> str:
    arguments = ", ".join(compiler.process(argument, **kw) for argument in element.clauses)
    return f"{element.sqlite_name}({arguments})"


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows of the group meet ``condition`` (0 for none, never NULL)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def on_devices(
    column: Any,
    device_id: str | None = None,
    among: Collection[str] | None = None,
    *,
    seek_each: bool = False,
) -> tuple[ColumnElement[bool], ...]:
    """WHERE terms for one device (or all: None), and only those ``among`` a set if given.

    ``seek_each``: for all devices, say ``device_id IN (SELECT id FROM devices)``. It looks
    silly but lets the database seek a (device_id, time) index once per device for a time
    range, where no device condition at all would scan the whole events table; on tables
    with a fleet-wide index (rollups by day) no term is cheaper."""
    terms: list[ColumnElement[bool]] = [] if device_id is None else [column == device_id]
    if among is not None:
        terms.append(column.in_(sorted(among)))
    elif device_id is None and seek_each:
        terms.append(column.in_(select(Device.id)))
    return tuple(terms)


# Up to this many desks, a DeskStatement keeps its statements (one per power of two).
KEPT_DESK_SLOTS = 256


def desk_terms(
    desks: int, term: Callable[[Callable[[str], BindParameter[Any]]], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """``term`` for each of ``desks`` desks, OR'd: ``term`` gets a function that names its
    parameters, so that desk ``n``'s ``"from"`` is bound as ``from_n``."""

    def terms_of(n: int) -> ColumnElement[bool]:
        return term(lambda name: bindparam(f"{name}_{n}"))

    return or_(*(terms_of(n) for n in range(desks)))


class DeskStatement:
    """A statement with one ``desk_terms`` term per desk (``build(slots)`` makes it for
    ``slots`` desks), run with each desk's parameters (``execute``).

    Building the terms of a batch's 20 desks anew for each statement took ingest longer
    than running it (1.5 ms against 0.2 ms for one SELECT on SQLite), so statements are kept:
    one per power of two up to KEPT_DESK_SLOTS desks, the slots beyond the batch's desks
    bound to NULL, which matches no row (a few MB at most; a bigger batch's is built anew)."""

    def __init__(self, build: Callable[[int], Executable]) -> None:
        self._build = build
        self._kept: dict[int, Executable] = {}

    def execute(
        self, connection: Connection, desks: Sequence[Mapping[str, Any]]
    ) -> CursorResult[Any]:
        """Run it with ``desks[n]``'s values as desk ``n``'s parameters (by name)."""
        slots = 1 << max(len(desks) - 1, 0).bit_length()
        if slots > KEPT_DESK_SLOTS:
            slots = len(desks)
        statement = self._kept.get(slots)
        if statement is None:
            statement = self._build(slots)
            if slots <= KEPT_DESK_SLOTS:
                self._kept[slots] = statement
        values = {
            f"{name}_{n}": value for n, desk in enumerate(desks) for name, value in desk.items()
        }
        names = list(desks[0]) if desks else []
        values |= {f"{name}_{n}": None for n in range(len(desks), slots) for name in names}
        return connection.execute(statement, values)


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
        return as_utc(value).isoformat()
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
