"""Saved remote settings: survive a restart, written atomically, a damaged file is ignored."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sitwatch.device.settings_store import load_saved_settings, save_settings
from sitwatch.settings import QuietHours, TrackerSettings


def test_saved_settings_load_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "settings.json"
    settings = TrackerSettings(sitting_limit_s=2400, quiet_hours=QuietHours(start="23:00"))
    save_settings(path, settings)
    assert load_saved_settings(path) == settings
    save_settings(path, TrackerSettings(quiet_hours=None))
    assert load_saved_settings(path) == TrackerSettings(quiet_hours=None)
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]  # no temp files left


def test_no_file_means_no_saved_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_saved_settings(tmp_path / "missing.json") is None
    assert caplog.records == []


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\xff\xfe garbage",
        b"[]",
        b'{"v": 2, "settings": {}}',
        b'{"v": 1, "settings": {"sitting_limit_s": -5}}',
        b'{"v": 1}',
        b"[" * 100_000,
    ],
)
def test_a_damaged_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="sitwatch.device.settings_store"):
        assert load_saved_settings(path) is None
    assert str(path) in caplog.text
