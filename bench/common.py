"""What every benchmark shares: the figure record, timing statistics, the machine's
description and a scratch PostgreSQL schema."""

from __future__ import annotations

import atexit
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

# A PostgreSQL of the runner's choosing; without it the bench starts one of its own (stock
# settings), so a server that happens to run on the machine is used only when named here.
POSTGRES_URL_VARIABLE = "SITWATCH_BENCH_POSTGRES_URL"
_private_postgres: Any = None


@dataclass
class Figure:
    """One measured number. ``target`` is text for the table ("<= 50 ms"); ``passed`` is
    None when there is no target. ``checks`` are correctness facts (no loss, no duplicates)
    that must hold whatever the speed."""

    key: str
    label: str
    value: float | None
    unit: str
    target: str | None = None
    passed: bool | None = None
    ratio: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_ms(samples_s: list[float]) -> float:
    return statistics.median(samples_s) * 1000


def p95_ms(samples_s: list[float]) -> float:
    ordered = sorted(samples_s)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


def timed_runs(work: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    """Wall seconds of each of ``runs`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        work()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return samples


def wait_for(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(step_s)
    return True


def _command_version(args: list[str], pattern: str) -> str | None:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(pattern, result.stdout + result.stderr)
    return found.group(1) if found else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(postgres_version: str | None) -> dict[str, Any]:
    from sitwatch.broker import find_mosquitto

    mosquitto = find_mosquitto()
    import paho.mqtt
    import sqlalchemy

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
        "paho_mqtt": paho.mqtt.__version__,
        "mosquitto": mosquitto and _command_version([mosquitto, "-h"], r"mosquitto version (\S+)"),
        "postgresql": postgres_version,
        # 1/5/15-minute load: other work on the machine (a shared box) shows here
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
    }


def postgres_url() -> str:
    """``SITWATCH_BENCH_POSTGRES_URL``, else a private server started on first use and
    stopped when the bench exits. Raises ``PostgresError`` when none can be started."""
    global _private_postgres
    named = os.environ.get(POSTGRES_URL_VARIABLE)
    if named:
        return named
    if _private_postgres is None:
        from sitwatch.postgres_server import PostgresServer

        _private_postgres = PostgresServer().start()
        atexit.register(_private_postgres.stop)
    return _private_postgres.url


def postgres_version() -> tuple[str | None, str | None]:
    """(server version, None) when PostgreSQL answers, else (None, why not)."""
    try:
        import sqlalchemy
    except ImportError:
        return None, "sqlalchemy not installed"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg not installed (pip install '.[postgres]')"
    from sitwatch.postgres_server import PostgresError

    try:
        url = postgres_url()
    except PostgresError as exc:
        return None, f"{exc}; or name a server in {POSTGRES_URL_VARIABLE}"
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            version = connection.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
        return str(version).split()[0], None
    except sqlalchemy.exc.OperationalError as exc:
        return None, f"PostgreSQL not reachable at {url}: " + " ".join(str(exc.orig).split())[:160]
    finally:
        engine.dispose()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL for a fresh PostgreSQL schema of our own, dropped afterwards."""
    import sqlalchemy

    url = postgres_url()
    admin = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 2})
    schema = f"sitwatch_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as connection:
        connection.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # lock_timeout: a shared server's stuck sessions make us fail, not hang
        yield f"{url}?options=-csearch_path%3D{schema}%20-clock_timeout%3D30000"
    finally:
        with admin.begin() as connection:
            connection.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
