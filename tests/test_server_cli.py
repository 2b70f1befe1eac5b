"""The sitwatch-server command: clear one-line errors, users, and real ingest/run processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from server_helpers import DevicePublisher, heartbeats
from sqlalchemy import func, select
from support.waiting import wait_until

from sitwatch.broker import Mosquitto, free_port
from sitwatch.server.cli import main
from sitwatch.server.db import make_engine, session_factory
from sitwatch.server.migrate import head_revision
from sitwatch.server.models import Event as EventRow
from sitwatch.server.users import verify_user


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(body, encoding="utf-8")
    return path


def sqlite_config(tmp_path: Path, extra: str = "") -> Path:
    return write_config(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/sw.db"\n{extra}')


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def assert_clear_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sitwatch-server: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[database\n", "not valid TOML"),
        ('[mqtt]\nport = "many"\n', "mqtt.port"),
        ("[web]\nbogus = 1\n", "web.bogus"),
        ('timezone = "Mars/Olympus"\n', "unknown time zone"),
        ('[mqtt]\nshare_group = "ingest/#"\n', "mqtt.share_group = 'ingest/#'"),
        ('[mqtt]\nclient_id = ""\n', "mqtt.client_id = ''"),
    ],
)
def test_bad_config_file_is_one_clear_line_and_exit_2(
    tmp_path: Path, body: str, fragment: str
) -> None:
    assert_clear_error(invoke("--config", str(write_config(tmp_path, body)), "init-db"), fragment)


def test_environment_names_the_ingest_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What sitwatch-ingest@.service sets per instance; bad values name the variable's key."""
    from sitwatch.server.config import load_server_config

    config = sqlite_config(tmp_path, '[mqtt]\nclient_id = "from-file"\n')
    environ = {"SITWATCH_MQTT_CLIENT_ID": "ingest-2", "SITWATCH_MQTT_SHARE_GROUP": "office"}
    loaded = load_server_config(config, environ=environ)
    assert (loaded.mqtt.client_id, loaded.mqtt.share_group) == ("ingest-2", "office")
    assert load_server_config(config, environ={}).mqtt.client_id == "from-file"
    monkeypatch.setenv("SITWATCH_MQTT_SHARE_GROUP", "+")
    assert_clear_error(invoke("--config", str(config), "ingest"), "mqtt.share_group = '+'")


def test_binary_config_file_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_bytes(b"SQLite format 3\x00\xff\xfe\x00\x01")
    assert_clear_error(invoke("--config", str(config), "init-db"), str(config), "not a TOML file")


@pytest.mark.parametrize("command", ["web", "run"])
def test_secret_key_file_in_a_missing_folder_is_one_clear_line(
    tmp_path: Path, command: str
) -> None:
    key_file = tmp_path / "no-such-folder" / "secret_key"
    config = sqlite_config(tmp_path, f'[web]\nsecret_key_file = "{key_file}"\n')
    assert_clear_error(
        invoke("--config", str(config), command),
        f"{config}: web.secret_key_file = '{key_file}'",
        f"folder {key_file.parent} does not exist",
    )


@pytest.mark.parametrize("command", ["ingest", "run", "web"])
def test_missing_tls_ca_file_is_one_clear_line(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "ca.pem"
    config = sqlite_config(
        tmp_path, f'[mqtt]\ntls_ca_certs = "{missing}"\n[web]\nsecret_key = "test-only"\n'
    )
    assert_clear_error(
        invoke("--config", str(config), command),
        f"{config}: mqtt.tls_ca_certs = '{missing}'",
        "no such file",
    )


def test_missing_config_file(tmp_path: Path) -> None:
    result = invoke("--config", str(tmp_path / "nope.toml"), "ingest")
    assert_clear_error(result, "cannot read config file", "nope.toml")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "bad database URL"),
        ("nosuchdb://x", "cannot use database URL"),
        ("sqlite:////no/such/dir/sw.db", "cannot connect to database"),
        ("mysql+pymysql://u@h/db", "mysql"),
    ],
)
def test_bad_database_url_is_one_clear_line(tmp_path: Path, url: str, fragment: str) -> None:
    config = write_config(tmp_path, f'[database]\nurl = "{url}"\n')
    assert_clear_error(invoke("--config", str(config), "init-db"), fragment)


def test_unreachable_postgres_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(
        tmp_path, f'[database]\nurl = "postgresql+psycopg://postgres@127.0.0.1:{port}/sitwatch"\n'
    )
    assert_clear_error(invoke("--config", str(config), "web"), "cannot connect to database")


def test_init_db_creates_the_schema_on_a_fresh_file(tmp_path: Path) -> None:
    result = invoke("--config", str(sqlite_config(tmp_path)), "init-db")
    assert result.exit_code == 0, result.output
    assert f"schema revision {head_revision()}" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and "sitwatch-server, version" in result.stdout


# Loaded by Python at start-up (sitecustomize on PYTHONPATH): the server extra's modules then
# cannot be found, as on a Pi that got ``pip install .`` without the ``server`` extra.
WITHOUT_SERVER_EXTRA = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("click", "flask", "sqlalchemy"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
"""


@pytest.mark.parametrize(
    ("script", "args", "extra"),
    [
        ("sitwatch-server", ["--help"], "server"),
        ("sitwatch-server", ["run", "--config", "/etc/sitwatch/server.toml"], "server"),
        ("sitwatch-demo", [], "demo"),
    ],
)
def test_device_only_install_answers_with_the_extra_to_install(
    tmp_path: Path, script: str, args: list[str], extra: str
) -> None:
    """The real console script, in a Python where click, flask and SQLAlchemy are missing
    (a meta-path finder that refuses them, loaded by sitecustomize)."""
    (tmp_path / "sitecustomize.py").write_text(WITHOUT_SERVER_EXTRA)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name(script)), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{script}: error: the '{extra}' extra is not installed here")
    assert "click" in lines[0] and f"pip install '.[{extra}]'" in lines[0]
    assert done.stdout == ""
    # The device side of the same install works: its command needs none of them.
    device = [str(Path(sys.executable).with_name("sitwatch-device")), "--version"]
    answer = subprocess.run(device, env=env, capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0 and answer.stdout.startswith("sitwatch-device "), answer.stderr


def test_create_user_then_verify_user(tmp_path: Path) -> None:
    config = str(sqlite_config(tmp_path))
    result = invoke(
        "--config", config, "create-user", "alice", "--password-stdin", input="s3cret-pw\n"
    )
    assert result.exit_code == 0, result.output
    result = invoke("--config", config, "create-user", "bob", input="another-pw\nanother-pw\n")
    assert result.exit_code == 0, result.output
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    try:
        with session_factory(engine)() as session:
            alice = verify_user(session, "alice", "s3cret-pw")
            assert alice is not None and alice.username == "alice"
            assert "s3cret-pw" not in alice.password_hash
            assert verify_user(session, "alice", "wrong-password") is None
            assert verify_user(session, "nobody", "s3cret-pw") is None
            assert verify_user(session, "bob", "another-pw") is not None
    finally:
        engine.dispose()
    again = invoke("--config", config, "create-user", "alice", "--password-stdin", input="x" * 9)
    assert_clear_error(again, "already exists")
    short = invoke("--config", config, "create-user", "carol", "--password-stdin", input="short\n")
    assert_clear_error(short, "too short")
    hostile = invoke("--config", config, "create-user", "<script>", "--password-stdin", input="")
    assert_clear_error(hostile, "bad username")


def test_create_user_reset_changes_the_password(tmp_path: Path) -> None:
    config = str(sqlite_config(tmp_path))
    invoke("--config", config, "create-user", "alice", "--password-stdin", input="first-pass\n")
    result = invoke(
        "--config",
        config,
        "create-user",
        "alice",
        "--reset",
        "--password-stdin",
        input="second-pass\n",
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    try:
        with session_factory(engine)() as session:
            assert verify_user(session, "alice", "first-pass") is None
            assert verify_user(session, "alice", "second-pass") is not None
    finally:
        engine.dispose()


def test_user_commands_list_reset_disable_enable_delete_and_audit_them(tmp_path: Path) -> None:
    config = str(sqlite_config(tmp_path))
    for name in ("alice", "bob"):
        invoke("--config", config, "create-user", name, "--password-stdin", input="first-pass\n")
    listed = invoke("--config", config, "user", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        "alice\tenabled\tnever logged in",
        "bob\tenabled\tnever logged in",
    ]

    def run_ok(*args: str, input: str | None = None) -> str:
        result = invoke("--config", config, "user", *args, input=input)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "sessions have ended" in run_ok("disable", "bob")
    assert "bob\tdisabled\tnever logged in" in run_ok("list")
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    try:
        with session_factory(engine)() as session:
            assert verify_user(session, "bob", "first-pass") is None
        run_ok("enable", "bob")
        run_ok("reset", "alice", "--password-stdin", input="second-pass\n")
        with session_factory(engine)() as session:
            assert verify_user(session, "bob", "first-pass") is not None
            assert verify_user(session, "alice", "first-pass") is None
            assert verify_user(session, "alice", "second-pass") is not None
    finally:
        engine.dispose()
    assert run_ok("delete", "bob") == "deleted user bob\n"
    assert run_ok("list") == "alice\tenabled\tnever logged in\n"
    assert_clear_error(invoke("--config", config, "user", "delete", "bob"), "no user 'bob'")
    assert_clear_error(invoke("--config", config, "user", "disable", "nobody"), "no user")

    shown = invoke("--config", config, "audit", "--limit", "3")
    assert shown.exit_code == 0, shown.output
    lines = [line.split("\t") for line in shown.stdout.splitlines()]
    assert [(fields[3], fields[4]) for fields in lines] == [
        ("user.delete", "bob"),
        ("user.reset", "alice"),
        ("user.enable", "bob"),
    ]
    assert all(fields[1].startswith("cli:") and fields[2] == "-" for fields in lines)
    everything = invoke("--config", config, "audit").stdout.splitlines()
    assert [line.split("\t")[3] for line in everything][-2:] == ["user.create", "user.create"]


def server_process(config: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sitwatch.server.cli", "--config", str(config), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(8)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def test_ingest_command_stores_and_acks_then_stops_on_sigterm(
    broker: Mosquitto, tmp_path: Path
) -> None:
    client_id = f"ingest-cli-{uuid.uuid4().hex[:6]}"
    config = sqlite_config(
        tmp_path,
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "{client_id}"\n',
    )
    process = server_process(config, "ingest", log=tmp_path / "ingest.log")
    desk = f"desk-{uuid.uuid4().hex[:6]}"
    device = DevicePublisher(broker.host, broker.port, [desk])
    try:
        assert wait_until(lambda: "subscribing" in (tmp_path / "ingest.log").read_text(), 60)
        events = heartbeats(desk, 20)
        device.publish(events)
        assert wait_until(lambda: device.acked >= {e.id for e in events}, 30)
    finally:
        device.close()
        assert stop(process) == 0, (tmp_path / "ingest.log").read_text()
    engine = make_engine(f"sqlite:///{tmp_path}/sw.db")
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(EventRow)) == 20
    finally:
        engine.dispose()


def test_run_serves_the_dashboard_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    pytest.importorskip("sitwatch.server.web.app", reason="the dashboard app is not installed")
    web_port = free_port()
    config = sqlite_config(
        tmp_path,
        f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        f'[web]\nport = {web_port}\nsecret_key = "test-only"\n',
    )
    log = tmp_path / "run.log"
    process = server_process(config, "run", log=log)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        # Generous waits (each ends as soon as it holds): a loaded 2-core machine has taken
        # over 8 s to start the server process.
        wait_until(healthy, 60, "a healthy server", detail=log.read_text, step=0.1)
        assert wait_until(lambda: "cannot reach MQTT broker" in log.read_text(), 30)
        assert process.poll() is None
    finally:
        assert stop(process) == 0, log.read_text()


@pytest.mark.parametrize("key", ["ca_certs", "certfile", "keyfile"])
def test_missing_tls_file_in_the_devices_keys_is_one_clear_line(tmp_path: Path, key: str) -> None:
    """The server reads [mqtt.tls] as a desk does (sitwatch.mqtt), client certificate too."""
    missing = tmp_path / f"{key}.pem"
    config = sqlite_config(tmp_path, f'[mqtt.tls]\n{key} = "{missing}"\n')
    assert_clear_error(
        invoke("--config", str(config), "ingest"),
        f"{config}: mqtt.tls.{key} = '{missing}'",
        "no such file",
    )


@pytest.mark.parametrize("command", ["ingest", "run"])
def test_a_certificate_ssl_cannot_load_is_one_clear_line(tmp_path: Path, command: str) -> None:
    """The file is there (so the start-up check passes) but holds no certificate."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    config = sqlite_config(
        tmp_path, f'[mqtt.tls]\nca_certs = "{garbage}"\n[web]\nsecret_key = "test-only"\n'
    )
    assert_clear_error(invoke("--config", str(config), command), "mqtt.tls: cannot load")


def test_the_older_ca_key_and_the_tls_table_together_are_one_clear_line(tmp_path: Path) -> None:
    body = '[mqtt]\ntls_ca_certs = "/a.pem"\n[mqtt.tls]\nca_certs = "/b.pem"\n'
    assert_clear_error(
        invoke("--config", str(write_config(tmp_path, body)), "init-db"),
        "tls_ca_certs is the older spelling of tls.ca_certs",
    )
