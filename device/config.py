"""The device's TOML config file: pins, sitting rules, MQTT link. Validated on load."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sitwatch import protocol
from sitwatch.device import DEFAULT_CONFIG_PATH
from sitwatch.mqtt import MqttSettings
from sitwatch.settings import TrackerSettings, describe_errors
from sitwatch.toml_file import TomlFileError, read_toml

DEFAULT_PATH = DEFAULT_CONFIG_PATH
BCM_PIN = Field(ge=0, le=27, description="BCM GPIO number")
PIN_KEYS = ("mat", "button", "buzzer", "led")  # each needs a pin of its own


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, key and value."""


def pin_factory_names() -> list[str]:
    """gpiozero's pin backends by the names it registers them under (lgpio, rpigpio, pigpio,
    native, mock, and any a plug-in adds), read from package metadata so that loading a
    config never imports gpiozero or a backend."""
    return sorted({ep.name for ep in entry_points(group="gpiozero_pin_factories")})


class PinsConfig(BaseModel):
    """BCM pin numbers; the defaults match hardware/README.md. That no two parts share a pin
    is checked by ``parse_config``, which knows which pins the file set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # gpiozero's pin backend by name; None leaves the choice to gpiozero (its
    # GPIOZERO_PIN_FACTORY variable, else lgpio, rpigpio, pigpio, native in that order).
    factory: str | None = None
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

    @field_validator("factory")
    @classmethod
    def _known_factory(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = pin_factory_names()
        for name in (value, value.lower()):  # as gpiozero matches GPIOZERO_PIN_FACTORY
            if name in names:
                return name
        raise ValueError(f"unknown pin backend; use one of {', '.join(names)}")

    def pin_clash(self, given: Mapping[str, Any]) -> str | None:
        """The first two parts on one pin, as "pins.<key> = <pin>: why", blaming a key the
        file set (``given``) rather than one left at its default."""
        owner: dict[int, str] = {}
        for key in PIN_KEYS:
            pin = getattr(self, key)
            other = owner.setdefault(pin, key)
            if other == key:
                continue
            blamed, kept = (other, key) if key not in given and other in given else (key, other)
            default = "" if kept in given else " (its default pin)"
            return f"pins.{blamed} = {pin}: pin {pin} is already used by pins.{kept}{default}"
        return None


class AnalogConfig(BaseModel):
    """Thresholds for an analog mat (see device/analog_seat.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger_fraction: Annotated[float, Field(gt=0.1, le=1.0)] = 0.75
    hysteresis: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.15
    window: Annotated[int, Field(ge=1, le=100)] = 5  # moving average length, in samples
    sample_s: Annotated[float, Field(ge=0.01, le=5.0)] = 0.1


class MqttConfig(MqttSettings):
    """``[mqtt]``: the broker (``MqttSettings``, the same keys as the server's) and how the
    link uses it."""

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
    def settings_path(self) -> Path:
        """The last settings the server sent, kept across restarts."""
        return self.data_path / "settings.json"

    @property
    def calibration_path(self) -> Path:
        return self.data_path / "calibration.json"


def parse_config(data: dict[str, Any], where: str = "config") -> DeviceConfig:
    try:
        config = DeviceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, where)) from None
    given = data.get("pins")
    clash = config.pins.pin_clash(given if isinstance(given, dict) else {})
    if clash is not None:
        raise ConfigError(f"invalid {where}:\n  {where}.{clash}")
    return config


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML file's tables, unvalidated."""
    try:
        return read_toml(path)
    except TomlFileError as exc:
        raise ConfigError(str(exc)) from None


def load_config(path: str | Path | None) -> DeviceConfig:
    """Read and validate a TOML file; ``None`` gives the documented defaults."""
    if path is None:
        return DeviceConfig()
    return parse_config(read_config_file(Path(path)), where=str(path))


def missing_files(config: DeviceConfig) -> list[tuple[str, str, str]]:
    """Files the config names that this user cannot read, as (key, value, why): checked
    before start-up, since paho and ssl report them without the key."""
    return [(f"mqtt.{key}", path, why) for key, path, why in config.mqtt.missing_files()]
