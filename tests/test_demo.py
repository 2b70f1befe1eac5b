"""The README's main job, run for a short bounded time: events flow end to end into the
database, every stored timestamp is at or before the real time, the desks differ, a desk by
hand joins with the line the demo prints, and Ctrl-C stops everything cleanly. The live
desks' scripts are also played on a fake clock, to show what the first minutes bring."""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.waiting import wait_until

from sitwatch.broker import free_port
from sitwatch.clock import FakeClock
from sitwatch.demo.cli import DEMO_RULES, PERSONS, device_config
from sitwatch.device.config import PinsConfig, load_config
from sitwatch.device.simulator import SCRIPTS
from sitwatch.device.tracker import SittingTracker
from sitwatch.protocol import Event, EventType, new_id
from sitwatch.settings import TrackerSettings

DEMO = str(Path(sys.executable).with_name("sitwatch-demo"))  # what scripts/demo runs


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def count_events(db: Path) -> int:
    rows = query(db, "select count(*) from events")
    return rows[0][0] if rows else 0


def stored_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)  # stored as naive UTC


class Output:
    """A child's output lines, read in a thread as they come."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._child = child
        self._thread = threading.Thread(target=lambda: self.lines.extend(child.stdout or ()))
        self._thread.start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def so_far(self) -> str:
        return "".join(self.lines)

    def after(self, label: str) -> str:
        return next(line for line in self.lines if label in line).split(label, 1)[1].strip()

    def join(self) -> str:
        """All of it, once the child has ended."""
        self._thread.join(10)
        if self._child.stdout is not None:
            self._child.stdout.close()
        return "".join(self.lines)


def start_demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DEMO, *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.timeout(240)
@pytest.mark.slow
@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_runs_end_to_end_and_stops_on_ctrl_c(tmp_path: Path, broker: str) -> None:
    """With Mosquitto, and with the embedded amqtt broker a machine without it gets."""
    port = free_port()
    started = datetime.now(UTC)
    demo = start_demo(
        *("--days", "7", "--port", str(port), "--workdir", str(tmp_path), "--broker", broker)
    )
    out = Output(demo)
    db = tmp_path / "sitwatch.db"
    try:
        # The address is printed once the seeded history is stored; live desks add to it.
        wait_until(lambda: out.has("Ctrl-C stops everything"), 200, "the demo", detail=out.so_far)
        seeded = count_events(db)
        assert seeded > 500  # a week of history for three desks
        wait_until(lambda: count_events(db) > seeded, 60, "live events")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as answer:
            assert "sitwatch" in answer.read().decode()

        # One desk by hand, with the line the demo printed: it reaches the demo's server.
        mqtt_port = out.after("broker: ").rsplit(":", 1)[1]
        assert f"--mqtt-port {mqtt_port}" in out.after("(or any desk with")
        by_hand = subprocess.Popen(
            shlex.split(out.after("by hand:")),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert by_hand.stdin is not None
        try:
            by_hand.stdin.write("s\n")  # sit down
            by_hand.stdin.flush()
            seated = "select count(*) from events where device_id = ? and type = 'seated'"
            assert wait_until(lambda: query(db, seated, "desk-by-hand") == [(1,)], 60)
            by_hand.stdin.write("q\n")
            by_hand.stdin.close()
            assert by_hand.wait(30) == 0
        finally:
            if by_hand.poll() is None:
                by_hand.kill()
                by_hand.wait(10)
            by_hand.stdin.close()

        # Every live desk adds to its history (each on its own time: a loaded machine starts
        # the last desk seconds after the first).
        live = "select distinct device_id from events where ts >= ?"
        since = started.replace(tzinfo=None).isoformat(sep=" ")
        desks = {"desk-1", "desk-2", "desk-3"}
        wait_until(
            lambda: desks <= {row[0] for row in query(db, live, since)},
            90,
            "live events from every desk",
            detail=lambda: f"none from {desks - {row[0] for row in query(db, live, since)}}",
        )

        # The truth: nothing stamped after the real time, today's history included.
        newest = query(db, "select device_id, max(ts), min(ts) from events group by device_id")
        now = datetime.now(UTC)
        assert {row[0] for row in newest} == {"desk-1", "desk-2", "desk-3", "desk-by-hand"}
        for device_id, latest, earliest in newest:
            assert stored_time(latest) <= now, f"{device_id} wrote the future: {latest}"
            if device_id != "desk-by-hand":
                assert stored_time(latest) >= started, f"{device_id}: no live events"
                assert (now - stored_time(earliest)).days >= 5, f"{device_id}: no history"
        # The desks differ: the snoozer snoozes most, the odd-hours desk works weekends.
        snoozes = dict(
            query(
                db,
                "select device_id, count(*) from events where type = 'snooze' group by device_id",
            )
        )
        assert snoozes.get("desk-2", 0) > 3 * snoozes.get("desk-1", 1)
        weekend = (
            "select count(*) from events where device_id = ? and strftime('%w', ts) in ('0', '6')"
        )
        assert query(db, weekend, "desk-3")[0][0] > 0
        assert query(db, weekend, "desk-1")[0][0] == 0
        assert query(db, "select count(*) from sitting_sessions")[0][0] > 0

        # The logs are where the demo says.
        logs = out.after("logs:")
        assert logs.startswith(f"{tmp_path}/server.log")
        for name in ("server.log", "desk-1.log", "desk-2.log", "desk-3.log"):
            assert name in logs and (tmp_path / name).stat().st_size > 0
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        demo.wait(60)
        text = out.join()  # closes the pipe, also when the test failed
    assert demo.returncode == 0, text
    assert f"dashboard: http://127.0.0.1:{port}/" in text and "login:" in text
    assert f"ssh -L {port}:127.0.0.1:{port} " in text
    for description in PERSONS.values():
        assert description in text
    assert f"stopped; its files and logs stay in {tmp_path}" in text
    names = dict(query(db, "select id, name from devices where not online"))
    # The desks said goodbye before the server stopped, and their configured names show.
    assert names == {
        "desk-1": "Desk 1",
        "desk-2": "Desk 2",
        "desk-3": "Desk 3",
        "desk-by-hand": "By hand",
    }
    # nothing of the demo may still listen
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_demo_on_all_interfaces_warns_and_removes_its_temporary_folder() -> None:
    port = free_port()
    demo = start_demo(
        "--no-seed-history",
        "--devices",
        "1",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--duration",
        "3",
    )
    out = Output(demo)
    code = demo.wait(90)
    text = out.join()
    assert code == 0, text
    assert "warning: --host 0.0.0.0: the dashboard is open to every machine" in text
    assert re.search(rf"dashboard: http://(?!127\.0\.0\.1)[^/]+:{port}/", text), text
    assert "ssh -L" not in text  # the page is reachable without a tunnel
    assert "removes the folder above (--workdir DIR keeps it)" in text
    work = Path(out.after("logs:").split("/server.log")[0])
    assert work.name.startswith("sitwatch-demo-")
    assert not work.exists(), "the temporary folder stayed behind"
    assert "stopped (its temporary folder removed)" in text


class DeskOnFakeClock:
    """A scripted person's hands on the real tracker, with time on a FakeClock, so that the
    demo's first minutes of real time pass at once. A press is told apart by its length as
    the hardware does (device/hardware.py); the pins themselves are the demo test's part."""

    def __init__(self, settings: TrackerSettings, pins: PinsConfig, horizon_s: float) -> None:
        self.clock = FakeClock()
        self.events: list[Event] = []
        self.tracker = SittingTracker(
            settings, self.clock, self.events.append, device_id="desk-1", boot_id=new_id()
        )
        self.pins = pins
        self.end = self.clock.monotonic() + horizon_s
        self.running = threading.Event()
        self.running.set()

    def sit(self, seated: bool) -> None:
        self.tracker.seat_changed(seated)

    def press(self, held_s: float = 0.2) -> None:
        self.wait(held_s)
        if held_s >= self.pins.pause_hold_s:
            self.tracker.button_long_held()
        elif held_s >= self.pins.button_hold_s:
            self.tracker.button_held()
        else:
            self.tracker.button_pressed()

    def wait(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while (deadline := self.tracker.next_deadline()) is not None and deadline <= end:
            self.clock.advance(max(0.0, deadline - self.clock.monotonic()))
            self.tracker.tick()
        self.clock.advance(max(0.0, end - self.clock.monotonic()))
        self.tracker.tick()
        if self.clock.monotonic() >= self.end:
            self.running.clear()


@pytest.mark.parametrize(
    ("person", "within_s", "expected"),
    [
        ("answers", 300, {"prompt", "prompt_ack", "drill_completed", "break"}),
        ("snoozes", 600, {"prompt", "snooze", "break"}),
        ("odd-hours", 600, {"seated", "stood_up", "break"}),
    ],
)
def test_live_desks_show_their_habits_within_minutes(
    tmp_path: Path, person: str, within_s: float, expected: set[str]
) -> None:
    """The demo's desks on real time, with the rules of the config file the demo writes:
    each person's prompts, drills, snoozes and breaks come within the first minutes."""
    config = load_config(device_config(tmp_path, "desk-1", "Desk 1", 1883))
    assert config.tracker.sitting_limit_s == DEMO_RULES["sitting_limit_s"]
    for number in range(1, 6):
        desk = DeskOnFakeClock(config.tracker, config.pins, within_s)
        rng = random.Random(f"desk-{number}")  # as the simulator seeds each desk
        SCRIPTS[person](desk, lambda d=desk: d.tracker.settings, config.pins, rng, desk.running)
        start = desk.events[0].mono
        early = [e for e in desk.events if e.mono - start <= within_s]
        assert expected <= {str(e.type) for e in early}, (person, number)
        assert all(not e.data.get("quiet", False) for e in early)  # every prompt beeps
        if person == "answers":
            assert [e.data["how"] for e in early if e.type == "prompt_ack"][0] == "drill"
        if person == "snoozes":
            assert max(e.data["level"] for e in early if e.type == "prompt") == 3
            sessions = [e.data["session_s"] for e in early if e.type == "stood_up"]
            assert sessions[0] > 3 * config.tracker.sitting_limit_s  # sits long


def test_the_demo_desk_that_answers_now_and_then_tries_a_drill_on_the_chair(
    tmp_path: Path,
) -> None:
    """Over an hour of the demo's rules, desk-1's person does the circuit off the chair
    (verified, the prompt answered by it) and at times on the chair first (not counted:
    the stand-up after it answers the prompt)."""
    config = load_config(device_config(tmp_path, "desk-1", "Desk 1", 1883))
    desk = DeskOnFakeClock(config.tracker, config.pins, 3600)
    rng = random.Random("desk-1")
    SCRIPTS["answers"](desk, lambda: desk.tracker.settings, config.pins, rng, desk.running)
    done = [e for e in desk.events if e.type == EventType.DRILL_COMPLETED]
    assert {e.data["verified"] for e in done} == {True, False}
    assert done[0].data["verified"]  # the demo's first minutes show a drill that counts
    kinds = [(str(e.type), e.data.get("how"), e.data.get("verified")) for e in desk.events]
    seated = kinds.index(("drill_completed", None, False))
    answer = next(k for k in kinds[seated:] if k[0] == "prompt_ack")
    assert answer[1] == "stood_up"
