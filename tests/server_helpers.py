"""Helpers for the server tests: a device-like publisher, a scratch PostgreSQL schema."""

from __future__ import annotations

import atexit
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from support.events import make_event
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.postgres_server import PostgresError, PostgresServer
from sitwatch.protocol import Event, EventType

# A PostgreSQL of the tester's choosing; without it the tests start one of their own, so a
# server that happens to run on the machine is never written to unless it is named here.
POSTGRES_URL_VARIABLE = "SITWATCH_TEST_POSTGRES_URL"
# Durability is not under test, and two shared cores make every fsync count.
TEST_SERVER_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

_private: PostgresServer | None = None
_private_error: str | None = None


def heartbeats(device_id: str, count: int, start: datetime | None = None) -> list[Event]:
    start = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return [
        make_event(EventType.HEARTBEAT, start, device_id=device_id, seq=n) for n in range(count)
    ]


class DevicePublisher:
    """Publishes events as a device would and collects the server's acks for them."""

    def __init__(
        self,
        host: str,
        port: int,
        device_ids: list[str],
        on_ack: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.on_ack = on_ack
        self.acked: set[str] = set()
        self.ack_order: list[str] = []
        self.ack_messages = 0
        self._subscribed = 0
        self.device_ids = device_ids
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-dev-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port)
        self.client.loop_start()
        for device_id in device_ids:
            self.client.subscribe(protocol.topic(device_id, protocol.ACK), qos=1)
        wait_until(lambda: self._subscribed == len(device_ids), what="the ack subscriptions")

    def _on_subscribe(self, *_args: object) -> None:
        self._subscribed += 1

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        ids = protocol.parse_ack(message.payload)
        if self.on_ack is not None:
            self.on_ack(ids)
        self.ack_messages += 1
        self.ack_order.extend(ids)
        self.acked.update(ids)

    def publish(self, events: list[Event], wait: bool = True) -> None:
        infos = [
            self.client.publish(protocol.topic(e.device_id, protocol.EVENT), e.to_json(), qos=1)
            for e in events
        ]
        if wait:
            # One made while disconnected fails for good (wait_for_publish would raise);
            # paho still sends it after the reconnect, and resend_unacked covers the rest.
            for info in infos:
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    info.wait_for_publish(5)

    def publish_raw(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def resend_unacked(self, events: list[Event], timeout: float = 8.0, every: float = 1.0) -> bool:
        """Like the device outbox: resend what is not acked yet, every ``every`` seconds,
        until everything is (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        resend_at = 0.0
        while missing := [e for e in events if e.id not in self.acked]:
            now = time.monotonic()
            if now > deadline:
                return False
            if now >= resend_at:
                self.publish(missing)
                resend_at = now + every
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def postgres_url() -> str:
    """The server the PostgreSQL tests use: ``SITWATCH_TEST_POSTGRES_URL`` when set, else
    a private server started on first use and stopped when the test session ends. Fails
    (never skips) when neither can be had."""
    global _private, _private_error
    named = os.environ.get(POSTGRES_URL_VARIABLE)
    if named:
        return named
    if _private is None and _private_error is None:
        try:
            _private = PostgresServer(settings=TEST_SERVER_SETTINGS).start()
            atexit.register(stop_private_postgres)
        except PostgresError as exc:
            _private_error = f"{exc}; or name a server in {POSTGRES_URL_VARIABLE}"
    if _private is None:
        # Remembered, so that each PostgreSQL test fails at once instead of retrying initdb.
        pytest.fail(str(_private_error), pytrace=False)
    return _private.url


def stop_private_postgres() -> None:
    global _private
    if _private is not None:
        _private.stop()
        _private = None


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL for a fresh PostgreSQL schema on ``postgres_url()``'s server, dropped afterwards."""
    import sqlalchemy

    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is not installed: pip install -e '.[postgres]'", pytrace=False)
    url = postgres_url()
    admin = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
    schema = f"sitwatch_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        reason = " ".join(str(exc.orig).split())[:160]
        pytest.fail(f"PostgreSQL not reachable at {url}: {reason}", pytrace=False)
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def migrated_engine(dialect: str, tmp_path: Any) -> Iterator[Any]:
    """An empty database migrated as a deployment is (Alembic's upgrade): a SQLite file in
    ``tmp_path`` or a fresh PostgreSQL schema (``postgres_schema``)."""
    from sitwatch.server.db import make_engine
    from sitwatch.server.migrate import upgrade

    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'sitwatch.db'}"
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    with postgres_schema() as url:
        engine = make_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()
