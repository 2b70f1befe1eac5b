"""Broker trust under the shipped Mosquitto configuration (examples/mosquitto-sitwatch.conf
and .acl, with test ports and paths): a desk's login speaks for its own desk only, the
normal flow still works, and ``sitwatch-server desk add/revoke`` gives and takes logins."""

from __future__ import annotations

import shutil
import threading
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from e2e_support import running_server
from sqlalchemy import Engine, select
from support.events import make_event
from support.waiting import wait_until

from sitwatch import protocol
from sitwatch.broker import Mosquitto, free_port, render_config, self_signed_certificate
from sitwatch.clock import FakeClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.device.service import DeviceService
from sitwatch.mqtt import TlsSettings
from sitwatch.server import audit
from sitwatch.server.cli import main
from sitwatch.server.config import ServerConfig
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.desks import PasswordFile, mosquitto_hash
from sitwatch.server.ingest.worker import IngestWorker
from sitwatch.server.models import AuditEntry, Device
from sitwatch.server.models import Event as EventRow
from sitwatch.server.web.publish import publish_command, publish_settings
from sitwatch.settings import TrackerSettings

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
        reason="needs openssl and mosquitto_passwd",
    ),
]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVER_USER = "sitwatch-server"  # as the shipped ACL names it
DESKS = ("desk-1", "desk-2", "desk-3", "homeassistant")


@dataclass
class OfficeBroker:
    """Mosquitto on the shipped files: the server's listener and the desks' (TLS)."""

    mosquitto: Mosquitto
    server_port: int
    desk_port: int
    ca_file: str
    desks_passwd: Path
    passwords: dict[str, str]

    host = "127.0.0.1"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficeBroker]:
    workdir = tmp_path_factory.mktemp("office-broker")
    cert, key = self_signed_certificate(workdir)
    passwords = {name: f"pw-{name}-{uuid.uuid4().hex}" for name in (SERVER_USER, *DESKS)}
    PasswordFile(workdir / "server.passwd").set(SERVER_USER, passwords[SERVER_USER])
    desks_passwd = workdir / "desks.passwd"
    for name in DESKS:
        PasswordFile(desks_passwd).set(name, passwords[name])
    files = {
        "server.passwd": workdir / "server.passwd",
        "desks.passwd": desks_passwd,
        "sitwatch.acl": EXAMPLES / "mosquitto-sitwatch.acl",
        "sitwatch.crt": cert,
        "sitwatch.key": key,
    }
    server_port, desk_port = free_port(), free_port()
    conf = render_config(
        (EXAMPLES / "mosquitto-sitwatch.conf").read_text(), [server_port, desk_port], files
    )
    with Mosquitto(port=server_port, workdir=str(workdir), listeners=conf) as mosquitto:
        yield OfficeBroker(mosquitto, server_port, desk_port, str(cert), desks_passwd, passwords)


class Client:
    """A plain MQTT 3.1.1 client logged in on one of the listeners; records what it gets."""

    def __init__(
        self,
        office: OfficeBroker,
        user: str,
        *,
        password: str | None = None,
        listener: str = "desks",
        client_id: str = "",
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.disconnects: list[str] = []
        self._connack = threading.Event()
        self._lock = threading.Lock()
        self.refused: bool | None = None
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"{user}-{uuid.uuid4().hex}"
        )
        self._client.username_pw_set(user, password or office.passwords[user])
        port = office.desk_port
        if listener == "desks":
            self._client.tls_set(ca_certs=office.ca_file)
        else:
            port = office.server_port
        self._client.on_connect = self._when_connected
        self._client.on_message = self._when_message
        self._client.on_disconnect = self._when_disconnected
        self._client.connect(office.host, port)
        self._client.loop_start()
        wait_until(self._connack.is_set, 10, f"CONNACK for {user}")

    def _when_connected(self, _c, _u, _f, reason: mqtt.ReasonCode, _p) -> None:  # type: ignore[no-untyped-def]
        self.refused = reason.is_failure
        self._connack.set()
        if self.refused:
            self._client.disconnect()  # or paho retries with the same refused login

    def _when_message(self, _c, _u, message: mqtt.MQTTMessage) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def _when_disconnected(self, _c, _u, _f, reason: mqtt.ReasonCode, _p) -> None:  # type: ignore[no-untyped-def]
        self.disconnects.append(str(reason))

    def subscribe(self, *filters: str) -> None:
        """Subscribe and wait until the broker has handled it (a message to ourselves
        cannot work for a desk, so wait for the SUBACK)."""
        granted = threading.Event()
        self._client.on_subscribe = lambda *_args: granted.set()
        self._client.subscribe([(name, 1) for name in filters])
        wait_until(granted.is_set, 10, f"SUBACK for {filters}")

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK: by then the broker has routed it (or
        dropped it: a denied publish is acknowledged all the same)."""
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def got(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for name, payload in self.messages if name == topic]

    def topics(self) -> set[str]:
        with self._lock:
            return {name for name, _payload in self.messages}

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def server_config(office: OfficeBroker, db: Path, **mqtt_keys: object) -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{db}"},
            "mqtt": {
                "host": office.host,
                "port": office.server_port,
                "username": SERVER_USER,
                "password": office.passwords[SERVER_USER],
                "client_id": f"ingest-{uuid.uuid4().hex[:8]}",
                "batch_wait_s": 0.01,
                **mqtt_keys,
            },
        }
    )


def stored(engine: Engine, device_id: str) -> list[str]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(EventRow.type).where(EventRow.device_id == device_id)))


# --- the normal flow --------------------------------------------------------------------


def test_events_acks_settings_pause_and_discovery_work_under_the_acl(
    office: OfficeBroker, tmp_path: Path, mock_factory: object, clock: FakeClock
) -> None:
    """desk-3's real device service (TLS, its own login) against a real ingest worker and
    the dashboard's publisher, both with the server's login, and Home Assistant's."""
    config = server_config(office, tmp_path / "server.db")
    home_assistant = Client(office, "homeassistant")
    home_assistant.subscribe("homeassistant/#", "sitwatch/+/today")
    desk_config = DeviceConfig(
        device_id="desk-3",
        data_dir=str(tmp_path / "desk"),
        tracker=TrackerSettings(quiet_hours=None, active_hours=None),
        mqtt=MqttConfig(
            host=office.host,
            port=office.desk_port,
            username="desk-3",
            password=office.passwords["desk-3"],
            tls=TlsSettings(ca_certs=office.ca_file),
            heartbeat_s=0,
            resend_after_s=2,
            ha_discovery=True,
        ),
    )
    desk = DeviceService(desk_config, clock, pin_factory=mock_factory)
    try:
        with running_server(config) as (engine, _worker):
            desk.start()
            desk.outbox.add(make_event(device_id="desk-3"))
            desk.link.notify()
            wait_until(lambda: len(desk.outbox) == 0, 15, "the event stored and acked")
            assert stored(engine, "desk-3") == ["seated"]
            with session_factory(engine)() as session:
                assert session.get(Device, "desk-3").online, "the ingest read desk-3's status"

            publish_settings(config.mqtt, "desk-3", TrackerSettings(sitting_limit_s=2700))
            result = protocol.topic("desk-3", protocol.CONFIG_RESULT)
            watcher = Client(office, SERVER_USER, listener="server")
            try:
                watcher.subscribe(result)
                wait_until(lambda: watcher.got(result), 10, "desk-3's config/result")
                answer = protocol.parse_config_result(watcher.got(result)[-1])
                assert (answer.accepted, answer.reason) == (True, None)
            finally:
                watcher.close()

            until = protocol.now_utc() + timedelta(hours=1)
            publish_command(config.mqtt, "desk-3", protocol.PauseCommand(3600, until))

            def paused() -> bool:
                desk.agent.step(timeout_s=0.05)
                return "pause" in stored(engine, "desk-3")

            wait_until(paused, 15, "the pause reaching desk-3 and its pause event stored")

        seat_config = "homeassistant/binary_sensor/desk-3/sitwatch_desk-3_seat/config"
        wait_until(lambda: home_assistant.got(seat_config), 10, "discovery for Home Assistant")
        wait_until(lambda: home_assistant.got("sitwatch/desk-3/today"), 10, "today's figures")
    finally:
        desk.close()
        home_assistant.close()


def test_share_group_workers_get_their_probe_through_the_acl(
    office: OfficeBroker, tmp_path: Path
) -> None:
    config = server_config(
        office, tmp_path / "server.db", share_group="fleet", share_probe_timeout_s=5
    )
    engine = make_engine(config.database.url)
    worker = IngestWorker(config, engine).start()
    try:
        assert worker.wait_ready(10), worker.failure
    finally:
        worker.stop()
        engine.dispose()


# --- what desk-2's login cannot do ------------------------------------------------------


def test_desk_2_reads_nothing_of_desk_1(office: OfficeBroker) -> None:
    spy = Client(office, "desk-2")
    desk_1 = Client(office, "desk-1")
    server = Client(office, SERVER_USER, listener="server")
    try:
        spy.subscribe("#", "sitwatch/#", "sitwatch/desk-1/#", "homeassistant/#")
        desk_1.publish("sitwatch/desk-1/event", make_event().to_json())
        desk_1.publish("sitwatch/desk-1/status", protocol.Status("online").to_json())
        for leaf in (protocol.ACK, protocol.CONFIG, protocol.COMMAND):
            server.publish(f"sitwatch/desk-1/{leaf}", "{}")
        server.publish("sitwatch/desk-2/ack", protocol.ack_payload(["marker-0001"]))
        wait_until(lambda: spy.got("sitwatch/desk-2/ack"), 10, "desk-2's own ack")
        assert spy.topics() == {"sitwatch/desk-2/ack"}
    finally:
        for client in (spy, desk_1, server):
            client.close()


FORGED = {
    "event": make_event(device_id="desk-1").to_json(),
    "status": protocol.Status("offline", detail="forged").to_json(),
    "config/result": protocol.config_result_payload(True),
    "seat": "ON",
    "today": '{"v":1,"seated_min":999,"drills":0}',
    "ack": protocol.ack_payload(["forged-ack-0001"]),
    "config": protocol.config_payload({"sitting_limit_s": 14400}),
    "command": protocol.PauseCommand(604800, protocol.now_utc()).to_json(),
}


def test_desk_2_cannot_speak_for_desk_1_nor_to_it(office: OfficeBroker) -> None:
    """Forged events, statuses, answers, acks, settings, commands and discovery as or to
    desk-1 reach neither the server's login nor desk-1 (which reads its own acks, settings
    and commands). Each is published before a marker that does arrive."""
    forger = Client(office, "desk-2")
    server = Client(office, SERVER_USER, listener="server")
    desk_1 = Client(office, "desk-1")
    home_assistant = Client(office, "homeassistant")
    try:
        server.subscribe("#")
        desk_1.subscribe("sitwatch/desk-1/#", "homeassistant/status")
        home_assistant.subscribe("homeassistant/#", "sitwatch/#")
        for leaf, payload in FORGED.items():
            forger.publish(f"sitwatch/desk-1/{leaf}", payload, retain=leaf != "event")
        forger.publish("homeassistant/binary_sensor/desk-1/sitwatch_desk-1_seat/config", "{}")
        forger.publish("homeassistant/status", "online")  # only Home Assistant says that
        forger.publish("sitwatch/$probe/event", "not-a-probe")
        forger.publish("sitwatch/desk-2/event", make_event(device_id="desk-2").to_json())
        wait_until(lambda: server.got("sitwatch/desk-2/event"), 10, "desk-2's own event")
        server.publish("sitwatch/desk-1/ack", protocol.ack_payload(["marker-0001"]))
        wait_until(lambda: desk_1.got("sitwatch/desk-1/ack"), 10, "the server's ack")

        # (other tests' desks may have left retained messages: only desk-1's count here)
        assert not any("desk-1" in topic or "$probe" in topic for topic in server.topics())
        assert desk_1.got("sitwatch/desk-1/ack") == [b'{"v":1,"ids":["marker-0001"]}']
        assert {t for t in desk_1.topics() if "desk-1" in t} == {"sitwatch/desk-1/ack"}
        assert not any("desk-1" in topic for topic in home_assistant.topics())
    finally:
        for client in (forger, server, desk_1, home_assistant):
            client.close()


def test_client_ids_are_bound_to_logins(office: OfficeBroker) -> None:
    """desk-2 connecting with desk-1's or the ingest's client id kicks neither off; a
    desk's login does not work on the server's listener."""
    desk_1 = Client(office, "desk-1", client_id="sitwatch-desk-1")
    ingest = Client(office, SERVER_USER, listener="server", client_id="sitwatch-ingest")
    intruders = [
        Client(office, "desk-2", client_id=name)
        for name in ("sitwatch-desk-1", "desk-1", "sitwatch-ingest", "ingest")
    ]
    on_server_listener = Client(office, "desk-2", listener="server", client_id="sitwatch-ingest")
    try:
        assert not any(client.refused for client in intruders)
        assert on_server_listener.refused
        desk_1.subscribe("sitwatch/desk-1/ack")
        ingest.publish("sitwatch/desk-1/ack", protocol.ack_payload(["marker-0001"]))
        wait_until(lambda: desk_1.got("sitwatch/desk-1/ack"), 10, "desk-1 still connected")
        assert desk_1.disconnects == [] and ingest.disconnects == []
    finally:
        for client in (desk_1, ingest, *intruders, on_server_listener):
            client.close()


# --- provisioning -----------------------------------------------------------------------


def can_log_in(office: OfficeBroker, user: str, password: str) -> bool:
    client = Client(office, user, password=password)
    client.close()
    return not client.refused


def test_desk_add_gives_a_login_and_revoke_takes_it_away(
    office: OfficeBroker, tmp_path: Path
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/sw.db"\n')
    common = ["--config", str(config)]
    where = ["--password-file", str(office.desks_passwd)]
    added = CliRunner().invoke(
        main,
        ["desk", "add", "desk-9", "--name", "Desk  nine", *common, *where]
        + ["--broker-host", office.host, "--broker-port", str(office.desk_port)]
        + ["--ca-certs", office.ca_file],
    )
    assert added.exit_code == 0, added.output
    assert "systemctl reload mosquitto" in added.stderr
    mqtt_keys = tomllib.loads(added.stdout)
    assert mqtt_keys["device_id"] == "desk-9"
    login = mqtt_keys["mqtt"]
    assert (login["host"], login["port"], login["username"]) == (
        office.host,
        office.desk_port,
        "desk-9",
    )
    assert mqtt_keys["mqtt"]["tls"]["ca_certs"] == office.ca_file
    assert login["password"] not in office.desks_passwd.read_text()  # hashed there
    MqttConfig.model_validate(login)  # the device's own config accepts the lines
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    with session_factory(engine)() as session:
        assert session.get(Device, "desk-9").name == "Desk nine"
    engine.dispose()

    office.mosquitto.reload()
    wait_until(lambda: can_log_in(office, "desk-9", login["password"]), 10, "the reload")
    again = CliRunner().invoke(main, ["desk", "add", "desk-9", *common, *where])
    assert again.exit_code == 2 and "has a broker login already" in again.stderr

    connected = Client(office, "desk-9", password=login["password"])
    revoked = CliRunner().invoke(main, ["desk", "revoke", "desk-9", *common, *where])
    assert revoked.exit_code == 0, revoked.output
    assert "systemctl reload mosquitto" in revoked.stderr
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    with session_factory(engine)() as session:
        done = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == "desk-9").order_by(AuditEntry.id)
        )
        assert list(done) == [audit.DESK_ADD, audit.DESK_REVOKE]
    engine.dispose()
    office.mosquitto.reload()
    try:
        wait_until(lambda: not can_log_in(office, "desk-9", login["password"]), 10, "refusal")
        wait_until(lambda: connected.disconnects, 10, "the revoked desk's connection closed")
    finally:
        connected.close()


def test_reserved_or_bad_desk_ids_are_refused(tmp_path: Path) -> None:
    where = ["--password-file", str(tmp_path / "desks.passwd")]
    for desk_id in ("sitwatch-ingest", "homeassistant", "desk/1", "+"):
        result = CliRunner().invoke(main, ["desk", "add", desk_id, *where])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("sitwatch-server: error: ")
    assert not (tmp_path / "desks.passwd").exists()


def test_without_mosquitto_passwd_the_hash_is_one_mosquitto_accepts(
    office: OfficeBroker,
) -> None:
    passwords = PasswordFile(office.desks_passwd, tool=None)
    passwords.set("desk-py", "a-password-hashed-here")
    line = next(x for x in office.desks_passwd.read_text().splitlines() if x.startswith("desk-py:"))
    assert line.startswith("desk-py:$7$101$")
    assert mosquitto_hash("pw", b"0" * 12) == mosquitto_hash("pw", b"0" * 12)
    office.mosquitto.reload()
    wait_until(lambda: can_log_in(office, "desk-py", "a-password-hashed-here"), 10, "reload")
    passwords.remove("desk-py")
    assert "desk-py" not in passwords.users()
    office.mosquitto.reload()
    wait_until(lambda: not can_log_in(office, "desk-py", "a-password-hashed-here"), 10, "refusal")
