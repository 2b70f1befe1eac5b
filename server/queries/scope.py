"""Which desks a viewer may see. Every query in ``server.queries`` takes a ``Scope`` and
answers only about its desks, so a view is restricted by the scope it passes, not by each
query's arguments."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement

from sitwatch.server.sql import on_devices


@dataclass(frozen=True)
class Scope:
    """Every desk (``device_ids`` None), or only the desks in ``device_ids``."""

    device_ids: frozenset[str] | None = None

    @classmethod
    def of(cls, device_ids: Iterable[str]) -> Scope:
        return cls(frozenset(device_ids))

    def allows(self, device_id: str) -> bool:
        return self.device_ids is None or device_id in self.device_ids

    def on(
        self,
        column: Any,
        device_id: str | None = None,
        among: Collection[str] | None = None,
        *,
        seek_each: bool = False,
    ) -> tuple[ColumnElement[bool], ...]:
        """WHERE terms for ``column``: one device (or all: None), only those ``among`` a set
        if given, and only desks of this scope (``sql.on_devices``, also for ``seek_each``)."""
        allowed = self.device_ids
        if among is not None:
            allowed = frozenset(among) if allowed is None else allowed & frozenset(among)
        return on_devices(column, device_id, allowed, seek_each=seek_each)


ALL_DESKS = Scope()
