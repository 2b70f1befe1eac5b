"""The one place paho is configured, for the device and the server alike: the connection
settings both sides read from their ``[mqtt]`` table, the client factory, and per-topic
message handlers with one exception policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field

from sitwatch.toml_file import why_unreadable

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
TLS_FILE_KEYS = ("ca_certs", "certfile", "keyfile")

MessageHandler = Callable[[mqtt.MQTTMessage], None]
# Told of a message its handler could not use: (message, what the handler raised).
WhenRejected = Callable[[mqtt.MQTTMessage, Exception], None]


class CertificateError(ValueError):
    """The TLS files named in the settings cannot be loaded; the message names the key."""


class TlsSettings(BaseModel):
    """``[mqtt.tls]``: its presence turns TLS on (the broker's port is usually 8883 then)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_certs: str | None = None  # the CA the broker's certificate must chain to; None: the system's
    certfile: str | None = None  # client certificate (PEM), for a broker that asks for one
    keyfile: str | None = None  # its private key, unless certfile holds it
    insecure: bool = False  # skip host name check; for self-signed test brokers only


class MqttSettings(BaseModel):
    """How to reach the broker: the keys that mean the same in the device's and the server's
    ``[mqtt]`` table; each side extends it with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    tls: TlsSettings | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def named_files(self) -> list[tuple[str, str]]:
        """The files these settings name, as (key under ``[mqtt]``, path)."""
        if self.tls is None:
            return []
        named = ((f"tls.{key}", getattr(self.tls, key)) for key in TLS_FILE_KEYS)
        return [(key, path) for key, path in named if path is not None]

    def missing_files(self) -> list[tuple[str, str, str]]:
        """The named files this user cannot read, as (key, path, why): checked before
        start-up, since paho and ssl report them without the key."""
        problems = []
        for key, path in self.named_files():
            why = why_unreadable(Path(path))
            if why is not None:
                problems.append((key, path, why))
        return problems


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for a client that vanishes without a goodbye."""

    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


class _PahoLog(logging.LoggerAdapter[logging.Logger]):
    """paho's own log lines, at DEBUG: its errors are connection losses and failed
    reconnects ("Client is not connected" on every attempt, for as long as the broker is
    away), which each caller reports once per outage in its own words. The exception is an
    exception a callback raised (paho catches it, see ``make_client``): a bug, logged at
    ERROR with its traceback."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level >= logging.ERROR and str(msg).startswith("Caught exception"):
            super().log(logging.ERROR, msg, *args, exc_info=True, **kwargs)
            return
        super().log(logging.DEBUG, msg, *args, **kwargs)


def make_client(
    settings: MqttSettings,
    client_id: str,
    *,
    logger: logging.Logger,
    persistent_session: bool = False,
    will: Will | None = None,
    connect_timeout_s: float | None = None,
) -> mqtt.Client:
    """A paho 2.x client for ``settings`` (credentials, TLS with CA and client certificate,
    reconnect backoff, optional Last Will), logging under ``logger``.paho. Connect it with
    ``connect``. ``persistent_session``: the broker keeps its subscriptions and queued
    messages while it is away. Raises CertificateError for TLS files ssl cannot load."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent_session,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    tls = settings.tls
    if tls is not None:
        try:
            client.tls_set(ca_certs=tls.ca_certs, certfile=tls.certfile, keyfile=tls.keyfile)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise CertificateError(f"mqtt.tls: cannot load certificates: {exc}") from exc
        client.tls_insecure_set(tls.insecure)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    if connect_timeout_s is not None:
        client.connect_timeout = connect_timeout_s
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    # Whatever a callback raises is logged (see _PahoLog) instead of ending paho's thread.
    client.suppress_exceptions = True
    client.enable_logger(_PahoLog(logger.getChild("paho")))
    return client


def connect(client: mqtt.Client, settings: MqttSettings, *, background: bool) -> None:
    """Connect to the broker ``settings`` name: at once (raises OSError if unreachable),
    or in the background with ``loop_start``, retrying until it answers."""
    if background:
        client.connect_async(settings.host, settings.port, settings.keepalive_s)
    else:
        client.connect(settings.host, settings.port, settings.keepalive_s)
    client.loop_start()


def deliver(handle: MessageHandler, message: mqtt.MQTTMessage, when_rejected: WhenRejected) -> None:
    """The one exception policy for incoming messages: whatever ``handle`` raises costs only
    this message, which goes to ``when_rejected`` (it logs one line, never a traceback), and
    the thread that called, paho's network thread or a writer, serves on."""
    try:
        handle(message)
    except Exception as exc:
        when_rejected(message, exc)


def add_handler(
    client: mqtt.Client, topic_filter: str, handle: MessageHandler, when_rejected: WhenRejected
) -> None:
    """Send the messages matching ``topic_filter`` to ``handle`` (see ``deliver``)."""

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        deliver(handle, message, when_rejected)

    client.message_callback_add(topic_filter, on_message)


def topic_name(message: mqtt.MQTTMessage) -> str:
    """The message's topic, for a log line."""
    try:
        return message.topic
    except UnicodeDecodeError:  # paho decodes the topic on access
        return "(a topic that is not UTF-8)"
