"""Helpers for the MQTT link tests: a fake server and the clean-up of retained topics.

``FakeServer`` stands in for the real ingest: a plain paho subscriber that records every
event it receives and, while ``acking`` is on, publishes an ack naming it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.protocol import Event


class FakeServer:
    """Subscribes to every device's events, records them, and acks each one (if ``acking``)."""

    def __init__(
        self,
        host: str,
        port: int,
        acking: bool = True,
        client_id: str = "",
        setup: Callable[[mqtt.Client], None] | None = None,
    ) -> None:
        self.acking = acking
        self.received: list[Event] = []
        self.raw: list[tuple[str, bytes, bool]] = []  # (topic, payload, retain) on watched topics
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.connects = 0
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"fake-server-{id(self)}"
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 2)
        if setup is not None:  # credentials, TLS
            setup(self._client)
        self._client.connect(host, port)
        self._client.loop_start()
        wait_until(self._ready.is_set, 10, "fake server to subscribe")

    def _on_connect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(
            [
                ("sitwatch/+/event", 1),
                ("sitwatch/+/status", 1),
                ("sitwatch/+/config/result", 1),
                ("sitwatch/+/seat", 1),
                ("sitwatch/+/today", 1),
                ("homeassistant/#", 1),
            ]
        )
        self.connects += 1
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        is_event = message.topic.startswith("sitwatch/") and message.topic.endswith("/event")
        if not is_event:
            with self._lock:
                self.raw.append((message.topic, bytes(message.payload), bool(message.retain)))
            return
        device_id, _ = protocol.parse_topic(message.topic)
        event = protocol.parse_event(message.payload, device_id)
        with self._lock:
            self.received.append(event)
        if self.acking:
            client.publish(
                protocol.topic(device_id, protocol.ACK), protocol.ack_payload([event.id]), qos=1
            )

    def wait_connected(self, times: int, timeout: float = 10) -> None:
        wait_until(lambda: self.connects >= times, timeout, f"fake server connect #{times}")

    def events(self) -> list[Event]:
        with self._lock:
            return list(self.received)

    def unique_ids(self) -> list[str]:
        """Ids in first-arrival order, duplicates removed."""
        return list(dict.fromkeys(event.id for event in self.events()))

    def messages(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(payload, retain) for name, payload, retain in self.raw if name == topic]

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


RETAINED_LEAVES = (
    protocol.STATUS,
    protocol.SEAT,
    protocol.TODAY,
    protocol.CONFIG,
    protocol.CONFIG_RESULT,
)


def clear_retained(
    host: str, port: int, device_id: str, extra_topics: tuple[str, ...] = ()
) -> None:
    """Empty the retained topics a test device left on a shared broker, so other tests'
    wildcard subscribers (the ingest tests) do not see them."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"cleaner-{device_id}-{time.monotonic_ns()}"
    )
    client.connect(host, port)
    client.loop_start()
    try:
        topics = [protocol.topic(device_id, leaf) for leaf in RETAINED_LEAVES]
        infos = [client.publish(name, b"", qos=1, retain=True) for name in (*topics, *extra_topics)]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
