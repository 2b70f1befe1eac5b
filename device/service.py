"""Puts the device together: agent (tracker + hardware), on-disk outbox, MQTT link, hooks."""

from __future__ import annotations

import logging
from typing import Any

from sitwatch.clock import Clock
from sitwatch.device.agent import Agent
from sitwatch.device.config import DeviceConfig
from sitwatch.device.hooks import HookRunner
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.device.settings_store import load_saved_settings
from sitwatch.device.today import TodayTally
from sitwatch.protocol import Event, EventType, new_id

log = logging.getLogger(__name__)


class DeviceService:
    def __init__(self, config: DeviceConfig, clock: Clock, *, pin_factory: Any = None) -> None:
        self.config = config
        data = config.data_path
        data.mkdir(parents=True, exist_ok=True)
        boot_id = new_id()
        self.outbox = Outbox(data / "outbox.db", config.mqtt.outbox_max_rows)
        # Kept in the data folder, so a restart goes on counting the day; published on
        # connect (HA shows today's figures at once, not only after the next stand-up).
        self.today = TodayTally(config.tracker.timezone, path=data / "today.json")
        self.today.roll_over(clock.wall())
        self.link = MqttLink(config, boot_id, self.outbox, clock)
        self.link.publish_today(self.today.seated_min, self.today.drills)
        saved = load_saved_settings(config.settings_path)
        if saved is not None:
            log.info("using the last settings received from the server (%s)", config.settings_path)
        self.agent = Agent(
            config,
            clock,
            pin_factory=pin_factory,
            settings=saved or config.tracker,
            sinks=[self._store, self._tally, HookRunner(config.hooks)],
            boot_id=boot_id,
        )

    def _store(self, event: Event) -> None:
        self.outbox.add(event)  # durable before anything else happens
        self.link.notify()

    def _tally(self, event: Event) -> None:
        if event.type in (EventType.SEATED, EventType.STOOD_UP):
            self.link.publish_seat(event.type == EventType.SEATED)
        if self.today.add(event):
            self.link.publish_today(self.today.seated_min, self.today.drills)

    def start(self) -> None:
        self.link.start(self.agent)

    def run(self) -> None:
        self.agent.run()

    def stop(self) -> None:
        self.agent.stop()

    def close(self) -> None:
        self.link.stop()
        self.agent.close()
        self.outbox.close()
