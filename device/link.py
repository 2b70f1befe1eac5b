"""The device's MQTT link: drains the outbox to the server, takes its acks, applies remote
settings and keeps the retained status, seat and Home Assistant topics up to date.

Two threads: paho's network loop (``loop_start``; runs the callbacks) and a sender that
publishes due outbox events. An event leaves the outbox only when the server's ack names
it; a broker PUBACK is not proof of delivery (see docs/protocol.md). Each subscribed topic
has its own handler (``_topic_handlers``); a message one cannot use costs only itself
(``sitwatch.mqtt.deliver``). Remote settings and commands go to the desk (the agent) given
to ``start``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Protocol

import paho.mqtt.client as mqtt

from sitwatch import __version__, protocol
from sitwatch.clock import Clock
from sitwatch.device import ha_discovery
from sitwatch.device.config import ConfigError, DeviceConfig
from sitwatch.device.outbox import Outbox
from sitwatch.device.settings_store import save_settings
from sitwatch.mqtt import (
    RECONNECT_MAX_S,
    CertificateError,
    MessageHandler,
    Subscriber,
    Will,
    add_handler,
    address_of,
    connect,
    make_client,
    topic_name,
)
from sitwatch.protocol import Event, EventType, ProtocolError, Status
from sitwatch.rejects import RejectLog
from sitwatch.settings import SettingsError, TrackerSettings

log = logging.getLogger(__name__)

IDLE_WAKE_S = 1.0  # without a notify or an ack, the sender looks at heartbeats and resends
# this often: precise enough for both, and cheap on a Pi Zero
WINDOW_EVENTS = 1000  # published but not yet acknowledged, at most: bounds paho's memory
BATCH_EVENTS = 100
STOP_TIMEOUT_S = 5.0
# Any client may publish "online" on Home Assistant's status topic: re-send discovery at most
# this often (the configs are retained, so a birth soon after a send needs nothing new).
HA_RESEND_MIN_S = 10.0


class Desk(Protocol):
    """What the link tells the desk it serves: the Agent's post_* methods, each of which only
    queues the news for the agent's own thread."""

    def post_settings(self, settings: TrackerSettings) -> None: ...

    def post_online(self, online: bool) -> None: ...

    def post_pause(self, pause_s: float) -> None: ...

    def post_resume(self, issued_ago_s: float) -> None: ...


class MqttLink:
    """Connects one device to the broker; see the module docstring."""

    def __init__(
        self,
        config: DeviceConfig,
        boot_id: str,
        outbox: Outbox,
        clock: Clock,
    ) -> None:
        self.config = config
        self.device_id = device_id = config.device_id
        self.boot_id = boot_id
        self._mqtt = config.mqtt
        self._outbox = outbox
        self._clock = clock
        self._desk: Desk | None = None
        self._where = config.mqtt.where
        self._topic_event = protocol.topic(device_id, protocol.EVENT)
        self._topic_status = protocol.topic(device_id, protocol.STATUS)
        self._topic_ack = protocol.topic(device_id, protocol.ACK)
        self._topic_config = protocol.topic(device_id, protocol.CONFIG)
        self._topic_config_result = protocol.topic(device_id, protocol.CONFIG_RESULT)
        self._topic_seat = protocol.topic(device_id, protocol.SEAT)
        self._topic_today = protocol.topic(device_id, protocol.TODAY)
        self._topic_command = protocol.topic(device_id, protocol.COMMAND)
        self._topic_ha_status = ha_discovery.birth_topic(config.mqtt.ha_prefix)

        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._acked_lock = threading.Lock()
        self._acked: list[str] = []
        self._state_lock = threading.Lock()  # seat/today: read and publish as one step
        self._seat: bool | None = None
        self._today: tuple[float, int] | None = None
        self._discovery_sent_at: float | None = None  # monotonic
        self._applied: TrackerSettings | None = None
        self._unreachable_logged = False
        self._next_heartbeat: float | None = None
        self._sender: threading.Thread | None = None
        self._started = False
        self.rejected = 0  # messages on our topics that could not be used
        self._rejects = RejectLog(log, clock.monotonic)
        self._handlers: list[tuple[str, MessageHandler, str]] = []
        self._subscriber = Subscriber(log)
        self._client = self._make_client()

    def _topic_handlers(self) -> list[tuple[str, MessageHandler, str]]:
        """(topic, handler, what a message it cannot use is logged as) for each topic the
        link subscribes to. A handler raises for a message it cannot use."""
        handlers: list[tuple[str, MessageHandler, str]] = [
            (self._topic_ack, self._take_ack, "ignored a malformed ack"),
        ]
        if self._desk is not None:
            handlers += [
                (
                    self._topic_config,
                    self._take_config,
                    "rejected remote settings (keeping the current ones)",
                ),
                (self._topic_command, self._take_command, "ignored a command"),
            ]
        if self._mqtt.ha_discovery:
            handlers.append((self._topic_ha_status, self._take_ha_status, "ignored a message"))
        return handlers

    def _make_client(self) -> mqtt.Client:
        offline = Status(state="offline", boot_id=self.boot_id, detail="connection lost")
        try:
            client = make_client(
                self._mqtt,
                f"sitwatch-{self.device_id}",
                logger=log,
                persistent_session=True,  # the broker keeps our subscriptions and queued acks
                will=Will(self._topic_status, offline.to_json()),
            )
        except CertificateError as exc:
            raise ConfigError(str(exc)) from exc
        client.on_connect = self._when_connected
        client.on_connect_fail = self._when_connect_failed
        client.on_disconnect = self._when_disconnected
        client.on_subscribe = self._when_subscribed
        client.on_message = self._when_other_message
        return client

    # -- public interface --------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def broker(self) -> str:
        """The broker connected to, or last tried (one of ``mqtt.hosts`` with a list)."""
        return address_of(self._client) if self._client.host else self._where

    def start(self, desk: Desk | None = None) -> None:
        """Begin connecting in the background; never raises because the broker is down.
        ``desk`` is told of remote settings, commands and the connection; without one the
        link only delivers events (seeding a history, benchmarks)."""
        if self._started:
            return
        self._started = True
        self._desk = desk
        for topic, _handle, _what in self._handlers:
            self._client.message_callback_remove(topic)
        self._handlers = self._topic_handlers()
        for topic, handle, what in self._handlers:
            add_handler(self._client, topic, handle, partial(self._reject, what))
        self._stopping.clear()
        if self._mqtt.heartbeat_s > 0:
            self._next_heartbeat = self._clock.monotonic() + self._mqtt.heartbeat_s
        log.info(
            "connecting to MQTT broker at %s as sitwatch-%s (%d events queued)",
            self._where,
            self.device_id,
            len(self._outbox),
        )
        connect(self._client, self._mqtt, background=True)
        self._sender = threading.Thread(
            target=self._run_sender, name=f"sitwatch-sender-{self.device_id}", daemon=True
        )
        self._sender.start()

    def notify(self) -> None:
        """New events are in the outbox: send them now rather than at the next wake-up."""
        self._wake.set()

    def publish_seat(self, seated: bool) -> None:
        with self._state_lock:
            self._seat = seated
            if self.is_connected:
                self._publish_seat_locked()

    def publish_today(self, seated_min: float, drills: int) -> None:
        with self._state_lock:
            self._today = (seated_min, drills)
            if self.is_connected:
                self._publish_today_locked()

    def stop(self) -> None:
        """Publish a retained offline status, disconnect and join the threads."""
        if not self._started:
            return
        self._stopping.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(STOP_TIMEOUT_S)
        if self.is_connected:
            offline = Status(state="offline", boot_id=self.boot_id, detail="stopped")
            info = self._client.publish(self._topic_status, offline.to_json(), qos=1, retain=True)
            try:
                info.wait_for_publish(STOP_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline status: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._started = False
        self._rejects.flush(everything=True)
        log.info("MQTT link stopped (%d events still queued)", len(self._outbox))

    # -- paho callbacks (paho's thread; paho logs what they raise, see sitwatch.mqtt) -----

    def _when_connected(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            log.error(
                "broker at %s refused the connection: %s; retrying",
                address_of(client),
                reason_code,
            )
            return
        self._unreachable_logged = False
        self._subscriber.subscribe(client, [(topic, 1) for topic, _h, _what in self._handlers])
        online = Status(
            state="online",
            boot_id=self.boot_id,
            version=__version__,
            name=self.config.name or None,
        )
        client.publish(self._topic_status, online.to_json(), qos=1, retain=True)
        self._publish_discovery()
        with self._state_lock:
            self._connected.set()
            if self._seat is not None:
                self._publish_seat_locked()
            if self._today is not None:
                self._publish_today_locked()
        # What the broker held for us may be gone (it may have been killed): resend all.
        self._outbox.forget_sent()
        log.info(
            "connected to MQTT broker at %s (session present: %s); %d events queued",
            address_of(client),
            flags.session_present,
            len(self._outbox),
        )
        self._wake.set()
        if self._desk is not None:
            self._desk.post_online(True)

    def _when_subscribed(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list, properties: object
    ) -> None:
        # A refused ack subscription would leave every event unacked, resent forever.
        self._subscriber.granted(client, mid, codes)

    def _when_connect_failed(self, client: mqtt.Client, userdata: object) -> None:
        if self._unreachable_logged:
            log.debug("broker at %s still unreachable", address_of(client))
            return
        self._unreachable_logged = True
        log.warning(
            "broker unreachable at %s, buffering events (%d queued); retrying"
            " with backoff up to %d s",
            address_of(client) if len(self._mqtt.addresses) == 1 else self._where,
            len(self._outbox),
            RECONNECT_MAX_S,
        )

    def _when_disconnected(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping.is_set():
            log.info("disconnected from MQTT broker at %s", address_of(client))
            return
        if not was_connected:
            return
        # One warning per outage: the failed reconnects that follow log at DEBUG.
        self._unreachable_logged = True
        log.warning(
            "lost the MQTT broker at %s (%s), buffering events; reconnecting%s"
            " with backoff up to %d s",
            address_of(client),
            reason_code,
            " to the next broker" if len(self._mqtt.addresses) > 1 else "",
            RECONNECT_MAX_S,
        )
        if self._desk is not None:
            self._desk.post_online(False)

    def _when_other_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        """A message no handler takes: a subscription the persistent session kept from an
        earlier config (e.g. Home Assistant's status, with discovery turned off since)."""
        log.debug("ignoring a message on %r", topic_name(message)[:200])

    def _reject(self, what: str, message: mqtt.MQTTMessage, exc: Exception) -> None:
        """A message a handler could not use costs only itself (``sitwatch.mqtt.deliver``)."""
        self.rejected += 1
        topic = topic_name(message)
        self._rejects.reject(topic, f"{what} on {topic!r:.200}", exc)

    # -- incoming ------------------------------------------------------------------------

    # The topic handlers (see _topic_handlers); _reject logs a message they raise for.

    def _take_ack(self, message: mqtt.MQTTMessage) -> None:
        ids = protocol.parse_ack(message.payload)
        with self._acked_lock:
            self._acked.extend(ids)
        self._wake.set()

    def _take_config(self, message: mqtt.MQTTMessage) -> None:
        assert self._desk is not None  # only subscribed with a desk
        payload = message.payload
        if not payload:
            log.info(
                "the retained config on %s was cleared; keeping the current settings",
                self._topic_config,
            )
            return
        try:
            config = protocol.parse_config(payload)
        except ProtocolError as exc:
            self._publish_config_result(False, str(exc))
            raise
        try:
            settings = TrackerSettings.parse(config.settings, "remote settings")
        except SettingsError as exc:
            self._publish_config_result(False, str(exc), answers=config.id)
            raise
        if settings == self._applied:
            log.debug("remote settings unchanged")
            self._publish_config_result(True, settings=settings, answers=config.id)
            return
        try:
            save_settings(self.config.settings_path, settings)
        except OSError as exc:
            log.error(
                "cannot save remote settings to %s (%s); applying them for this run only",
                self.config.settings_path,
                exc,
            )
        try:
            self._desk.post_settings(settings)
        except Exception as exc:
            reason = f"device failed to apply the settings: {exc}"
            self._publish_config_result(False, reason, answers=config.id)
            raise
        self._applied = settings
        log.info("applied remote settings: %s", settings.model_dump(mode="json"))
        self._publish_config_result(True, settings=settings, answers=config.id)

    def _take_command(self, message: mqtt.MQTTMessage) -> None:
        assert self._desk is not None  # only subscribed with a desk
        command = protocol.parse_command(message.payload)
        if isinstance(command, protocol.ResumeCommand):
            self._take_resume(command)
            return
        # A command queued while we were away may be stale: ``until`` says how much is left.
        remaining_s = command.remaining_s(self._clock.wall(), self._clock.is_synced())
        if remaining_s <= 0:
            log.info(
                "ignoring a pause that has already ended (until %s)",
                protocol.format_ts(command.until),
            )
            return
        log.info("server asks for a pause of %.0f s", remaining_s)
        self._desk.post_pause(remaining_s)

    def _take_resume(self, command: protocol.ResumeCommand) -> None:
        assert self._desk is not None
        # The tracker keeps a pause begun after the resume was sent (it may arrive late).
        issued_ago_s = command.issued_ago_s(self._clock.wall(), self._clock.is_synced())
        log.info("server asks to resume prompts (sent %s)", protocol.format_ts(command.at))
        self._desk.post_resume(issued_ago_s)

    def _take_ha_status(self, message: mqtt.MQTTMessage) -> None:
        """Home Assistant's birth message: it (re)started, so send discovery and the current
        seat and today figures again."""
        if not ha_discovery.is_birth(message.payload):
            log.debug("ignoring %r on %s", message.payload[:40], self._topic_ha_status)
            return
        # Also covers a retained birth, delivered on subscribing, right after the connection
        # sent everything.
        sent_at = self._discovery_sent_at
        if sent_at is not None and self._clock.monotonic() - sent_at < HA_RESEND_MIN_S:
            log.debug("Home Assistant came online again: discovery was sent just now")
            return
        log.info("Home Assistant came online: re-sending discovery")
        self._publish_discovery()
        with self._state_lock:
            if self._seat is not None:
                self._publish_seat_locked()
            if self._today is not None:
                self._publish_today_locked()

    # -- outgoing ------------------------------------------------------------------------

    def _publish_config_result(
        self,
        accepted: bool,
        reason: str | None = None,
        settings: TrackerSettings | None = None,
        answers: str | None = None,
    ) -> None:
        """``answers``: the id of the config this answers, so the server knows which."""
        body = protocol.config_result_payload(
            accepted, reason, settings.model_dump(mode="json") if settings else None, answers
        )
        self._client.publish(self._topic_config_result, body, qos=1, retain=True)

    def _publish_discovery(self) -> None:
        if not self._mqtt.ha_discovery:
            return
        for message in ha_discovery.discovery_messages(
            self.device_id, self.config.name, self._mqtt.ha_prefix
        ):
            self._client.publish(message.topic, message.payload, message.qos, message.retain)
        self._discovery_sent_at = self._clock.monotonic()

    def _publish_seat_locked(self) -> None:
        assert self._seat is not None
        payload = ha_discovery.seat_payload(self._seat)
        self._client.publish(self._topic_seat, payload, qos=1, retain=True)

    def _publish_today_locked(self) -> None:
        assert self._today is not None
        payload = ha_discovery.today_payload(*self._today)
        self._client.publish(self._topic_today, payload, qos=1, retain=True)

    # -- the sender thread ---------------------------------------------------------------

    def _run_sender(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(IDLE_WAKE_S)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._rejects.flush()
                self._confirm_acked()
                self._add_heartbeat_if_due()
                if self.is_connected:
                    self._send_due()
            except Exception:
                log.exception("sending failed; retrying shortly")
                self._stopping.wait(1.0)

    def _confirm_acked(self) -> None:
        with self._acked_lock:
            ids, self._acked = self._acked, []
        if ids:
            removed = self._outbox.confirm(ids)
            log.debug("server acknowledged %d events (%d were queued)", removed, len(ids))

    def _add_heartbeat_if_due(self) -> None:
        if self._next_heartbeat is None:
            return
        now = self._clock.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._mqtt.heartbeat_s
        self._outbox.add(
            Event(
                type=EventType.HEARTBEAT,
                device_id=self.device_id,
                boot_id=self.boot_id,
                mono=now,
                ts=self._clock.wall(),
                clock_synced=self._clock.is_synced(),
                data={"queued": len(self._outbox)},
            )
        )

    def _send_due(self) -> None:
        resend_after_s = self._mqtt.resend_after_s
        while self.is_connected and not self._stopping.is_set():
            now = self._clock.monotonic()
            room = WINDOW_EVENTS - self._outbox.in_flight(now, resend_after_s)
            if room <= 0:
                return
            limit = min(room, BATCH_EVENTS)
            batch = self._outbox.due(now, resend_after_s, limit)
            sent = []
            for event in batch:
                info = self._client.publish(
                    self._topic_event, self._restamped(event).to_json(), qos=1
                )
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # disconnected meanwhile: the reconnect makes everything due again
                sent.append(event.id)
            self._outbox.mark_sent(sent, now)
            if len(sent) < limit:
                return
            self._confirm_acked()  # keep the outbox short during a long drain

    def _restamped(self, event: Event) -> Event:
        """An event stamped before the wall clock synced (a Pi without RTC) gets its time
        back from the monotonic clock, which is valid within one boot."""
        if event.clock_synced or event.boot_id != self.boot_id or not self._clock.is_synced():
            return event
        ts = self._clock.wall() - timedelta(seconds=self._clock.monotonic() - event.mono)
        self._outbox.restamp(event.id, ts)
        return replace(event, ts=ts, clock_synced=True)
