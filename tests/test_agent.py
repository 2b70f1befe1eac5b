"""The agent on gpiozero's real device classes, with MockFactory pins and a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sitwatch.clock import FakeClock
from sitwatch.device.agent import Agent
from sitwatch.device.config import DeviceConfig, PinsConfig
from sitwatch.device.tracker import State
from sitwatch.drill import CIRCUIT
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings

MIN = 60.0
PINS = PinsConfig()


@pytest.fixture
def agent(mock_factory: object, clock: FakeClock) -> Iterator[tuple[Agent, list[Event]]]:
    events: list[Event] = []
    config = DeviceConfig(tracker=TrackerSettings(quiet_hours=None, drill_step_s=20))
    agent = Agent(config, clock, sinks=[events.append])
    yield agent, events
    agent.close()


def pin(factory: object, number: int):  # type: ignore[no-untyped-def]
    return factory.pin(number)  # type: ignore[attr-defined]


def live(agent: Agent, clock: FakeClock, seconds: float, step: float = 5.0) -> None:
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        clock.advance(min(step, end - clock.monotonic()))
        agent.step()


def wait_until(predicate, timeout: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    done = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        done.wait(0.01)
    return True


def types(events: list[Event]) -> list[str]:
    return [str(e.type) for e in events]


def test_mat_closing_to_ground_is_a_sitter(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    mat = pin(mock_factory, PINS.mat)
    mat.drive_low()  # pull-up mat: closed contact pulls the pin to ground
    assert bot.step(timeout_s=1)
    assert types(events) == ["seated"]
    live(bot, clock, 30 * MIN)
    assert types(events) == ["seated", "prompt"]


def test_active_high_mat(mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    events: list[Event] = []
    config = DeviceConfig(pins=PinsConfig(mat_active_high=True))
    bot = Agent(config, clock, sinks=[events.append])
    try:
        pin(mock_factory, PINS.mat).drive_high()
        bot.step(timeout_s=1)
        assert types(events) == ["seated"]
    finally:
        bot.close()


def test_bouncing_contacts_give_one_session(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    mat = pin(mock_factory, PINS.mat)
    for _ in range(5):  # a chattering contact as the user sits down
        mat.drive_low()
        mat.drive_high()
    mat.drive_low()
    bot.step(timeout_s=1)
    live(bot, clock, 5 * MIN)
    assert types(events) == ["seated"]
    assert bot.tracker.is_seated


def test_stand_up_seen_through_the_pin(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    mat = pin(mock_factory, PINS.mat)
    mat.drive_low()
    bot.step(timeout_s=1)
    live(bot, clock, 10 * MIN)
    mat.drive_high()
    bot.step(timeout_s=1)
    live(bot, clock, 20)  # a short lift: nothing yet
    assert types(events) == ["seated"]
    live(bot, clock, 3 * MIN)
    assert types(events) == ["seated", "stood_up", "break"]


def press(bot: Agent, button, clock: FakeClock, held_s: float) -> None:  # type: ignore[no-untyped-def]
    button.drive_low()
    clock.advance(held_s)
    button.drive_high()
    bot.step(timeout_s=1)


def test_button_runs_the_guided_drill_with_cues(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    pin(mock_factory, PINS.mat).drive_low()
    bot.step(timeout_s=1)
    live(bot, clock, 30 * MIN + 5)
    assert types(events)[-1] == "prompt"
    buzzer = pin(mock_factory, PINS.buzzer)
    led = pin(mock_factory, PINS.led)
    assert wait_until(lambda: any(s.state for s in buzzer.states))  # time to move: it beeps
    assert wait_until(lambda: any(s.state > 0 for s in led.states))  # and the LED pulses
    press(bot, pin(mock_factory, PINS.button), clock, 0.2)
    assert types(events)[-3:] == ["prompt_ack", "drill_started", "drill_step"]
    live(bot, clock, 20 * len(CIRCUIT), step=1)
    steps = [e.data["step"] for e in events if e.type == EventType.DRILL_STEP]
    assert steps == [s.key for s in CIRCUIT]
    assert types(events)[-1] == "drill_completed"


def test_hold_snoozes_and_very_long_hold_pauses(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    button = pin(mock_factory, PINS.button)
    pin(mock_factory, PINS.mat).drive_low()
    bot.step(timeout_s=1)
    live(bot, clock, 30 * MIN + 5)
    press(bot, button, clock, 2.5)
    assert types(events)[-1] == "snooze"
    press(bot, button, clock, 7)
    assert types(events)[-1] == "pause"
    assert events[-1].data == {"pause_s": 3600.0}
    bot.post_resume(0.0)  # what the MQTT link does on the server's resume command
    bot.step()
    assert types(events)[-1] == "pause"
    assert events[-1].data == {"pause_s": 0.0}
    assert bot.tracker.state is not State.PAUSED


def test_press_without_prompt_logs_a_drill(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    press(bot, pin(mock_factory, PINS.button), clock, 0.1)
    assert types(events) == ["drill_completed"]
    assert events[0].data == {"guided": False}


def test_quiet_prompt_lights_the_led_but_keeps_the_buzzer_silent(mock_factory) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    clock = FakeClock(wall_time=datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    events: list[Event] = []
    bot = Agent(DeviceConfig(), clock, sinks=[events.append])  # quiet 22:00-07:00 UTC
    try:
        pin(mock_factory, PINS.mat).drive_low()
        bot.step(timeout_s=1)
        live(bot, clock, 31 * MIN)
        assert events[-1].type == EventType.PROMPT and events[-1].data["quiet"] is True
        led = pin(mock_factory, PINS.led)
        assert wait_until(lambda: any(s.state > 0 for s in led.states))
        assert not any(s.state for s in pin(mock_factory, PINS.buzzer).states)
    finally:
        bot.close()


def test_settings_from_another_thread_apply_live(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    pin(mock_factory, PINS.mat).drive_low()
    bot.step(timeout_s=1)
    bot.post_settings(TrackerSettings(sitting_limit_s=10 * MIN, quiet_hours=None))
    live(bot, clock, 10 * MIN)
    assert types(events) == ["seated", "prompt"]


def test_a_failing_sink_does_not_stop_tracking(mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    events: list[Event] = []

    def broken(_: Event) -> None:
        raise OSError("disk full")

    bot = Agent(DeviceConfig(), clock, sinks=[broken, events.append])
    try:
        pin(mock_factory, PINS.mat).drive_low()
        bot.step(timeout_s=1)
        assert types(events) == ["seated"]
    finally:
        bot.close()
