"""Desks for tests: ``Desk`` is a whole device service on gpiozero's mock pins with the
person at it, in fake time; ``LinkDesk`` is a device's MQTT link and outbox alone, with what
the link reported back (settings, connection changes, pause and resume commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sitwatch import protocol
from sitwatch.clock import Clock, FakeClock, SystemClock
from sitwatch.device.agent import Agent
from sitwatch.device.config import DeviceConfig, MqttConfig, PinsConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.device.service import DeviceService
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings
from support.events import BOOT, make_event

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


class LinkDesk:
    """A link with its outbox (``<folder>/<device_id>.db``) and everything the link told the
    desk, as it tells the agent (this is the link's ``Desk``); ``ids`` lists what ``add`` put
    in the outbox. Not started: ``start()`` serves this desk, ``link.start()`` alone only
    delivers events. ``mqtt`` overrides MqttConfig fields."""

    def __init__(
        self,
        host: str,
        port: int,
        folder: Path,
        device_id: str,
        clock: Clock | None = None,
        **mqtt: Any,
    ) -> None:
        self.device_id = device_id
        self.outbox = Outbox(folder / f"{device_id}.db")
        data_dir = folder / device_id
        data_dir.mkdir(parents=True, exist_ok=True)
        self.ids: list[str] = []
        self.applied: list[TrackerSettings] = []
        self.connection: list[bool] = []
        self.pauses: list[float] = []
        self.resumes: list[float] = []
        options = {"heartbeat_s": 0, "resend_after_s": 1, **mqtt}
        config = DeviceConfig(
            device_id=device_id,
            name="Desk <b>one</b>",
            data_dir=str(data_dir),
            # With a list of brokers (hosts=[...]) ``host`` is not set: one or the other.
            mqtt=MqttConfig(**({} if "hosts" in mqtt else {"host": host}), port=port, **options),
        )
        self.settings_path = config.settings_path
        self.clock = clock or SystemClock()
        self.link = MqttLink(config, BOOT, self.outbox, self.clock)

    def start(self) -> None:
        self.link.start(self)

    def post_settings(self, settings: TrackerSettings) -> None:
        self.applied.append(settings)

    def post_online(self, online: bool) -> None:
        self.connection.append(online)

    def post_pause(self, pause_s: float) -> None:
        self.pauses.append(pause_s)

    def post_resume(self, issued_ago_s: float) -> None:
        self.resumes.append(issued_ago_s)

    def add(self, kind: EventType = EventType.SEATED, **fields: Any) -> str:
        """Record an event as the agent would, and wake the link; returns its id."""
        event = self.outbox.add(make_event(kind, device_id=self.device_id, **fields))
        self.ids.append(event.id)
        self.link.notify()
        return event.id

    def topic(self, leaf: str) -> str:
        return protocol.topic(self.device_id, leaf)

    def close(self) -> None:
        self.link.stop()
        self.outbox.close()
