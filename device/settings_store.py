"""The last good remote settings on disk, so a restarted device keeps what the server sent;
and the atomic JSON write the device's other small files use too."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from sitwatch import protocol
from sitwatch.settings import SettingsError, TrackerSettings

log = logging.getLogger(__name__)


def load_saved_settings(path: Path) -> TrackerSettings | None:
    """The settings saved by ``save_settings``, or None if there are none. A damaged or
    invalid file is logged and ignored (None): the device then runs on its config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read saved settings %s (%s); using the config file's", path, exc)
        return None
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("v") != protocol.VERSION:
            raise ValueError("not a saved-settings file of protocol version 1")
        return TrackerSettings.parse(body.get("settings"), where=str(path))
    except (ValueError, SettingsError, RecursionError) as exc:
        log.warning("ignoring saved settings %s: %s", path, exc)
        return None


def save_settings(path: Path, settings: TrackerSettings) -> None:
    write_json(path, {"v": protocol.VERSION, "settings": settings.model_dump(mode="json")})


def write_json(path: Path, body: object) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            json.dump(body, tmp, indent=2, sort_keys=True)
            tmp.write("\n")
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk (power loss on a Pi).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
