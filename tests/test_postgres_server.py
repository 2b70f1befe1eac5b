"""The PostgreSQL the tests use is their own (a private server on a free port, not root's),
or the one SITWATCH_TEST_POSTGRES_URL names, and its absence is a failure, never a skip."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
from server_helpers import POSTGRES_URL_VARIABLE, postgres_schema
from support.waiting import wait_until

from sitwatch.postgres_server import PostgresError, PostgresServer, find_bindir

pytestmark = pytest.mark.postgres


def process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_tests_get_a_private_server_unless_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a PostgreSQL that happens to run on the machine (5432): one in a temporary folder,
    run by an unprivileged user when the tests run as root."""
    monkeypatch.delenv(POSTGRES_URL_VARIABLE, raising=False)
    with postgres_schema() as url:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            port = connection.execute(sqlalchemy.text("SHOW port")).scalar_one()
            data = connection.execute(sqlalchemy.text("SHOW data_directory")).scalar_one()
            pid = connection.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one()
            backend_uid = process_uid(pid)  # while the backend lives
            schema = connection.execute(sqlalchemy.text("SELECT current_schema()")).scalar_one()
        engine.dispose()
    assert port != "5432" and f":{port}/" in url
    assert Path(data).name == "data" and Path(data).parent.name.startswith("sitwatch-postgres-")
    assert schema.startswith("sitwatch_test_")
    assert backend_uid != 0


def test_a_named_server_is_used_and_its_absence_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The named URL is the only one tried: no fallback to a private or a local server, and
    an unreachable one fails the test with its address instead of skipping it."""
    monkeypatch.setenv(POSTGRES_URL_VARIABLE, "postgresql+psycopg://postgres@127.0.0.1:9/none")
    with pytest.raises(pytest.fail.Exception) as failed, postgres_schema():
        pass
    assert "PostgreSQL not reachable at postgresql+psycopg://postgres@127.0.0.1:9/none" in str(
        failed.value
    )


def test_missing_server_programs_are_one_clear_error(tmp_path: Path) -> None:
    assert find_bindir(search=[str(tmp_path)]) is None
    with pytest.raises(PostgresError, match=r"not found: install the Debian package postgresql"):
        PostgresServer(search=[str(tmp_path)])


def test_a_server_stops_and_leaves_nothing_behind() -> None:
    server = PostgresServer().start()
    workdir, process = server.workdir, server.process
    assert workdir is not None and process is not None
    assert (workdir / "data" / "PG_VERSION").exists()
    if os.geteuid() == 0:
        assert process_uid(process.pid) != 0
    server.stop()
    assert process.poll() is not None
    assert not workdir.exists()


def test_a_killed_owner_takes_its_server_with_it() -> None:
    """A test run killed by a timeout cannot stop its server; the kernel must, or every
    killed run leaves a postgres behind."""
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from sitwatch.postgres_server import PostgresServer; "
            "s = PostgresServer().start(); print(s.process.pid, s.workdir, flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as owner:
        assert owner.stdout is not None
        pid, workdir = owner.stdout.readline().split()
        assert running(int(pid))
        owner.kill()
    try:
        assert wait_until(lambda: not running(int(pid)), timeout=30)
    finally:
        if running(int(pid)):
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
