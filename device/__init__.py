"""The Pi-side agent: seat tracking, prompts, drill button, outbox and MQTT link."""

from pathlib import Path

# Here rather than in config.py, so that ``sitwatch-device --help`` can name it without
# importing the config models (pydantic).
DEFAULT_CONFIG_PATH = Path("/etc/sitwatch/device.toml")
