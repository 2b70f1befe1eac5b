"""Broker outages during a burst from several desks, with one ingest worker throughout: the
broker SIGKILLed, stopped cleanly, or cut off the network, while the worker is storing a
batch. Afterwards every event is stored exactly once and every desk's outbox is empty
within the resend interval plus 30 s, and acks go on flowing for new events."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from e2e_support import CuttableProxy, running_server, server_config, stored_ids
from gpiozero.pins.mock import MockFactory, MockPWMPin
from support.desks import Desk
from support.waiting import wait_until

from sitwatch.broker import Mosquitto
from sitwatch.clock import FakeClock
from sitwatch.device.link import IDLE_WAKE_S
from sitwatch.server.ingest.worker import IngestWorker

MIN = 60.0
DESKS = 3
DRAIN_S = 30.0  # the "plus 30 s": real time for reconnects and acks after one resend interval


def working_hour(desk: Desk) -> None:
    """A stretch past the limit with a prompt and a re-prompt, a drill, a break (14 events)."""
    desk.sit(True)
    desk.live(50 * MIN)
    desk.press(0.3)
    desk.sit(False)
    desk.live(4 * MIN)


def everyone_works(desks: list[Desk], hours: int = 1) -> None:
    for _ in range(hours):
        for desk in desks:
            working_hour(desk)


@contextmanager
def writes_held(db_path: Path) -> Iterator[None]:
    """Holds SQLite's write lock as another writer would: the worker's next commit waits
    (busy_timeout) until the block ends. It pins the fault to the moment the worker is
    storing a batch, whose acks then go out while the broker is away."""
    with closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")


class Outage:
    """One kind of fault: how it starts, how it ends, and the port the clients use."""

    def __init__(self, broker: Mosquitto, how: str) -> None:
        self.broker = broker
        self.how = how
        # A network cut puts every client (desks and worker) behind one proxy, as if the
        # broker's host dropped off the network; the broker itself keeps running.
        self.proxy = CuttableProxy(broker.port) if how == "network cut" else None
        self.port = self.proxy.port if self.proxy else broker.port

    def begin(self) -> None:
        if self.proxy is not None:
            self.proxy.cut()
        elif self.how == "sigkill":
            self.broker.kill()
        else:
            self.broker.stop()

    def end(self) -> None:
        if self.proxy is not None:
            self.proxy.mend()
        else:
            self.broker.start()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


def all_sent(desks: list[Desk]) -> bool:
    return not any(len(desk.service.outbox) for desk in desks)


def all_connected(desks: list[Desk], worker: IngestWorker) -> Callable[[], bool]:
    return lambda: worker.subscribed.is_set() and all(d.service.link.is_connected for d in desks)


def assert_every_event_stored_once_and_acked(desks: list[Desk], engine) -> None:  # type: ignore[no-untyped-def]
    left = {d.service.config.device_id: len(d.service.outbox) for d in desks}
    assert not any(left.values()), f"outboxes not drained: {left}"
    ids = stored_ids(engine)
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.id for d in desks for e in d.sent}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["sigkill", "clean stop", "network cut"])
def test_acks_flow_again_after_a_broker_outage_mid_burst(
    private_broker: Mosquitto, tmp_path: Path, how: str
) -> None:
    from web_fixtures import make_app

    outage = Outage(private_broker, how)
    db_path = tmp_path / "server.db"
    config = server_config(db_path, outage.port, f"outage-{how.replace(' ', '-')}")
    with running_server(config) as (engine, worker):
        desks = [
            Desk(
                MockFactory(pin_class=MockPWMPin),
                tmp_path / f"desk-{n}",
                outage.port,
                FakeClock(),
                f"desk-{n}",
            )
            for n in range(DESKS)
        ]
        try:
            assert wait_until(all_connected(desks, worker), timeout=10)
            everyone_works(desks, hours=2)
            with writes_held(db_path):
                everyone_works(desks)  # the worker takes these in but cannot store them yet
                assert wait_until(lambda: worker.received > worker.handled, timeout=10)
                outage.begin()
                assert wait_until(lambda: not worker.connected.is_set(), timeout=5)
                stored = worker.stored
            # The held batch is stored and acked while the broker is out of reach.
            assert wait_until(lambda: worker.stored > stored, timeout=10)
            everyone_works(desks, hours=2)  # the desks keep recording into their outboxes
            assert all(len(d.service.outbox) > 0 for d in desks)
            outage.end()

            assert wait_until(all_connected(desks, worker), timeout=DRAIN_S)
            # What was in flight when a broker restarted may be lost: one resend interval of
            # the desks' own clocks (and the sender's wake-up) makes it due again.
            for desk in desks:
                desk.live(desk.service.config.mqtt.resend_after_s + IDLE_WAKE_S)
            wait_until(lambda: all_sent(desks), DRAIN_S, "every outbox to drain")
            assert_every_event_stored_once_and_acked(desks, engine)

            # And the same worker goes on acking what comes next.
            everyone_works(desks)
            wait_until(lambda: all_sent(desks), DRAIN_S, "every outbox to drain")
            assert_every_event_stored_once_and_acked(desks, engine)
            assert worker.db_errors == 0
            assert make_app(engine).test_client().get("/healthz").status_code == 200
        finally:
            for desk in desks:
                desk.close()
            outage.close()
