"""The one place paho is configured, for the device and the server alike: the connection
settings both sides read from their ``[mqtt]`` table (one broker, or a list of a cluster's
nodes to fail over between), the client factory, and per-topic message handlers with one
exception policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import paho.mqtt.client as mqtt
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sitwatch.toml_file import why_unreadable

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
TLS_FILE_KEYS = ("ca_certs", "certfile", "keyfile")
MAX_BROKERS = 16  # a cluster's nodes, not a scan of a network

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


def split_address(entry: str, default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``"host"`` (``default_port``), ``"[v6]:port"`` or ``"[v6]"`` as
    (host, port); raises ValueError saying in one line what is wrong with ``entry`` (the
    message leaves the entry out: the error that reports it names the key and value)."""
    text = entry.strip()
    if not text:
        raise ValueError("an empty broker address")
    if "://" in text or "/" in text:
        raise ValueError("not host:port: no scheme or path (e.g. 'nats-1:1883')")
    if any(c.isspace() for c in text):
        raise ValueError("not host:port: it contains a space")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise ValueError("not [IPv6 address]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ValueError("write an IPv6 address in brackets, e.g. '[::1]:1883'")
    else:
        host, colon, port_text_or_empty = text.partition(":")
        port_text = port_text_or_empty if colon else None
        if not host:
            raise ValueError("no host before the port")
    if port_text is None:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be a whole number from 1 to 65535")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    """``host:port`` as a log line shows it, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _valid_address(entry: str) -> str:
    split_address(entry, 1883)
    return entry.strip()


BrokerAddress = Annotated[str, AfterValidator(_valid_address)]


class MqttSettings(BaseModel):
    """How to reach the broker: the keys that mean the same in the device's and the server's
    ``[mqtt]`` table; each side extends it with its own. ``hosts`` lists a cluster's nodes
    (``"host:port"``, or ``"host"`` for ``port``) instead of the one ``host``: the client
    connects to the first and, whenever it loses or cannot reach one, tries the next
    (``addresses``, ``make_client``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    hosts: (
        Annotated[tuple[BrokerAddress, ...], Field(min_length=1, max_length=MAX_BROKERS)] | None
    ) = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    tls: TlsSettings | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30

    @field_validator("hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # An environment variable (SITWATCH_MQTT_HOSTS) holds the list as "a:1883,b:1883".
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()] or [value]
        if isinstance(value, list | tuple) and not value:
            raise ValueError("list at least one broker (or leave hosts out and set host)")
        return value

    @model_validator(mode="after")
    def _one_way_to_the_broker(self) -> Self:
        if self.hosts is None:
            return self
        if "host" in self.model_fields_set:
            raise ValueError("set either host or hosts (a list of brokers), not both")
        addresses = self.addresses
        repeated = sorted({a for a in addresses if addresses.count(a) > 1})
        if repeated:
            raise ValueError(f"hosts names {format_address(*repeated[0])} more than once")
        return self

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """The brokers to try, in order, as (host, port): ``hosts``, else ``host``:``port``."""
        if self.hosts is None:
            return ((self.host, self.port),)
        return tuple(split_address(entry, self.port) for entry in self.hosts)

    @property
    def where(self) -> str:
        """The broker, or the list of them, for a log line."""
        return ", ".join(format_address(*address) for address in self.addresses)

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
        # paho logs every message in and every PUBACK out: with DEBUG off, one check.
        if self.logger.isEnabledFor(logging.DEBUG):
            super().log(logging.DEBUG, msg, *args, **kwargs)


class BrokerRotation:
    """paho's ``on_pre_connect`` for a list of brokers: each connection attempt, the first
    and every reconnect after a loss or a failed attempt, goes to the next broker in the
    list, round and round. The client keeps its session (its client id, unacknowledged
    QoS 1 messages, and with a persistent session the broker's subscriptions), so a
    cluster that shares sessions between its nodes (NATS's JetStream) carries on where
    the lost node stopped; callers renew subscriptions in ``on_connect`` anyway.

    paho reconnects only to the one host it was given and refuses to change it
    (``Client.host``) while it is reconnecting, so the rotation sets the address paho's
    ``reconnect`` is about to open, in the one moment it is called for: pinned to the
    paho version in constraints.txt and covered by tests/test_cluster.py."""

    def __init__(self, addresses: tuple[tuple[str, int], ...]) -> None:
        self.addresses = addresses
        self._next = 0
        self.attempts = 0

    def __call__(self, client: mqtt.Client, _userdata: object) -> None:
        host, port = self.addresses[self._next]
        self._next = (self._next + 1) % len(self.addresses)
        self.attempts += 1
        client._host = host  # noqa: SLF001 - see the class docstring
        client._port = port  # noqa: SLF001


SUBSCRIBE_RETRIES = 5  # per connection: a refusal for good (an ACL) comes back at once


class Subscriber:
    """Subscribes a client on each connection and asks again for the topic filters the
    broker refused. A NATS node refuses (SUBACK 0x80) a QoS 1 subscription whose JetStream
    consumer it could not create in time, e.g. while its cluster elects new leaders after
    losing a node; the client stays connected and would never get that topic's messages
    (a desk its acks, the ingest the events). Each refusal comes after NATS's own request
    timeout; at most ``retries`` are asked again per connection, then it logs an error."""

    def __init__(self, logger: logging.Logger, retries: int = SUBSCRIBE_RETRIES) -> None:
        self._log = logger
        self._retries = retries
        self._left = retries
        self._asked: dict[int, list[tuple[str, int]]] = {}

    def subscribe(self, client: mqtt.Client, subscriptions: list[tuple[str, int]]) -> None:
        """Subscribe on a new connection (from ``on_connect``), with a fresh allowance."""
        self._left = self._retries
        self._asked.clear()
        self._ask(client, subscriptions)

    def _ask(self, client: mqtt.Client, subscriptions: list[tuple[str, int]]) -> None:
        rc, mid = client.subscribe(subscriptions)
        if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            self._asked[mid] = subscriptions

    def granted(self, client: mqtt.Client, mid: int, reason_codes: list[Any]) -> bool:
        """From ``on_subscribe``: whether the broker granted every filter of request
        ``mid``; the refused ones are asked for again (while retries last)."""
        asked = self._asked.pop(mid, [])
        refused = [sub for sub, code in zip(asked, reason_codes, strict=False) if code.is_failure]
        if not refused and not any(code.is_failure for code in reason_codes):
            return True
        filters = ", ".join(topic for topic, _qos in refused) or "a topic"
        if self._left <= 0 or not refused:
            self._log.error(
                "MQTT broker %s refused the subscription to %s: its messages will not arrive"
                " until the next connection",
                address_of(client),
                filters,
            )
            return False
        self._left -= 1
        self._log.warning(
            "MQTT broker %s refused the subscription to %s; asking again",
            address_of(client),
            filters,
        )
        self._ask(client, refused)
        return False


def address_of(client: mqtt.Client) -> str:
    """The broker ``client`` is connected to, or last tried, as ``host:port``."""
    return format_address(client.host, client.port)


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
    messages while it is away. With several brokers (``settings.hosts``) every connection
    attempt goes to the next one (``BrokerRotation``; ``address_of`` says which one the
    callbacks are about). Raises CertificateError for TLS files ssl cannot load."""
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
    if len(settings.addresses) > 1:
        client.on_pre_connect = BrokerRotation(settings.addresses)
    # Whatever a callback raises is logged (see _PahoLog) instead of ending paho's thread.
    client.suppress_exceptions = True
    client.enable_logger(_PahoLog(logger.getChild("paho")))
    return client


def connect(client: mqtt.Client, settings: MqttSettings, *, background: bool) -> None:
    """Connect to the broker ``settings`` name: at once (raises OSError if none of the
    brokers is reachable, naming each), or in the background with ``loop_start``, retrying
    (and going round the list) until one answers."""
    host, port = settings.addresses[0]
    if background:
        client.connect_async(host, port, settings.keepalive_s)
        client.loop_start()
        return
    if len(settings.addresses) == 1:
        client.connect(host, port, settings.keepalive_s)
        client.loop_start()
        return
    failures = []
    # A client from make_client moves to the next broker on each attempt (BrokerRotation).
    for host, port in settings.addresses:
        try:
            client.connect(host, port, settings.keepalive_s)
        except OSError as exc:
            failures.append(f"{format_address(host, port)} {exc.strerror or exc}")
            continue
        client.loop_start()
        return
    raise OSError("; ".join(failures))


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
