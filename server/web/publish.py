"""Publishes to a device from the dashboard, waiting for the broker's PUBACK so the page only
reports success once the broker holds the message: validated settings on the retained config
topic, and one-off commands (pause, resume) on the command topic (QoS 1, not retained; see
docs/protocol.md for why)."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from sitwatch import protocol
from sitwatch.mqtt import CertificateError, connect, make_client
from sitwatch.server.config import BrokerConfig
from sitwatch.settings import TrackerSettings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The message did not reach the broker; the message says why, for the user."""


def publish_settings(
    broker: BrokerConfig, device_id: str, settings: TrackerSettings, timeout_s: float = 5.0
) -> None:
    """Publish ``settings`` retained on sitwatch/<device_id>/config; raise PublishError
    unless the broker acknowledged it within ``timeout_s`` seconds."""
    try:
        name = protocol.topic(device_id, protocol.CONFIG)
    except protocol.ProtocolError as exc:
        raise PublishError(str(exc)) from None
    payload = protocol.config_payload(settings.model_dump(mode="json"))
    publish_acknowledged(broker, name, payload, timeout_s, retain=True)
    log.info("published settings to %s", name)


def publish_command(
    broker: BrokerConfig, device_id: str, command: protocol.Command, timeout_s: float = 5.0
) -> None:
    """Publish ``command`` on sitwatch/<device_id>/command, QoS 1, not retained: the
    device's persistent session queues it while the device is offline, and a retained one
    would be delivered again on every reconnect. Raise PublishError unless the broker
    acknowledged it within ``timeout_s`` seconds."""
    try:
        name = protocol.topic(device_id, protocol.COMMAND)
    except protocol.ProtocolError as exc:
        raise PublishError(str(exc)) from None
    publish_acknowledged(broker, name, command.to_json(), timeout_s, retain=False)
    log.info("published %s to %s", command.to_json(), name)


def publish_acknowledged(
    broker: BrokerConfig, topic: str, payload: str, timeout_s: float, *, retain: bool
) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK. One short-lived connection per
    publish: dashboard publishes are rare, and a web worker keeping a client alive would need
    its own reconnect handling for little gain."""
    where = f"MQTT broker {broker.where}"
    deadline = time.monotonic() + timeout_s
    try:
        client = make_client(
            broker,
            f"sitwatch-web-{uuid.uuid4().hex[:12]}",
            logger=log,
            connect_timeout_s=timeout_s,
        )
    except CertificateError as exc:
        log.error("cannot publish to %s: %s", topic, exc)
        raise PublishError(f"cannot connect to the {where}: {exc}") from None
    connected = threading.Event()
    outcome: dict[str, mqtt.ReasonCode] = {}

    def when_connected(_c, _u, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        outcome["reason"] = reason_code
        connected.set()

    client.on_connect = when_connected
    try:
        connect(client, broker, background=False)
    except OSError as exc:
        log.error("cannot publish to %s: %s unreachable: %s", topic, where, exc)
        raise PublishError(f"cannot reach the {where}: {exc.strerror or exc}") from None
    try:
        if not connected.wait(max(0.0, deadline - time.monotonic())):
            raise PublishError(f"the {where} did not answer within {timeout_s:g} s")
        if outcome["reason"].is_failure:
            raise PublishError(f"the {where} refused the connection: {outcome['reason']}")
        info = client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"publishing to the {where} failed: {exc}") from None
        if not info.is_published():
            raise PublishError(f"the {where} did not acknowledge within {timeout_s:g} s")
    except PublishError as exc:
        log.error("cannot publish to %s: %s", topic, exc)
        raise
    finally:
        client.disconnect()
        client.loop_stop()
