"""The desks' answers to their settings: each config/result decoded and kept as the desk's
latest answer (``models.ConfigResult``), so the settings page can say whether the desk
applied what the dashboard sent."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from sitwatch import protocol
from sitwatch.server.models import ConfigResult as ConfigResultRow
from sitwatch.server.sql import dialect_insert

log = logging.getLogger(__name__)

FILTER = f"{protocol.ROOT}/+/{protocol.CONFIG_RESULT}"


def take_config_result(engine: Engine, device_id: str, payload: bytes) -> None:
    """Decode ``payload`` from ``device_id``'s config/result and store it. Raises
    ProtocolError for a malformed one (the caller logs it as one rejection); an empty one
    (the retained topic cleared) is ignored. A database error is logged, not raised: the
    result is retained, so the next connection brings it again."""
    if not payload:
        return
    result = protocol.parse_config_result(payload)
    try:
        with engine.begin() as connection:
            store_config_result(connection, device_id, result, protocol.now_utc())
    except SQLAlchemyError as exc:
        log.error("config result of %s not stored: %s", device_id, getattr(exc, "orig", exc))


def answered_id(result: protocol.ConfigResult) -> str | None:
    """The id of the config ``result`` answers. A desk that predates config ids says which
    only by the settings it accepted, which have the id of the table it was sent."""
    if result.config_id is not None:
        return result.config_id
    if result.accepted and result.settings is not None:
        return protocol.config_id(result.settings)
    return None


def store_config_result(
    connection: Connection, device_id: str, result: protocol.ConfigResult, received_at: datetime
) -> bool:
    """Keep ``result`` as the desk's latest answer; whether it changed what was stored. The
    same answer again (the retained result comes with every reconnect) keeps its first
    time, when the desk gave it."""
    row = {
        "device_id": device_id,
        "accepted": result.accepted,
        "reason": result.reason,
        "config_id": answered_id(result),
        "received_at": received_at,
    }
    held = connection.execute(
        select(ConfigResultRow.accepted, ConfigResultRow.reason, ConfigResultRow.config_id).where(
            ConfigResultRow.device_id == device_id
        )
    ).first()
    if held is not None and tuple(held) == (row["accepted"], row["reason"], row["config_id"]):
        return False
    stmt = dialect_insert(connection, ConfigResultRow.__table__).values(row)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["device_id"],
            set_={name: stmt.excluded[name] for name in row if name != "device_id"},
        )
    )
    if result.accepted:
        log.info("%s applied config %s", device_id, row["config_id"] or "(no id)")
    else:
        reason = " ".join((result.reason or "(no reason)").split())  # one line in the log
        log.info("%s rejected config %s: %.300s", device_id, row["config_id"], reason)
    return True
