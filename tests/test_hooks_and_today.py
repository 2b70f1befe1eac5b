"""Automation hooks (a real shell command per event) and the device's own today figures."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sitwatch.device.config import HooksConfig
from sitwatch.device.hooks import HookRunner
from sitwatch.device.today import TodayTally
from sitwatch.protocol import Event, EventType


def event(kind: EventType, ts: datetime, **data: object) -> Event:
    return Event(kind, "desk-1", "boot0001", 1.0, ts, True, dict(data))


def wait_for(path: Path, timeout: float = 5.0) -> bool:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.02)
    return True


def test_hook_gets_the_event_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "hook.json"
    command = (
        f"python3 -c 'import json, os; json.dump({{k: v for k, v in os.environ.items() "
        f'if k.startswith("SITWATCH_")}}, open("{out}", "w"))\''
    )
    runner = HookRunner(HooksConfig(on_prompt=command))
    runner(event(EventType.SEATED, datetime(2026, 3, 2, 9, tzinfo=UTC)))  # no hook for this
    runner(
        event(
            EventType.PROMPT,
            datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
            level=2,
            seated_s=1800.0,
            quiet=False,
        )
    )
    assert wait_for(out)
    env = json.loads(out.read_text())
    assert env["SITWATCH_EVENT"] == "prompt"
    assert env["SITWATCH_LEVEL"] == "2"
    assert env["SITWATCH_QUIET"] == "false"
    assert env["SITWATCH_TS"] == "2026-03-02T09:30:00.000Z"
    assert json.loads(env["SITWATCH_DATA"])["seated_s"] == 1800.0


def test_a_failing_hook_is_only_logged(tmp_path: Path) -> None:
    runner = HookRunner(HooksConfig(on_stood_up="exit 3"), timeout_s=5)
    runner(event(EventType.STOOD_UP, datetime(2026, 3, 2, 9, tzinfo=UTC), session_s=60.0))


def test_today_rolls_over_at_four_in_the_morning() -> None:
    tally = TodayTally("Europe/Berlin", day_start_hour=4)
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 in Berlin, still "March 2"
    assert tally.add(
        event(EventType.STOOD_UP, datetime(2026, 3, 2, 12, tzinfo=UTC), session_s=1800)
    )
    assert tally.add(event(EventType.STOOD_UP, late, session_s=600))
    assert tally.add(event(EventType.DRILL_COMPLETED, late, guided=True))
    assert (tally.seated_min, tally.drills) == (40.0, 1)
    assert not tally.add(event(EventType.SEATED, datetime(2026, 3, 3, 3, 30, tzinfo=UTC)))
    assert (tally.seated_min, tally.drills) == (0.0, 0)  # 04:30 in Berlin: a new day
