"""The simulator's time: a ScaledClock's wall clock moves with it and with the base clock's
own jumps, and a key's press has the length the key means at any speed and on a busy
machine. Time is injected: the ScaledClock runs on a FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from sitwatch.clock import FakeClock, ScaledClock, SystemClock
from sitwatch.device.agent import Agent
from sitwatch.device.config import DeviceConfig, PinsConfig
from sitwatch.device.simulator import MockDesk, describe
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings

MIN = 60.0
STALE = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)  # fake-hwclock's last saved time
REAL = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_scaled_wall_clock_moves_at_the_scaled_pace() -> None:
    base = FakeClock(wall_time=REAL)
    clock = ScaledClock(60, base)
    start_mono = clock.monotonic()
    base.advance(10)  # ten real seconds: ten minutes
    assert clock.monotonic() - start_mono == 600
    assert clock.wall() == REAL + timedelta(minutes=10)


def test_a_wait_on_each_clock_takes_its_real_seconds() -> None:
    """What the agent's loop and the simulated person pass to a real wait: a scaled minute
    is a real second; the other clocks' seconds are real seconds."""
    assert ScaledClock(60, FakeClock()).real_seconds(MIN) == 1
    assert SystemClock().real_seconds(MIN) == MIN
    assert FakeClock().real_seconds(MIN) == MIN


def test_the_scaled_wall_clock_follows_the_base_when_ntp_syncs_it() -> None:
    """Started on a Pi whose clock was not set yet: once NTP syncs the base, the scaled
    wall clock is right too, so an event flagged synced carries the real time."""
    base = FakeClock(wall_time=STALE, synced=False)
    clock = ScaledClock(60, base)
    base.advance(10)
    assert clock.wall() == STALE + timedelta(minutes=10) and not clock.is_synced()

    base.step_wall((REAL - STALE).total_seconds())  # NTP
    base.synced = True
    assert clock.is_synced()
    # The real time, plus the 590 s the scaling has added to the 10 real seconds so far.
    assert clock.wall() == base.wall() + timedelta(seconds=590)
    assert base.wall() == REAL + timedelta(seconds=10)
    base.advance(1)
    assert clock.wall() == base.wall() + timedelta(seconds=649)


@dataclass
class BusyClock(FakeClock):
    """A machine under load: every reading of the monotonic clock finds ``lag_s`` more
    real time gone by (scheduling delays between a button's two edges, say)."""

    lag_s: float = 0.005

    def monotonic(self) -> float:
        self.advance(self.lag_s)
        return super().monotonic()


# Fast enough that the test waits at most a few milliseconds for a 6 s hold.
@pytest.fixture(params=[600.0, 3000.0])
def simulated(
    request: pytest.FixtureRequest, mock_factory: object
) -> Iterator[tuple[Agent, MockDesk, ScaledClock, list[Event]]]:
    clock = ScaledClock(request.param, BusyClock())
    events: list[Event] = []
    config = DeviceConfig(tracker=TrackerSettings(quiet_hours=None, active_hours=None))
    agent = Agent(config, clock, pin_factory=mock_factory, sinks=[events.append])
    desk = MockDesk(mock_factory, config.pins, clock, agent.inputs.put)
    yield agent, desk, clock, events
    agent.close()


def kinds(events: list[Event]) -> list[EventType]:
    return [e.type for e in events]


def test_a_short_press_is_a_short_press_at_any_speed_and_load(
    simulated: tuple[Agent, MockDesk, ScaledClock, list[Event]],
) -> None:
    agent, desk, _clock, events = simulated
    desk.press(0.2)  # [b]: nothing prompted, so a drill done on one's own
    agent.step()
    assert kinds(events) == [EventType.DRILL_COMPLETED]
    assert events[0].data == {"guided": False, "verified": True}


def test_the_hold_keys_snooze_and_pause_at_any_speed_and_load(
    simulated: tuple[Agent, MockDesk, ScaledClock, list[Event]],
) -> None:
    agent, desk, clock, events = simulated
    pins = PinsConfig()
    desk.sit(True)
    agent.step()
    start = clock.monotonic()
    while clock.monotonic() - start < 31 * MIN:  # the busy clock runs on by itself
        agent.step()
    assert EventType.PROMPT in kinds(events)
    desk.press(pins.button_hold_s + 0.2)  # [h]
    agent.step()
    assert kinds(events)[-1] is EventType.SNOOZE
    desk.press(pins.pause_hold_s + 0.2)  # [p]
    agent.step()
    assert kinds(events)[-1] is EventType.PAUSE and events[-1].data["pause_s"] == 3600


def drill_event(kind: EventType, **data: object) -> Event:
    return Event(kind, "desk-1", "boot0001", 0.0, REAL, True, data)


def test_the_simulator_says_when_a_drill_does_not_count() -> None:
    seated_step = drill_event(EventType.DRILL_STEP, index=1, step="glute_bridge", seated=True)
    assert "sit-down detected: stand up for the circuit" in describe(seated_step)
    off_seat = drill_event(EventType.DRILL_STEP, index=1, step="glute_bridge", seated=False)
    assert "sit-down" not in describe(off_seat)
    done = drill_event(EventType.DRILL_COMPLETED, guided=True, verified=True)
    assert describe(done) == "drill completed"
    seated = drill_event(EventType.DRILL_COMPLETED, guided=True, verified=False)
    assert describe(seated).startswith("drill NOT counted: the seat was taken for more than 20%")
    assert "stand up for the circuit" in describe(seated)
    older_desk = drill_event(EventType.DRILL_COMPLETED, guided=False)
    assert describe(older_desk) == "drill completed (logged with the button)"
