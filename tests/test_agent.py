"""The agent on gpiozero's real device classes, with MockFactory pins and a fake clock.

Buzzer and LED patterns play on gpiozero's own threads in real time: the tests wait for a
pattern's thread to end (or for the changes it must make) and compare the pins' recorded
states and times with device/patterns.py, never sleeping a guessed duration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from support.waiting import wait_until

from sitwatch.clock import FakeClock
from sitwatch.device import patterns
from sitwatch.device.agent import Agent
from sitwatch.device.config import DeviceConfig, PinsConfig
from sitwatch.device.patterns import LedMode, Pattern
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


def live_until_prompt(bot: Agent, clock: FakeClock, events: list[Event], *pins) -> None:  # type: ignore[no-untyped-def]
    """Second by second up to the next prompt; the pins' records (MockPin.clear_states) are
    started afresh before each second, so they hold only what the prompt played."""
    before = len(events)
    for _ in range(2 * 3600):
        for recorded in pins:
            recorded.clear_states()
        clock.advance(1)
        bot.step()
        if any(e.type == EventType.PROMPT for e in events[before:]):
            return
    raise AssertionError("no prompt within two hours")


def played(bot: Agent) -> None:
    """Wait for the buzzer's pattern to end. gpiozero's own tests join the device's blink
    thread too: the one completion signal it has."""
    thread = bot.hardware.buzzer._blink_thread
    if thread is not None:
        thread.join(10)
        assert not thread.is_alive(), "the buzzer pattern never ended"


# Prompt level -> (beeps, on s, off s), as device/patterns.py documents them (the README: 3, 5, 16).
DOCUMENTED_BEEPS = {1: (3, 0.15, 0.15), 2: (5, 0.10, 0.10), 3: (16, 0.07, 0.07)}


def beeps(count: int, on_s: float, off_s: float) -> list[tuple[float, bool]]:
    """The buzzer pin's changes for ``count`` beeps as MockPin records them (seconds since
    the change before, new level): on at once, then ``on_s`` on and ``off_s`` off each."""
    changes = [(0.0, True), (on_s, False)]
    for _ in range(count - 1):
        changes += [(off_s, True), (on_s, False)]
    return changes


def cue_beeps(pattern: Pattern) -> list[tuple[float, bool]]:
    return beeps(pattern.beeps, pattern.beep_s, pattern.gap_s)


def led_changes(pattern: Pattern, fps: int = 25) -> list[tuple[float, float]]:
    """The LED pin's first changes for a prompt's pattern, from dark: one whole pulse (a
    brightness step every 1/fps s, as gpiozero fades, up in ``on_s``, down in ``off_s``),
    or three blinks."""
    led = pattern.led
    if led.mode is LedMode.BLINK:
        return [(0.0, 1.0), (led.on_s, 0.0)] + [(led.off_s, 1.0), (led.on_s, 0.0)] * 2
    assert led.mode is LedMode.PULSE
    step = 1 / fps
    up = [(step, i * step / led.on_s) for i in range(1, int(fps * led.on_s))]
    down = [(step, 1 - i * step / led.off_s) for i in range(1, int(fps * led.off_s))]
    return [*up, (step, 1.0), *down, (step, 0.0)]


def assert_changes(recorded, changes: list[tuple[float, float]]) -> None:  # type: ignore[no-untyped-def]
    """Exactly ``changes`` since the record was cleared, with gpiozero's timing tolerance."""
    assert len(recorded.states) == 1 + len(changes), [s.state for s in recorded.states]
    recorded.assert_states_and_times([(0.0, recorded.states[0].state), *changes])


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
    played(bot)
    buzzer.clear_states()
    press(bot, pin(mock_factory, PINS.button), clock, 0.2)
    assert types(events)[-2:] == ["drill_started", "drill_step"]
    played(bot)
    assert_changes(buzzer, cue_beeps(patterns.DRILL_STEP))  # the first step's cue: one long beep
    pin(mock_factory, PINS.mat).drive_high()  # off the chair for the circuit
    bot.step(timeout_s=1)
    live(bot, clock, 20 * len(CIRCUIT) - 1, step=1)
    steps = [e.data["step"] for e in events if e.type == EventType.DRILL_STEP]
    assert steps == [s.key for s in CIRCUIT]
    played(bot)
    buzzer.clear_states()
    live(bot, clock, 1, step=1)
    assert types(events)[-2:] == ["prompt_ack", "drill_completed"]
    assert events[-1].data == {"guided": True, "verified": True}
    played(bot)
    assert_changes(buzzer, cue_beeps(patterns.DRILL_DONE))


def test_a_drill_on_the_chair_cues_stand_up_and_not_counted(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    pin(mock_factory, PINS.mat).drive_low()
    bot.step(timeout_s=1)
    live(bot, clock, 30 * MIN + 5)
    buzzer = pin(mock_factory, PINS.buzzer)
    press(bot, pin(mock_factory, PINS.button), clock, 0.2)  # and stays seated
    live(bot, clock, 19, step=1)
    played(bot)
    buzzer.clear_states()
    live(bot, clock, 1, step=1)  # the glute bridges, with the seat taken
    assert events[-1].data == {"index": 1, "step": "glute_bridge", "seated": True}
    played(bot)
    assert_changes(buzzer, cue_beeps(patterns.STAND_UP))
    live(bot, clock, 20 * (len(CIRCUIT) - 1) - 1, step=1)
    played(bot)
    buzzer.clear_states()
    live(bot, clock, 1, step=1)
    assert events[-1].data == {"guided": True, "verified": False}
    assert EventType.PROMPT_ACK not in [e.type for e in events]
    played(bot)
    assert_changes(buzzer, cue_beeps(patterns.DRILL_NOT_COUNTED))


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


def test_each_prompt_level_plays_its_documented_pattern(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    """3, 5 and 16 beeps at the documented on/off times, with a slow pulse, a faster pulse
    and a fast blink; a snooze between them (one short beep) lets the next one escalate."""
    bot, events = agent
    buzzer, led = pin(mock_factory, PINS.buzzer), pin(mock_factory, PINS.led)
    pin(mock_factory, PINS.mat).drive_low()
    bot.step(timeout_s=1)
    for level in (1, 2, 3):
        cue = patterns.time_to_move(level)
        live_until_prompt(bot, clock, events, buzzer, led)
        assert events[-1].type == EventType.PROMPT and events[-1].data["level"] == level
        played(bot)
        assert_changes(buzzer, beeps(*DOCUMENTED_BEEPS[level]))
        expected = led_changes(cue)
        wait_until(lambda e=expected: len(led.states) > len(e), 10, f"the level-{level} LED")
        led.assert_states_and_times([(0.0, 0.0), *expected])
        if level < 3:
            press(bot, pin(mock_factory, PINS.button), clock, 2.5)
            assert types(events)[-1] == "snooze"
            played(bot)
            *_, on, off = buzzer.states  # the snooze's one short beep
            assert (on.state, off.state) == (True, False)
            assert off.timestamp == pytest.approx(patterns.SNOOZED.beep_s, abs=0.05)


def test_press_without_prompt_logs_a_drill(agent, mock_factory, clock) -> None:  # type: ignore[no-untyped-def]
    bot, events = agent
    press(bot, pin(mock_factory, PINS.button), clock, 0.1)
    assert types(events) == ["drill_completed"]
    assert events[0].data == {"guided": False, "verified": True}  # nobody on the seat


def test_quiet_prompt_lights_the_led_but_keeps_the_buzzer_silent(mock_factory) -> None:  # type: ignore[no-untyped-def]
    """In quiet hours the LED pulses as usual and the buzzer stays silent all along: for one
    whole pulse (2 s), longer than the beeps would have lasted (0.9 s)."""
    clock = FakeClock(wall_time=datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    events: list[Event] = []
    bot = Agent(DeviceConfig(), clock, sinks=[events.append])  # quiet 22:00-07:00 UTC
    buzzer, led = pin(mock_factory, PINS.buzzer), pin(mock_factory, PINS.led)
    try:
        pin(mock_factory, PINS.mat).drive_low()
        bot.step(timeout_s=1)
        live_until_prompt(bot, clock, events, buzzer, led)
        assert events[-1].data == {"level": 1, "seated_s": 1800.0, "quiet": True}
        loud = patterns.time_to_move(1)
        expected = led_changes(loud)
        assert loud.beeps * (loud.beep_s + loud.gap_s) < sum(t for t, _ in expected)
        wait_until(lambda: len(led.states) > len(expected), 10, "one whole LED pulse")
        led.assert_states_and_times([(0.0, 0.0), *expected])
        assert [s.state for s in buzzer.states] == [False]  # not one change since the prompt
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
