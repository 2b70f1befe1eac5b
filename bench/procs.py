"""Processes the benchmarks start, so each side has its own interpreter (and GIL) as in a
deployment: ``publish`` (a fleet of devices sending event payloads) and ``ingest`` (one
sitwatch ingest worker). Both print ``ready`` when connected, then wait on stdin.

    python bench/procs.py publish --port P --payloads FILE [--inflight 100]
        reads "go" on stdin, publishes every payload at QoS 1, prints {"published", "seconds"}
    python bench/procs.py ingest --port P --url DB_URL --client-id ID [--share-group G]
            [--username U --password-file F]
        stores until stdin closes, then prints the worker's counters as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


def publish(port: int, payloads: str, inflight: int) -> None:
    with open(payloads, encoding="utf-8") as lines:
        messages = [line.rstrip("\n").split("\t", 1) for line in lines]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}")
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)  # unbounded: queue in paho, send as PUBACKs free room
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        sys.exit("publisher: no connection")
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(60)
    seconds = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"published": len(infos), "seconds": seconds}), flush=True)


def ingest(
    port: int,
    url: str,
    client_id: str,
    share_group: str | None,
    username: str | None = None,
    password_file: str | None = None,
) -> None:
    import logging

    from sitwatch.server.config import ServerConfig
    from sitwatch.server.db import make_engine
    from sitwatch.server.ingest.worker import IngestWorker

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = ServerConfig.model_validate(
        {
            "database": {"url": url},
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": client_id,
                "share_group": share_group,
                "username": username,
                "password": password_file and open(password_file).read().strip(),  # noqa: SIM115
            },
        }
    )
    engine = make_engine(url)
    worker = IngestWorker(config, engine, client_id=client_id)
    worker.start()
    if not worker.wait_ready(10):
        sys.exit("ingest: not subscribed")
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    worker.stop()
    engine.dispose()
    counters = {
        name: getattr(worker, name)
        for name in (
            "stored",
            "duplicates",
            "rejected",
            "db_errors",
            "batches",
            "handled",
            "received",
        )
    }
    print(json.dumps(counters), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("--port", type=int, required=True)
    pub.add_argument("--payloads", required=True)
    pub.add_argument("--inflight", type=int, default=100)
    ing = sub.add_parser("ingest")
    ing.add_argument("--port", type=int, required=True)
    ing.add_argument("--url", required=True)
    ing.add_argument("--client-id", required=True)
    ing.add_argument("--share-group")
    ing.add_argument("--username")
    ing.add_argument("--password-file", help="a file holding the password (not in ps)")
    args = parser.parse_args()
    if args.command == "publish":
        publish(args.port, args.payloads, args.inflight)
    else:
        ingest(
            args.port,
            args.url,
            args.client_id,
            args.share_group,
            args.username,
            args.password_file,
        )


if __name__ == "__main__":
    main()
