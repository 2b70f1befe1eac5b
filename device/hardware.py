"""The only module that imports gpiozero: the seat mat, the desk button, the buzzer and the LED.

Devices are built with an injectable ``pin_factory`` (gpiozero's MockFactory in tests and
the simulator, lgpio on a Pi). gpiozero calls back from its own threads, so inputs are
handed to ``post`` (the agent's queue) and never touch the tracker directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gpiozero import PWMLED, Button, Buzzer, DigitalInputDevice

from sitwatch.clock import Clock
from sitwatch.device.config import PinsConfig
from sitwatch.device.patterns import LedMode, Pattern

log = logging.getLogger(__name__)


class InputKind(StrEnum):
    SEAT = "seat"
    PRESS = "press"  # released before the hold time
    HOLD = "hold"  # held at least the hold time (snooze)
    LONG_HOLD = "long_hold"  # held at least the pause time (pause for an hour)


@dataclass(frozen=True)
class Input:
    kind: InputKind
    occupied: bool = False  # for SEAT
    held_s: float = 0.0  # for button inputs


class DeskHardware:
    """gpiozero devices wired to the agent. Button timing uses the injected clock, so a
    hold is measured the same way in tests, the simulator and on a Pi."""

    def __init__(
        self,
        pins: PinsConfig,
        clock: Clock,
        post: Callable[[Input], None],
        *,
        pin_factory: Any = None,
    ) -> None:
        self._pins = pins
        self._clock = clock
        self._post = post
        self._pressed_at: float | None = None
        self._lock = threading.Lock()
        self.mat = DigitalInputDevice(
            pins.mat,
            pull_up=not pins.mat_active_high,
            bounce_time=pins.mat_bounce_s,
            pin_factory=pin_factory,
        )
        self.button = Button(pins.button, pull_up=True, bounce_time=0.02, pin_factory=pin_factory)
        self.buzzer = Buzzer(
            pins.buzzer, active_high=pins.buzzer_active_high, pin_factory=pin_factory
        )
        self.led = PWMLED(pins.led, pin_factory=pin_factory)
        self.mat.when_activated = lambda: self._post(Input(InputKind.SEAT, occupied=True))
        self.mat.when_deactivated = lambda: self._post(Input(InputKind.SEAT, occupied=False))
        self.button.when_pressed = self._button_down
        self.button.when_released = self._button_up

    @property
    def seat_occupied(self) -> bool:
        return bool(self.mat.is_active)

    def _button_down(self) -> None:
        with self._lock:
            self._pressed_at = self._clock.monotonic()

    def _button_up(self) -> None:
        with self._lock:
            pressed_at, self._pressed_at = self._pressed_at, None
        if pressed_at is None:
            return
        held_s = self._clock.monotonic() - pressed_at
        if held_s >= self._pins.pause_hold_s:
            kind = InputKind.LONG_HOLD
        elif held_s >= self._pins.button_hold_s:
            kind = InputKind.HOLD
        else:
            kind = InputKind.PRESS
        self._post(Input(kind, held_s=held_s))

    def play(self, pattern: Pattern) -> None:
        """Start a pattern in the background; it replaces whatever was playing."""
        log.debug("cue %s", pattern.name)
        self.buzzer.off()
        if pattern.audible:
            self.buzzer.beep(on_time=pattern.beep_s, off_time=pattern.gap_s, n=pattern.beeps)
        led = pattern.led
        if led.mode is LedMode.OFF:
            self.led.off()
        elif led.mode is LedMode.ON:
            self.led.on()
        elif led.mode is LedMode.PULSE:
            self.led.pulse(fade_in_time=led.on_s, fade_out_time=led.off_s, n=led.times)
        else:
            self.led.blink(on_time=led.on_s, off_time=max(led.off_s, 0.01), n=led.times)

    def close(self) -> None:
        for device in (self.mat, self.button, self.buzzer, self.led):
            device.close()
