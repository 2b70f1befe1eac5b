"""Starts a private broker on free loopback ports (for tests, benches and the demo): Mosquitto,
nats-server alone or a cluster of them, or the embedded amqtt."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self


class BrokerError(RuntimeError):
    """The broker could not be found or did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def find_nats_server() -> str | None:
    return shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/local/bin/nats-server") if os.path.exists(p)),
        None,
    )


def config_keys(text: str) -> set[str]:
    """The keys a Mosquitto configuration text sets (the first word of each line that is
    not a comment)."""
    return {
        line.split()[0]
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


def render_config(conf: str, ports: list[int], files: dict[str, Path]) -> str:
    """A Mosquitto configuration (such as the shipped examples/mosquitto-sitwatch.conf) with
    its listeners moved to loopback ``ports``, in order, and each file it names taken from
    ``files`` by its name; every other line as it is (its queue limits among them)."""
    lines = []
    free = iter(ports)
    for line in conf.splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            line = f"listener {next(free)} 127.0.0.1"
        elif key in ("certfile", "keyfile", "password_file", "acl_file"):
            line = f"{key} {files[Path(value).name]}"
        lines.append(line)
    if next(free, None) is not None:
        raise BrokerError("the configuration has fewer listeners than ports given")
    return "\n".join(lines)


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """(certificate, key) for a TLS listener on ``host``, made by openssl, valid one day."""
    cert, key = folder / "sitwatch.crt", folder / "sitwatch.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}"]
        + ["-addext", f"subjectAltName=IP:{host}"],
        check=True,
        capture_output=True,
    )
    return cert, key


def monitor_listener(port: int) -> str:
    """Config lines for one more loopback listener, anonymous and without an ACL, from which
    tests and benches read Mosquitto's $SYS counters (``SysCounters``) every second: to be
    appended to a configuration with ``per_listener_settings true``, such as the shipped one."""
    return f"listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1"


class SysCounters:
    """The latest values of Mosquitto's $SYS/broker/publish/messages/* counters, read from a
    ``monitor_listener`` port: ``received`` (PUBLISHes from clients), ``sent`` and
    ``dropped`` (messages thrown away because a client's queue was full:
    max_queued_messages). Mosquitto updates them once a second, all in the same tick, so
    once ``received`` counts a burst, ``dropped`` counts what the burst lost."""

    TOPIC = "$SYS/broker/publish/messages/+"

    def __init__(self, host: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.values: dict[str, int] = {}
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sitwatch-sys")
        self._client.on_message = self._when_message
        wait_for_port(host, port)  # the broker opens its listeners one after another
        self._client.connect(host, port)
        self._client.subscribe(self.TOPIC)
        self._client.loop_start()

    def _when_message(self, _client: object, _userdata: object, message: Any) -> None:
        self.values[message.topic.rsplit("/", 1)[-1]] = int(message.payload)

    def get(self, name: str) -> int:
        return self.values.get(name, 0)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class BrokerProcess:
    """A broker process of our own on loopback: its config and log live in ``workdir``.
    ``kill()`` is a SIGKILL (nothing saved), ``stop()`` a clean exit."""

    name = "broker"

    def __init__(self, binary: str, port: int | None, workdir: str | None) -> None:
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()  # the MQTT port
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"sitwatch-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> Path:
        raise NotImplementedError

    def start(self, timeout_s: float = 10.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        if not wait_for_port(self.host, self.port, timeout_s):
            self.kill()
            raise BrokerError(f"{self.name} did not listen on {self.port}; see {self.workdir}")
        return self

    def stop(self) -> None:
        """Graceful exit: with persistence on, sessions and queued messages are saved."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: whatever the broker held in memory is lost."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Mosquitto(BrokerProcess):
    """A mosquitto process of our own. ``persistence`` keeps sessions across a graceful
    restart. ``listeners`` (config text: listeners with their logins and ACLs, such as
    examples/mosquitto-sitwatch.conf) replaces the one anonymous listener on ``port``; one
    of its listeners must be on ``port``, which ``start`` waits for."""

    name = "mosquitto"

    def __init__(
        self,
        port: int | None = None,
        workdir: str | None = None,
        persistence: bool = True,
        listeners: str | None = None,
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto not found: install it (apt-get install mosquitto)")
        super().__init__(binary, port, workdir)
        self.persistence = persistence
        self.listeners = listeners

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its password files and ACLs again."""
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def _write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        anonymous = [f"listener {self.port} {self.host}", "allow_anonymous true"]
        given = self.listeners or "\n".join(anonymous)
        # The queue limits of a test broker, unless the given text sets its own (the shipped
        # configuration does): Mosquitto takes the last value of a key.
        limits = [
            line
            for line in ("max_queued_messages 100000", "max_inflight_messages 100")
            if line.split()[0] not in config_keys(given)
        ]
        lines = [
            # First: per_listener_settings must come before any other security setting.
            given,
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            *limits,
            # As root, mosquitto drops to its own user and then cannot write our private
            # folder, so persistence would silently not save: stay root in that case.
            *(["user root"] if os.geteuid() == 0 else []),
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        conf.write_text("\n".join(lines) + "\n")
        return conf


class NatsServer(BrokerProcess):
    """nats-server with its MQTT listener (which keeps sessions and retained messages in
    JetStream, so JetStream and a server name are required), on free loopback ports with
    its store in ``workdir``: never the system's own NATS. Its MQTT side has no shared
    subscriptions (2.9 accepts ``$share/...`` and delivers nothing) and no QoS 2.

    As a node of a cluster (``NatsCluster`` makes them) it also listens for routes on
    ``cluster_port``, routes to ``routes`` (the nodes' cluster ports) and keeps the MQTT
    streams and consumers in ``replicas`` copies. ``ack_wait_s``: how long its MQTT side waits
    for a subscriber's PUBACK before it delivers a message again (NATS's default is 30 s;
    docs/deploy.md, "A broker cluster", says why a cluster's nodes get 5 s)."""

    name = "nats-server"

    def __init__(
        self,
        port: int | None = None,
        workdir: str | None = None,
        *,
        server_name: str | None = None,
        cluster_port: int | None = None,
        routes: tuple[int, ...] = (),
        replicas: int = 1,
        ack_wait_s: float | None = None,
    ) -> None:
        binary = find_nats_server()
        if binary is None:
            raise BrokerError("nats-server not found: install it (apt-get install nats-server)")
        super().__init__(binary, port, workdir)
        self.nats_port = free_port()  # its own protocol's port, which it always opens
        self.server_name = server_name or f"sitwatch-test-{self.port}"
        self.cluster_port = cluster_port
        self.routes = routes
        self.replicas = replicas
        self.ack_wait_s = ack_wait_s

    def _write_config(self) -> Path:
        conf = self.workdir / "nats-server.conf"
        store = self.workdir / "jetstream"
        lines = [
            f"listen: {self.host}:{self.nats_port}",
            f"server_name: {self.server_name}",
            f'jetstream {{ store_dir: "{store}", max_memory_store: 256MB, max_file_store: 2GB }}',
        ]
        mqtt = [f"listen: {self.host}:{self.port}"]
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://{self.host}:{port}" for port in self.routes)
            lines.append(
                f"cluster {{ name: sitwatch, listen: {self.host}:{self.cluster_port},"
                f" routes: [{routes}] }}"
            )
            # Sessions, queued messages and each subscription's consumer in as many copies
            # as there are nodes (up to 3): a lost node's clients find theirs on another.
            mqtt += [f"stream_replicas: {self.replicas}", f"consumer_replicas: {self.replicas}"]
        if self.ack_wait_s is not None:
            mqtt.append(f'ack_wait: "{self.ack_wait_s:g}s"')
        # The MQTT port opens last, once JetStream is up: listening there means ready (a
        # cluster's node is ready when it also answers an MQTT CONNECT, see NatsCluster).
        lines.append(f"mqtt {{ {', '.join(mqtt)} }}")
        conf.write_text("\n".join(lines) + "\n")
        return conf


def mqtt_handshake(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether the broker answers an MQTT 3.1.1 CONNECT (clean session) with a CONNACK that
    accepts it; the connection is closed again. A NATS node answers only once its cluster
    has a JetStream leader and the MQTT streams exist."""
    client_id = b"sitwatch-ready-probe"
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    packet = bytes([0x10, len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(packet)
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return False
                answer += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT: no Last Will
    except OSError:
        return False
    return answer[0] == 0x20 and answer[3] == 0


# A NATS MQTT message whose delivery got no PUBACK is delivered again after this long:
# under a burst from many desks a few take that path (docs/deploy.md, "A broker cluster").
ACK_WAIT_S = 5.0


class NatsCluster:
    """``size`` nats-server nodes routed to each other on loopback, JetStream and MQTT on
    each (``nodes[i].port`` is node i's MQTT port), for tests and benches of failover:
    ``kill(i)`` SIGKILLs a node, ``start_node(i)`` brings it back with its store.
    ``hosts(first)`` is a client's list of brokers, starting with node ``first``."""

    def __init__(
        self, size: int = 3, workdir: str | None = None, ack_wait_s: float | None = ACK_WAIT_S
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sitwatch-nats-cluster-"))
        cluster_ports = tuple(free_port() for _ in range(size))
        self.nodes = [
            NatsServer(
                workdir=str(self.workdir / f"node-{n}"),
                server_name=f"sitwatch-node-{n}",
                cluster_port=cluster_ports[n],
                routes=cluster_ports,
                replicas=min(size, 3),
                ack_wait_s=ack_wait_s,
            )
            for n in range(size)
        ]

    def start(self, timeout_s: float = 30.0) -> Self:
        for node in self.nodes:
            node.start(timeout_s)
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until every running node answers an MQTT CONNECT (JetStream has a leader)."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            while node.is_running and not mqtt_handshake(node.host, node.port):
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"nats-server node on {node.port} did not accept MQTT clients within"
                        f" {timeout_s:.0f} s; see {node.workdir}"
                    )
                time.sleep(0.1)

    def kill(self, n: int) -> None:
        """SIGKILL node ``n``: what only it held in memory is lost."""
        self.nodes[n].kill()

    def start_node(self, n: int, timeout_s: float = 30.0) -> None:
        self.nodes[n].start(timeout_s)
        self.wait_ready(timeout_s)

    def hosts(self, first: int = 0) -> list[str]:
        """Every node's MQTT address as ``host:port``, node ``first`` first."""
        order = self.nodes[first:] + self.nodes[:first]
        return [f"{node.host}:{node.port}" for node in order]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class EmbeddedBroker:
    """amqtt (pure-Python MQTT 3.1.1 broker from PyPI) for machines without Mosquitto.
    Used by the demo only (and its test): the other tests run against a real Mosquitto."""

    def __init__(self, port: int | None = None, workdir: str | None = None) -> None:
        binary = shutil.which("amqtt") or str(Path(sys.executable).with_name("amqtt"))
        if not os.path.exists(binary):
            raise BrokerError("neither mosquitto nor amqtt found: pip install 'sitwatch[demo]'")
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sitwatch-amqtt-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: {self.host}:{self.port}\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        log = open(self.workdir / "amqtt.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise BrokerError(f"amqtt did not listen on {self.port}; see {self.workdir}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def start_any_broker(
    workdir: str, port: int | None = None, kind: str = "auto"
) -> Mosquitto | EmbeddedBroker:
    """Mosquitto when installed (or ``kind="mosquitto"``), otherwise (or ``kind="embedded"``)
    the embedded amqtt broker."""
    if kind == "mosquitto" or (kind == "auto" and find_mosquitto() is not None):
        return Mosquitto(port=port, workdir=workdir).start()
    return EmbeddedBroker(port=port, workdir=workdir).start()
