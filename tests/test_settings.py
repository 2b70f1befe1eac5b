"""Sitting settings: defaults, and errors that name the bad key and value."""

from __future__ import annotations

from datetime import time

import pytest

from sitwatch.settings import QuietHours, SettingsError, TrackerSettings


def test_documented_defaults() -> None:
    settings = TrackerSettings()
    assert settings.sitting_limit_s == 1800
    assert settings.grace_s == 60
    assert settings.break_s == 120
    assert settings.snooze_s == 600


def test_every_bad_key_is_named_with_its_value() -> None:
    with pytest.raises(SettingsError) as err:
        TrackerSettings.parse({"sitting_limit_s": -5, "grace_s": "soon", "colour": "red"})
    text = str(err.value)
    assert "settings.sitting_limit_s = -5" in text
    assert "settings.grace_s = 'soon'" in text
    assert "settings.colour = 'red'" in text


def test_grace_longer_than_break_is_rejected() -> None:
    with pytest.raises(SettingsError, match="grace_s .* must not exceed break_s"):
        TrackerSettings.parse({"grace_s": 300, "break_s": 120})


def test_bad_time_zone_and_quiet_hours() -> None:
    with pytest.raises(SettingsError, match="unknown time zone"):
        TrackerSettings.parse({"timezone": "Mars/Olympus"})
    with pytest.raises(SettingsError, match="quiet_hours.start = '25:00'"):
        TrackerSettings.parse({"quiet_hours": {"start": "25:00", "end": "07:00"}})


def test_quiet_hours_wrap_midnight() -> None:
    quiet = QuietHours(start="22:00", end="07:00")
    assert quiet.contains(time(23, 30))
    assert quiet.contains(time(6, 59))
    assert not quiet.contains(time(7, 0))
    assert not quiet.contains(time(12, 0))
