"""Home Assistant MQTT discovery: retained configs that make a desk's seat, seated minutes
and drills appear in Home Assistant on their own (opt-in, ``mqtt.ha_discovery``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sitwatch import __version__, protocol

HA_PREFIX = "homeassistant"  # Home Assistant's default discovery prefix
HA_ID = re.compile(r"[^a-zA-Z0-9_-]")


def birth_topic(prefix: str = HA_PREFIX) -> str:
    """Where Home Assistant says ``online`` when it starts (its birth message) and
    ``offline`` when it stops: ``<discovery prefix>/status``."""
    return f"{prefix}/status"


HA_STATUS_TOPIC = birth_topic()


def is_birth(payload: bytes) -> bool:
    """Home Assistant's birth message; ``offline`` (its Last Will) and anything else is not."""
    return payload.strip() == b"online"


@dataclass(frozen=True)
class DiscoveryMessage:
    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


def object_id(device_id: str, what: str) -> str:
    """'desk-1', 'seat' -> 'sitwatch_desk-1_seat': only [a-zA-Z0-9_-], as HA requires."""
    return HA_ID.sub("_", f"sitwatch_{device_id}_{what}")


def discovery_messages(
    device_id: str, device_name: str = "", prefix: str = HA_PREFIX
) -> list[DiscoveryMessage]:
    """Configs for the seat (binary_sensor), seated minutes today and drills today (sensors),
    at ``<prefix>/<component>/<device_id>/<object_id>/config``: the device id is discovery's
    node id, a topic level of its own, so that a broker's ACL can give each desk its own
    (``homeassistant/+/%u/+/config`` in examples/mosquitto-sitwatch.acl)."""
    status = protocol.topic(device_id, protocol.STATUS)
    today = protocol.topic(device_id, protocol.TODAY)
    common = {
        # The status topic carries JSON ({"v":1,"state":"online",...}), also as the Last Will.
        "availability_topic": status,
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [object_id(device_id, "device")],
            "name": device_name or device_id,
            "manufacturer": "sitwatch",
            "model": "sitwatch desk monitor",
            "sw_version": __version__,
        },
        "origin": {"name": "sitwatch", "sw_version": __version__},
        "qos": 1,
    }
    entities = [
        (
            "binary_sensor",
            "seat",
            {
                "name": "Seat",
                "state_topic": protocol.topic(device_id, protocol.SEAT),
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "occupancy",
            },
        ),
        (
            "sensor",
            "seated_today",
            {
                "name": "Seated today",
                "state_topic": today,
                "value_template": "{{ value_json.seated_min }}",
                "unit_of_measurement": "min",
                "device_class": "duration",
                "state_class": "total_increasing",  # resets at midnight; HA reads a drop as a reset
                "icon": "mdi:seat",
            },
        ),
        (
            "sensor",
            "drills_today",
            {
                "name": "Drills today",
                "state_topic": today,
                "value_template": "{{ value_json.drills }}",
                "state_class": "total_increasing",
                "icon": "mdi:human-handsup",
            },
        ),
    ]
    messages = []
    for component, what, fields in entities:
        oid = object_id(device_id, what)
        body = {**fields, **common, "unique_id": oid}
        messages.append(
            DiscoveryMessage(
                topic=f"{prefix}/{component}/{device_id}/{oid}/config",
                payload=json.dumps(body, separators=(",", ":"), sort_keys=True),
            )
        )
    return messages


def seat_payload(seated: bool) -> str:
    return "ON" if seated else "OFF"


def today_payload(seated_min: float, drills: int) -> str:
    body = {"v": protocol.VERSION, "seated_min": round(seated_min, 1), "drills": drills}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
