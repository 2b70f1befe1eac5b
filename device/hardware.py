"""The only module that imports gpiozero: the seat mat, the desk button, the buzzer and the LED.

Devices are built with an injectable ``pin_factory`` (gpiozero's MockFactory in tests and
the simulator, lgpio on a Pi; ``open_pin_factory`` picks it by name). gpiozero calls back
from its own threads, so inputs are handed to ``post`` (the agent's queue) and never touch
the tracker directly.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

from gpiozero import (
    MCP3008,
    PWMLED,
    Button,
    Buzzer,
    Device,
    DigitalInputDevice,
    GPIOZeroError,
)
from gpiozero.exc import BadPinFactory, PinUnknownPi

from sitwatch.clock import Clock
from sitwatch.device.analog_seat import AnalogSeat, Calibration
from sitwatch.device.config import AnalogConfig, PinsConfig, pin_factory_names
from sitwatch.device.patterns import LedMode, Pattern

log = logging.getLogger(__name__)
T = TypeVar("T")

# A backend's missing module -> what to install. lgpio is what gpiozero 2.x prefers and the
# only backend on a Pi 5; the ``pi`` extra also brings rpi-lgpio, which provides RPi.GPIO.
INSTALL = {
    "lgpio": "the lgpio package is not installed: pip install 'sitwatch[pi]'",
    "RPi": "the RPi.GPIO module is not installed: pip install 'sitwatch[pi]' (rpi-lgpio)",
    "pigpio": "the pigpio package is not installed: pip install pigpio (and run pigpiod)",
}
# lgpio's messages for a device node it could not open; it drops the errno (lgErr.c), so
# the node is opened again to learn it.
LGPIO_CANNOT_OPEN = {"can not open gpiochip": "gpiochip", "can not open SPI device": "spidev"}
# Device node -> why it may be missing altogether.
NODE_MISSING = {"gpiochip": "not a Raspberry Pi?", "spidev": "enable SPI with raspi-config"}
# Device node -> what usually fixes a refusal (Raspberry Pi OS gives these groups access).
NODE_FIXES = {
    "gpiochip": "add the user to the gpio group",
    "gpiomem": "add the user to the gpio group",
    "spidev": "enable SPI with raspi-config and add the user to the spi group",
}


class HardwareError(RuntimeError):
    """The configured parts cannot be used as they are (e.g. an uncalibrated analog mat);
    ``key`` is the config key at fault, when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _missing_module(exc: BaseException) -> str | None:
    """The top-level module a backend failed to import, if that is what went wrong."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


def _os_error(exc: BaseException | None) -> OSError | None:
    """The first OS error in the exception's chain of causes."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.strerror:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _with_fix(reason: str, node: object) -> str:
    for name, fix in NODE_FIXES.items():
        if name in str(node):
            return f"{reason} ({fix})"
    return reason


def _open_nodes(nodes: Iterable[Path]) -> str | None:
    """Open each device node as the backend would; the first refusal, e.g. "cannot open
    /dev/gpiochip0: Permission denied", or None if all open."""
    for node in nodes:
        try:
            fd = os.open(node, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            return _with_fix(f"cannot open {node}: {exc.strerror}", node)
        os.close(fd)
    return None


def describe_backend_error(exc: BaseException, *, dev: Path = Path("/dev")) -> str:
    """One line on why a pin backend or a pin failed, with the OS's reason where there is
    one ("Permission denied") and what to install or change. ``dev`` is where device nodes
    are looked up when the backend's own message leaves the reason out."""
    missing = _missing_module(exc)
    if missing is not None:
        return INSTALL.get(missing, f"the {missing} module is not installed")
    os_error = _os_error(exc)
    if isinstance(os_error, FileNotFoundError) and str(os_error.filename).startswith(".lgd"):
        where = os.environ.get("LG_WD") or os.getcwd()
        return (
            f"lgpio cannot create its notification pipe in {where} "
            "(set LG_WD to a folder this user can write)"
        )
    # lgpio.error and pigpio.error keep the text in .value and show its repr() as str()
    value = getattr(exc, "value", None)
    text = value if isinstance(value, str) else str(exc)
    text = text or (type(exc).__doc__ or type(exc).__name__).strip().splitlines()[0]
    node = LGPIO_CANNOT_OPEN.get(text)
    if node is not None:
        nodes = sorted(dev.glob(f"{node}*"))
        if not nodes:
            return f"{text}: there is no {dev / node}* ({NODE_MISSING[node]})"
        return _open_nodes(nodes) or _with_fix(text, node)
    if text == "GPIO busy":  # lgpio: another process holds the line
        return f"{text}: another program holds the pin (is sitwatch-device already running?)"
    if isinstance(exc, PinUnknownPi):
        return f"{text} (not a Raspberry Pi?)"
    if os_error is None:
        return text
    where = f"{os_error.filename}: " if os_error.filename else ""
    reason = _with_fix(f"{where}{os_error.strerror}", os_error.filename)
    return reason if os_error is exc else f"{text}: {reason}"


def _is_backend_error(exc: Exception) -> bool:
    """gpiozero's own errors, OS errors, and the exception types of the C libraries behind
    the backends (lgpio.error, pigpio.error, RPi.GPIO's RuntimeError)."""
    if isinstance(exc, GPIOZeroError | OSError | RuntimeError | ImportError):
        return True
    return type(exc).__module__.split(".")[0] in ("lgpio", "pigpio", "RPi")


def _named_factory(name: str) -> Any:
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        # The LED dims by PWM, which gpiozero's default MockPin cannot do;
        # GPIOZERO_MOCK_PIN_CLASS still chooses when it is set.
        pwm = None if os.environ.get("GPIOZERO_MOCK_PIN_CLASS") else MockPWMPin
        return MockFactory(pin_class=pwm)
    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name == name:
            return ep.load()()
    raise HardwareError(f"unknown pin backend; use one of {', '.join(pin_factory_names())}")


def _try_named(setting: str, name: str, key: str | None) -> Any:
    try:
        return _named_factory(name)
    except HardwareError as exc:
        raise HardwareError(f"{setting}: {exc}", key) from None
    except Exception as exc:
        if not _is_backend_error(exc):
            raise
        raise HardwareError(f"{setting}: {describe_backend_error(exc)}", key) from exc


def _gpiozero_default() -> Any:
    """gpiozero's own choice, with its fallback warnings (one per backend it could not
    load) turned into one log line, or into one error naming lgpio's reason."""
    with warnings.catch_warnings(record=True) as fallbacks:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except BadPinFactory:
            chosen = None
        else:
            chosen = Device.pin_factory
    if chosen is not None:
        if fallbacks:
            log.warning(
                "using gpiozero's %s: %s",
                type(chosen).__name__,
                "; ".join(str(w.message) for w in fallbacks),
            )
        return chosen
    try:  # again, to learn why the preferred backend failed
        return _named_factory("lgpio")
    except Exception as exc:
        if not _is_backend_error(exc):
            raise
        reason = describe_backend_error(exc)
    raise HardwareError(
        "no GPIO pin backend works here (gpiozero tried lgpio, rpigpio, pigpio and native); "
        f'lgpio: {reason}; pins.factory chooses one ("mock" runs without pins)'
    )


def open_pin_factory(name: str | None, *, work_dir: Path) -> Any:
    """The pin backend named by the config's ``pins.factory`` (None: gpiozero's own choice:
    a factory already installed, else GPIOZERO_PIN_FACTORY, else its fallback order).
    Raises HardwareError with one line naming the setting, the reason and the fix.

    lgpio makes a notification pipe (``.lgd-nfy<n>``) on import, in $LG_WD or else in the
    working directory, and chdirs there; one left in /tmp by another user breaks the
    import. So LG_WD defaults to ``work_dir`` (the agent's own state folder) and the
    working directory is restored afterwards."""
    if name is None and Device.pin_factory is not None:
        return Device.pin_factory
    if name != "mock":
        os.environ.setdefault("LG_WD", str(work_dir))
    cwd = os.getcwd()
    try:
        if name is not None:
            return _try_named(f"pins.factory = {name!r}", name, "pins.factory")
        env = os.environ.get("GPIOZERO_PIN_FACTORY")
        if env:
            known = env if env in pin_factory_names() else env.lower()
            return _try_named(f"GPIOZERO_PIN_FACTORY={env}", known, None)
        return _gpiozero_default()
    finally:
        os.chdir(cwd)


def claim(key: str, device: Callable[..., T], value: int, **options: Any) -> T:
    """``device(value, **options)``, the gpiozero device for ``pins.<key>``; a pin the
    backend refuses becomes a HardwareError naming the key and value."""
    try:
        return device(value, **options)
    except Exception as exc:
        if not _is_backend_error(exc):
            raise
        reason = describe_backend_error(exc)
        raise HardwareError(f"pins.{key} = {value}: {reason}", f"pins.{key}") from exc


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
        opened: list[Any] = []

        def keep(device: T) -> T:
            opened.append(device)
            return device

        try:  # as gpiozero's own constructors do: a failure part-way closes what opened
            if self.analog_seat is not None:
                self.adc = keep(
                    claim("adc_channel", MCP3008, pins.adc_channel, pin_factory=pin_factory)
                )
            else:
                self.mat = keep(
                    claim(
                        "mat",
                        DigitalInputDevice,
                        pins.mat,
                        pull_up=not pins.mat_active_high,
                        bounce_time=pins.mat_bounce_s,
                        pin_factory=pin_factory,
                    )
                )
            self.button = keep(
                claim(
                    "button",
                    Button,
                    pins.button,
                    pull_up=True,
                    bounce_time=0.02,
                    pin_factory=pin_factory,
                )
            )
            self.buzzer = keep(
                claim(
                    "buzzer",
                    Buzzer,
                    pins.buzzer,
                    active_high=pins.buzzer_active_high,
                    pin_factory=pin_factory,
                )
            )
            self.led = keep(claim("led", PWMLED, pins.led, pin_factory=pin_factory))
        except BaseException:
            for device in reversed(opened):
                device.close()
            raise
        if self.mat is not None:
            self.mat.when_activated = lambda: self._post(Input(InputKind.SEAT, occupied=True))
            self.mat.when_deactivated = lambda: self._post(Input(InputKind.SEAT, occupied=False))
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
