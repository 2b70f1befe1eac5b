"""The server's TOML config file (overridable by SITWATCH_* environment variables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sitwatch.calendar import Calendar
from sitwatch.mqtt import MqttSettings
from sitwatch.settings import describe_errors
from sitwatch.toml_file import TomlFileError, read_toml, why_unreadable

DEFAULT_PATH = Path("/etc/sitwatch/server.toml")
# A client id or shared-subscription group: no topic separators or wildcards, and short
# enough for any broker.
MQTT_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
FUTURE_MARGIN_S = 24 * 3600.0


class ServerConfigError(ValueError):
    """A server config that cannot be used; names the key and value."""


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite:///sitwatch.db"


class BrokerConfig(MqttSettings):
    """``[mqtt]``: the broker (``MqttSettings``, the same keys as the device's) and how the
    ingest uses it."""

    # The first releases' spelling of tls.ca_certs, still read.
    tls_ca_certs: str | None = None
    # Unique per worker: the broker disconnects the older of two clients with one id.
    client_id: Annotated[str, Field(pattern=MQTT_NAME)] = "sitwatch-ingest"
    # Several ingest workers with the same group split the fleet ($share/<group>/...); the
    # sitwatch-ingest@.service template sets both per instance (docs/deploy.md).
    share_group: Annotated[str, Field(pattern=MQTT_NAME)] | None = None
    # With a share group, how long a worker waits at start-up for its probe to come back
    # through a shared subscription before it gives up on the broker (docs/protocol.md).
    share_probe_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    # Per batch, ingest recounts the insight rows of each day and desk it touches and the
    # nudges since each desk's last one: the larger the batch, the fewer recounts per event
    # (store_batch alone, 20 desks on SQLite: 67 us/event in batches of 500, 49 in 2000).
    # Batches fill only under load; otherwise batch_wait_s closes them.
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 2000
    batch_wait_s: Annotated[float, Field(ge=0.001, le=10)] = 0.05

    @model_validator(mode="before")
    @classmethod
    def _older_ca_key(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("tls_ca_certs") is None:
            return data
        tls = data.get("tls")
        if tls is None:
            return {**data, "tls": {"ca_certs": data["tls_ca_certs"]}}
        if isinstance(tls, dict) and tls.get("ca_certs") is None:
            return {**data, "tls": {**tls, "ca_certs": data["tls_ca_certs"]}}
        raise ValueError("tls_ca_certs is the older spelling of tls.ca_certs: set only one")

    def named_files(self) -> list[tuple[str, str]]:
        """As ``MqttSettings.named_files``, naming the CA file by the key the file used."""
        named = super().named_files()
        if self.tls_ca_certs is None:
            return named
        return [("tls_ca_certs" if key == "tls.ca_certs" else key, path) for key, path in named]


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    secret_key: str | None = Field(default=None, repr=False)
    secret_key_file: str | None = None
    # How many reverse proxies (nginx, Caddy) are in front: that many X-Forwarded-For, -Proto
    # and -Host values are believed. 0 ignores the headers, which any client can send.
    trusted_proxies: Annotated[int, Field(ge=0, le=5)] = 0
    # The session cookie only over HTTPS: set it when the dashboard is served over TLS.
    secure_cookies: bool = False
    # Requests served at once (waitress's worker threads).
    threads: Annotated[int, Field(ge=1, le=64)] = 4


class GoalsConfig(BaseModel):
    """What the Insights page counts as a good day (streaks, budget flags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seat_budget_h: Annotated[
        float, Field(gt=0, le=24, description="seated hours a day before the day is flagged")
    ] = 6.0
    min_drills: Annotated[
        int, Field(ge=0, le=100, description="drills a day needed for a goal streak")
    ] = 1


class PrivacyConfig(BaseModel):
    """``[privacy]``: who sees what, and how long raw events are kept (docs/privacy.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    office_mode: bool = Field(
        default=False,
        description="admins see fleet figures only as totals over at least min_group desks,"
        " and a desk's own figures only if its member shares them",
    )
    min_group: Annotated[
        int, Field(ge=2, le=1000, description="desks a fleet figure must cover in office mode")
    ] = 5
    keep_events_days: Annotated[
        int,
        Field(
            ge=0,
            le=100 * 366,
            description="days raw events are kept (sitwatch-server prune); rollups, sessions"
            " and drills stay. 0: forever",
        ),
    ] = 400


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: DatabaseConfig = DatabaseConfig()
    mqtt: BrokerConfig = BrokerConfig()
    web: WebConfig = WebConfig()
    goals: GoalsConfig = GoalsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    timezone: str = "UTC"  # local time for days and hour-of-day figures
    day_start_hour: Annotated[int, Field(ge=0, le=23)] = 4  # late nights count to the day before
    offline_after_s: Annotated[float, Field(ge=10)] = 900  # no message for this long: offline
    future_margin_s: Annotated[
        float,
        Field(
            ge=60,
            le=366 * 24 * 3600,
            description="seconds an event may be dated ahead of the server's clock; one dated"
            " later is stored with the time it arrived, flagged unsynced (docs/protocol.md)",
        ),
    ] = FUTURE_MARGIN_S

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def calendar(self) -> Calendar:
        """The local days that the ingest counts rollups in and the dashboard shows."""
        return Calendar(self.timezone, self.day_start_hour)


ENV_OVERRIDES = {
    "SITWATCH_DATABASE_URL": ("database", "url"),
    "SITWATCH_MQTT_HOST": ("mqtt", "host"),
    "SITWATCH_MQTT_PORT": ("mqtt", "port"),
    "SITWATCH_MQTT_HOSTS": ("mqtt", "hosts"),  # comma-separated host:port
    "SITWATCH_MQTT_USERNAME": ("mqtt", "username"),
    "SITWATCH_MQTT_PASSWORD": ("mqtt", "password"),
    "SITWATCH_MQTT_CLIENT_ID": ("mqtt", "client_id"),
    "SITWATCH_MQTT_SHARE_GROUP": ("mqtt", "share_group"),
    "SITWATCH_WEB_HOST": ("web", "host"),
    "SITWATCH_WEB_PORT": ("web", "port"),
    "SITWATCH_SECRET_KEY": ("web", "secret_key"),
    "SITWATCH_TIMEZONE": ("timezone",),
}
# An environment variable naming the broker replaces the file's other way of naming it.
REPLACES = {"SITWATCH_MQTT_HOST": "hosts", "SITWATCH_MQTT_HOSTS": "host"}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return read_toml(path)
    except TomlFileError as exc:
        raise ServerConfigError(str(exc)) from None


def missing_files(config: ServerConfig, *, web: bool, mqtt: bool) -> list[tuple[str, str, str]]:
    """Files the config names that cannot be used, as (key, value, why): checked before
    start-up, since ssl and the dashboard would report them without the key. ``web`` and
    ``mqtt`` say which parts will run (the dashboard publishes settings over MQTT too)."""
    problems = []
    if web or mqtt:
        problems += [(f"mqtt.{key}", path, why) for key, path, why in config.mqtt.missing_files()]
    key_file = config.web.secret_key_file
    if web and key_file and not config.web.secret_key:
        path = Path(key_file)
        if path.exists():  # read at start
            why = why_unreadable(path)
        elif not path.parent.is_dir():  # created at the first start
            why = f"folder {path.parent} does not exist"
        elif not os.access(path.parent, os.W_OK | os.X_OK):
            why = f"the file does not exist and this user cannot create it in {path.parent}"
        else:
            why = None
        if why:
            problems.append(("web.secret_key_file", key_file, why))
    return problems


def load_server_config(
    path: str | Path | None = None, environ: dict[str, str] | None = None
) -> ServerConfig:
    data: dict[str, Any] = {}
    where = "server config"
    if path is not None:
        path = Path(path)
        where = str(path)
        data = _read_toml(path)
    for name, keys in ENV_OVERRIDES.items():
        value = (environ if environ is not None else os.environ).get(name)
        if value is None:
            continue
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
        table[keys[-1]] = value
        if name in REPLACES:
            table.pop(REPLACES[name], None)
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ServerConfigError(describe_errors(exc, where)) from None
