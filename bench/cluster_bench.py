"""Broker-cluster benchmark: a fleet's backlog (each desk's outbox holding a day of the
tracker's events and heartbeats) drained by the real MqttLinks through NATS into one
ingest worker on SQLite: through one nats-server, through a three-node cluster (desks on
two nodes, the ingest on the third), and through the cluster with the ingest's node or a
desks' node SIGKILLed a third of the way through. Figures: events/s until every outbox is
empty, and how long the clients on the killed node took to be connected to another one.

Every scenario gets fresh nats-server processes (no stale session queues messages for a
worker of an earlier one). Desks and the worker run in this process, on the real clock,
with the shipped default ``resend_after_s`` (30 s), and NATS's MQTT ``ack_wait`` at
``sitwatch.broker.ACK_WAIT_S`` (5 s) instead of its default 30 s.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from common import Figure
from workload import backlog

from sitwatch.broker import ACK_WAIT_S, NatsCluster, NatsServer, find_nats_server
from sitwatch.clock import SystemClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.protocol import new_id
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import upgrade

DRAIN_TIMEOUT_S = 120.0
POLL_S = 0.01
INGEST_NODE = 2
SCENARIOS = {
    "single": "one nats-server",
    "cluster": "3-node cluster, no fault",
    "kill_ingest_node": "3-node cluster, the ingest's node SIGKILLed",
    "kill_desk_node": "3-node cluster, a desks' node SIGKILLed",
}
QUICK_SCENARIOS = ("kill_ingest_node",)


class Brokers:
    """One nats-server or a cluster, with each client's list of brokers."""

    def __init__(self, nodes: int, workdir: Path) -> None:
        self.cluster = NatsCluster(nodes, str(workdir)) if nodes > 1 else None
        # The cluster's MQTT ack_wait on the single server too: like for like.
        self.single = None if nodes > 1 else NatsServer(workdir=str(workdir), ack_wait_s=ACK_WAIT_S)

    def start(self) -> Brokers:
        if self.cluster is not None:
            self.cluster.start()
        else:
            assert self.single is not None
            self.single.start()
        return self

    def hosts(self, node: int) -> list[str]:
        if self.cluster is not None:
            return self.cluster.hosts(node)
        assert self.single is not None
        return [f"{self.single.host}:{self.single.port}"]

    def address(self, node: int) -> str:
        return self.hosts(node)[0]

    def kill(self, node: int) -> None:
        assert self.cluster is not None
        self.cluster.kill(node)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        elif self.single is not None:
            self.single.stop()


def _wait(condition: Callable[[], bool], timeout_s: float) -> float | None:
    """Seconds until ``condition`` held, or None if it did not within ``timeout_s``."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            return None
        time.sleep(POLL_S)
    return time.perf_counter() - start


def drain(scenario: str, desks: int, end: date, workdir: Path) -> dict[str, Any]:
    """One scenario of SCENARIOS: ``desks`` outboxes of a day each, drained at once."""
    place = Path(tempfile.mkdtemp(prefix=f"cluster-{scenario}-", dir=workdir))
    nodes = 1 if scenario == "single" else 3
    victim = {"kill_ingest_node": INGEST_NODE, "kill_desk_node": 0}.get(scenario)
    brokers = Brokers(nodes, place / "nats").start()
    url = f"sqlite:///{place / 'server.db'}"
    engine = make_engine(url)
    upgrade(engine)
    config = ServerConfig.model_validate(
        {
            "database": {"url": url},
            "mqtt": {"hosts": brokers.hosts(INGEST_NODE % nodes), "client_id": "bench-cluster"},
        }
    )
    outboxes: list[Outbox] = []
    links: list[MqttLink] = []
    sent: set[str] = set()
    worker = IngestWorker(config, engine)
    logging.getLogger("sitwatch").setLevel(logging.ERROR)  # failovers log warnings
    try:
        for n in range(desks):
            device_id = f"cluster-{n}"
            outbox = Outbox(place / f"{device_id}.db")
            for event in backlog(device_id, 1, end):
                sent.add(outbox.add(event).id)
            outboxes.append(outbox)
            node = (n % 2) % nodes  # desks on nodes 0 and 1, the ingest on node 2
            mqtt = MqttConfig(hosts=brokers.hosts(node), heartbeat_s=0)
            device = DeviceConfig(device_id=device_id, data_dir=str(place / device_id), mqtt=mqtt)
            links.append(MqttLink(device, new_id(), outbox, SystemClock()))
        worker.start()
        if not worker.wait_ready(30):
            raise RuntimeError(f"{scenario}: the ingest did not subscribe")
        start = time.perf_counter()
        for link in links:
            link.start()
        failover_s = None
        if victim is not None:
            gone = brokers.address(victim)
            third = len(sent) // 3
            if _wait(lambda: worker.stored >= third, DRAIN_TIMEOUT_S) is None:
                raise RuntimeError(f"{scenario}: a third of the events never arrived")
            hit = [link for link in links if link.broker == gone]
            ingest_hit = worker.broker == gone
            killed_at = time.perf_counter()
            brokers.kill(victim)

            def moved() -> bool:
                ingest = not ingest_hit or (worker.subscribed.is_set() and worker.broker != gone)
                return ingest and all(link.is_connected and link.broker != gone for link in hit)

            # The clients notice the loss, wait the reconnect back-off and go to the next
            # broker; measured from the kill.
            waited = _wait(moved, DRAIN_TIMEOUT_S)
            failover_s = None if waited is None else time.perf_counter() - killed_at
        drained = _wait(lambda: not any(len(outbox) for outbox in outboxes), DRAIN_TIMEOUT_S)
        seconds = time.perf_counter() - start
        left = sum(len(outbox) for outbox in outboxes)
    finally:
        for link in links:
            link.stop()
        worker.stop()
        for outbox in outboxes:
            outbox.close()
        brokers.stop()
    from ingest_bench import stored_counts, stored_ids

    rows, distinct = stored_counts(engine)
    missing = len(sent - stored_ids(engine))
    engine.dispose()
    shutil.rmtree(place, ignore_errors=True)
    return {
        "scenario": scenario,
        "nodes": nodes,
        "desks": desks,
        "events": len(sent),
        "seconds": seconds,
        "rate": len(sent) / seconds if drained is not None else None,
        "failover_s": failover_s,
        "left_in_outbox": left,
        "rows": rows,
        "distinct_event_ids": distinct,
        "missing": missing,
        "duplicates_acked": worker.duplicates,
        "db_errors": worker.db_errors,
    }


def bench(report: Any, quick: bool, workdir: Path, end: date) -> None:
    """Every scenario (``--quick``: a node killed under a small fleet), into ``report``."""
    if find_nats_server() is None:
        report.skipped["cluster"] = "nats-server not installed (apt-get install nats-server)"
        return
    desks = 4 if quick else 20
    for scenario in QUICK_SCENARIOS if quick else tuple(SCENARIOS):

        def run(scenario: str = scenario) -> None:
            found = drain(scenario, desks, end, workdir)
            checks = {
                "all stored (no loss)": found["missing"] == 0,
                "no duplicate rows": found["rows"] == found["distinct_event_ids"],
                "outbox empty": found["left_in_outbox"] == 0,
                "no database errors": found["db_errors"] == 0,
            }
            label = f"fleet backlog through NATS: {SCENARIOS[scenario]} ({desks} desks x 24 h)"
            report.add(
                Figure(
                    f"cluster.{scenario}",
                    label,
                    found["rate"],
                    "events/s",
                    details=found,
                    checks=checks,
                )
            )
            if found["failover_s"] is not None or scenario.startswith("kill"):
                report.add(
                    Figure(
                        f"cluster.{scenario}.failover",
                        f"{SCENARIOS[scenario]}: its clients on another node after",
                        found["failover_s"],
                        "s",
                        checks={"failed over": found["failover_s"] is not None},
                    )
                )

        report.attempt(f"cluster {scenario}", run)
