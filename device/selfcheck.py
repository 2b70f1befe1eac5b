"""``sitwatch-device check``: a first-boot self-test on the real Pi (LED, buzzer, mat,
button, broker), each step reported on its own line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from sitwatch.device.config import DeviceConfig
from sitwatch.mqtt import CertificateError, connect, make_client

log = logging.getLogger(__name__)


def check_broker(config: DeviceConfig, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Connect to the configured broker and wait for its CONNACK."""
    where = f"broker {config.mqtt.where}"
    answered = threading.Event()
    outcome: dict[str, str] = {}

    def when_connected(
        client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        outcome["reason"] = str(reason)
        outcome["ok"] = "" if reason.is_failure else "yes"
        answered.set()

    try:
        client = make_client(config.mqtt, f"sitwatch-check-{config.device_id}", logger=log)
    except CertificateError as exc:
        return False, f"{where}: {exc}"
    client.on_connect = when_connected
    try:
        connect(client, config.mqtt, background=False)
    except OSError as exc:  # socket.gaierror too
        return False, f"{where} unreachable: {exc}"
    try:
        if not answered.wait(timeout_s):
            return False, f"{where} did not answer within {timeout_s:.0f} s"
        if not outcome.get("ok"):
            return False, f"{where} refused the connection: {outcome['reason']}"
        return True, f"{where} accepted the connection"
    finally:
        client.disconnect()
        client.loop_stop()


def run_check(
    config: DeviceConfig,
    *,
    pin_factory: Any = None,
    say: Callable[[str], None] = print,
    wait_s: float = 5.0,
) -> bool:
    """Exercise every part; True when all passed. Asks the user to press the button."""
    from gpiozero import PWMLED, Button, Buzzer, DigitalInputDevice

    from sitwatch.device.hardware import claim

    pins = config.pins
    ok = True
    factory = {"pin_factory": pin_factory}
    with (
        claim("led", PWMLED, pins.led, **factory) as led,
        claim(
            "buzzer", Buzzer, pins.buzzer, active_high=pins.buzzer_active_high, **factory
        ) as buzzer,
        claim(
            "mat", DigitalInputDevice, pins.mat, pull_up=not pins.mat_active_high, **factory
        ) as mat,
        claim("button", Button, pins.button, pull_up=True, **factory) as button,
    ):
        say(f"LED on BCM{pins.led}: blinking 3 times")
        led.blink(on_time=0.2, off_time=0.2, n=3, background=False)
        say(f"buzzer on BCM{pins.buzzer}: 2 beeps")
        buzzer.beep(on_time=0.1, off_time=0.1, n=2, background=False)
        say(f"seat mat on BCM{pins.mat}: {'occupied' if mat.is_active else 'empty'} now")
        say(f"button on BCM{pins.button}: press it within {wait_s:.0f} s")
        if button.wait_for_press(timeout=wait_s):
            say("button: press seen")
        else:
            say("button: NO press seen (check the wiring)")
            ok = False
    broker_ok, message = check_broker(config)
    say(message)
    return ok and broker_ok
