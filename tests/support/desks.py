"""Desks for tests: ``Desk`` is a whole device service on gpiozero's mock pins with the
person at it, in fake time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitwatch.clock import FakeClock
from sitwatch.device.agent import Agent
from sitwatch.device.config import DeviceConfig, MqttConfig, PinsConfig
from sitwatch.device.service import DeviceService
from sitwatch.protocol import Event
from sitwatch.settings import TrackerSettings

PINS = PinsConfig()


class Desk:
    """A device service plus the person at it, in fake time."""

    def __init__(
        self,
        factory: Any,
        data_dir: Path,
        mqtt_port: int,
        clock: FakeClock,
        device_id: str = "desk-e2e",
    ) -> None:
        self.clock = clock
        self.factory = factory
        config = DeviceConfig(
            device_id=device_id,
            data_dir=str(data_dir),
            tracker=TrackerSettings(quiet_hours=None, active_hours=None, drill_step_s=20),
            mqtt=MqttConfig(port=mqtt_port, heartbeat_s=0, resend_after_s=2),
        )
        self.service = DeviceService(config, clock, pin_factory=factory)
        self.sent: list[Event] = []
        self.service.agent.sinks.append(self.sent.append)
        self.service.start()

    @property
    def agent(self) -> Agent:
        return self.service.agent

    def live(self, seconds: float, step: float = 5.0) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.clock.advance(min(step, end - self.clock.monotonic()))
            self.agent.step()

    def sit(self, seated: bool) -> None:
        mat = self.factory.pin(PINS.mat)
        if seated:
            mat.drive_low()
        else:
            mat.drive_high()
        self.agent.step(timeout_s=1)

    def press(self, held_s: float = 0.3) -> None:
        button = self.factory.pin(PINS.button)
        button.drive_low()
        self.clock.advance(held_s)
        button.drive_high()
        self.agent.step(timeout_s=1)

    def close(self) -> None:
        self.service.close()
