"""The link, the ingest and the settings publisher with a username/password and TLS (a
client certificate too), against a Mosquitto that demands them."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from link_support import FakeServer
from support.events import make_event
from support.waiting import wait_until

from sitwatch.broker import Mosquitto
from sitwatch.clock import SystemClock
from sitwatch.device.config import ConfigError, DeviceConfig, MqttConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox
from sitwatch.mqtt import TlsSettings

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(
        not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
        reason="needs openssl and mosquitto_passwd",
    ),
]
USER, PASSWORD = "desk-user", "pa55-Secret-do-not-log"


def self_signed(cert: Path, key: Path, name: str) -> None:
    """A certificate for ``name`` (an IP address) that is its own CA."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=IP:{name}",
        ],
        check=True,
        capture_output=True,
    )


class SecureMosquitto(Mosquitto):
    """Mosquitto with a TLS listener (self-signed certificate) and a password file; with
    ``client_certificates``, it also demands a client certificate (``client_cert``)."""

    client_certificates = False

    def _write_config(self) -> Path:
        conf = super()._write_config()
        cert, key, passwd = (self.workdir / name for name in ("cert.pem", "key.pem", "passwd"))
        self_signed(cert, key, "127.0.0.1")
        tls = f"certfile {cert}\nkeyfile {key}\n"
        if self.client_certificates:
            self_signed(Path(self.client_cert), Path(self.client_key), "127.0.0.2")
            tls += f"require_certificate true\ncafile {self.client_cert}\n"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        text = conf.read_text()
        text = text.replace(
            f"listener {self.port} {self.host}\n",
            f"listener {self.port} {self.host}\n{tls}",
        )
        # (the base config already runs mosquitto as root when we are root, so it can read
        # these files in pytest's 0700 directory)
        secured = f"allow_anonymous false\npassword_file {passwd}\n"
        text = text.replace("allow_anonymous true\n", secured)
        conf.write_text(text)
        return conf

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "cert.pem")

    @property
    def client_cert(self) -> str:
        return str(self.workdir / "client.pem")

    @property
    def client_key(self) -> str:
        return str(self.workdir / "client-key.pem")


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    (tmp_path / "broker").mkdir()
    broker = SecureMosquitto(workdir=str(tmp_path / "broker"))
    broker.start()
    yield broker
    broker.kill()


def make_link(
    broker: SecureMosquitto, tmp_path: Path, password: str, tls: TlsSettings | None = None
) -> tuple[MqttLink, Outbox]:
    mqtt_config = MqttConfig(
        host=broker.host,
        port=broker.port,
        username=USER,
        password=password,
        tls=tls or TlsSettings(ca_certs=broker.ca_file),
        heartbeat_s=0,
    )
    config = DeviceConfig(device_id="desk-1", data_dir=str(tmp_path), mqtt=mqtt_config)
    outbox = Outbox(tmp_path / "outbox.db")
    return MqttLink(config, "boot0000aaaa", outbox, SystemClock()), outbox


def test_events_flow_over_tls_with_a_password(
    secure_broker: SecureMosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def secure(client: mqtt.Client) -> None:
        client.username_pw_set(USER, PASSWORD)
        client.tls_set(ca_certs=secure_broker.ca_file)

    server = FakeServer(secure_broker.host, secure_broker.port, setup=secure)
    link, outbox = make_link(secure_broker, tmp_path, PASSWORD)
    try:
        with caplog.at_level(logging.DEBUG):
            link.start()
            event = outbox.add(make_event())
            link.notify()
            wait_until(lambda: len(outbox) == 0, 10, "delivery over TLS")
        assert server.unique_ids() == [event.id]
        assert PASSWORD not in caplog.text
    finally:
        link.stop()
        outbox.close()
        server.close()


def test_a_wrong_password_is_logged_and_retried_without_crashing(
    secure_broker: SecureMosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link, outbox = make_link(secure_broker, tmp_path, "wrong-password-xyz")
    try:
        with caplog.at_level(logging.DEBUG):
            link.start()
            outbox.add(make_event())
            wait_until(lambda: "refused the connection" in caplog.text, 10, "the refusal")
        assert not link.is_connected and len(outbox) == 1
        assert "wrong-password-xyz" not in caplog.text
    finally:
        link.stop()
        outbox.close()


def test_missing_certificate_file_is_a_config_error(tmp_path: Path) -> None:
    mqtt_config = MqttConfig(tls=TlsSettings(ca_certs=str(tmp_path / "missing-ca.pem")))
    config = DeviceConfig(data_dir=str(tmp_path), mqtt=mqtt_config)
    with Outbox(tmp_path / "outbox.db") as outbox, pytest.raises(ConfigError, match="mqtt.tls"):
        MqttLink(config, "boot0000aaaa", outbox, SystemClock())


@pytest.fixture
def certificate_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    (tmp_path / "broker").mkdir()
    broker = SecureMosquitto(workdir=str(tmp_path / "broker"))
    broker.client_certificates = True
    broker.start()
    yield broker
    broker.kill()


def test_desk_ingest_and_dashboard_connect_with_one_client_certificate_setting(
    certificate_broker: SecureMosquitto, tmp_path: Path
) -> None:
    """The same [mqtt.tls] keys on both sides: a desk's event reaches the ingest and is
    acked, and the dashboard publishes settings, each with a client certificate."""
    from sitwatch.server.config import ServerConfig
    from sitwatch.server.db import make_engine
    from sitwatch.server.ingest.worker import IngestWorker
    from sitwatch.server.migrate import upgrade
    from sitwatch.server.web.publish import publish_settings
    from sitwatch.settings import TrackerSettings

    broker = certificate_broker
    tls = {"ca_certs": broker.ca_file, "certfile": broker.client_cert, "keyfile": broker.client_key}
    login = {"username": USER, "password": PASSWORD}
    server = ServerConfig.model_validate(
        {"mqtt": {"host": broker.host, "port": broker.port, **login, "tls": tls}}
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
    upgrade(engine)
    worker = IngestWorker(server, engine, client_id="ingest-tls").start()
    link, outbox = make_link(broker, tmp_path, PASSWORD, TlsSettings(**tls))
    try:
        assert worker.wait_ready(), "the ingest did not subscribe over TLS"
        link.start()
        outbox.add(make_event())
        link.notify()
        wait_until(lambda: len(outbox) == 0, 10, "the ingest's ack over TLS")
        assert worker.stored == 1
        publish_settings(server.mqtt, "desk-1", TrackerSettings(grace_s=42), timeout_s=5)
    finally:
        link.stop()
        outbox.close()
        worker.stop()
        engine.dispose()
