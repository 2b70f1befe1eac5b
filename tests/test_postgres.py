"""Ingest into PostgreSQL (server_helpers.postgres_schema): shared-subscription workers,
rollups and the idempotent insert path on the second dialect."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from server_helpers import DevicePublisher, heartbeats, postgres_schema
from sqlalchemy import Engine
from support.waiting import wait_until
from test_ingest import (
    EXPECTED_DAYS,
    assert_fleet_days_agree,
    ingest_config,
    rollups,
    scripted_day,
    stored_ids,
)
from test_systemd_units import SYSTEMD_DIR, VENV_BIN, exec_start, load_unit, words

from sitwatch.broker import Mosquitto
from sitwatch.calendar import Calendar
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.derive import recompute_rollups
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import current_revision, head_revision, upgrade

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    with postgres_schema() as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def start_worker(broker: Mosquitto, engine: Engine, client_id: str, **mqtt: object) -> IngestWorker:
    worker = IngestWorker(ingest_config(broker, **mqtt), engine, client_id=client_id)
    worker.start()
    assert worker.wait_ready(), "ingest worker did not subscribe"
    return worker


def test_two_workers_share_the_fleet_into_postgres(broker: Mosquitto, pg_engine: Engine) -> None:
    group = f"pg{uuid.uuid4().hex[:6]}"
    workers = [
        start_worker(broker, pg_engine, f"ingest-{group}-{n}", share_group=group) for n in (1, 2)
    ]
    desks = [f"desk-{uuid.uuid4().hex[:6]}" for _ in range(5)]
    device = DevicePublisher(broker.host, broker.port, desks)
    events = [e for d in desks for e in heartbeats(d, 400)]
    try:
        device.publish(events)
        device.publish(events[:100])  # replays, acked again, stored once
        assert device.resend_unacked(events)
    finally:
        device.close()
        for worker in workers:
            worker.stop()
    ids = stored_ids(pg_engine)
    assert len(ids) == len(set(ids)) == len(events)
    assert all(worker.stored > 0 for worker in workers)
    assert sum(w.stored for w in workers) == len(events)
    assert sum(w.db_errors for w in workers) == 0


def test_two_workers_keep_the_fleets_days_together(broker: Mosquitto, pg_engine: Engine) -> None:
    """Two workers on a shared subscription store the same days of different desks at once:
    their batches take turns on each day's fleet row (server/fleet_days.py), so the rows
    equal a count over the rollups, and no batch fails."""
    group = f"pg{uuid.uuid4().hex[:6]}"
    workers = [
        start_worker(broker, pg_engine, f"ingest-{group}-{n}", share_group=group) for n in (1, 2)
    ]
    desks = [f"desk-{uuid.uuid4().hex[:6]}" for _ in range(8)]
    device = DevicePublisher(broker.host, broker.port, desks)
    events = [e for d in desks for e in scripted_day(d)]
    try:
        device.publish(events)
        assert wait_until(lambda: device.acked >= {e.id for e in events})
    finally:
        device.close()
        for worker in workers:
            worker.stop()
    assert all(worker.stored > 0 for worker in workers)
    assert sum(w.db_errors for w in workers) == 0
    days = assert_fleet_days_agree(pg_engine)
    assert [(d.day, d.drills, d.longest_s) for d in days] == [
        (date(2026, 3, 2), len(desks), 18000.0),
        (date(2026, 3, 3), 0, 0.0),
    ]


def test_scripted_day_rollups_on_postgres(broker: Mosquitto, pg_engine: Engine) -> None:
    desk = f"desk-{uuid.uuid4().hex[:8]}"
    worker = start_worker(broker, pg_engine, f"ingest-{uuid.uuid4().hex[:8]}")
    device = DevicePublisher(broker.host, broker.port, [desk])
    events = scripted_day(desk)
    try:
        device.publish(events[::-1] + events[:4])
        assert device.resend_unacked(events)
    finally:
        device.close()
        worker.stop()
    assert rollups(pg_engine, desk) == EXPECTED_DAYS
    with pg_engine.begin() as connection:
        recompute_rollups(
            connection,
            worker.calendar,
            [(desk, date(2026, 3, 2)), (desk, date(2026, 3, 3))],
        )
    assert rollups(pg_engine, desk) == EXPECTED_DAYS
    assert isinstance(worker.calendar, Calendar)


def test_servers_starting_together_migrate_once() -> None:
    with postgres_schema() as url:
        engines = [make_engine(url) for _ in range(3)]
        errors: list[BaseException] = []

        def migrate(engine: Engine) -> None:
            try:
                upgrade(engine)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        try:
            assert errors == []
            assert current_revision(engines[0]) == head_revision()
        finally:
            for engine in engines:
                engine.dispose()


def test_ingest_unit_template_instances_split_the_fleet(
    broker: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    """systemd/sitwatch-ingest@.service as systemd would run instances 1 and 2: its own
    command line and Environment= lines (%i expanded), as real processes."""
    unit = load_unit(SYSTEMD_DIR / "sitwatch-ingest@.service")
    argv = exec_start(unit)
    config = tmp_path / "server.toml"
    url = pg_engine.url.render_as_string(hide_password=False)
    config.write_text(
        f'[database]\nurl = "{url}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    script = Path(sys.executable).with_name(argv[0].removeprefix(VENV_BIN))
    args = [str(config) if arg.startswith("/etc/sitwatch/") else arg for arg in argv[1:]]
    logs = [tmp_path / f"ingest-{n}.log" for n in (1, 2)]
    workers = []
    for n, log in zip((1, 2), logs, strict=True):
        unit_env = dict(
            item.replace("%i", str(n)).split("=", 1)
            for item in words(unit, "Service", "Environment")
        )
        with log.open("w") as stderr:
            workers.append(
                subprocess.Popen(
                    [str(script), *args], env={**os.environ, **unit_env}, stderr=stderr
                )
            )
    desks = [f"desk-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    events = [e for d in desks for e in heartbeats(d, 300)]
    device = DevicePublisher(broker.host, broker.port, desks)
    try:
        for n, log in zip((1, 2), logs, strict=True):
            wait_until(
                lambda log=log: "subscribing to $share/sitwatch-ingest/" in log.read_text(),
                30,
                "the shared subscription",
                detail=log.read_text,
            )
            assert f"as sitwatch-ingest-{n} " in log.read_text()
        device.publish(events)
        assert device.resend_unacked(events, timeout=30)
    finally:
        device.close()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
    assert [worker.returncode for worker in workers] == [0, 0]
    ids = stored_ids(pg_engine)
    assert len(ids) == len(set(ids)) == len(events)
    stored = []
    for log in logs:
        said = log.read_text()
        assert "Traceback" not in said
        stored.append(int(said.rsplit("ingest stopped: ", 1)[1].split()[0]))
    assert sum(stored) == len(events)
    assert min(stored) > 0, f"one instance stored nothing: {stored}"
