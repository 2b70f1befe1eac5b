"""The wire protocol: round trips, and clear errors for payloads that break it."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from support.events import make_event

from sitwatch import protocol
from sitwatch.protocol import EventType, ProtocolError

# A stood_up as the outbox hands it to the link (numbered).
STOOD_UP = make_event(EventType.STOOD_UP, seq=7, session_s=1834.5)


def test_event_round_trips_through_json() -> None:
    assert protocol.parse_event(STOOD_UP.to_json(), device_id="desk-1") == STOOD_UP


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
    body = json.loads(STOOD_UP.to_json())
    body.update(change)
    with pytest.raises(ProtocolError, match=message):
        protocol.parse_event(json.dumps(body))


def test_device_id_must_match_topic() -> None:
    with pytest.raises(ProtocolError, match="does not match"):
        protocol.parse_event(STOOD_UP.to_json(), device_id="desk-2")


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


def test_a_config_carries_the_id_of_its_settings_and_its_result_carries_it_back() -> None:
    settings = {"sitting_limit_s": 2700.0, "quiet_hours": None}
    config = protocol.parse_config(protocol.config_payload(settings))
    assert config.settings == settings
    assert (
        config.id
        == protocol.config_id(settings)
        == protocol.config_id(dict(reversed(settings.items())))
    )
    assert config.id != protocol.config_id({**settings, "sitting_limit_s": 2400.0})
    result = protocol.parse_config_result(
        protocol.config_result_payload(False, "no", answers=config.id)
    )
    assert result == protocol.ConfigResult(accepted=False, reason="no", config_id=config.id)


def test_configs_and_results_without_ids_still_parse() -> None:
    """What a server and a device from before config ids send (docs/protocol.md)."""
    assert protocol.parse_config('{"v":1,"settings":{}}') == protocol.Config(settings={})
    old = protocol.parse_config_result('{"v":1,"accepted":true,"settings":{"grace_s":60.0}}')
    assert old == protocol.ConfigResult(accepted=True, settings={"grace_s": 60.0})


@pytest.mark.parametrize(
    ("parse", "payload", "message"),
    [
        (protocol.parse_config, '{"v":1,"id":"a/b","settings":{}}', "bad config id"),
        (protocol.parse_config, '{"v":1,"id":7,"settings":{}}', "bad config id"),
        (protocol.parse_config_result, '{"v":1,"accepted":true,"config_id":""}', "bad config id"),
        (protocol.parse_config_result, '{"v":1,"accepted":"yes"}', "'accepted' must be bool"),
        (protocol.parse_config_result, '{"v":1,"accepted":false,"reason":[1]}', "'reason'"),
        (protocol.parse_config_result, '{"v":1,"accepted":true,"settings":[]}', "'settings'"),
    ],
)
def test_malformed_config_ids_and_results_raise_protocol_error(
    parse: Callable[[str], object], payload: str, message: str
) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse(payload)


def _event_with(**change: object) -> str:
    body = json.loads(STOOD_UP.to_json())
    body.update(change)
    return json.dumps(body)


def _with_data(**data: object) -> str:
    event = make_event(EventType.PROMPT_ACK, how="drill", response_s=1.0)
    body = json.loads(event.to_json())
    body["data"].update(data)
    return json.dumps(body)


HUGE = 10**400  # float() of it raises OverflowError
STATUS = {"v": 1, "state": "online", "boot_id": "3f2a9c1e5b7d", "version": "0.1.0", "name": "x"}
PAUSE = {"v": 1, "command": "pause", "pause_s": 60, "until": "2026-03-02T15:00:00Z"}


@pytest.mark.parametrize(
    ("parse", "payload", "message"),
    [
        # dates whose conversion to UTC leaves the range of datetime
        (protocol.parse_event, _event_with(ts="0001-01-01T00:00:00+01:00"), "'ts' is outside"),
        (protocol.parse_event, _event_with(ts="9999-12-31T23:59:59-01:00"), "'ts' is outside"),
        (protocol.parse_event, _event_with(mono=HUGE), "is beyond 2\\*\\*53"),
        (protocol.parse_event, _event_with(seq=HUGE), "401 digits"),
        (protocol.parse_event, _event_with(mono=float("nan")), "NaN is not allowed"),
        (protocol.parse_event, _event_with(extra=float("-inf")), "-Infinity is not"),
        (protocol.parse_event, _with_data(response_s=-HUGE), "integer -1000"),
        (protocol.parse_event, _with_data(how="a\x00b"), "'data.how' holds U\\+0000"),
        (protocol.parse_event, _with_data(how="\ud800"), "lone surrogate"),
        (protocol.parse_event, _with_data(**{"\x00": 1}), "a field name in .data. holds"),
        (protocol.parse_event, _event_with(extra=[{"deep": "\udfff"}]), "'extra\\[\\].deep'"),
        (protocol.parse_event, _event_with(v=True), "unsupported protocol version True"),
        (protocol.parse_event, _event_with(v=1.0), "unsupported protocol version 1.0"),
        (protocol.parse_status, json.dumps({**STATUS, "name": "a\x00"}), "'name' holds U"),
        (protocol.parse_status, json.dumps({**STATUS, "version": "\x00"}), "'version' holds"),
        (protocol.parse_status, json.dumps({**STATUS, "boot_id": "\ud800"}), "'boot_id' holds"),
        (protocol.parse_status, json.dumps({**STATUS, "name": "n" * 101}), "longer than 100"),
        (protocol.parse_status, json.dumps({**STATUS, "boot_id": "b" * 65}), "longer than 64"),
        (protocol.parse_status, json.dumps({**STATUS, "detail": 5}), "'detail' must be str"),
        (protocol.parse_status, json.dumps({**STATUS, "v": True}), "unsupported protocol"),
        (protocol.parse_command, json.dumps({**PAUSE, "pause_s": HUGE}), "beyond 2"),
        (protocol.parse_command, json.dumps({**PAUSE, "pause_s": True}), "'pause_s' must be"),
        (
            protocol.parse_command,
            json.dumps({**PAUSE, "until": "9999-12-31T23:59:59-01:00"}),
            "'until' is outside",
        ),
        (
            protocol.parse_command,
            '{"v": 1, "command": "resume", "at": "0001-01-01T00:00:00+01:00"}',
            "'at' is outside",
        ),
        (protocol.parse_command, json.dumps({**PAUSE, "v": True}), "unsupported protocol"),
        (protocol.parse_ack, '{"v": true, "ids": []}', "unsupported protocol"),
        (protocol.parse_ack, '{"v": 1, "ids": ["abcdefgh", "\\u0000"]}', "'ids\\[\\]' holds"),
        (protocol.parse_config, '{"v": 1, "settings": {"grace_s": NaN}}', "must be finite"),
        (protocol.parse_config, '{"v": 1, "settings": {"grace_s": 1e999}}', "too large"),
        (protocol.parse_config, '{"v": 1, "settings": {"grace_s": -Infinity}}', "finite"),
        (protocol.parse_config, '{"v": true, "settings": {}}', "unsupported protocol"),
    ],
)
def test_values_that_break_conversions_raise_protocol_error(
    parse: object, payload: str, message: str
) -> None:
    """Each of these once raised OverflowError, reached a database that refuses it, or was
    taken for something it is not (``"v": true`` as version 1)."""
    with pytest.raises(ProtocolError, match=message):
        parse(payload.encode("utf-8", "surrogatepass"))  # type: ignore[operator]


def test_the_largest_values_a_device_sends_still_pass() -> None:
    big = protocol.MAX_SAFE_INT
    assert protocol.parse_event(_event_with(mono=big, seq=2**31 - 1)).mono == float(big)
    assert protocol.parse_event(_event_with(ts="0001-01-01T00:00:00Z")).ts.year == 1
    status = {**STATUS, "name": "n" * 100, "boot_id": "b" * 64, "version": "v" * 40}
    assert protocol.parse_status(json.dumps(status)).name == "n" * 100


def test_a_drill_says_whether_it_counts_and_an_older_desks_drill_still_does() -> None:
    def completed(**data: object) -> protocol.Event:
        return protocol.parse_event(make_event(EventType.DRILL_COMPLETED, **data).to_json())

    assert protocol.drill_counts(completed(guided=True, verified=True))
    assert not protocol.drill_counts(completed(guided=True, verified=False))
    assert protocol.drill_counts(completed(guided=False))  # sent before desks checked the seat
    with pytest.raises(protocol.ProtocolError, match="field 'verified' must be bool"):
        completed(guided=True, verified="no")
