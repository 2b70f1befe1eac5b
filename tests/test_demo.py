"""The README's main job, run for a short bounded time: events flow end to end into the
database, the dashboard answers, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
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
def test_demo_runs_end_to_end_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sitwatch.demo",
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        db = tmp_path / "sitwatch.db"
        # Seeded history first, then the live desks' events on top.
        assert wait_until(lambda: count_events(db) > 0, timeout=120), "no events stored"
        seeded = count_events(db)
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
        out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, out
    assert "dashboard: http://127.0.0.1:" in out and "login:" in out
    assert "stopped" in out
    # nothing of the demo may still listen
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
