"""The shipped Mosquitto configuration's queue limits (examples/mosquitto-sitwatch.conf),
on a real broker with its listeners, logins, ACL and TLS: a burst larger than Mosquitto's
default queue (1000 messages) waits for an ingest that is away, and nothing of it is
dropped. The same burst with the default limit loses messages at the broker, which shows
the check can see a loss. bench/outage_bench.py measures the same with 1000 desks."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.desks import LinkDesk
from support.events import MONDAY_9AM, make_event
from support.waiting import wait_until

from sitwatch.broker import (
    Mosquitto,
    SysCounters,
    config_keys,
    free_port,
    monitor_listener,
    render_config,
    self_signed_certificate,
)
from sitwatch.mqtt import TlsSettings
from sitwatch.protocol import EventType
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine
from sitwatch.server.desks import PasswordFile
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import Event as EventRow

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
        reason="needs openssl and mosquitto_passwd",
    ),
]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHIPPED = EXAMPLES / "mosquitto-sitwatch.conf"
SERVER_USER = "sitwatch-server"
DESKS = 20
EVENTS_PER_DESK = 100  # 2000 in all: twice Mosquitto's default queue
MOSQUITTO_DEFAULT_QUEUE = 1000


@dataclass
class Office:
    """A broker on the shipped configuration (test ports and files) with a monitor port."""

    mosquitto: Mosquitto
    server_port: int
    desk_port: int
    monitor_port: int
    ca_file: str
    passwords: dict[str, str]
    host = "127.0.0.1"


def shipped_limits() -> dict[str, str]:
    """The queue settings the shipped file sets, by key."""
    lines = [line.split() for line in SHIPPED.read_text().splitlines()]
    return {words[0]: words[1] for words in lines if words and words[0].startswith("max_")}


def office_broker(workdir: Path, extra: str = "") -> Office:
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(workdir)
    desks = [f"desk-{n:02d}" for n in range(DESKS)]
    passwords = {name: uuid.uuid4().hex for name in (SERVER_USER, *desks)}
    PasswordFile(workdir / "server.passwd").set(SERVER_USER, passwords[SERVER_USER])
    for name in desks:
        PasswordFile(workdir / "desks.passwd").set(name, passwords[name])
    files = {
        "server.passwd": workdir / "server.passwd",
        "desks.passwd": workdir / "desks.passwd",
        "sitwatch.acl": EXAMPLES / "mosquitto-sitwatch.acl",
        "sitwatch.crt": cert,
        "sitwatch.key": key,
    }
    ports = [free_port(), free_port()]
    monitor = free_port()
    conf = render_config(SHIPPED.read_text(), ports, files)
    conf += f"\n{monitor_listener(monitor)}\n{extra}"
    mosquitto = Mosquitto(port=ports[0], workdir=str(workdir), listeners=conf).start()
    return Office(mosquitto, ports[0], ports[1], monitor, str(cert), passwords)


def test_shipped_file_sets_the_queue_limits_the_docs_give() -> None:
    """The limits are set in the file itself (not left to Mosquitto's defaults), the queue
    holds more than the default, and docs/deploy.md names each value."""
    limits = shipped_limits()
    assert int(limits["max_queued_messages"]) > MOSQUITTO_DEFAULT_QUEUE
    assert {"max_queued_messages", "max_queued_bytes", "max_inflight_messages"} <= set(limits)
    assert set(limits) <= config_keys(SHIPPED.read_text())
    deploy = (EXAMPLES.parent / "docs" / "deploy.md").read_text()
    for key, value in limits.items():
        assert f"{key} {value}" in deploy, f"docs/deploy.md does not give {key} {value}"


def run_burst(office: Office, tmp_path: Path) -> tuple[list[LinkDesk], IngestWorker, SysCounters]:
    """The ingest subscribes (its persistent session) and goes away; the desks connect at
    once and send their backlogs, which the broker queues for the ingest; then the ingest
    comes back. Returns the desks, the ingest and the broker's counters."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    engine = make_engine(url)
    upgrade(engine)
    config = ServerConfig.model_validate(
        {
            "database": {"url": url},
            "mqtt": {
                "host": office.host,
                "port": office.server_port,
                "username": SERVER_USER,
                "password": office.passwords[SERVER_USER],
                "client_id": "sitwatch-ingest",
            },
        }
    )
    counters = SysCounters(office.host, office.monitor_port)
    first = IngestWorker(config, engine).start()
    assert first.wait_ready(10)
    first.stop()  # its session stays on the broker and queues what comes for it
    desks = []
    for n in range(DESKS):
        name = f"desk-{n:02d}"
        desk = LinkDesk(
            office.host,
            office.desk_port,
            tmp_path / "desks",
            name,
            username=name,
            password=office.passwords[name],
            tls=TlsSettings(ca_certs=office.ca_file),
            resend_after_s=600,  # no resend within the test: only the first send counts
        )
        for k in range(EVENTS_PER_DESK):
            ts = MONDAY_9AM + timedelta(seconds=36 * k)
            event = make_event(EventType.HEARTBEAT, ts, name, queued=k)
            desk.ids.append(desk.outbox.add(event).id)
        desks.append(desk)
    for desk in desks:
        desk.link.start()
    burst = DESKS * EVENTS_PER_DESK
    wait_until(lambda: counters.get("received") >= burst, 30, "the broker took the burst")
    worker = IngestWorker(config, engine).start()
    assert worker.wait_ready(10)
    return desks, worker, counters


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    office = office_broker(tmp_path / "broker")
    yield office
    office.mosquitto.stop()


def test_a_burst_larger_than_the_default_queue_is_not_dropped(
    office: Office, tmp_path: Path
) -> None:
    desks, worker, counters = run_burst(office, tmp_path)
    try:
        wait_until(
            lambda: all(len(desk.outbox) == 0 for desk in desks),
            30,
            "every outbox drained",
            detail=lambda: (worker.stored, counters.values),
        )
        assert counters.get("dropped") == 0
        assert worker.stored == DESKS * EVENTS_PER_DESK and worker.duplicates == 0
        with worker.engine.connect() as connection:
            rows, distinct = connection.execute(
                select(func.count(), func.count(EventRow.event_id.distinct()))
            ).one()
            ids = set(connection.scalars(select(EventRow.event_id)))
        assert rows == distinct == DESKS * EVENTS_PER_DESK
        assert ids == {event_id for desk in desks for event_id in desk.ids}
    finally:
        worker.stop()
        counters.close()
        for desk in desks:
            desk.close()


def test_with_mosquittos_default_queue_the_same_burst_loses_messages(tmp_path: Path) -> None:
    """The control: the shipped file with Mosquitto's default queue limit put back."""
    office = office_broker(
        tmp_path / "broker", extra=f"max_queued_messages {MOSQUITTO_DEFAULT_QUEUE}"
    )
    desks: list[LinkDesk] = []
    worker = counters = None
    try:
        desks, worker, counters = run_burst(office, tmp_path)
        dropped = counters.get("dropped")
        assert dropped > 0
        wait_until(lambda: worker.stored >= DESKS * EVENTS_PER_DESK - dropped, 30)
        # What the broker dropped waits in the desks' outboxes for a resend.
        assert sum(len(desk.outbox) for desk in desks) > 0
    finally:
        if worker is not None:
            worker.stop()
        if counters is not None:
            counters.close()
        for desk in desks:
            desk.close()
        office.mosquitto.stop()
