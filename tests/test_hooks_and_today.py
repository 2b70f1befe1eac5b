"""Automation hooks (a real shell command per event) and the device's own today figures."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.events import make_event
from support.waiting import wait_until

from sitwatch.device.config import HooksConfig
from sitwatch.device.hooks import HookRunner
from sitwatch.device.today import TodayTally
from sitwatch.protocol import EventType


def test_hook_gets_the_event_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "hook.json"
    command = (
        f"python3 -c 'import json, os; json.dump({{k: v for k, v in os.environ.items() "
        f'if k.startswith("SITWATCH_")}}, open("{out}", "w"))\''
    )
    runner = HookRunner(HooksConfig(on_prompt=command))
    runner(make_event(EventType.SEATED, datetime(2026, 3, 2, 9, tzinfo=UTC)))  # no hook for this
    runner(
        make_event(
            EventType.PROMPT,
            datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
            level=2,
            seated_s=1800.0,
            quiet=False,
        )
    )
    wait_until(lambda: out.exists() and out.read_text().strip(), 5, "the hook's output")
    env = json.loads(out.read_text())
    assert env["SITWATCH_EVENT"] == "prompt"
    assert env["SITWATCH_LEVEL"] == "2"
    assert env["SITWATCH_QUIET"] == "false"
    assert env["SITWATCH_TS"] == "2026-03-02T09:30:00.000Z"
    assert json.loads(env["SITWATCH_DATA"])["seated_s"] == 1800.0


def test_a_failing_hook_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    runner = HookRunner(HooksConfig(on_stood_up="echo broken >&2; exit 3"), timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="sitwatch.device.hooks"):
        runner(make_event(EventType.STOOD_UP, datetime(2026, 3, 2, 9, tzinfo=UTC), session_s=60.0))
        (record,) = wait_until(lambda: caplog.records, 5, "the hook's warning")
    assert record.levelno == logging.WARNING and not record.exc_info
    assert "hook for stood_up exited 3" in record.getMessage()
    assert "broken" in record.getMessage()  # with what the command said on stderr


def test_today_rolls_over_at_four_in_the_morning() -> None:
    tally = TodayTally("Europe/Berlin", day_start_hour=4)
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 in Berlin, still "March 2"
    assert tally.add(
        make_event(EventType.STOOD_UP, datetime(2026, 3, 2, 12, tzinfo=UTC), session_s=1800)
    )
    assert tally.add(make_event(EventType.STOOD_UP, late, session_s=600))
    assert tally.add(make_event(EventType.DRILL_COMPLETED, late, guided=True))
    assert (tally.seated_min, tally.drills) == (40.0, 1)
    # 04:30 in Berlin: a new day. Its first event changes the figures (to zero), so Home
    # Assistant stops showing yesterday's before the first stand-up.
    assert tally.add(make_event(EventType.SEATED, datetime(2026, 3, 3, 3, 30, tzinfo=UTC)))
    assert (tally.seated_min, tally.drills) == (0.0, 0)
    assert not tally.add(make_event(EventType.SEATED, datetime(2026, 3, 3, 5, tzinfo=UTC)))


def test_today_survives_a_restart_and_rolls_over_on_the_next_morning(tmp_path: Path) -> None:
    path = tmp_path / "today.json"
    first = TodayTally("Europe/Berlin", path=path)
    noon = datetime(2026, 3, 2, 11, tzinfo=UTC)
    first.add(make_event(EventType.STOOD_UP, noon, session_s=1500))
    first.add(make_event(EventType.DRILL_COMPLETED, noon, guided=False))

    again = TodayTally("Europe/Berlin", path=path)  # the agent restarted
    assert not again.roll_over(noon)
    assert (again.day, again.seated_min, again.drills) == (first.day, 25.0, 1)
    again.add(make_event(EventType.STOOD_UP, noon, session_s=300))
    assert TodayTally("Europe/Berlin", path=path).seated_min == 30.0

    morning = TodayTally("Europe/Berlin", path=path)  # restarted the next morning
    assert morning.roll_over(datetime(2026, 3, 3, 6, tzinfo=UTC))
    assert (morning.seated_min, morning.drills) == (0.0, 0)
    assert TodayTally("Europe/Berlin", path=path).seated_min == 0.0
    # A clock still behind (a Pi without RTC before NTP) does not bring an old day back.
    assert not morning.roll_over(datetime(2026, 3, 1, 6, tzinfo=UTC))


def test_a_damaged_today_file_is_ignored(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "today.json"
    bodies = (
        b"\xff\xfe",
        b"[1, 2]",
        b'{"v": 1, "day": "2026-13-40", "seated_s": 1, "drills": 1}',
        b'{"v": 1, "day": "2026-03-02", "seated_s": 1e400, "drills": 1}',
        b'{"v": 1, "day": "2026-03-02", "seated_s": 60, "drills": true}',
    )
    for body in bodies:
        path.write_bytes(body)
        tally = TodayTally(path=path)
        assert (tally.day, tally.seated_s, tally.drills) == (None, 0.0, 0)
    assert len([r for r in caplog.records if "ignoring today's figures" in r.message]) == 5
    assert not any(r.exc_info for r in caplog.records)
