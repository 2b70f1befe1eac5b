"""The server side of end-to-end and reliability tests (the desk is ``support.desks.Desk``):
an IngestWorker on a SQLite file, a real broker, and a proxy whose connections can be cut."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import Engine, func, select
from werkzeug.security import generate_password_hash

from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.migrate import upgrade
from sitwatch.server.models import Event as StoredEvent
from sitwatch.server.models import User


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
            # An admin: the dashboard tests look at every desk.
            hashed = generate_password_hash("s3cret-pass")
            session.add(User(username="ana", password_hash=hashed, role="admin"))
            session.commit()
    worker = IngestWorker(config, engine).start()
    assert worker.wait_ready(10)
    try:
        yield engine, worker
    finally:
        worker.stop()
        engine.dispose()


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
