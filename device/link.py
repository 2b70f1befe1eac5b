"""The device's MQTT link: drains the outbox to the server, takes its acks, applies remote
settings and keeps the retained status, seat and Home Assistant topics up to date.

Two threads: paho's network loop (``loop_start``; runs the callbacks) and a sender that
publishes due outbox events. An event leaves the outbox only when the server's ack names
it; a broker PUBACK is not proof of delivery (see docs/protocol.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from sitwatch import __version__, protocol
from sitwatch.clock import Clock
from sitwatch.device import ha_discovery
from sitwatch.device.config import ConfigError, MqttConfig
from sitwatch.device.outbox import Outbox
from sitwatch.device.settings_store import save_settings
from sitwatch.protocol import Event, EventType, ProtocolError, Status
from sitwatch.rejects import RejectLog
from sitwatch.settings import SettingsError, TrackerSettings

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
IDLE_WAKE_S = 1.0  # without a notify or an ack, the sender looks at heartbeats and resends
# this often: precise enough for both, and cheap on a Pi Zero
WINDOW_EVENTS = 1000  # published but not yet acknowledged, at most: bounds paho's memory
BATCH_EVENTS = 100
STOP_TIMEOUT_S = 5.0
# Any client may publish "online" on Home Assistant's status topic: re-send discovery at most
# this often (the configs are retained, so a birth soon after a send needs nothing new).
HA_RESEND_MIN_S = 10.0


class _PahoDebugLog(logging.LoggerAdapter[logging.Logger]):
    """paho's own log lines, all at DEBUG. Its errors are connection losses and failed
    reconnects, which the link reports once per outage in its own words (paho logs "Client
    is not connected" at ERROR on every reconnect attempt, for as long as the broker is
    away), and errors in callbacks, which the callbacks catch and log themselves."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class MqttLink:
    """Connects one device to the broker; see the module docstring."""

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        boot_id: str,
        outbox: Outbox,
        clock: Clock,
        *,
        settings_path: Path,
        on_settings: Callable[[TrackerSettings], None],
        on_connection: Callable[[bool], None] | None = None,
        device_name: str = "",
        on_pause: Callable[[float], None] | None = None,
        on_resume: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.boot_id = boot_id
        self._outbox = outbox
        self._clock = clock
        self._settings_path = Path(settings_path)
        self._on_settings = on_settings
        self._on_connection = on_connection
        self._on_pause = on_pause
        self._on_resume = on_resume
        self._device_name = device_name
        self._where = f"{config.host}:{config.port}"
        self._topic_event = protocol.topic(device_id, protocol.EVENT)
        self._topic_status = protocol.topic(device_id, protocol.STATUS)
        self._topic_ack = protocol.topic(device_id, protocol.ACK)
        self._topic_config = protocol.topic(device_id, protocol.CONFIG)
        self._topic_config_result = protocol.topic(device_id, protocol.CONFIG_RESULT)
        self._topic_seat = protocol.topic(device_id, protocol.SEAT)
        self._topic_today = protocol.topic(device_id, protocol.TODAY)
        self._topic_command = protocol.topic(device_id, protocol.COMMAND)
        self._topic_ha_status = ha_discovery.birth_topic(config.ha_prefix)

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
        self._rejected_what = {
            self._topic_ack: "ignored a malformed ack",
            self._topic_config: "rejected remote settings (keeping the current ones)",
            self._topic_command: "ignored a command",
        }
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"sitwatch-{self.device_id}",
            clean_session=False,  # the broker keeps our subscriptions and queued acks
        )
        config = self.config
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls is not None:
            try:
                client.tls_set(
                    ca_certs=config.tls.ca_certs,
                    certfile=config.tls.certfile,
                    keyfile=config.tls.keyfile,
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(f"mqtt.tls: cannot load certificates: {exc}") from exc
            if config.tls.insecure:
                client.tls_insecure_set(True)
        offline = Status(state="offline", boot_id=self.boot_id, detail="connection lost")
        client.will_set(self._topic_status, offline.to_json(), qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.enable_logger(_PahoDebugLog(logging.getLogger(f"{__name__}.paho")))
        client.on_connect = self._when_connected
        client.on_connect_fail = self._when_connect_failed
        client.on_disconnect = self._when_disconnected
        client.on_message = self._when_message
        return client

    # -- public interface --------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Begin connecting in the background; never raises because the broker is down."""
        if self._started:
            return
        self._started = True
        self._stopping.clear()
        if self.config.heartbeat_s > 0:
            self._next_heartbeat = self._clock.monotonic() + self.config.heartbeat_s
        log.info(
            "connecting to MQTT broker at %s as sitwatch-%s (%d events queued)",
            self._where,
            self.device_id,
            len(self._outbox),
        )
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()
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

    # -- paho callbacks (paho's thread; an exception here would kill its loop) ------------

    def _when_connected(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        try:
            if reason_code.is_failure:
                log.error(
                    "broker at %s refused the connection: %s; retrying", self._where, reason_code
                )
                return
            self._unreachable_logged = False
            topics = [(self._topic_ack, 1), (self._topic_config, 1)]
            if self._on_pause is not None or self._on_resume is not None:
                topics.append((self._topic_command, 1))
            if self.config.ha_discovery:
                topics.append((self._topic_ha_status, 1))
            client.subscribe(topics)
            online = Status(
                state="online",
                boot_id=self.boot_id,
                version=__version__,
                name=self._device_name or None,
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
                self._where,
                flags.session_present,
                len(self._outbox),
            )
            self._tell_connection(True)
            self._wake.set()
        except Exception:
            log.exception("error while handling the broker's connection")

    def _when_connect_failed(self, client: mqtt.Client, userdata: object) -> None:
        try:
            if self._unreachable_logged:
                log.debug("broker at %s still unreachable", self._where)
                return
            self._unreachable_logged = True
            log.warning(
                "broker unreachable at %s, buffering events (%d queued); retrying"
                " with backoff up to %d s",
                self._where,
                len(self._outbox),
                RECONNECT_MAX_S,
            )
        except Exception:
            log.exception("error while handling a failed connection")

    def _when_disconnected(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        try:
            was_connected = self._connected.is_set()
            self._connected.clear()
            if self._stopping.is_set():
                log.info("disconnected from MQTT broker at %s", self._where)
                return
            if was_connected:
                # One warning per outage: the failed reconnects that follow log at DEBUG.
                self._unreachable_logged = True
                log.warning(
                    "lost the MQTT broker at %s (%s), buffering events; reconnecting"
                    " with backoff up to %d s",
                    self._where,
                    reason_code,
                    RECONNECT_MAX_S,
                )
                self._tell_connection(False)
        except Exception:
            log.exception("error while handling a disconnection")

    def _when_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        try:
            if message.topic == self._topic_ack:
                self._take_ack(message.payload)
            elif message.topic == self._topic_config:
                self._take_config(message.payload)
            elif message.topic == self._topic_command:
                self._take_command(message.payload)
            elif message.topic == self._topic_ha_status:
                self._take_ha_status(message)
            else:
                log.debug("ignoring a message on %r", message.topic[:200])
        except Exception as exc:  # whatever one message raises, it costs only itself
            self.rejected += 1
            what = self._rejected_what.get(message.topic, "ignored a message")
            self._rejects.reject(message.topic, f"{what} on {message.topic!r:.200}", exc)

    # -- incoming ------------------------------------------------------------------------

    # The _take_* methods raise for a message they cannot use; _when_message logs it.

    def _take_ack(self, payload: bytes) -> None:
        ids = protocol.parse_ack(payload)
        with self._acked_lock:
            self._acked.extend(ids)
        self._wake.set()

    def _take_config(self, payload: bytes) -> None:
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
            save_settings(self._settings_path, settings)
        except OSError as exc:
            log.error(
                "cannot save remote settings to %s (%s); applying them for this run only",
                self._settings_path,
                exc,
            )
        try:
            self._on_settings(settings)
        except Exception as exc:
            reason = f"device failed to apply the settings: {exc}"
            self._publish_config_result(False, reason, answers=config.id)
            raise
        self._applied = settings
        log.info("applied remote settings: %s", settings.model_dump(mode="json"))
        self._publish_config_result(True, settings=settings, answers=config.id)

    def _take_command(self, payload: bytes) -> None:
        command = protocol.parse_command(payload)
        if isinstance(command, protocol.ResumeCommand):
            self._take_resume(command)
            return
        # A command queued while we were away may be stale: ``until`` says how much is left.
        remaining_s = command.remaining_s(self._clock.wall(), self._clock.is_synced())
        if remaining_s <= 0 or self._on_pause is None:
            log.info(
                "ignoring a pause that has already ended (until %s)",
                protocol.format_ts(command.until),
            )
            return
        log.info("server asks for a pause of %.0f s", remaining_s)
        self._on_pause(remaining_s)

    def _take_resume(self, command: protocol.ResumeCommand) -> None:
        if self._on_resume is None:
            log.info("ignoring a resume: this link was given no on_resume")
            return
        # The tracker keeps a pause begun after the resume was sent (it may arrive late).
        issued_ago_s = command.issued_ago_s(self._clock.wall(), self._clock.is_synced())
        log.info("server asks to resume prompts (sent %s)", protocol.format_ts(command.at))
        self._on_resume(issued_ago_s)

    def _take_ha_status(self, message: mqtt.MQTTMessage) -> None:
        """Home Assistant's birth message: it (re)started, so send discovery and the current
        seat and today figures again."""
        if not self.config.ha_discovery:
            return
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
        if not self.config.ha_discovery:
            return
        for message in ha_discovery.discovery_messages(
            self.device_id, self._device_name, self.config.ha_prefix
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

    def _tell_connection(self, connected: bool) -> None:
        if self._on_connection is None:
            return
        try:
            self._on_connection(connected)
        except Exception:
            log.exception("on_connection callback failed")

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
        self._next_heartbeat = now + self.config.heartbeat_s
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
        resend_after_s = self.config.resend_after_s
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
