"""``sitwatch-device`` as a user runs it: bad configs, the simulator over a real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sitwatch.broker import Mosquitto
from sitwatch.device.config import ConfigError, load_config

DEVICE = [sys.executable, "-m", "sitwatch.device.cli"]


def run_device(
    *args: str, stdin: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEVICE, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


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


def test_speed_needs_simulate() -> None:
    done = run_device("--speed", "60")
    assert done.returncode == 2 and "--speed needs --simulate" in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--simulate", "--speed", "0"], "--speed: 0 is not in the range 0.01..10000"),
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


def test_help_and_version() -> None:
    done = run_device("--help")
    assert done.returncode == 0
    assert "--simulate" in done.stdout and "calibrate" in done.stdout
    assert run_device("--version").stdout.startswith("sitwatch-device ")


def test_simulator_driven_from_the_keyboard(broker: Mosquitto, tmp_path: Path) -> None:
    # At 1200x a 30-minute limit takes 1.5 s: sit down, wait 8 x 5 min, show status, press.
    script = "s\n" + "w\n" * 8 + "t\nb\n"
    done = subprocess.run(
        [
            *DEVICE,
            "--simulate",
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
