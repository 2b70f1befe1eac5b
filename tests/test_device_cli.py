"""``sitwatch-device`` as a user runs it: bad configs, the simulator over a real broker."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.waiting import wait_until

from sitwatch.broker import Mosquitto
from sitwatch.device.config import ConfigError, load_config

DEVICE = [sys.executable, "-m", "sitwatch.device.cli"]
# Run a command as an unprivileged user, so that a refused file is refused for real (root
# opens anything).
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run_device(
    *args: str,
    stdin: str = "",
    timeout: float = 30,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), *DEVICE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit code 2 and exactly one line on stderr, "sitwatch-device: ...", holding each
    fragment; returns the line."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sitwatch-device: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_bad_config_names_key_and_value(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text('device_id = "desk 1"\n[tracker]\nsitting_limit_s = "half an hour"\n')
    done = run_device("--config", str(config))
    assert done.returncode == 2
    assert "device_id = 'desk 1'" in done.stderr
    assert "tracker.sitting_limit_s = 'half an hour'" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_that_is_not_toml(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text("[pins\nmat = 17\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(config)
    done = run_device("--config", str(config))
    assert done.returncode == 2 and "not valid TOML" in done.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    done = run_device("--config", str(tmp_path / "nope.toml"))
    assert done.returncode == 2 and "cannot read config file" in done.stderr


@pytest.mark.parametrize("option", [["--speed", "60"], ["--scripted"], ["--person", "snoozes"]])
def test_simulator_options_need_simulate(option: list[str]) -> None:
    done = run_device(*option)
    assert done.returncode == 2
    assert f"{option[0]} goes with the simulate command" in done.stderr
    done = run_device("check", *option)  # a command that has no such option
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_one_command_at_a_time() -> None:
    done = run_device("--simulate", "calibrate")
    assert done.returncode == 2
    assert "choose one command, not calibrate and simulate" in done.stderr


def test_unknown_command_names_the_commands() -> None:
    done = run_device("start")
    assert done.returncode == 2
    assert "invalid choice: 'start' (choose from 'run', 'check', 'simulate', 'calibrate')" in (
        done.stderr
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--simulate", "--speed", "0"], "--speed: 0 is not in the range 0.01..10000"),
        (["simulate", "--speed", "0"], "--speed: 0 is not in the range 0.01..10000"),
        (["simulate", "--person", "nobody"], "--person: invalid choice: 'nobody'"),
        (["check", "--mqtt-port", "http"], "--mqtt-port: 'http' is not a whole number"),
        (["--mqtt-port", "http"], "--mqtt-port: 'http' is not a whole number"),
        (["--mqtt-port", "70000"], "--mqtt-port: 70000 is not in the range 1..65535"),
        (["--log-level", "LOUD"], "--log-level: invalid choice: 'LOUD'"),
        (["calibrate", "--samples", "2"], "--samples: 2 is not in the range 3..1000"),
        (["--device-id", "desk 1"], "device_id = 'desk 1'"),
    ],
)
def test_bad_options_are_clear_errors(args: list[str], said: str) -> None:
    done = run_device(*args)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_commands() -> None:
    """Each command on a line of its own with what it does, not ``[calibrate]``."""
    done = run_device("--help")
    assert done.returncode == 0
    assert "usage: sitwatch-device [OPTIONS] [COMMAND] [COMMAND OPTIONS]" in done.stdout
    listed = done.stdout.split("commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed[:4]] == ["run", "check", "simulate", "calibrate"]
    assert "positional arguments" not in done.stdout and "[calibrate]" not in done.stdout
    for command in ("run", "check", "simulate", "calibrate"):
        own = run_device(command, "--help")
        assert own.returncode == 0 and own.stdout.startswith(f"usage: sitwatch-device {command} ")
        assert "--config FILE" in own.stdout  # the shared options follow a command too
    assert "--scripted" in run_device("simulate", "--help").stdout
    assert "--samples" in run_device("calibrate", "--help").stdout


# What ``--help`` must not import: a second or two on a Pi Zero, for a page of text.
HEAVY_MODULES = (
    "pydantic",
    "sitwatch.device.config",
    "sitwatch.device.simulator",
    "gpiozero",
    "paho",
)


@pytest.mark.parametrize("args", [["--help"], ["simulate", "--help"], ["--mqtt-port", "0"]])
def test_help_and_option_errors_import_no_config_models(args: list[str]) -> None:
    """The parser answers on its own; the config models come in once a command runs."""
    code = (
        "import sys\n"
        "from sitwatch.device.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_scripted_people_are_the_simulators() -> None:
    from sitwatch.device.cli import PEOPLE
    from sitwatch.device.simulator import SCRIPTS

    assert sorted(PEOPLE) == sorted(SCRIPTS)


def test_version() -> None:
    assert run_device("--version").stdout.startswith("sitwatch-device ")


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "{missing}"],  # the systemd unit's line: run is the default
        ["run", "--config", "{missing}"],
        ["--config", "{missing}", "check"],
        ["check", "--config", "{missing}"],
        ["--check", "--config", "{missing}"],  # the first releases' spelling
        ["simulate", "--config", "{missing}"],
    ],
)
def test_options_before_or_after_the_command(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "not-there.toml"
    done = run_device(*(arg.format(missing=missing) for arg in args))
    assert done.returncode == 2
    assert f"cannot read config file {missing}" in done.stderr, done.stderr


@pytest.mark.parametrize("simulate", ["simulate", "--simulate"])  # the command, the old flag
def test_simulator_driven_from_the_keyboard(
    broker: Mosquitto, tmp_path: Path, simulate: str
) -> None:
    # At 1200x a 30-minute limit takes 1.5 s: sit down, wait 8 x 5 min, show status, press.
    script = "s\n" + "w\n" * 8 + "t\nb\n"
    done = subprocess.run(
        [
            *DEVICE,
            simulate,
            "--speed",
            "1200",
            "--data-dir",
            str(tmp_path),
            "--mqtt-port",
            str(broker.port),
            "--log-level",
            "WARNING",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "] seated" in done.stdout, done.stdout + done.stderr
    assert "TIME TO MOVE, level 1, seated 30 min" in done.stdout
    assert "state prompting" in done.stdout
    assert "guided glute circuit started" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------- config values and parts


def write_device_config(path: Path, body: str, data_dir: Path | None = None) -> Path:
    """A device.toml with ``data_dir`` first (tables follow in ``body``)."""
    lines = [f'data_dir = "{data_dir}"'] if data_dir is not None else []
    path.write_text("\n".join([*lines, body]) + "\n", encoding="utf-8")
    return path


def test_binary_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_bytes(b"SQLite format 3\x00\xff\xfe\x00\x01")
    assert_one_line(run_device("--config", str(config)), str(config), "not a TOML file")


@pytest.mark.parametrize("under", ["", "sub"])
def test_data_dir_that_is_a_file_is_one_line(tmp_path: Path, under: str) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder\n")
    data_dir = plain / under if under else plain
    config = write_device_config(tmp_path / "device.toml", "", data_dir)
    assert_one_line(
        run_device("--config", str(config)), str(config), f"data_dir = '{data_dir}'", "file"
    )
    assert_one_line(
        run_device("--data-dir", str(data_dir)), f"--data-dir '{data_dir}'", "not a folder"
    )


def test_missing_tls_ca_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    config = write_device_config(
        tmp_path / "device.toml", f'[mqtt.tls]\nca_certs = "{missing}"', tmp_path / "state"
    )
    for args in ([], ["--check"]):
        assert_one_line(
            run_device("--config", str(config), *args),
            f"{config}: mqtt.tls.ca_certs = '{missing}'",
            "no such file",
        )


def test_analog_mat_before_calibration_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_device_config(
        tmp_path / "device.toml", '[pins]\nmat_kind = "mcp3008"\nfactory = "mock"', state
    )
    assert_one_line(
        run_device("--config", str(config)),
        f"{config}: pins.mat_kind = 'mcp3008'",
        str(state / "calibration.json"),
        "sitwatch-device calibrate",
    )
    (state / "calibration.json").write_text('{"empty": 0.5}')
    assert_one_line(
        run_device("--config", str(config)), "cannot be used", "'occupied'", "calibrate"
    )


def test_pin_clash_names_the_file_and_the_key_it_set(tmp_path: Path) -> None:
    config = write_device_config(tmp_path / "device.toml", "[pins]\nmat = 18")  # led's pin
    line = assert_one_line(
        run_device("--config", str(config)), f"{config}.pins.mat = 18", "pins.led"
    )
    assert "command line" not in line
    config.write_text("[pins]\nmat = 5\nbutton = 5\n")
    assert_one_line(
        run_device("--config", str(config)), f"{config}.pins.button = 5", "used by pins.mat"
    )


LGPIO_MISSING = importlib.util.find_spec("lgpio") is None


@pytest.mark.skipif(not LGPIO_MISSING, reason="lgpio is installed here")
@pytest.mark.parametrize("command", [[], ["--check"], ["calibrate"]])
def test_missing_pin_backend_names_the_extra_to_install(tmp_path: Path, command: list[str]) -> None:
    config = write_device_config(
        tmp_path / "device.toml", '[pins]\nfactory = "lgpio"', tmp_path / "state"
    )
    assert_one_line(
        run_device("--config", str(config), *command),
        f"{config}: pins.factory = 'lgpio'",
        "lgpio package is not installed",
        "pip install 'sitwatch[pi]'",
    )
    # Without the key gpiozero chooses, tries each backend, and fails the same way.
    config = write_device_config(tmp_path / "device.toml", "", tmp_path / "state")
    line = assert_one_line(
        run_device("--config", str(config), *command),
        "no GPIO pin backend works here",
        "pip install 'sitwatch[pi]'",
        "pins.factory",
    )
    assert "Falling back" not in line


def test_unknown_pin_backend_lists_the_names(tmp_path: Path) -> None:
    config = write_device_config(
        tmp_path / "device.toml", '[pins]\nfactory = "lgpoi"', tmp_path / "state"
    )
    assert_one_line(
        run_device("--config", str(config)),
        f"{config}.pins.factory = 'lgpoi'",
        "lgpio, mock, native, pigpio, rpigpio",
    )
    config = write_device_config(tmp_path / "device.toml", "", tmp_path / "state")
    assert_one_line(
        run_device("--config", str(config), env={"GPIOZERO_PIN_FACTORY": "lgpoi"}),
        "GPIOZERO_PIN_FACTORY=lgpoi",
        "unknown pin backend",
    )


@pytest.mark.parametrize(
    ("body", "env"),
    [('[pins]\nfactory = "mock"', {}), ("", {"GPIOZERO_PIN_FACTORY": "mock"})],
    ids=["pins.factory", "GPIOZERO_PIN_FACTORY"],
)
def test_mock_pins_can_be_chosen(
    broker: Mosquitto, tmp_path: Path, body: str, env: dict[str, str]
) -> None:
    """What a systemd test drop-in does without a Pi: the agent runs, on mock pins with
    PWM for the LED, until it is stopped."""
    config = write_device_config(
        tmp_path / "device.toml", f"{body}\n[mqtt]\nport = {broker.port}", tmp_path / "state"
    )
    log = tmp_path / "agent.log"
    with log.open("w") as sink:
        agent = subprocess.Popen(
            [*DEVICE, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        wait_until(lambda: "connected to MQTT broker" in log.read_text(), 30, "the agent")
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


# A pin backend loaded the way gpiozero loads any (an entry point in the
# gpiozero_pin_factories group): it opens its "GPIO chip" as lgpio opens /dev/gpiochip0
# and records the LG_WD it was loaded with.
CHIP_BACKEND = """
import os

from gpiozero.exc import BadPinFactory
from gpiozero.pins.mock import MockFactory, MockPWMPin


class ChipFactory(MockFactory):
    def __init__(self):
        with open(os.environ["SITWATCH_TEST_SEEN"], "w") as seen:
            seen.write(os.environ.get("LG_WD", ""))
        chip = os.environ["SITWATCH_TEST_CHIP"]
        try:
            os.close(os.open(chip, os.O_RDWR))
        except OSError as exc:
            raise BadPinFactory("unable to open the GPIO chip") from exc
        super().__init__(pin_class=MockPWMPin)
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user may read, with the chip backend installed in ``plugins``."""
    root = Path(tempfile.mkdtemp(prefix="sitwatch-test-"))
    try:
        root.chmod(0o755)
        plugins = root / "plugins"
        info = plugins / "sitwatch_test_chip-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: sitwatch-test-chip\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            "[gpiozero_pin_factories]\nchip = sitwatch_test_chip:ChipFactory\n"
        )
        (plugins / "sitwatch_test_chip.py").write_text(CHIP_BACKEND)
        for folder in (plugins, info):
            folder.chmod(0o755)
        yield root
    finally:
        shutil.rmtree(root)


def chip_env(root: Path, chip: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(root / "plugins"),
        "SITWATCH_TEST_CHIP": str(chip),
        "SITWATCH_TEST_SEEN": str(root / "state" / "seen"),
    }


class LgpioError(Exception):
    """lgpio.error's shape: the text in ``value``, ``str()`` its repr, no errno."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __str__(self) -> str:
        return repr(self.value)


def test_lgpio_chip_error_gets_the_os_reason(tmp_path: Path) -> None:
    """lgpio says only 'can not open gpiochip'; the chip is opened again for the reason."""
    from sitwatch.device.hardware import describe_backend_error

    failed = LgpioError("can not open gpiochip")
    said = describe_backend_error(failed, dev=tmp_path)
    assert said == f"can not open gpiochip: there is no {tmp_path}/gpiochip* (not a Raspberry Pi?)"
    (tmp_path / "gpiochip0").mkdir()  # cannot be opened read-write, even by root
    said = describe_backend_error(failed, dev=tmp_path)
    assert said.startswith(f"cannot open {tmp_path}/gpiochip0: Is a directory (add the user")


def test_refused_gpio_chip_says_permission_denied(open_dir: Path) -> None:
    """A chip the user may not open, as on a Pi when the user is not in the gpio group:
    one line with the OS's reason, not a BadPinFactory traceback."""
    chip = open_dir / "gpiochip0"
    chip.write_text("")
    chip.chmod(0o000)
    state = open_dir / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    config = write_device_config(open_dir / "device.toml", '[pins]\nfactory = "chip"', state)
    prefix = AS_NOBODY if os.geteuid() == 0 else []
    for command in ([], ["--check"]):
        done = run_device(
            "--config",
            str(config),
            *command,
            env=chip_env(open_dir, chip),
            cwd=open_dir,
            prefix=prefix,
        )
        assert_one_line(
            done,
            f"{config}: pins.factory = 'chip'",
            f"{chip}: Permission denied",
        )


def test_lgpio_pipe_goes_to_the_data_dir(open_dir: Path, tmp_path: Path) -> None:
    """lgpio makes its .lgd-nfy pipe in $LG_WD, else in the working directory (/tmp for
    many a user, where another user's stale pipe breaks it): the agent points LG_WD at its
    own data_dir before any backend loads, unless LG_WD is set already."""
    state = open_dir / "state"
    config = write_device_config(open_dir / "device.toml", '[pins]\nfactory = "chip"', state)
    env = chip_env(open_dir, open_dir / "no-chip")
    done = run_device("--config", str(config), "--check", env=env, cwd=tmp_path)
    assert_one_line(done, "No such file or directory")
    assert (state / "seen").read_text() == str(state)
    done = run_device("--config", str(config), env={**env, "LG_WD": str(tmp_path)})
    assert_one_line(done, "No such file or directory")
    assert (state / "seen").read_text() == str(tmp_path)


@pytest.mark.skipif(LGPIO_MISSING, reason="needs the real lgpio (the pi extra)")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to leave a pipe of another user")
def test_stale_lgpio_pipe_of_another_user_is_harmless(open_dir: Path) -> None:
    """The real lgpio: a .lgd-nfy0 left by root in a shared working directory made a
    bare `import lgpio` fail for every other user ("xCreatePipe: Can't set permissions")."""
    shared = open_dir / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    os.mkfifo(shared / ".lgd-nfy0", 0o664)
    state = open_dir / "state"
    state.mkdir()
    state.chmod(0o777)
    config = write_device_config(open_dir / "device.toml", '[pins]\nfactory = "lgpio"', state)
    done = run_device("--config", str(config), "--check", cwd=shared, prefix=AS_NOBODY)
    assert "xCreatePipe" not in done.stderr and ".lgd-nfy" not in done.stderr, done.stderr
    assert (state / ".lgd-nfy0").exists()
