"""Reading a TOML config file, and the files it names: one clear line for each way one can
be unreadable."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any


class TomlFileError(ValueError):
    """The file cannot be read, is not UTF-8 text or not TOML; the message says which."""


def read_toml(path: Path) -> dict[str, Any]:
    """The file's tables, unvalidated."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TomlFileError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # a binary file, or another encoding
        raise TomlFileError(
            f"{path} is not a TOML file: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
            "is not UTF-8 text"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlFileError(f"{path} is not valid TOML: {exc}") from None


def why_unreadable(path: Path) -> str | None:
    """Why ``path``, a file a config names, cannot be read by this user, or None."""
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "this user cannot read it"
    return None
