"""The device's TOML config file: pins, sitting rules, MQTT link. Validated on load."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sitwatch import protocol
from sitwatch.settings import TrackerSettings, describe_errors

DEFAULT_PATH = Path("/etc/sitwatch/device.toml")
BCM_PIN = Field(ge=0, le=27, description="BCM GPIO number")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, key and value."""


class PinsConfig(BaseModel):
    """BCM pin numbers; the defaults match hardware/README.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "switch": a two-wire mat on ``mat``; "mcp3008": an FSR/Velostat mat on an ADC channel
    mat_kind: Literal["switch", "mcp3008"] = "switch"
    adc_channel: Annotated[int, Field(ge=0, le=7)] = 0  # MCP3008 on SPI0 CE0
    mat: Annotated[int, BCM_PIN] = 17
    mat_active_high: bool = False  # default: pull-up, the mat closes the pin to ground
    mat_bounce_s: Annotated[float, Field(ge=0.01, le=0.05)] = 0.02
    button: Annotated[int, BCM_PIN] = 27
    button_hold_s: Annotated[float, Field(ge=0.5, le=10)] = 2.0
    pause_hold_s: Annotated[float, Field(ge=3, le=30)] = 6.0
    buzzer: Annotated[int, BCM_PIN] = 22
    buzzer_active_high: bool = True
    led: Annotated[int, BCM_PIN] = 18

    @field_validator("button", "buzzer", "led")
    @classmethod
    def _distinct(cls, value: int, info: Any) -> int:
        used = {name: pin for name, pin in info.data.items() if name in ("mat", "button", "buzzer")}
        for name, pin in used.items():
            if pin == value:
                raise ValueError(f"pin {value} is already used by {name!r}")
        return value


class AnalogConfig(BaseModel):
    """Thresholds for an analog mat (see device/analog_seat.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger_fraction: Annotated[float, Field(gt=0.1, le=1.0)] = 0.75
    hysteresis: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.15
    window: Annotated[int, Field(ge=1, le=100)] = 5  # moving average length, in samples
    sample_s: Annotated[float, Field(ge=0.01, le=5.0)] = 0.1


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False  # skip host name check; for self-signed test brokers only


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    tls: TlsConfig | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    resend_after_s: Annotated[float, Field(ge=1, le=3600)] = 30
    outbox_max_rows: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
    heartbeat_s: Annotated[float, Field(ge=0, le=86400)] = 300  # 0 turns heartbeats off
    ha_discovery: bool = False
    # Discovery goes under it, and Home Assistant's birth message comes on <prefix>/status,
    # which the link subscribes to: no MQTT wildcards.
    ha_prefix: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^#+\x00]+$")] = (
        "homeassistant"
    )


class HooksConfig(BaseModel):
    """Optional shell commands run on events, with the event's fields in the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_prompt: str | None = None
    on_drill_completed: str | None = None
    on_stood_up: str | None = None


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = "desk-1"
    name: Annotated[str, Field(max_length=100)] = "My desk"
    data_dir: str = "/var/lib/sitwatch"
    pins: PinsConfig = PinsConfig()
    analog: AnalogConfig = AnalogConfig()
    tracker: TrackerSettings = TrackerSettings()
    mqtt: MqttConfig = MqttConfig()
    hooks: HooksConfig = HooksConfig()

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, value: str) -> str:
        if not protocol.DEVICE_ID.match(value):
            raise ValueError("use 1-64 characters of A-Z a-z 0-9 _ -")
        return value

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def calibration_path(self) -> Path:
        return self.data_path / "calibration.json"

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with secrets hidden, for logs."""
        data = self.model_dump()
        if data["mqtt"].get("password"):
            data["mqtt"]["password"] = "***"
        return data


def parse_config(data: dict[str, Any], where: str = "config") -> DeviceConfig:
    try:
        return DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, where)) from None


def load_config(path: str | Path | None) -> DeviceConfig:
    """Read and validate a TOML file; ``None`` gives the documented defaults."""
    if path is None:
        return DeviceConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, where=str(path))
