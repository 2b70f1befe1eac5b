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

from gpiozero import MCP3008, PWMLED, Button, Buzzer, DigitalInputDevice

from sitwatch.clock import Clock
from sitwatch.device.analog_seat import AnalogSeat, Calibration
from sitwatch.device.config import AnalogConfig, PinsConfig
from sitwatch.device.patterns import LedMode, Pattern

log = logging.getLogger(__name__)


class HardwareError(RuntimeError):
    """The configured parts cannot be used as they are (e.g. an uncalibrated analog mat)."""


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


def button_input(held_s: float, pins: PinsConfig) -> Input:
    """What a press of the button held ``held_s`` seconds means."""
    if held_s >= pins.pause_hold_s:
        kind = InputKind.LONG_HOLD
    elif held_s >= pins.button_hold_s:
        kind = InputKind.HOLD
    else:
        kind = InputKind.PRESS
    return Input(kind, held_s=held_s)


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
        analog: AnalogConfig | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self._pins = pins
        self._clock = clock
        self._post = post
        self._pressed_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self.mat: DigitalInputDevice | None = None
        self.adc: MCP3008 | None = None
        self.analog_seat: AnalogSeat | None = None
        if pins.mat_kind == "mcp3008":
            if calibration is None:
                raise HardwareError(
                    "the analog mat is not calibrated: run `sitwatch-device calibrate` first"
                )
            analog = analog or AnalogConfig()
            self._sample_s = analog.sample_s
            self.analog_seat = AnalogSeat(
                calibration, analog.trigger_fraction, analog.hysteresis, analog.window
            )
            self.adc = MCP3008(channel=pins.adc_channel, pin_factory=pin_factory)
        else:
            self.mat = DigitalInputDevice(
                pins.mat,
                pull_up=not pins.mat_active_high,
                bounce_time=pins.mat_bounce_s,
                pin_factory=pin_factory,
            )
            self.mat.when_activated = lambda: self._post(Input(InputKind.SEAT, occupied=True))
            self.mat.when_deactivated = lambda: self._post(Input(InputKind.SEAT, occupied=False))
        self.button = Button(pins.button, pull_up=True, bounce_time=0.02, pin_factory=pin_factory)
        self.buzzer = Buzzer(
            pins.buzzer, active_high=pins.buzzer_active_high, pin_factory=pin_factory
        )
        self.led = PWMLED(pins.led, pin_factory=pin_factory)
        self.button.when_pressed = self._button_down
        self.button.when_released = self._button_up

    @property
    def seat_occupied(self) -> bool:
        if self.analog_seat is not None:
            return self.analog_seat.occupied
        assert self.mat is not None
        return bool(self.mat.is_active)

    def sample(self) -> bool:
        """Read the analog mat once; posts a seat input when the state changes."""
        assert self.adc is not None and self.analog_seat is not None
        before = self.analog_seat.occupied
        occupied = self.analog_seat.add(float(self.adc.value))
        if occupied != before:
            self._post(Input(InputKind.SEAT, occupied=occupied))
        return occupied

    def start(self) -> None:
        """Start sampling an analog mat (a switch mat needs nothing: it has edges)."""
        if self.adc is not None and self._sampler is None:
            self._sampler = threading.Thread(target=self._sample_loop, name="adc", daemon=True)
            self._sampler.start()

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._sample_s):
            try:
                self.sample()
            except Exception:  # a flaky SPI read must not end seat tracking
                log.exception("reading the analog mat failed")

    def _button_down(self) -> None:
        with self._lock:
            self._pressed_at = self._clock.monotonic()

    def _button_up(self) -> None:
        with self._lock:
            pressed_at, self._pressed_at = self._pressed_at, None
        if pressed_at is None:
            return
        self._post(button_input(self._clock.monotonic() - pressed_at, self._pins))

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
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(2)
        for device in (self.mat, self.adc, self.button, self.buzzer, self.led):
            if device is not None:
                device.close()
