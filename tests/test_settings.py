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


def test_an_error_keeps_where_pydantic_located_each_problem() -> None:
    with pytest.raises(SettingsError) as err:
        TrackerSettings.parse(
            {"sitting_limit_s": -5, "quiet_hours": {"start": "25:00", "end": "07:00"}}
        )
    problems = {p.loc: p for p in err.value.problems}
    assert set(problems) == {("sitting_limit_s",), ("quiet_hours", "start")}
    assert problems[("sitting_limit_s",)].shown == "-5"
    assert "greater than or equal to 60" in problems[("sitting_limit_s",)].message
    assert problems[("quiet_hours", "start")].key == "quiet_hours.start"
    # The text for the CLI and logs is the same as before: one line per problem.
    assert str(err.value).splitlines()[1:] == [
        f"  settings.{p.key} = {p.shown}: {p.message}" for p in err.value.problems
    ]


def test_a_rule_across_fields_is_located_at_the_whole_table() -> None:
    with pytest.raises(SettingsError) as err:
        TrackerSettings.parse({"grace_s": 300, "break_s": 120})
    (problem,) = err.value.problems
    assert problem.loc == () and problem.key == "(top level)"
    assert "must not exceed break_s" in problem.message
