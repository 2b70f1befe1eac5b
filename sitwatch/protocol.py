"""The MQTT wire protocol shared by device and server: topics, payloads, validation.

Every payload is a JSON object with ``"v": 1``. See docs/protocol.md for examples.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

VERSION = 1
ROOT = "sitwatch"
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_ACK_IDS = 1000
# An ack is the only message allowed past MAX_PAYLOAD_BYTES: MAX_ACK_IDS ids of the longest
# allowed length, quoted and comma-separated, plus the envelope.
MAX_ACK_BYTES = MAX_ACK_IDS * (64 + 3) + 64

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# Integers a double holds exactly (I-JSON, RFC 7493): a larger one cannot become a float
# (float(10**400) raises OverflowError) and no sitwatch value comes near it.
MAX_SAFE_INT = 2**53 - 1
# NUL (PostgreSQL refuses it in text) and lone surrogates (no UTF-8 encoding): JSON's \u
# escapes carry both, and no sitwatch string needs either.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Topic fragments: sitwatch/<device_id>/<leaf>
EVENT = "event"  # device -> server, QoS 1, not retained
STATUS = "status"  # device -> all, retained, also the Last Will ("offline")
ACK = "ack"  # server -> device, QoS 1: ids the server has committed
CONFIG = "config"  # server -> device, retained: settings to apply
CONFIG_RESULT = "config/result"  # device -> all, retained: accepted or why rejected
SEAT = "seat"  # device -> all, retained: "ON"/"OFF" for Home Assistant
TODAY = "today"  # device -> all, retained: today's figures for Home Assistant
COMMAND = "command"  # server -> device, QoS 1, not retained: one-off actions (pause, resume)
MAX_PAUSE_S = 7 * 24 * 3600


class ProtocolError(ValueError):
    """A payload or topic that does not follow the protocol; the message says why."""


class EventType(StrEnum):
    SEATED = "seated"
    STOOD_UP = "stood_up"
    BREAK = "break"
    PROMPT = "prompt"
    PROMPT_ACK = "prompt_ack"
    SNOOZE = "snooze"
    DRILL_STARTED = "drill_started"
    DRILL_STEP = "drill_step"
    DRILL_COMPLETED = "drill_completed"
    PAUSE = "pause"
    HEARTBEAT = "heartbeat"


# Events the outbox may drop when full; every other type is kept whatever it costs.
DROPPABLE = frozenset({EventType.HEARTBEAT})

# Keys each event type must carry in ``data`` and their JSON types.
_NUMBER = (int, float)
DATA_SCHEMA: dict[EventType, dict[str, tuple[type, ...]]] = {
    EventType.SEATED: {},
    EventType.STOOD_UP: {"session_s": _NUMBER},
    EventType.BREAK: {"away_s": _NUMBER},
    EventType.PROMPT: {"level": (int,), "seated_s": _NUMBER, "quiet": (bool,)},
    EventType.PROMPT_ACK: {"how": (str,), "response_s": _NUMBER},
    EventType.SNOOZE: {"snooze_s": _NUMBER, "count": (int,)},
    EventType.DRILL_STARTED: {"guided": (bool,)},
    EventType.DRILL_STEP: {"index": (int,), "step": (str,)},
    EventType.DRILL_COMPLETED: {"guided": (bool,)},
    EventType.PAUSE: {"pause_s": _NUMBER},
    EventType.HEARTBEAT: {},
}
# Keys an event type may carry, checked when present: desks older than the honest-drill rule
# (docs/protocol.md, "Honest drills") send events without them.
OPTIONAL_DATA: dict[EventType, dict[str, tuple[type, ...]]] = {
    EventType.DRILL_STEP: {"seated": (bool,)},
    EventType.DRILL_COMPLETED: {"verified": (bool,)},
}


def drill_counts(event: Event) -> bool:
    """Whether a ``drill_completed`` counts: the desk verified the seat was empty for the
    circuit. One from a desk that does not say counts, as it did before desks checked."""
    return event.data.get("verified", True) is not False


def new_id() -> str:
    return uuid.uuid4().hex


def topic(device_id: str, leaf: str) -> str:
    if not DEVICE_ID.match(device_id):
        raise ProtocolError(f"bad device id {device_id!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return f"{ROOT}/{device_id}/{leaf}"


def parse_topic(name: str) -> tuple[str, str]:
    """'sitwatch/desk-1/event' -> ('desk-1', 'event')."""
    parts = name.split("/", 2)
    if len(parts) != 3 or parts[0] != ROOT:
        raise ProtocolError(f"not a sitwatch topic: {name!r}")
    if not DEVICE_ID.match(parts[1]):
        raise ProtocolError(f"bad device id in topic {name!r}")
    return parts[1], parts[2]


@dataclass(frozen=True)
class Event:
    """One thing that happened at a desk. ``mono`` is the device's monotonic clock (seconds,
    valid within one ``boot_id``); ``ts`` is wall-clock UTC, trustworthy only if
    ``clock_synced``. ``seq`` is assigned by the outbox and orders a device's events."""

    type: EventType
    device_id: str
    boot_id: str
    mono: float
    ts: datetime
    clock_synced: bool
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    seq: int | None = None

    def to_json(self) -> str:
        body = asdict(self)
        body["type"] = str(self.type)
        body["ts"] = format_ts(self.ts)
        return json.dumps({"v": VERSION, **body}, separators=(",", ":"), sort_keys=True)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _load_object(payload: bytes | str, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise ProtocolError(f"payload too large ({len(payload)} bytes > {max_bytes})")
    try:
        text = payload if isinstance(payload, str) else payload.decode("utf-8")
        body = _DECODER.decode(text)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers longer than Python's
        # 4300-digit limit.
        raise ProtocolError(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"payload must be a JSON object, got {type(body).__name__}")
    version = body.get("v")
    if type(version) is not int or version != VERSION:  # True == 1 and 1.0 == 1 in Python
        raise ProtocolError(f"unsupported protocol version {version!r:.20} (want {VERSION})")
    # Only a \u escape (or a str payload, not from the wire) can put NUL or a lone surrogate
    # in a decoded string: the walk is skipped for the usual plain ASCII payload.
    if "\\u" in text or not text.isascii():
        _check_text("", body)
    return body


# Numbers are checked as the parser meets them, wherever they are: no value that reaches a
# field can make float() overflow, and NaN (which json takes by default) never gets in.


def _refuse_constant(name: str) -> float:
    raise ProtocolError(f"{name} is not allowed: numbers must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ProtocolError(f"number {text:.40} is too large: numbers must be finite")
    return value


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise ProtocolError(f"integer {text:.24}... ({len(text)} digits) is beyond 2**53")
    return value


# Made once: json.loads with hooks would build a decoder per call, a third of the time.
_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_safe_int
)


def _check_text(where: str, value: Any) -> None:
    """Refuse NUL and lone surrogates in any string or field name of ``value``. Iterative: a
    payload nested to the parser's limit must not exhaust the stack here."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise ProtocolError(f"field {where!r:.80} holds U+0000 or a lone surrogate")
        elif isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    raise ProtocolError(
                        f"a field name in {where or 'the payload'!r:.80} holds"
                        " U+0000 or a lone surrogate"
                    )
                stack.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[]", item) for item in value)


def _require(body: dict[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    value = body.get(key)
    is_bad_bool = isinstance(value, bool) and bool not in kinds
    if value is None or is_bad_bool or not isinstance(value, kinds):
        want = "/".join(k.__name__ for k in kinds)
        raise ProtocolError(f"field {key!r} must be {want}, got {value!r:.60}")
    return value


def parse_ts(text: str, key: str = "ts") -> datetime:
    """An ISO 8601 time with a zone, in UTC; ``key`` names the field in errors."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ProtocolError(f"field {key!r} is not an ISO 8601 time: {text!r:.60}") from None
    if ts.tzinfo is None:
        raise ProtocolError(f"field {key!r} needs a time zone: {text!r:.60}")
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise ProtocolError(f"field {key!r} is outside the range of dates: {text!r:.60}") from None


def parse_event(payload: bytes | str, device_id: str | None = None) -> Event:
    """Validate an event payload; ``device_id`` from the topic must match the body's."""
    body = _load_object(payload)
    try:
        kind = EventType(_require(body, "type", (str,)))
    except ValueError:
        raise ProtocolError(f"unknown event type {body.get('type')!r:.40}") from None
    event_id = _require(body, "id", (str,))
    if not EVENT_ID.match(event_id):
        raise ProtocolError(f"bad event id {event_id!r:.70}")
    body_device = _require(body, "device_id", (str,))
    if not DEVICE_ID.match(body_device):
        raise ProtocolError(f"bad device id {body_device!r:.70}")
    if device_id is not None and body_device != device_id:
        raise ProtocolError(f"device id {body_device!r} does not match topic's {device_id!r}")
    boot_id = _require(body, "boot_id", (str,))
    if not EVENT_ID.match(boot_id):
        raise ProtocolError(f"bad boot id {boot_id!r:.70}")
    seq = body.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise ProtocolError(f"field 'seq' must be a non-negative integer, got {seq!r:.40}")
    data = _require(body, "data", (dict,))
    for key, kinds in DATA_SCHEMA[kind].items():
        value = _require(data, key, kinds)
        if isinstance(value, str) and len(value) > 200:
            raise ProtocolError(f"data field {key!r} too long")
    for key, kinds in OPTIONAL_DATA.get(kind, {}).items():
        if key in data:
            _require(data, key, kinds)
    return Event(
        type=kind,
        device_id=body_device,
        boot_id=boot_id,
        mono=float(_require(body, "mono", _NUMBER)),
        ts=parse_ts(_require(body, "ts", (str,))),
        clock_synced=_require(body, "clock_synced", (bool,)),
        data=data,
        id=event_id,
        seq=seq,
    )


@dataclass(frozen=True)
class Status:
    """A device's presence, retained on sitwatch/<id>/status."""

    state: str  # "online" or "offline"
    boot_id: str | None = None
    version: str | None = None
    detail: str | None = None
    name: str | None = None  # the device's configured name, shown until renamed on the server

    def to_json(self) -> str:
        body = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps({"v": VERSION, **body}, separators=(",", ":"), sort_keys=True)


# The longest text a status may carry in each optional field: the server's columns (the
# device config's ``name`` has the same limit).
STATUS_TEXT_CHARS = {"boot_id": 64, "version": 40, "detail": 200, "name": 100}


def parse_status(payload: bytes | str) -> Status:
    body = _load_object(payload)
    state = _require(body, "state", (str,))
    if state not in ("online", "offline"):
        raise ProtocolError(f"status state must be 'online' or 'offline', got {state!r:.40}")
    extras = {}
    for key, max_chars in STATUS_TEXT_CHARS.items():
        if body.get(key) is None:
            continue
        value = _require(body, key, (str,))
        if len(value) > max_chars:
            raise ProtocolError(f"field {key!r} longer than {max_chars} characters")
        extras[key] = value
    return Status(state=state, **extras)


def ack_payload(ids: list[str]) -> str:
    return json.dumps({"v": VERSION, "ids": ids}, separators=(",", ":"))


def parse_ack(payload: bytes | str) -> list[str]:
    body = _load_object(payload, MAX_ACK_BYTES)
    ids = _require(body, "ids", (list,))
    if len(ids) > MAX_ACK_IDS:
        raise ProtocolError(f"too many ids in one ack ({len(ids)} > {MAX_ACK_IDS})")
    for event_id in ids:
        if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
            raise ProtocolError(f"bad event id in ack: {event_id!r:.70}")
    return ids


# Names a config by its content (``config_id``); a config/result carries it back.
CONFIG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def config_id(settings: dict[str, Any]) -> str:
    """The id of a settings table: 16 hex digits of the SHA-256 of its canonical JSON, so
    the same settings get the same id wherever they are named (docs/protocol.md)."""
    text = json.dumps(settings, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Config:
    """Settings sent to a device (retained on config). ``id`` is None from a server that
    predates config ids."""

    settings: dict[str, Any]
    id: str | None = None


def config_payload(settings: dict[str, Any]) -> str:
    body = {"v": VERSION, "id": config_id(settings), "settings": settings}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _optional_config_id(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not CONFIG_ID.match(value):
        raise ProtocolError(f"bad config id in field {key!r}: {value!r:.70}")
    return value


def parse_config(payload: bytes | str) -> Config:
    """The raw settings table and its id; validate the table with TrackerSettings.parse."""
    body = _load_object(payload)
    return Config(settings=_require(body, "settings", (dict,)), id=_optional_config_id(body, "id"))


MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class ConfigResult:
    """What a device says about the last config it received (retained on config/result):
    the settings it now runs on, or why it refused them. ``config_id`` names the config it
    answers; None from a device that predates config ids, or for a config it could not read."""

    accepted: bool
    reason: str | None = None
    config_id: str | None = None
    settings: dict[str, Any] | None = None


def config_result_payload(
    accepted: bool,
    reason: str | None = None,
    settings: dict[str, Any] | None = None,
    answers: str | None = None,
) -> str:
    """A config/result body; ``answers`` is the id of the config it answers, if it had one."""
    body: dict[str, Any] = {"v": VERSION, "accepted": accepted}
    if reason is not None:
        body["reason"] = reason[:MAX_REASON_CHARS]
    if settings is not None:
        body["settings"] = settings
    if answers is not None:
        body["config_id"] = answers
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def parse_config_result(payload: bytes | str) -> ConfigResult:
    """A config/result payload; ``config_id`` and ``settings`` are optional."""
    body = _load_object(payload)
    accepted = _require(body, "accepted", (bool,))
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ProtocolError(f"field 'reason' must be str, got {reason!r:.60}")
    settings = body.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ProtocolError(f"field 'settings' must be an object, got {settings!r:.60}")
    return ConfigResult(
        accepted=accepted,
        reason=None if reason is None else reason[:MAX_REASON_CHARS],
        config_id=_optional_config_id(body, "config_id"),
        settings=settings,
    )


@dataclass(frozen=True)
class PauseCommand:
    """No prompts until ``until`` (UTC); ``pause_s`` is the same span, for a device whose
    wall clock is not synced yet."""

    pause_s: float
    until: datetime

    def to_json(self) -> str:
        body = {"command": "pause", "pause_s": self.pause_s, "until": format_ts(self.until)}
        return json.dumps({"v": VERSION, **body}, separators=(",", ":"), sort_keys=True)

    def remaining_s(self, now: datetime | None, synced: bool) -> float:
        """How long to pause from ``now``: from ``until`` when the clock is trustworthy."""
        if synced and now is not None:
            return max(0.0, min((self.until - now).total_seconds(), MAX_PAUSE_S))
        return self.pause_s


# Server and device clocks may disagree by this much (seconds) and a resume still ends the
# pause the server sent just before it.
RESUME_SLACK_S = 60.0


@dataclass(frozen=True)
class ResumeCommand:
    """End a pause now. ``at`` (UTC) is when the server sent it: a device that gets it late
    keeps a pause that began after that (say from its own button), so a resume queued while
    the device was away cannot cancel a newer pause."""

    at: datetime

    def to_json(self) -> str:
        body = {"command": "resume", "at": format_ts(self.at)}
        return json.dumps({"v": VERSION, **body}, separators=(",", ":"), sort_keys=True)

    def issued_ago_s(self, now: datetime | None, synced: bool) -> float:
        """How long ago, in seconds, the resume was sent, less RESUME_SLACK_S; 0 (just now:
        end whatever pause is running) when the device cannot trust its clock."""
        if not synced or now is None:
            return 0.0
        return max(0.0, (now - self.at).total_seconds() - RESUME_SLACK_S)


Command = PauseCommand | ResumeCommand


def parse_command(payload: bytes | str) -> Command:
    """A server command; ``command`` names it. Devices that predate ``resume`` log it as
    unknown and ignore it."""
    body = _load_object(payload)
    command = _require(body, "command", (str,))
    if command == "resume":
        return ResumeCommand(at=parse_ts(_require(body, "at", (str,)), "at"))
    if command != "pause":
        raise ProtocolError(f"unknown command {command!r:.40}")
    pause_s = float(_require(body, "pause_s", _NUMBER))
    if not 0 <= pause_s <= MAX_PAUSE_S:
        raise ProtocolError(f"pause_s must be 0..{MAX_PAUSE_S}, got {pause_s!r}")
    return PauseCommand(pause_s=pause_s, until=parse_ts(_require(body, "until", (str,)), "until"))


def now_utc() -> datetime:
    return datetime.now(UTC)
