"""The ingest worker: MQTT events and statuses in, idempotent batched rows out, acks back;
the desks' config results kept as they come (``config_results``).

paho's network thread only queues messages, each with the taker for its topic; one writer
thread validates them, stores a batch in one transaction and, only after the commit,
publishes the ids on each device's ack topic.
An ack is the device's only proof of delivery (paho and the broker may lose messages), so
duplicates are acked again and a batch that failed to commit is not acked at all.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Connection, Engine, update
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError

from sitwatch import protocol
from sitwatch.calendar import Calendar
from sitwatch.mqtt import (
    RECONNECT_MAX_S,
    MessageHandler,
    Subscriber,
    add_handler,
    address_of,
    connect,
    deliver,
    make_client,
    topic_name,
)
from sitwatch.protocol import Event, ProtocolError, Status
from sitwatch.rejects import RejectLog
from sitwatch.server.config import FUTURE_MARGIN_S, ServerConfig
from sitwatch.server.ingest import config_results
from sitwatch.server.ingest.derive import (
    PLAUSIBLE_FLOOR,
    check_event,
    derive,
    plausible,
    take_synced_times,
)
from sitwatch.server.models import Device
from sitwatch.server.models import Event as EventRow
from sitwatch.server.sql import insert_rows

log = logging.getLogger(__name__)

EVENT_FILTER = f"{protocol.ROOT}/+/{protocol.EVENT}"
STATUS_FILTER = f"{protocol.ROOT}/+/{protocol.STATUS}"
# A worker in a share group sends itself a probe here at start-up (docs/protocol.md). It
# matches EVENT_FILTER, but "$probe" is no device id (protocol.DEVICE_ID): no device's ACL
# grants it, and every ingest drops it before validation, so it is never data.
PROBE_TOPIC = f"{protocol.ROOT}/$probe/{protocol.EVENT}"
_STOP = object()
COMMIT_ATTEMPTS = 3
RETRY_PAUSE_S = 0.05


@dataclass
class Batch:
    """The valid part of a batch of messages: events by id (``add_event``) and statuses."""

    events: dict[str, tuple[Event, dict[str, Any]]] = field(default_factory=dict)
    # (device id, status, retained): a retained status is old news, not a sign of life.
    statuses: list[tuple[str, Status, bool]] = field(default_factory=list)
    event_messages: int = 0  # valid event messages, counting copies of the same id

    def add_event(self, event: Event, data: dict[str, Any]) -> None:
        """Keep the first copy of an id, unless a later one from the same desk has a synced
        clock and it had not: the desk re-stamped it (docs/protocol.md)."""
        held = self.events.get(event.id)
        if held is None or (
            event.clock_synced and not held[0].clock_synced and event.device_id == held[0].device_id
        ):
            self.events[event.id] = (event, data)
        self.event_messages += 1

    def acks(self) -> dict[str, list[str]]:
        by_device: dict[str, list[str]] = defaultdict(list)
        for event, _data in self.events.values():
            by_device[event.device_id].append(event.id)
        return by_device


def _touch_device(stmt: Any) -> Any:
    return stmt.on_conflict_do_update(
        index_elements=["id"], set_={"last_seen_at": stmt.excluded.last_seen_at}
    )


def _keep_device(stmt: Any) -> Any:
    return stmt.on_conflict_do_nothing(index_elements=["id"])


def _new_event_ids(stmt: Any) -> Any:
    return stmt.on_conflict_do_nothing(index_elements=["event_id"]).returning(
        EventRow.__table__.c.event_id
    )


def store_batch(
    connection: Connection,
    batch: Batch,
    calendar: Calendar,
    now: datetime,
    future_margin_s: float = FUTURE_MARGIN_S,
) -> set[str]:
    """Upsert devices, insert new events, derive from them; returns the newly stored ids.

    An event dated where no clock can be right is stored at ``now`` (``derive.plausible``);
    a synced copy of an event stored unsynced corrects its time (``take_synced_times``)."""
    alive = {e.device_id for e, _ in batch.events.values()}
    alive |= {device_id for device_id, _, retained in batch.statuses if not retained}
    known = {device_id for device_id, _, _ in batch.statuses} - alive
    for devices, finish in ((sorted(alive), _touch_device), (sorted(known), _keep_device)):
        if devices:
            rows = [
                {"id": d, "name": d, "online": False, "first_seen_at": now, "last_seen_at": now}
                for d in devices
            ]
            insert_rows(connection, Device.__table__, rows, finish)
    for device_id, status, _retained in batch.statuses:
        # parse_status bounds each text to its column and refuses what a database cannot hold.
        values: dict[str, Any] = {"online": status.state == "online"}
        if status.boot_id is not None:
            values["boot_id"] = status.boot_id
        if status.version is not None:
            values["version"] = status.version
        connection.execute(update(Device).where(Device.id == device_id).values(**values))
        if status.name and status.name.strip():
            # The device's configured name, until someone names it on the dashboard (a
            # device first stored under its id carries its id as its name).
            connection.execute(
                update(Device)
                .where(Device.id == device_id, Device.name.in_(("", device_id)))
                .values(name=" ".join(status.name.split()))
            )
    if not batch.events:
        return set()
    sent = {event_id: event for event_id, (event, _) in batch.events.items()}
    events = [plausible(e, now, future_margin_s) for e in sent.values()]
    retimed = [e for e in events if e is not sent[e.id]]
    if retimed:
        log.warning(
            "%d events dated before %s or over %.0f s ahead stored with their arrival time"
            " (e.g. %s from %s dated %s)",
            len(retimed),
            PLAUSIBLE_FLOOR.date(),
            future_margin_s,
            retimed[0].id,
            retimed[0].device_id,
            sent[retimed[0].id].ts.isoformat(),
        )
    data_of = {event_id: data for event_id, (_, data) in batch.events.items()}
    rows = [
        {
            "event_id": e.id,
            "device_id": e.device_id,
            "boot_id": e.boot_id,
            "seq": e.seq,
            "type": e.type.value,
            "ts": e.ts,
            "mono": e.mono,
            "clock_synced": e.clock_synced,
            "data": data_of[e.id],
            "received_at": now,
        }
        for e in sorted(events, key=lambda e: e.id)
    ]  # sorted: concurrent workers lock unique-index entries in the same order
    new_ids = set(insert_rows(connection, EventRow.__table__, rows, _new_event_ids).scalars())
    # Only a batch with duplicates costs a query more: the stored copies still unsynced.
    corrected, recount = take_synced_times(
        connection, [e for e in events if e.id not in new_ids], calendar
    )
    if corrected:
        log.info("%d events stored with an unsynced clock took a synced copy's time", corrected)
    derive(connection, [e for e in events if e.id in new_ids], calendar, recount)
    return new_ids


# The cyclic collector's thresholds for a process that ingests (Python's are 700, 10, 10):
# a batch keeps thousands of messages, events and rows alive until it is stored, and with
# the default they were walked again every few hundred allocations, and by the middle
# generation every few thousand.
GC_THRESHOLDS = (5000, 100, 10)


def freeze_startup_objects() -> None:
    """For a process that ingests, once it has started up: what exists by then (modules,
    the models' metadata, the engine) lives as long as the process, and frozen it is no
    longer walked by each of the cyclic collector's full collections; and the collector
    runs less often (GC_THRESHOLDS). Under the bench's load (20,000 events, a quiet
    machine) the collector took 0.33-0.43 s of the worker's CPU, 0.18-0.21 s frozen, and
    0.06-0.08 s frozen with these thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _source_of(topic_name: str) -> str:
    """Who a rejected message is summed up under: its device, or all bad topics together."""
    try:
        return protocol.parse_topic(topic_name)[0]
    except ProtocolError:
        return "bad topics"


def _on_its_way(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether an ack publish may still be confirmed by the broker. One made while
    disconnected keeps its error code for good: paho sends it after the reconnect all the
    same, but ``is_published()`` raises for it from then on, so it is not waited for."""
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        return False
    try:
        return not info.is_published()
    except (RuntimeError, ValueError):
        return False


class IngestWorker:
    """Subscribes to every device's event, status and config/result topics and stores what
    arrives.

    Counters (read them from any thread): ``stored`` new events, ``duplicates`` events already
    stored (acked again), ``rejected`` malformed messages, ``statuses`` status updates,
    ``db_errors`` batches that failed to commit, ``batches`` batches committed (bench/ reports
    them), ``received`` messages paho handed over, ``handled`` messages taken off the queue.

    In a share group the worker first proves that the broker delivers shared subscriptions
    (some grant ``$share/...`` and then deliver nothing): ``share_confirmed`` is set when
    its probe came back; if it does not within ``mqtt.share_probe_timeout_s``, ``failure``
    says why in one line, ``failed`` is set, ``run_forever`` returns and ``when_failed``
    (if set) is called with the line.
    """

    def __init__(
        self, config: ServerConfig, engine: Engine, *, client_id: str | None = None
    ) -> None:
        self.config = config
        self.engine = engine
        self.calendar = config.calendar
        self.client_id = client_id or config.mqtt.client_id
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0
        self.statuses = 0
        self.db_errors = 0
        self.batches = 0
        self.received = 0
        self.handled = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        # (taker, message), or _STOP; a taker adds its message to a batch or raises.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._discarding = False
        self._outage_logged = False  # one warning per outage, not one per reconnect attempt
        self._pending_acks: list[mqtt.MQTTMessageInfo] = []
        self.share_confirmed = threading.Event()
        self.failed = threading.Event()
        self.failure: str | None = None
        self.when_failed: Callable[[str], None] | None = None
        self._probe_id = uuid.uuid4().hex[:12]
        self._probe_lock = threading.Lock()
        self._probe_timer: threading.Timer | None = None
        self._probe_sent_at = 0.0
        self._rejects = RejectLog(log)
        self._subscriber = Subscriber(log)
        self._client = self._make_client()

    # --- MQTT side (paho's network thread) ---------------------------------------------

    def _make_client(self) -> mqtt.Client:
        settings = self.config.mqtt
        # A lone worker keeps a persistent session, so the broker queues events while it
        # restarts. In a shared group it must not: Mosquitto goes on routing a share of the
        # group's messages to a member's offline session, where they wait until it returns.
        client = make_client(
            settings, self.client_id, logger=log, persistent_session=not settings.share_group
        )
        client.max_inflight_messages_set(100)  # our acks to devices
        client.max_queued_messages_set(0)
        client.on_connect = self._when_connected
        client.on_connect_fail = self._when_connect_failed
        client.on_disconnect = self._when_disconnected
        client.on_subscribe = self._when_subscribed
        for topic_filter, handle in self._topic_handlers().items():
            add_handler(client, topic_filter, handle, self._reject)
        add_handler(client, PROBE_TOPIC, self._when_probe, self._reject)
        # Topics no handler takes (one that is not UTF-8 among them): rejected by the writer.
        client.on_message = lambda _c, _u, message: self._receive(self._take_other, message)
        return client

    def _topic_handlers(self) -> dict[str, MessageHandler]:
        """The handler of each topic filter the worker subscribes to (events through the
        share group, if there is one; every worker gets all the rest)."""
        return {
            EVENT_FILTER: self._when_event,
            STATUS_FILTER: partial(self._receive, self._take_status),
            config_results.FILTER: partial(self._receive, self._take_config_result),
        }

    @property
    def broker(self) -> str:
        """The broker connected to or last tried; before the first attempt, every one the
        config lists."""
        if self._client.host:
            return address_of(self._client)
        return self.config.mqtt.where

    def _when_connected(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the connection: %s", self.broker, reason)
            return
        group = self.config.mqtt.share_group
        events = f"$share/{group}/{EVENT_FILTER}" if group else EVENT_FILTER
        subscriptions = [
            (events if topic_filter == EVENT_FILTER else topic_filter, 1)
            for topic_filter in self._topic_handlers()
        ]
        if group and not self.share_confirmed.is_set():
            subscriptions.append((self._probe_filter, 1))
        self._subscriber.subscribe(client, subscriptions)
        self.connected.set()
        self._outage_logged = False
        log.info(
            "connected to MQTT broker %s as %s (session present: %s), subscribing to %s",
            self.broker,
            self.client_id,
            flags.session_present,
            events,
        )

    def _when_connect_failed(self, _client: mqtt.Client, _u: Any) -> None:
        if self._outage_logged:
            log.debug("MQTT broker %s still unreachable", self.broker)
            return
        self._outage_logged = True
        log.warning(
            "cannot reach MQTT broker %s; retrying with backoff up to %d s",
            self.broker,
            RECONNECT_MAX_S,
        )

    def _when_disconnected(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        self._cancel_probe()  # it may have been lost with the connection: probe again
        if self._stop_requested.is_set():
            return
        if not was_connected or self._outage_logged:  # a reconnect attempt that failed
            log.debug("MQTT broker %s: connection closed (%s)", self.broker, reason)
            return
        self._outage_logged = True
        next_one = " to the next broker" if len(self.config.mqtt.addresses) > 1 else ""
        log.warning("lost MQTT broker %s (%s); reconnecting%s", self.broker, reason, next_one)

    def _when_subscribed(self, client: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        if not self._subscriber.granted(client, mid, codes):
            return  # asked again (logged); subscribed once the broker grants it
        self.subscribed.set()
        if self.config.mqtt.share_group and not self.share_confirmed.is_set():
            self._send_probe()

    def _when_event(self, message: mqtt.MQTTMessage) -> None:
        if message.topic != PROBE_TOPIC:  # it matches EVENT_FILTER too: _when_probe's
            self._receive(self._take_event, message)

    def _receive(
        self, take: Callable[[Batch, mqtt.MQTTMessage], None], message: mqtt.MQTTMessage
    ) -> None:
        self.received += 1
        self._queue.put((take, message))

    # --- the share-group probe -----------------------------------------------------------

    @property
    def _probe_filter(self) -> str:
        # A group of this worker alone: a probe sent to the fleet's group could be handed
        # to any other member of it.
        group = f"{self.config.mqtt.share_group}-probe-{self._probe_id}"
        return f"$share/{group}/{PROBE_TOPIC}"

    def _send_probe(self) -> None:
        self._cancel_probe()
        self._probe_sent_at = time.monotonic()
        self._client.publish(PROBE_TOPIC, self._probe_id, qos=1)
        timer = threading.Timer(self.config.mqtt.share_probe_timeout_s, self._when_probe_lost)
        timer.daemon = True
        self._probe_timer = timer
        timer.start()

    def _cancel_probe(self) -> None:
        timer, self._probe_timer = self._probe_timer, None
        if timer is not None:
            timer.cancel()

    def _when_probe(self, message: mqtt.MQTTMessage) -> None:
        """A message on PROBE_TOPIC: ours confirms the broker; another worker's is ignored."""
        with self._probe_lock:
            if message.payload != self._probe_id.encode() or self.share_confirmed.is_set():
                return
            if self.failed.is_set():  # too late: the worker has given up already
                return
            self.share_confirmed.set()
        self._cancel_probe()
        self._client.unsubscribe(self._probe_filter)
        log.info(
            "MQTT broker %s delivers shared subscriptions (probe back in %.0f ms)",
            self.broker,
            (time.monotonic() - self._probe_sent_at) * 1000,
        )

    def _when_probe_lost(self) -> None:
        settings = self.config.mqtt
        with self._probe_lock:
            if self.share_confirmed.is_set() or not self.subscribed.is_set():
                return  # back just in time, or the connection dropped (probed again then)
            self.failure = (
                f"MQTT broker {self.broker} does not deliver shared subscriptions "
                f"(mqtt.share_group = {settings.share_group!r}): a probe to "
                f"{self._probe_filter} did not come back within "
                f"{settings.share_probe_timeout_s:g} s. NATS 2.9 and amqtt accept $share/ and "
                f"deliver nothing (an ACL keeping this client from {PROBE_TOPIC} looks the "
                "same): use a broker with shared subscriptions (Mosquitto 2.x) or one worker "
                "without share_group"
            )
            self.failed.set()
        self._stop_requested.set()
        if self.when_failed is not None:
            self.when_failed(self.failure)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> IngestWorker:
        """Start the writer thread and connect (in the background; retries if unreachable)."""
        self._stop_requested.clear()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        connect(self._client, self.config.mqtt, background=True)
        return self

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        """Whether the worker got connected and subscribed within ``timeout_s`` (in a share
        group: and its probe came back through a shared subscription)."""
        if self.config.mqtt.share_group:
            return self.share_confirmed.wait(timeout_s)
        return self.subscribed.wait(timeout_s)

    def request_stop(self) -> None:
        """Ask ``run_forever`` to return (safe from a signal handler)."""
        self._stop_requested.set()

    def stop(self, timeout_s: float = 10.0, drain: bool = True) -> None:
        """Store and ack what is queued, then disconnect. The broker keeps the session, so
        messages published meanwhile wait for the next worker with this client id.
        ``drain=False`` drops the queue unstored, as a crash would (devices resend)."""
        self._stop_requested.set()
        self._cancel_probe()
        if not drain:
            self._client.disconnect()
            self._discarding = True
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join(timeout_s)
            self._writer = None
        # Let the last acks reach the broker before the DISCONNECT. Disconnected, nothing
        # more leaves: the devices resend what was not acked.
        deadline = time.monotonic() + min(timeout_s, 2.0)
        for info in self._pending_acks:
            if not self.connected.is_set():
                break
            if _on_its_way(info):
                with suppress(RuntimeError, ValueError):
                    info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        self._pending_acks = []
        self._client.disconnect()
        self._client.loop_stop()
        self._rejects.flush(everything=True)
        # paho closes the socket pair that wakes its loop only when the client is collected,
        # and the callbacks tie this client to the worker in a reference cycle, freed late
        # and in no set order (unclosed-socket warnings). Letting go of it frees it now; a
        # later start() connects with a fresh client under the same id.
        self._client = self._make_client()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop_requested.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            log.info(
                "ingest stopped: %d stored, %d duplicates, %d rejected",
                self.stored,
                self.duplicates,
                self.rejected,
            )

    # --- writer thread -------------------------------------------------------------------

    def _write_loop(self) -> None:
        size = self.config.mqtt.batch_size
        wait_s = self.config.mqtt.batch_wait_s
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._discarding:
                continue
            items = [item]
            deadline = time.monotonic() + wait_s
            while len(items) < size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stopping = True
                    break
                items.append(item)
            try:
                self._handle(items)
            except Exception:  # a bug must not end ingest; the devices will resend
                log.exception("unexpected error handling a batch of %d messages", len(items))
            finally:
                self.handled += len(items)

    def _handle(self, items: list[tuple[Any, mqtt.MQTTMessage]]) -> None:
        batch = self._validate(items)
        if not batch.events and not batch.statuses:
            return
        new_ids = self._commit(batch)
        if new_ids is None:
            return
        self.batches += 1
        self.stored += len(new_ids)
        self.duplicates += batch.event_messages - len(new_ids)
        self.statuses += len(batch.statuses)
        self._publish_acks(batch.acks())

    def _validate(self, items: Iterable[tuple[Any, mqtt.MQTTMessage]]) -> Batch:
        batch = Batch()
        for take, message in items:
            deliver(partial(take, batch), message, self._reject)
        self._rejects.flush()
        return batch

    def _reject(self, message: mqtt.MQTTMessage, exc: Exception) -> None:
        """A message that could not be used costs only itself (``sitwatch.mqtt.deliver``)."""
        self.rejected += 1
        name = topic_name(message)
        what = f"rejected message on {name!r:.200} ({len(message.payload)} bytes)"
        self._rejects.reject(_source_of(name), what, exc)

    # The takers: each decodes, validates and adds one message to ``batch``, or raises.

    def _take_event(self, batch: Batch, message: mqtt.MQTTMessage) -> None:
        device_id, _leaf = protocol.parse_topic(message.topic)
        event = protocol.parse_event(message.payload, device_id)
        batch.add_event(event, check_event(event))

    def _take_status(self, batch: Batch, message: mqtt.MQTTMessage) -> None:
        device_id, _leaf = protocol.parse_topic(message.topic)
        status = protocol.parse_status(message.payload)
        batch.statuses.append((device_id, status, bool(message.retain)))

    def _take_config_result(self, batch: Batch, message: mqtt.MQTTMessage) -> None:
        device_id, _leaf = protocol.parse_topic(message.topic)
        config_results.take_config_result(self.engine, device_id, message.payload)

    def _take_other(self, batch: Batch, message: mqtt.MQTTMessage) -> None:
        # message.topic raises UnicodeDecodeError for a topic that is not UTF-8
        raise ProtocolError(f"not an event or status topic: {message.topic!r:.200}")

    def _commit(self, batch: Batch) -> set[str] | None:
        """Store ``batch`` in one transaction; None (and nothing acked) if that failed."""
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                with self.engine.begin() as connection:
                    return store_batch(
                        connection,
                        batch,
                        self.calendar,
                        protocol.now_utc(),
                        self.config.future_margin_s,
                    )
            except (DataError, IntegrityError) as exc:
                if len(batch.events) > 1:
                    # One row the database refuses must not block the rest: store halves.
                    log.warning("database refused a batch (%s); storing it in halves", exc.orig)
                    return self._commit_halves(batch)
                self.db_errors += 1
                log.error("database refused %s: %s", list(batch.events), exc.orig)
                return None
            except OperationalError as exc:  # locked, deadlock, connection lost: try again
                if attempt < COMMIT_ATTEMPTS:
                    log.warning("database error (%s); retrying the batch", exc.orig)
                    time.sleep(RETRY_PAUSE_S * attempt)
                    continue
                error: SQLAlchemyError = exc
            except SQLAlchemyError as exc:
                error = exc
            self.db_errors += 1
            log.error(
                "database error, batch of %d events not stored (devices will resend): %s",
                len(batch.events),
                getattr(error, "orig", None) or error,
            )
            return None
        return None

    def _commit_halves(self, batch: Batch) -> set[str] | None:
        items = list(batch.events.items())
        middle = len(items) // 2
        stored: set[str] = set()
        for part, statuses in ((items[:middle], batch.statuses), (items[middle:], [])):
            half = Batch(events=dict(part), statuses=statuses, event_messages=len(part))
            new_ids = self._commit(half)
            if new_ids is not None:
                stored |= new_ids
                continue
            for event_id, _ in part:  # not stored: neither acked nor counted as duplicates
                batch.events.pop(event_id)
                batch.event_messages -= 1
        return stored

    def _publish_acks(self, acks: dict[str, list[str]]) -> None:
        self._pending_acks = [info for info in self._pending_acks if _on_its_way(info)]
        for device_id, ids in acks.items():
            ack_topic = protocol.topic(device_id, protocol.ACK)
            for start in range(0, len(ids), protocol.MAX_ACK_IDS):
                chunk = ids[start : start + protocol.MAX_ACK_IDS]
                info = self._client.publish(ack_topic, protocol.ack_payload(chunk), qos=1)
                self._pending_acks.append(info)
