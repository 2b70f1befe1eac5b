"""The wire protocol: round trips, and clear errors for payloads that break it."""

from __future__ import annotations

import json

import pytest

from sitwatch import protocol
from sitwatch.clock import FakeClock
from sitwatch.protocol import Event, EventType, ProtocolError


def make_event(**overrides: object) -> Event:
    clock = FakeClock()
    fields: dict[str, object] = dict(
        type=EventType.STOOD_UP,
        device_id="desk-1",
        boot_id=protocol.new_id(),
        mono=clock.monotonic(),
        ts=clock.wall(),
        clock_synced=True,
        data={"session_s": 1834.5},
        seq=7,
    )
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def test_event_round_trips_through_json() -> None:
    event = make_event()
    assert protocol.parse_event(event.to_json(), device_id="desk-1") == event


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"v": 2}', "unsupported protocol version"),
        (b"{" * 5000, "not JSON"),
        (b"x" * (protocol.MAX_PAYLOAD_BYTES + 1), "too large"),
    ],
)
def test_malformed_payloads_raise_protocol_error(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol.parse_event(payload)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "explode"}, "unknown event type"),
        ({"id": "<script>"}, "bad event id"),
        ({"device_id": "desk/../x"}, "bad device id"),
        ({"mono": "soon"}, "'mono' must be"),
        ({"mono": True}, "'mono' must be"),
        ({"ts": "yesterday"}, "ISO 8601"),
        ({"ts": "2026-01-01T10:00:00"}, "time zone"),
        ({"seq": -1}, "non-negative"),
        ({"data": {}}, "'session_s' must be"),
        ({"data": {"session_s": float("inf")}}, "finite"),
    ],
)
def test_bad_fields_are_named(change: dict[str, object], message: str) -> None:
    body = json.loads(make_event().to_json())
    body.update(change)
    with pytest.raises(ProtocolError, match=message):
        protocol.parse_event(json.dumps(body))


def test_device_id_must_match_topic() -> None:
    with pytest.raises(ProtocolError, match="does not match"):
        protocol.parse_event(make_event().to_json(), device_id="desk-2")


def test_topics() -> None:
    assert protocol.topic("desk-1", protocol.EVENT) == "sitwatch/desk-1/event"
    assert protocol.parse_topic("sitwatch/desk-1/config/result") == ("desk-1", "config/result")
    with pytest.raises(ProtocolError):
        protocol.topic("a/b", protocol.EVENT)
    with pytest.raises(ProtocolError):
        protocol.parse_topic("other/desk-1/event")


def test_ack_and_status_round_trip() -> None:
    ids = [protocol.new_id() for _ in range(3)]
    assert protocol.parse_ack(protocol.ack_payload(ids)) == ids
    with pytest.raises(ProtocolError, match="bad event id"):
        protocol.parse_ack(protocol.ack_payload(["x"]))
    status = protocol.Status(state="online", boot_id=protocol.new_id(), version="0.1.0")
    assert protocol.parse_status(status.to_json()) == status
    with pytest.raises(ProtocolError, match="online"):
        protocol.parse_status('{"v": 1, "state": "maybe"}')


def test_the_largest_ack_the_server_sends_is_accepted() -> None:
    # The ingest worker splits acks into MAX_ACK_IDS ids; with real ids (and with ids of the
    # longest allowed length) such an ack is far above the limit for other payloads.
    for ids in (
        [protocol.new_id() for _ in range(protocol.MAX_ACK_IDS)],
        [f"{n:064d}" for n in range(protocol.MAX_ACK_IDS)],
    ):
        payload = protocol.ack_payload(ids)
        assert len(payload) > protocol.MAX_PAYLOAD_BYTES
        assert protocol.parse_ack(payload) == ids
    with pytest.raises(ProtocolError, match="too many ids"):
        protocol.parse_ack(protocol.ack_payload(["a" * 8] * (protocol.MAX_ACK_IDS + 1)))
    with pytest.raises(ProtocolError, match="too large"):
        protocol.parse_ack(b" " * (protocol.MAX_ACK_BYTES + 1))


def test_pause_command_round_trip_and_remaining_time() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    command = protocol.PauseCommand(pause_s=3600, until=now + timedelta(hours=1))
    parsed = protocol.parse_command(command.to_json())
    assert parsed == command
    assert parsed.remaining_s(now + timedelta(minutes=45), synced=True) == 900
    assert parsed.remaining_s(now + timedelta(hours=3), synced=True) == 0
    assert parsed.remaining_s(datetime(2020, 1, 1, tzinfo=UTC), synced=False) == 3600
    with pytest.raises(ProtocolError, match="unknown command"):
        protocol.parse_command('{"v": 1, "command": "self-destruct"}')
    with pytest.raises(ProtocolError, match="pause_s must be"):
        protocol.parse_command('{"v": 1, "command": "pause", "pause_s": -5, "until": "x"}')


def test_resume_command_round_trip_and_how_long_ago_it_was_sent() -> None:
    from datetime import UTC, datetime, timedelta

    sent = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    command = protocol.ResumeCommand(at=sent)
    assert json.loads(command.to_json()) == {
        "v": 1,
        "command": "resume",
        "at": "2026-03-02T15:00:00.000Z",
    }
    parsed = protocol.parse_command(command.to_json())
    assert parsed == command
    assert isinstance(parsed, protocol.ResumeCommand)
    slack = protocol.RESUME_SLACK_S
    later = sent + timedelta(hours=2)
    assert parsed.issued_ago_s(later, synced=True) == 7200 - slack
    assert parsed.issued_ago_s(sent + timedelta(seconds=5), synced=True) == 0  # within slack
    assert parsed.issued_ago_s(sent - timedelta(hours=1), synced=True) == 0  # device behind
    assert parsed.issued_ago_s(later, synced=False) == 0  # unknown: end the running pause


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"v": 1, "command": "resume"}', "field 'at' must be str"),
        ('{"v": 1, "command": "resume", "at": 17}', "field 'at' must be str"),
        ('{"v": 1, "command": "resume", "at": "yesterday"}', "not an ISO 8601 time"),
        ('{"v": 1, "command": "resume", "at": "2026-03-02T15:00:00"}', "needs a time zone"),
        ('{"v": 2, "command": "resume", "at": "2026-03-02T15:00:00Z"}', "unsupported protocol"),
        ('{"v": 1, "command": "RESUME", "at": "2026-03-02T15:00:00Z"}', "unknown command"),
        ('{"v": 1, "command": ["resume"]}', "field 'command' must be str"),
        (
            '{"v": 1, "command": "pause", "pause_s": 1e999, "until": "2026-03-02T15:00:00Z"}',
            "must be finite",
        ),
    ],
)
def test_malformed_commands_raise_protocol_error(payload: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol.parse_command(payload)
