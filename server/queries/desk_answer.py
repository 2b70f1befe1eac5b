"""What a desk answered to the settings the dashboard last sent it: its config/result, as
the ingest stored it (``models.ConfigResult``), matched to those settings by config id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from sitwatch import protocol
from sitwatch.server.models import ConfigResult
from sitwatch.server.queries.scope import Scope


@dataclass(frozen=True)
class DeskAnswer:
    """``applied`` or ``rejected`` (at ``at``, with the desk's ``reason``) the settings
    sent, or ``unconfirmed``: no answer about them yet."""

    state: Literal["applied", "rejected", "unconfirmed"]
    at: datetime | None = None
    reason: str | None = None


def answer_to(
    session: Session, scope: Scope, device_id: str, sent: dict[str, Any] | None
) -> DeskAnswer | None:
    """The desk's answer to ``sent`` (``Device.settings``: the table last published to it);
    None if the dashboard never sent it settings, or the desk is outside ``scope``. An
    answer about other settings (older ones, or a config the desk could not read) is no
    answer to these."""
    if sent is None or not scope.allows(device_id):
        return None
    stored = session.get(ConfigResult, device_id)
    if stored is None or stored.config_id != protocol.config_id(sent):
        return DeskAnswer("unconfirmed")
    state: Literal["applied", "rejected"] = "applied" if stored.accepted else "rejected"
    return DeskAnswer(state, stored.received_at, stored.reason)
