"""Ingest benchmarks: the broker's delivery ceiling, the ingest worker on SQLite and on
PostgreSQL (workers on a shared subscription), and how fast a device's backlog drains.

Every run gets a fresh Mosquitto (so no stale session queues messages for a worker of an
earlier run) and a fresh database. The publisher and the workers are processes of their
own (bench/procs.py), as devices and ingest are in a deployment.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, func, select
from workload import backlog, fleet_events, write_payloads

from sitwatch.broker import Mosquitto
from sitwatch.protocol import Event
from sitwatch.server.db import make_engine
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import Event as EventRow

PROCS = str(Path(__file__).with_name("procs.py"))
STORE_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 65.0  # the target is 60 s: past that it is a miss, however long it takes
POLL_S = 0.01


class Child:
    """A bench/procs.py process (or another ``script``): waits for its ``ready``, talks over
    stdin/stdout."""

    def __init__(self, *args: str, script: str = PROCS) -> None:
        self.process = subprocess.Popen(
            [sys.executable, script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put("")

    def line(self, timeout_s: float = 30.0) -> str:
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise RuntimeError(f"{self.process.args[2:4]} said nothing in {timeout_s} s") from None

    def ready(self) -> Child:
        said = self.line()
        if said != "ready":
            raise RuntimeError(f"{self.process.args[2:4]} did not start: {said!r}")
        return self

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def finish(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Close stdin and read the JSON the process prints last."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        said = self.line(timeout_s)
        self.process.wait(timeout_s)
        return json.loads(said) if said else {}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def fresh_broker() -> Iterator[Mosquitto]:
    with Mosquitto(workdir=tempfile.mkdtemp(prefix="sitwatch-bench-mqtt-")) as broker:
        yield broker


def fresh_sqlite(workdir: Path) -> str:
    url = f"sqlite:///{workdir / f'ingest-{uuid.uuid4().hex[:8]}.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def stored_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        rows, distinct = connection.execute(
            select(func.count(), func.count(EventRow.event_id.distinct()))
        ).one()
    return int(rows), int(distinct)


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(EventRow.event_id)))


def make_payloads(count: int, devices: int, end: date, workdir: Path) -> tuple[Path, list[Event]]:
    events = fleet_events(count, devices, end)
    return write_payloads(events, workdir / "payloads.tsv"), events


def ceiling(payloads: Path, count: int) -> dict[str, Any]:
    """Publisher (QoS 1) -> Mosquitto -> a bare paho subscriber (QoS 1) that only counts."""
    with fresh_broker() as broker:
        received = 0
        last = 0.0
        done = threading.Event()
        subscribed = threading.Event()

        def on_message(_c: object, _u: object, _m: mqtt.MQTTMessage) -> None:
            nonlocal received, last
            received += 1
            last = time.perf_counter()
            if received >= count:
                done.set()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
        client.on_message = on_message
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.subscribe("sitwatch/+/event", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("bare subscriber did not subscribe")
        publisher = Child("publish", "--port", str(broker.port), "--payloads", str(payloads))
        try:
            publisher.ready()
            start = time.perf_counter()
            publisher.send("go\n")
            done.wait(STORE_TIMEOUT_S)
            sent = json.loads(publisher.line(STORE_TIMEOUT_S))
            time.sleep(0.2)  # a late duplicate would show here
        finally:
            publisher.kill()
            client.disconnect()
            client.loop_stop()
    seconds = last - start
    return {
        "messages": count,
        "received": received,
        "seconds": seconds,
        "rate": received / seconds if seconds > 0 else None,
        "publisher_seconds": sent["seconds"],
    }


def ingest(
    payloads: Path, events: list[Event], url: str, workers: int, share_group: str | None
) -> dict[str, Any]:
    """The same publisher -> Mosquitto -> ``workers`` ingest processes -> the database at
    ``url``; timed until every event is a row, then checked for loss and duplicates."""
    count = len(events)
    engine = make_engine(url)
    with fresh_broker() as broker:
        children = []
        publisher = None
        try:
            for n in range(workers):
                args = [
                    "ingest",
                    "--port",
                    str(broker.port),
                    "--url",
                    url,
                    "--client-id",
                    f"bench-ingest-{n}",
                ]
                if share_group:
                    args += ["--share-group", share_group]
                children.append(Child(*args))
            for child in children:
                child.ready()
            publisher = Child("publish", "--port", str(broker.port), "--payloads", str(payloads))
            publisher.ready()
            start = time.perf_counter()
            publisher.send("go\n")
            rows = 0
            end = start
            while rows < count and end - start < STORE_TIMEOUT_S:
                time.sleep(POLL_S)
                rows, _ = stored_counts(engine)
                end = time.perf_counter()
            publisher.line(STORE_TIMEOUT_S)
            time.sleep(0.3)  # let a late duplicate land before counting
            counters = [child.finish() for child in children]
        finally:
            for child in [*children, *([publisher] if publisher else [])]:
                child.kill()
    rows, distinct = stored_counts(engine)
    missing = len({e.id for e in events} - stored_ids(engine))
    engine.dispose()
    seconds = end - start
    return {
        "events": count,
        "workers": workers,
        "seconds": seconds,
        "rate": count / seconds if rows >= count and seconds > 0 else None,
        "rows": rows,
        "distinct_event_ids": distinct,
        "missing": missing,
        "per_worker_stored": [c.get("stored") for c in counters],
        "duplicates_acked": sum(c.get("duplicates", 0) for c in counters),
        "rejected": sum(c.get("rejected", 0) for c in counters),
        "db_errors": sum(c.get("db_errors", 0) for c in counters),
        "batches": sum(c.get("batches", 0) for c in counters),
    }


class RefusedAcks(logging.Handler):
    """Counts the acks the device's link refused: each leaves its events waiting for a
    resend (``resend_after_s``, 30 s by default)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "malformed ack" in record.getMessage():
            self.count += 1


def drain_backlog(days: int, end: date, workdir: Path) -> dict[str, Any]:
    """A device's outbox holding ``days`` of events and heartbeats, drained by the real
    MqttLink into one ingest worker on SQLite: seconds until every event is acknowledged."""
    from sitwatch.clock import SystemClock
    from sitwatch.device.config import DeviceConfig, MqttConfig
    from sitwatch.device.link import MqttLink
    from sitwatch.device.outbox import Outbox
    from sitwatch.protocol import new_id

    rejected_acks = RefusedAcks()
    logging.getLogger("sitwatch.device.link").addHandler(rejected_acks)
    device_id = f"drain-{days}d"
    events = backlog(device_id, days, end)
    place = workdir / f"drain-{days}d"
    place.mkdir()
    outbox = Outbox(place / "outbox.db")
    fill_start = time.perf_counter()
    for event in events:
        outbox.add(event)
    fill_s = time.perf_counter() - fill_start
    url = fresh_sqlite(place)
    engine = make_engine(url)
    with fresh_broker() as broker:
        worker = Child(
            "ingest", "--port", str(broker.port), "--url", url, "--client-id", "bench-drain"
        )
        link = None
        try:
            worker.ready()
            mqtt = MqttConfig(host=broker.host, port=broker.port, heartbeat_s=0)
            config = DeviceConfig(device_id=device_id, data_dir=str(place), mqtt=mqtt)
            link = MqttLink(config, new_id(), outbox, SystemClock())
            start = time.perf_counter()
            link.start()
            end_t = start
            while len(outbox) and end_t - start < DRAIN_TIMEOUT_S:
                time.sleep(POLL_S)
                end_t = time.perf_counter()
            left = len(outbox)
            counters = worker.finish()
        finally:
            if link is not None:
                link.stop()
            worker.kill()
            outbox.close()
            logging.getLogger("sitwatch.device.link").removeHandler(rejected_acks)
    rows, distinct = stored_counts(engine)
    missing = len({e.id for e in events} - stored_ids(engine))
    engine.dispose()
    seconds = end_t - start
    return {
        "days": days,
        "events": len(events),
        "heartbeats": sum(1 for e in events if str(e.type) == "heartbeat"),
        "seconds": seconds,
        "rate": len(events) / seconds if seconds > 0 and not left else None,
        "left_in_outbox": left,
        "rows": rows,
        "distinct_event_ids": distinct,
        "missing": missing,
        "duplicates_acked": counters.get("duplicates"),
        "acks_refused_by_device": rejected_acks.count,
        "outbox_fill_seconds": fill_s,
        "outbox_adds_per_s": len(events) / fill_s if fill_s > 0 else None,
    }
