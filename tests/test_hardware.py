"""DeskHardware opens its gpiozero devices all or none: a pin that fails part-way closes the
devices already opened and re-raises, as gpiozero's own constructors do, so their pins are
free for the next try (the service restarting, a corrected config). gpiozero's MockFactory
stands in for the pins."""

from __future__ import annotations

from typing import Any

import pytest
from gpiozero import LED

from sitwatch.clock import FakeClock
from sitwatch.device.config import PinsConfig
from sitwatch.device.hardware import DeskHardware, HardwareError, Input

PINS = PinsConfig()


def open_desk(pins: PinsConfig, factory: Any) -> DeskHardware:
    posted: list[Input] = []
    return DeskHardware(pins, FakeClock(), posted.append, pin_factory=factory)


def test_a_busy_led_pin_releases_the_pins_opened_before_it(mock_factory: Any) -> None:
    """The LED is the last device opened: the mat, button and buzzer were open by then."""
    other_program = LED(PINS.led, pin_factory=mock_factory)
    with pytest.raises(HardwareError) as failed:
        open_desk(PINS, mock_factory)
    assert failed.value.key == "pins.led"
    other_program.close()

    desk = open_desk(PINS, mock_factory)  # would find the mat's pin still taken
    try:
        mock_factory.pin(PINS.mat).drive_low()  # a pull-up mat closes to ground
        assert desk.seat_occupied
    finally:
        desk.close()


def test_two_parts_on_one_pin_release_the_pins_opened_before_the_clash(
    mock_factory: Any,
) -> None:
    """A config that was not checked (parse_config refuses a clash) puts the LED on the
    mat's pin: the second claim of the pin fails, and a corrected config then opens."""
    with pytest.raises(HardwareError) as failed:
        open_desk(PinsConfig(led=PINS.mat), mock_factory)
    assert failed.value.key == "pins.led"
    assert str(failed.value).startswith(f"pins.led = {PINS.mat}: ")

    open_desk(PINS, mock_factory).close()
