"""Starts a private PostgreSQL server in a temporary folder on a free port (for tests and
benches), so that nothing depends on, or writes into, a PostgreSQL the machine happens to run."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from sitwatch.broker import free_port

# Debian and Ubuntu keep each major version's server programs out of PATH.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
# initdb refuses to run as root; the server then runs as this user, in a folder it owns.
UNPRIVILEGED_USER = "nobody"
INSTALL_HINT = "install the Debian package postgresql (./scripts/test does)"


class PostgresError(RuntimeError):
    """The server programs are missing, or the server did not start."""


def _major(bindir: str) -> int:
    version = Path(bindir).parent.name
    return int(version) if version.isdigit() else -1


def find_bindir(search: list[str] | None = None) -> str | None:
    """The folder holding ``initdb`` and ``postgres``: the newest of Debian's versioned
    folders, else wherever PATH has ``initdb``. ``search`` replaces both (for tests)."""
    if search is None:
        candidates = sorted(glob.glob(DEBIAN_BINDIRS), key=_major, reverse=True)
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(str(Path(os.path.realpath(on_path)).parent))
    else:
        candidates = search
    for folder in candidates:
        if all(os.access(os.path.join(folder, name), os.X_OK) for name in ("initdb", "postgres")):
            return folder
    return None


class PostgresServer:
    """A postgres process of our own: ``initdb`` in a fresh temporary folder, listening on
    127.0.0.1 at a free port and on a unix socket in that folder, trusting local connections
    (nobody else can reach a loopback port's data that is thrown away). As root it runs as
    ``nobody``. ``settings`` are extra ``-c name=value`` server settings."""

    def __init__(
        self,
        bindir: str | None = None,
        settings: dict[str, str] | None = None,
        search: list[str] | None = None,
    ) -> None:
        found = bindir or find_bindir(search)
        if found is None:
            raise PostgresError(
                f"PostgreSQL server programs (initdb, postgres) not found: {INSTALL_HINT}"
            )
        self.bindir = found
        self.settings = settings or {}
        self.host = "127.0.0.1"
        self.port = 0
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database, as the superuser ``postgres``."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def _run_as(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        try:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
        except KeyError as exc:
            raise PostgresError(
                f"running as root and there is no user {UNPRIVILEGED_USER!r}"
            ) from exc
        # extra_groups=[] drops root's supplementary groups as well.
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def start(self, timeout_s: float = 30.0) -> PostgresServer:
        as_user = self._run_as()
        self.workdir = Path(tempfile.mkdtemp(prefix="sitwatch-postgres-"))
        if as_user:
            os.chown(self.workdir, as_user["user"], as_user["group"])  # type: ignore[arg-type]
        data = self.workdir / "data"
        log_path = self.workdir / "postgres.log"
        with open(log_path, "ab") as log:
            initdb = subprocess.run(
                [
                    os.path.join(self.bindir, "initdb"),
                    *("-D", str(data), "-U", "postgres", "--auth=trust"),
                    # C.UTF-8 is built into glibc: no locale package needed, same sort order
                    # on every machine.
                    *("--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                **as_user,  # type: ignore[arg-type]
            )
            if initdb.returncode != 0:
                raise PostgresError(f"initdb failed:\n{self._log_tail()}")
            self.port = free_port()
            settings = {
                "listen_addresses": self.host,
                "port": str(self.port),
                "unix_socket_directories": str(self.workdir),
                **self.settings,
            }
            command = [os.path.join(self.bindir, "postgres"), "-D", str(data)]
            # A test run or bench that is killed cannot stop its server: the kernel does,
            # with a fast shutdown (SIGINT) when our process dies (util-linux's setpriv).
            setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
            if os.access(setpriv, os.X_OK):
                command = [setpriv, "--pdeathsig", "INT", "--", *command]
            for name, value in settings.items():
                command += ["-c", f"{name}={value}"]
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                **as_user,  # type: ignore[arg-type]
            )
        if not self._wait_ready(data, timeout_s):
            self.stop()
            raise PostgresError(f"postgres did not become ready:\n{self._log_tail()}")
        return self

    def _wait_ready(self, data: Path, timeout_s: float) -> bool:
        """postmaster.pid's 8th line says "ready" once connections are accepted (what
        ``pg_ctl -w`` waits for)."""
        deadline = time.monotonic() + timeout_s
        pid_file = data / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        if self.workdir is None:
            return ""
        try:
            return "\n".join((self.workdir / "postgres.log").read_text().splitlines()[-15:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected), then the folder is removed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
