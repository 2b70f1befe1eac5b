"""The link with a username/password and TLS, against a Mosquitto that demands both."""

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
from sitwatch.device.config import ConfigError, MqttConfig, TlsConfig
from sitwatch.device.link import MqttLink
from sitwatch.device.outbox import Outbox

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(
        not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
        reason="needs openssl and mosquitto_passwd",
    ),
]
USER, PASSWORD = "desk-user", "pa55-Secret-do-not-log"


class SecureMosquitto(Mosquitto):
    """Mosquitto with a TLS listener (self-signed certificate) and a password file."""

    def _write_config(self) -> Path:
        conf = super()._write_config()
        cert, key, passwd = (self.workdir / name for name in ("cert.pem", "key.pem", "passwd"))
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
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwd), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        text = conf.read_text()
        text = text.replace(
            f"listener {self.port} {self.host}\n",
            f"listener {self.port} {self.host}\ncertfile {cert}\nkeyfile {key}\n",
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


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    (tmp_path / "broker").mkdir()
    broker = SecureMosquitto(workdir=str(tmp_path / "broker"))
    broker.start()
    yield broker
    broker.kill()


def make_link(broker: SecureMosquitto, tmp_path: Path, password: str) -> tuple[MqttLink, Outbox]:
    config = MqttConfig(
        host=broker.host,
        port=broker.port,
        username=USER,
        password=password,
        tls=TlsConfig(ca_certs=broker.ca_file),
        heartbeat_s=0,
    )
    outbox = Outbox(tmp_path / "outbox.db")
    link = MqttLink(
        config,
        "desk-1",
        "boot0000aaaa",
        outbox,
        SystemClock(),
        settings_path=tmp_path / "settings.json",
        on_settings=lambda s: None,
    )
    return link, outbox


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
    config = MqttConfig(tls=TlsConfig(ca_certs=str(tmp_path / "missing-ca.pem")))
    with Outbox(tmp_path / "outbox.db") as outbox, pytest.raises(ConfigError, match="mqtt.tls"):
        MqttLink(
            config,
            "desk-1",
            "boot0000aaaa",
            outbox,
            SystemClock(),
            settings_path=tmp_path / "s.json",
            on_settings=lambda s: None,
        )
