"""A whole desk and server for end-to-end and reliability tests: a DeviceService on
MockFactory pins with a fake clock, an IngestWorker on a SQLite file, a real broker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from werkzeug.security import generate_password_hash

from sitwatch.clock import FakeClock
from sitwatch.device.config import DeviceConfig, MqttConfig, PinsConfig
from sitwatch.device.service import DeviceService
from sitwatch.protocol import Event
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import Event as StoredEvent
from sitwatch.server.models import User
from sitwatch.settings import TrackerSettings

PINS = PinsConfig()


def server_config(db_path: Path, mqtt_port: int, client_id: str = "e2e-ingest") -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{db_path}"},
            "mqtt": {"port": mqtt_port, "client_id": client_id, "batch_wait_s": 0.01},
        }
    )


@contextmanager
def running_server(config: ServerConfig) -> Iterator[tuple[Engine, IngestWorker]]:
    engine = make_engine(config.database.url)
    upgrade(engine)
    with session_factory(engine)() as session:
        if session.scalar(select(func.count()).select_from(User)) == 0:
            session.add(User(username="ana", password_hash=generate_password_hash("s3cret-pass")))
            session.commit()
    worker = IngestWorker(config, engine).start()
    assert worker.wait_ready(10)
    try:
        yield engine, worker
    finally:
        worker.stop()
        engine.dispose()


class Desk:
    """A device service plus the person at it, in fake time."""

    def __init__(
        self,
        factory: Any,
        data_dir: Path,
        mqtt_port: int,
        clock: FakeClock,
        device_id: str = "desk-e2e",
    ) -> None:
        self.clock = clock
        self.factory = factory
        config = DeviceConfig(
            device_id=device_id,
            data_dir=str(data_dir),
            tracker=TrackerSettings(quiet_hours=None, active_hours=None, drill_step_s=20),
            mqtt=MqttConfig(port=mqtt_port, heartbeat_s=0, resend_after_s=2),
        )
        self.service = DeviceService(config, clock, pin_factory=factory)
        self.sent: list[Event] = []
        self.service.agent.sinks.append(self.sent.append)
        self.service.start()

    @property
    def agent(self):  # type: ignore[no-untyped-def]
        return self.service.agent

    def live(self, seconds: float, step: float = 5.0) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            self.clock.advance(min(step, end - self.clock.monotonic()))
            self.agent.step()

    def sit(self, seated: bool) -> None:
        mat = self.factory.pin(PINS.mat)
        if seated:
            mat.drive_low()
        else:
            mat.drive_high()
        self.agent.step(timeout_s=1)

    def press(self, held_s: float = 0.3) -> None:
        button = self.factory.pin(PINS.button)
        button.drive_low()
        self.clock.advance(held_s)
        button.drive_high()
        self.agent.step(timeout_s=1)

    def close(self) -> None:
        self.service.close()


def stored_ids(engine: Engine) -> list[str]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(StoredEvent.event_id).order_by(StoredEvent.id)))


class CuttableProxy:
    """A TCP proxy between a client and the broker whose connections can be cut, like a
    Wi-Fi drop: ``cut()`` closes every connection and refuses new ones until ``mend()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self) -> None:
        self.open.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def mend(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
