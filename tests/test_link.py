"""The MQTT link against a real Mosquitto: events reach a (fake) server and leave the outbox
only when acknowledged; status, heartbeats, re-stamping and remote settings."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from link_support import FakeServer, clear_retained
from support.desks import LinkDesk
from support.events import BOOT, make_event
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto
from sitwatch.clock import Clock, FakeClock
from sitwatch.device.settings_store import load_saved_settings, save_settings
from sitwatch.protocol import EventType
from sitwatch.settings import TrackerSettings

pytestmark = pytest.mark.timeout(30)


def fresh_device_id() -> str:
    # Sessions are persistent (clean_session=False): each test needs its own client id.
    return f"desk-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_desk(tmp_path: Path) -> Iterator[Callable[..., LinkDesk]]:
    desks: list[LinkDesk] = []

    def make(
        broker: Mosquitto,
        clock: Clock | None = None,
        start: bool = True,
        device_id: str | None = None,
        **mqtt: object,
    ) -> LinkDesk:
        desk = LinkDesk(
            broker.host, broker.port, tmp_path, device_id or fresh_device_id(), clock, **mqtt
        )
        desks.append(desk)
        if start:
            desk.start()
            wait_until(lambda: desk.link.is_connected, 10, "link to connect")
        return desk

    yield make
    for desk in desks:
        desk.close()
        clear_retained(desk.link.config.mqtt.host, desk.link.config.mqtt.port, desk.device_id)


@pytest.fixture
def server(broker: Mosquitto) -> Iterator[FakeServer]:
    fake = FakeServer(broker.host, broker.port)
    yield fake
    fake.close()


def test_events_arrive_in_order_and_leave_the_outbox_when_acked(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker)
    ids = [desk.add(EventType.STOOD_UP) for _ in range(20)]

    wait_until(lambda: len(desk.outbox) == 0, 10, "outbox to drain")
    assert server.unique_ids() == ids
    assert [e.seq for e in server.events()] == sorted(e.seq for e in server.events())  # type: ignore


def test_without_an_ack_events_stay_and_are_resent(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    server.acking = False
    clock = FakeClock()
    desk = make_desk(broker, clock=clock, resend_after_s=30)
    event_id = desk.add()

    wait_until(lambda: len(server.events()) == 1, 10, "first delivery")
    assert len(desk.outbox) == 1  # PUBACK is not enough

    clock.advance(31)
    desk.link.notify()
    wait_until(lambda: len(server.events()) == 2, 10, "the resend")
    assert server.unique_ids() == [event_id]

    server.publish(desk.topic(protocol.ACK), protocol.ack_payload([event_id]))
    wait_until(lambda: len(desk.outbox) == 0, 10, "ack to remove it")


def test_status_is_online_while_connected_and_offline_after_stop(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker)
    status_topic = desk.topic(protocol.STATUS)
    wait_until(lambda: server.messages(status_topic), 10, "online status")
    online = protocol.parse_status(server.messages(status_topic)[-1][0])
    assert online.state == "online" and online.boot_id == BOOT
    assert online.name == "Desk <b>one</b>"  # the configured name (escaped by the dashboard)
    assert desk.connection == [True]

    desk.link.stop()
    wait_until(lambda: len(server.messages(status_topic)) == 2, 10, "offline status")
    offline = protocol.parse_status(server.messages(status_topic)[-1][0])
    assert offline.state == "offline" and offline.detail == "stopped"
    assert not desk.link.is_connected

    late = FakeServer(broker.host, broker.port)  # a newcomer sees the retained state
    try:
        wait_until(lambda: late.messages(status_topic), 10, "retained status")
        assert protocol.parse_status(late.messages(status_topic)[0][0]).state == "offline"
        assert late.messages(status_topic)[0][1]  # retained
    finally:
        late.close()


def test_seat_and_today_are_retained_for_home_assistant(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker, start=False)
    desk.link.publish_seat(True)  # before connecting: published once connected
    desk.start()
    wait_until(lambda: server.messages(desk.topic(protocol.SEAT)), 10, "seat")
    desk.link.publish_today(42.26, 3)
    wait_until(lambda: server.messages(desk.topic(protocol.TODAY)), 10, "today")

    assert server.messages(desk.topic(protocol.SEAT))[-1][0] == b"ON"
    today = json.loads(server.messages(desk.topic(protocol.TODAY))[-1][0])
    assert today == {"v": 1, "seated_min": 42.3, "drills": 3}


def test_heartbeats_are_sent_every_period_of_the_injected_clock(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    clock = FakeClock()
    make_desk(broker, clock=clock, heartbeat_s=300)
    clock.advance(299)
    clock.advance(1)
    wait_until(lambda: server.events(), 10, "a heartbeat")
    clock.advance(300)
    wait_until(lambda: len(server.events()) == 2, 10, "a second heartbeat")
    assert {e.type for e in server.events()} == {EventType.HEARTBEAT}


def test_events_stamped_before_the_clock_synced_are_restamped(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    clock = FakeClock(synced=False)
    desk = make_desk(broker, clock=clock, start=False)
    # Stamped with the stale boot-time wall clock, 100 s before "now" on the monotonic clock.
    stale = make_event(
        device_id=desk.device_id, mono=clock.monotonic(), ts=clock.wall(), clock_synced=False
    )
    other_boot = make_event(
        device_id=desk.device_id, boot_id="otherboot999", ts=clock.wall(), clock_synced=False
    )
    desk.outbox.add(stale)
    desk.outbox.add(other_boot)
    clock.advance(100)
    clock.step_wall(86400 * 30)  # NTP: the real time is a month later
    clock.synced = True

    desk.start()
    wait_until(lambda: len(server.unique_ids()) == 2, 10, "both events")
    got = {e.id: e for e in server.events()}
    true_time = clock.wall() - timedelta(seconds=100)
    assert got[stale.id].clock_synced and got[stale.id].ts == true_time
    assert not got[other_boot.id].clock_synced  # another boot's monotonic clock: no way to fix
    assert got[other_boot.id].ts == other_boot.ts


def test_a_day_of_backlog_drains_in_seconds(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker, start=False)
    ids = [
        desk.outbox.add(make_event(EventType.HEARTBEAT, device_id=desk.device_id)).id
        for _ in range(3000)
    ]
    desk.start()
    # Speed is bench/'s to measure; here only that all of it drains, in order.
    wait_until(lambda: len(desk.outbox) == 0, 120, "3000 events to drain")
    assert server.unique_ids() == ids


def test_a_pause_command_pauses_for_what_is_left_of_it(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    clock = FakeClock()
    desk = make_desk(broker, clock=clock)
    command_topic = desk.topic(protocol.COMMAND)
    expired = protocol.PauseCommand(pause_s=600, until=clock.wall() - timedelta(seconds=1))
    server.publish(command_topic, expired.to_json())
    # Sent an hour ago for two hours: one hour is left.
    late = protocol.PauseCommand(pause_s=7200, until=clock.wall() + timedelta(hours=1))
    server.publish(command_topic, late.to_json())
    wait_until(lambda: desk.pauses, 10, "the pause")
    assert desk.pauses == [3600]

    clock.synced = False  # the wall clock cannot be trusted: use the span as sent
    server.publish(command_topic, late.to_json())
    wait_until(lambda: len(desk.pauses) == 2, 10, "the second pause")
    assert desk.pauses[-1] == 7200


def test_a_resume_command_says_how_long_ago_it_was_sent(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    clock = FakeClock()
    desk = make_desk(broker, clock=clock)
    command_topic = desk.topic(protocol.COMMAND)
    queued = protocol.ResumeCommand(at=clock.wall() - timedelta(hours=2))
    server.publish(command_topic, queued.to_json())
    wait_until(lambda: desk.resumes, 10, "the resume")
    assert desk.resumes == [7200 - protocol.RESUME_SLACK_S]
    assert desk.pauses == []

    clock.synced = False  # cannot tell how old it is: end whatever pause runs
    server.publish(command_topic, queued.to_json())
    wait_until(lambda: len(desk.resumes) == 2, 10, "the second resume")
    assert desk.resumes[-1] == 0


# -- remote settings ------------------------------------------------------------------------


def config_results(server: FakeServer, desk: LinkDesk) -> list[tuple[bool, str | None]]:
    results = [
        protocol.parse_config_result(payload)
        for payload, _ in server.messages(desk.topic(protocol.CONFIG_RESULT))
    ]
    return [(result.accepted, result.reason) for result in results]


def test_valid_remote_settings_are_applied_saved_and_confirmed(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker)
    payload = protocol.config_payload({"sitting_limit_s": 2700, "quiet_hours": None})
    server.publish(desk.topic(protocol.CONFIG), payload, retain=True)

    wait_until(lambda: desk.applied, 10, "settings applied")
    assert desk.applied[0].sitting_limit_s == 2700 and desk.applied[0].quiet_hours is None
    assert load_saved_settings(desk.settings_path) == desk.applied[0]
    wait_until(lambda: config_results(server, desk), 10, "config result")
    assert config_results(server, desk)[-1] == (True, None)
    server.publish(desk.topic(protocol.CONFIG), "", retain=True)  # clear the retained config


def test_invalid_remote_settings_are_rejected_with_the_reason(
    broker: Mosquitto,
    server: FakeServer,
    make_desk: Callable[..., LinkDesk],
    caplog: pytest.LogCaptureFixture,
) -> None:
    desk = make_desk(broker)
    save_settings(desk.settings_path, TrackerSettings(sitting_limit_s=1200))
    with caplog.at_level(logging.WARNING, logger="sitwatch.device.link"):
        server.publish(
            desk.topic(protocol.CONFIG),
            protocol.config_payload({"sitting_limit_s": 5, "volume": 11}),
        )
        wait_until(lambda: config_results(server, desk), 10, "config result")

    accepted, reason = config_results(server, desk)[-1]
    assert not accepted
    assert reason is not None and "sitting_limit_s" in reason and "volume" in reason
    assert "rejected remote settings" in caplog.text
    assert desk.applied == []
    saved = load_saved_settings(desk.settings_path)
    assert saved is not None and saved.sitting_limit_s == 1200


def test_a_config_result_names_the_config_it_answers(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker)
    good = protocol.config_payload({"sitting_limit_s": 2700})
    bad = protocol.config_payload({"sitting_limit_s": 5})
    for payload in (good, bad, "not JSON"):
        server.publish(desk.topic(protocol.CONFIG), payload)
    wait_until(lambda: len(server.messages(desk.topic(protocol.CONFIG_RESULT))) == 3, 10)
    answers = [
        protocol.parse_config_result(payload)
        for payload, _ in server.messages(desk.topic(protocol.CONFIG_RESULT))
    ]
    assert [(a.accepted, a.config_id) for a in answers] == [
        (True, protocol.parse_config(good).id),
        (False, protocol.parse_config(bad).id),
        (False, None),  # not a config: nothing to name
    ]


def test_retained_settings_reach_a_device_that_connects_later_and_survive_restarts(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    device_id = fresh_device_id()
    server.publish(
        protocol.topic(device_id, protocol.CONFIG),
        protocol.config_payload({"break_s": 300}),
        retain=True,
    )
    desk = make_desk(broker, device_id=device_id)
    wait_until(lambda: desk.applied, 10, "retained settings applied")
    desk.link.stop()

    saved = load_saved_settings(desk.settings_path)
    assert saved is not None and saved.break_s == 300
    server.publish(protocol.topic(device_id, protocol.CONFIG), "", retain=True)


HOSTILE = [
    b"",
    b"null",
    b"[]",
    b"\xff\xfe\x00",
    b"{",
    b"{}" * 10000,
    b"x" * 100_000,
    b'{"v":2,"settings":{}}',
    b'{"v":1}',
    b'{"v":1,"settings":[]}',
    b'{"v":1,"settings":{"sitting_limit_s":"lots"}}',
    b'{"v":1,"settings":{"sitting_limit_s":NaN}}',
    b'{"v":1,"settings":{"sitting_limit_s":1e999}}',
    b'{"v":1,"settings":{"timezone":"../../../etc/passwd"}}',
    b'{"v":1,"settings":{"timezone":"\\u0000"}}',
    b'{"v":1,"settings":{"quiet_hours":{"start":"25:00"}}}',
    b'{"v":1,"settings":{"__class__":{}}}',
    b'{"v":1,"ids":' + b"9" * 5000 + b"}",
    b"[" * 5000 + b"]" * 5000,
    b'{"v":1,"ids":["../../etc"]}',
    b'{"v":1,"ids":"abc"}',
    b'{"v":1,"ids":[1,2]}',
    b'{"v":1,"ids":' + json.dumps(["a" * 10] * 1001).encode() + b"}",
    b'{"v":1,"command":"resume"}',
    b'{"v":1,"command":"resume","at":"soon"}',
    b'{"v":1,"command":"resume","at":"2026-03-02T15:00:00"}',
]


def test_hostile_payloads_on_config_and_ack_do_not_break_the_link(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker)
    for payload in HOSTILE:
        for leaf in (protocol.CONFIG, protocol.ACK, protocol.COMMAND):
            server.publish(desk.topic(leaf), payload)
    assert_still_works(server, desk)
    assert [s.grace_s for s in desk.applied] == [42]  # only the good settings at the end
    assert desk.pauses == [] and desk.resumes == []


def assert_still_works(server: FakeServer, desk: LinkDesk) -> None:
    """The link still applies good settings and delivers events after whatever came before."""
    server.publish(desk.topic(protocol.CONFIG), protocol.config_payload({"grace_s": 42}))
    wait_until(lambda: any(s.grace_s == 42 for s in desk.applied), 10, "good settings")
    event_id = desk.add(EventType.DRILL_COMPLETED)
    wait_until(lambda: event_id in server.unique_ids() and len(desk.outbox) == 0, 10, "delivery")
    assert desk.link.is_connected


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner, max_size=4)
    ),
    max_leaves=12,
)
SETTING_KEYS = list(TrackerSettings.model_fields) + ["start", "end", "v"]
SETTINGS_LIKE = st.dictionaries(st.sampled_from(SETTING_KEYS), JSON_VALUES, max_size=5)
PAYLOADS = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    SETTINGS_LIKE.map(lambda s: json.dumps({"v": 1, "settings": s}).encode()),
    JSON_VALUES.map(lambda ids: json.dumps({"v": 1, "ids": ids}).encode()),
    st.lists(st.text(max_size=70), max_size=5).map(
        lambda ids: json.dumps({"v": 1, "ids": ids}).encode()
    ),
)


def test_generated_payloads_on_config_and_ack_never_crash_the_link(
    broker: Mosquitto, server: FakeServer, make_desk: Callable[..., LinkDesk]
) -> None:
    desk = make_desk(broker)
    paho_thread_errors: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: paho_thread_errors.append(args.exc_value)  # type: ignore
    try:

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            payload=PAYLOADS,
            leaf=st.sampled_from([protocol.CONFIG, protocol.ACK, protocol.COMMAND]),
        )
        def publish(payload: bytes, leaf: str) -> None:
            server.publish(desk.topic(leaf), payload)

        publish()
        assert_still_works(server, desk)
    finally:
        threading.excepthook = previous_hook
    assert paho_thread_errors == []
