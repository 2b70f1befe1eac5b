"""The README's main job, run for a short bounded time: events flow end to end into the
database, the dashboard answers, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from server_helpers import wait_until

from sitwatch.broker import free_port


def count_events(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("select count(*) from events").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.timeout(180)
@pytest.mark.slow
@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_demo_runs_end_to_end_and_stops_on_ctrl_c(tmp_path: Path, broker: str) -> None:
    """With Mosquitto, and with the embedded amqtt broker a machine without it gets."""
    port = free_port()
    demo = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sitwatch-demo")),  # what scripts/demo runs
            "--speed",
            "600",
            "--devices",
            "2",
            "--seed-history",
            "--days",
            "7",
            "--port",
            str(port),
            "--workdir",
            str(tmp_path),
            "--broker",
            broker,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    try:
        db = tmp_path / "sitwatch.db"
        # The address is printed once the seeded history is stored; live desks add to it.
        assert wait_until(lambda: any("dashboard:" in line for line in lines), timeout=150), (
            "".join(lines)
        )
        seeded = count_events(db)
        assert seeded > 500  # a week of history for two desks
        assert wait_until(lambda: count_events(db) > seeded, timeout=60), "no live events"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as answer:
            assert "sitwatch" in answer.read().decode()
        with sqlite3.connect(db) as connection:
            devices = {row[0] for row in connection.execute("select id from devices")}
            sessions = connection.execute("select count(*) from sitting_sessions").fetchone()[0]
        assert devices == {"desk-1", "desk-2"}
        assert sessions > 0
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        demo.wait(60)
        reader.join(10)
        if demo.stdout is not None:
            demo.stdout.close()
    out = "".join(lines)
    assert demo.returncode == 0, out
    assert "dashboard: http://127.0.0.1:" in out and "login:" in out
    assert "stopped" in out
    with sqlite3.connect(tmp_path / "sitwatch.db") as connection:
        names = dict(connection.execute("select id, name from devices where not online"))
    # The desks said goodbye before the server stopped, and their configured names show.
    assert names == {"desk-1": "Desk 1", "desk-2": "Desk 2"}
    # nothing of the demo may still listen
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
