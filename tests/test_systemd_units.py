"""Deployment files agree with the code: systemd units, example configs, the wiring docs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sitwatch.device.config import DeviceConfig, PinsConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD_DIR = ROOT / "systemd"
UNITS = sorted(SYSTEMD_DIR.glob("*.service"))
TIMERS = sorted(SYSTEMD_DIR.glob("*.timer"))
VENV_BIN = "/opt/sitwatch/venv/bin/"
STATE_DIR = "/var/lib/sitwatch"

# BCM GPIO number -> physical pin on the 40-pin header (the same on every model with one).
BCM_TO_HEADER = {
    0: 27, 1: 28, 2: 3, 3: 5, 4: 7, 5: 29, 6: 31, 7: 26, 8: 24, 9: 21, 10: 19, 11: 23,
    12: 32, 13: 33, 14: 8, 15: 10, 16: 36, 17: 11, 18: 12, 19: 35, 20: 38, 21: 40,
    22: 15, 23: 16, 24: 18, 25: 22, 26: 37, 27: 13,
}  # fmt: skip

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> key -> every value in file order. systemd allows a key to repeat (and
    an empty value to reset a list), which configparser does not, hence this parser."""
    sections: Unit = {}
    current: str | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, {})
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise ValueError(f"line {number}: not 'Key=value' inside a section: {raw!r}")
        sections[current].setdefault(key.strip(), []).append(value.strip())
    return sections


def load_unit(path: Path) -> Unit:
    return parse_unit(path.read_text(encoding="utf-8"))


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set exactly once, got {values}"
    return values[0]


def words(unit: Unit, section: str, key: str) -> list[str]:
    """All space-separated items of a list setting, honouring empty-value resets."""
    items: list[str] = []
    for value in unit.get(section, {}).get(key, []):
        if value == "":
            items = []
        items.extend(shlex.split(value))
    return items


def is_true(value: str) -> bool:
    return value.lower() in ("1", "yes", "true", "on")


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?", value)
    assert match, f"not a simple time span: {value!r}"
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60}[unit]


def project_scripts() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["scripts"]


def exec_start(unit: Unit) -> list[str]:
    return shlex.split(one(unit, "Service", "ExecStart"))


def unit_id(path: Path) -> str:
    return path.name


# ---------------------------------------------------------------- the unit files


def test_device_and_server_units_exist() -> None:
    names = {path.name for path in UNITS}
    assert {"sitwatch-device.service", "sitwatch-server.service"} <= names


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_unit_restarts_on_failure_with_a_start_limit(path: Path) -> None:
    unit = load_unit(path)
    assert one(unit, "Service", "Restart") == "on-failure"
    assert seconds(one(unit, "Service", "RestartSec")) > 0
    # The start limit belongs in [Unit]; in [Service] systemd ignores it with a warning.
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 1
    assert seconds(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    for key in ("StartLimitBurst", "StartLimitIntervalSec", "StartLimitInterval"):
        assert key not in unit["Service"], f"{key}= belongs in [Unit]"


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_unit_runs_as_the_sitwatch_user(path: Path) -> None:
    unit = load_unit(path)
    assert one(unit, "Service", "User") == "sitwatch"
    assert one(unit, "Service", "Group") == "sitwatch"
    assert not is_true(unit["Service"].get("DynamicUser", ["no"])[-1])


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_unit_is_hardened(path: Path) -> None:
    unit = load_unit(path)
    assert one(unit, "Service", "ProtectSystem") == "strict"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert is_true(one(unit, "Service", key)), f"{key}= should be yes"
    assert one(unit, "Service", "StateDirectory") == "sitwatch"
    assert one(unit, "Service", "ConfigurationDirectory") == "sitwatch"
    writable = [item.lstrip("-+") for item in words(unit, "Service", "ReadWritePaths")]
    assert STATE_DIR in writable


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_unit_starts_after_the_network_is_up(path: Path) -> None:
    unit = load_unit(path)
    assert "network-online.target" in words(unit, "Unit", "After")
    assert "network-online.target" in words(unit, "Unit", "Wants")
    if not path.with_suffix(".timer").exists():  # a timer's service is started by it alone
        assert "multi-user.target" in words(unit, "Install", "WantedBy")


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_unit_logs_unbuffered_to_the_journal(path: Path) -> None:
    unit = load_unit(path)
    assert "PYTHONUNBUFFERED=1" in words(unit, "Service", "Environment")
    for key in ("StandardOutput", "StandardError"):
        for value in unit["Service"].get(key, []):
            assert value in ("journal", "inherit"), f"{key}={value} bypasses the journal"


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_exec_start_names_an_installed_console_script(path: Path) -> None:
    argv = exec_start(load_unit(path))
    assert argv[0].startswith(VENV_BIN), f"{argv[0]} is not in the venv {VENV_BIN}"
    script = argv[0].removeprefix(VENV_BIN)
    assert script in project_scripts(), f"{script} is not in pyproject [project.scripts]"
    assert "--config" in argv
    config = argv[argv.index("--config") + 1]
    assert config.startswith("/etc/sitwatch/") and config.endswith(".toml")
    # The example shipped for that config file exists under the same name.
    assert (ROOT / "examples" / Path(config).name).is_file()
    if script == "sitwatch-server":
        assert argv[1] in ("run", "ingest", "web", "prune"), f"unknown sub-command {argv[1]}"
    if script == "sitwatch-device":
        assert config == "/etc/sitwatch/device.toml"


@pytest.mark.parametrize("path", UNITS, ids=unit_id)
def test_exec_start_parses_and_reads_the_named_config(path: Path, tmp_path: Path) -> None:
    """The unit's own command line, run by the real CLI with the config path swapped for a
    missing file: the program must get as far as reading that file (a misplaced option
    would stop it at the argument parser instead)."""
    import sys

    argv = exec_start(load_unit(path))
    script = Path(sys.executable).with_name(argv[0].removeprefix(VENV_BIN))
    missing = tmp_path / "not-there.toml"
    args = [str(missing) if arg.startswith("/etc/sitwatch/") else arg for arg in argv[1:]]
    result = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "No such option" not in result.stderr and "usage:" not in result.stderr.lower()
    assert f"cannot read config file {missing}" in result.stderr, result.stderr


def test_device_unit_can_reach_the_gpio_chips() -> None:
    unit = load_unit(SYSTEMD_DIR / "sitwatch-device.service")
    assert "gpio" in words(unit, "Service", "SupplementaryGroups")
    assert not is_true(unit["Service"].get("PrivateDevices", ["no"])[-1]), (
        "PrivateDevices=yes hides /dev/gpiochip*"
    )
    policy = unit["Service"].get("DevicePolicy", ["auto"])[-1]
    allowed = [value.split()[0] for value in unit["Service"].get("DeviceAllow", [])]
    if policy != "auto" or allowed:
        # The Pi 5 header is gpiochip4 on older kernels and gpiochip0 on newer ones.
        every_chip = {"/dev/gpiochip0", "/dev/gpiochip4"} <= set(allowed)
        assert "char-gpiochip" in allowed or every_chip, f"DeviceAllow= {allowed} misses GPIO"


def test_device_unit_gives_lgpio_a_writable_working_directory() -> None:
    """lgpio creates its notification pipe in $LG_WD or the working directory; under
    ProtectSystem=strict that must be one of the unit's own writable directories."""
    unit = load_unit(SYSTEMD_DIR / "sitwatch-device.service")
    env = dict(item.split("=", 1) for item in words(unit, "Service", "Environment"))
    writable = {f"/run/{name}" for name in words(unit, "Service", "RuntimeDirectory")}
    writable |= {f"/var/lib/{name}" for name in words(unit, "Service", "StateDirectory")}
    assert env.get("LG_WD") in writable
    assert one(unit, "Service", "WorkingDirectory") in writable


def test_server_arrangements_exclude_each_other() -> None:
    """sitwatch-server (one process) and sitwatch-ingest + sitwatch-web (two) must not run
    side by side: both would consume the same MQTT events and bind the same port."""
    names = ("sitwatch-ingest", "sitwatch-web")
    split = [name for name in names if (SYSTEMD_DIR / f"{name}.service").exists()]
    if not split:
        pytest.skip("no split server units")
    combined = load_unit(SYSTEMD_DIR / "sitwatch-server.service")
    for name in split:
        unit = load_unit(SYSTEMD_DIR / f"{name}.service")
        assert f"{name}.service" in words(combined, "Unit", "Conflicts")
        assert "sitwatch-server.service" in words(unit, "Unit", "Conflicts")


def test_retention_runs_daily_from_a_timer() -> None:
    """Raw events past [privacy] keep_events_days go once a day (docs/privacy.md), also after
    a day the server was off."""
    timer = load_unit(SYSTEMD_DIR / "sitwatch-prune.timer")
    service = load_unit(SYSTEMD_DIR / "sitwatch-prune.service")
    assert one(timer, "Timer", "OnCalendar").endswith("03:15:00")
    assert is_true(one(timer, "Timer", "Persistent"))
    assert "timers.target" in words(timer, "Install", "WantedBy")
    assert one(service, "Service", "Type") == "oneshot"
    assert exec_start(service)[1] == "prune"
    assert "Install" not in service  # started by the timer only


# ---------------------------------------------------------------- systemd-analyze verify

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)
# Expected on a build machine: the venv and the sitwatch user exist only on the target.
TOLERATED = [
    re.compile(r"Command /opt/sitwatch/venv/bin/[\w.-]+ is not executable: No such file"),
    re.compile(r"(user|group)\W+(sitwatch|gpio)\W.*(not found|does not exist|No such)", re.I),
    re.compile(r"Failed to resolve (user|group) .?(sitwatch|gpio)", re.I),
]


def verify_problems(path: Path) -> list[str]:
    """Lines of `systemd-analyze verify` about this unit that are not tolerated above."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # A template (name@.service) is verified as an instance of it (name@i.service).
    name = path.name.split("@")[0] + "@" if "@" in path.name else path.name
    ours = [line for line in lines if name in line or str(path) in line]
    problems = [line for line in ours if not any(p.search(line) for p in TOLERATED)]
    if result.returncode != 0 and not problems and len(ours) == 0:
        problems = [f"exit {result.returncode} without a message about {path.name}: {lines}"]
    return problems


@needs_systemd_analyze
@pytest.mark.parametrize("path", UNITS + TIMERS, ids=unit_id)
def test_systemd_analyze_verify_accepts_the_unit(path: Path) -> None:
    assert verify_problems(path) == []


@needs_systemd_analyze
def test_systemd_analyze_check_catches_a_misspelt_directive(tmp_path: Path) -> None:
    """The tolerance above must not hide real mistakes."""
    source = (SYSTEMD_DIR / "sitwatch-device.service").read_text(encoding="utf-8")
    broken = tmp_path / "sitwatch-device.service"
    broken.write_text(
        source.replace("ProtectSystem=strict", "ProtectSytem=strict")
        + "\n[Instal]\nWantedBy=multi-user.target\n",
        encoding="utf-8",
    )
    problems = verify_problems(broken)
    assert any("ProtectSytem" in line for line in problems), problems
    assert any("Instal" in line for line in problems), problems


def test_unit_parser_keeps_repeated_keys_and_resets() -> None:
    unit = parse_unit(
        "[Service]\nEnvironment=A=1\nEnvironment=B=2 \\\n  C=3\n"
        "CapabilityBoundingSet=CAP_CHOWN\nCapabilityBoundingSet=\n"
    )
    assert words(unit, "Service", "Environment") == ["A=1", "B=2", "C=3"]
    assert words(unit, "Service", "CapabilityBoundingSet") == []


# ---------------------------------------------------------------- examples and hardware docs


def test_device_example_config_loads_with_the_default_pins() -> None:
    config = load_config(ROOT / "examples" / "device.toml")
    assert config.pins == DeviceConfig().pins
    assert config.data_dir == STATE_DIR


def test_server_example_config_is_valid_toml() -> None:
    # Only the syntax: the server's own loader owns the schema and tests it.
    data = tomllib.loads((ROOT / "examples" / "server.toml").read_text(encoding="utf-8"))
    assert data["database"]["url"].startswith("sqlite:////var/lib/sitwatch/")


def pin_fields() -> list[str]:
    """The PinsConfig fields that hold a BCM number (mat, button, buzzer, led), known by the
    description config.py gives them (other int fields, such as an ADC channel, are not)."""
    fields = PinsConfig.model_fields.items()
    return [name for name, field in fields if field.description == "BCM GPIO number"]


def readme_pin_table() -> dict[str, tuple[int, int]]:
    """config key -> (BCM, header pin) from the table in hardware/README.md."""
    lines = (ROOT / "hardware" / "README.md").read_text(encoding="utf-8").splitlines()
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in lines
        if line.lstrip().startswith("|")
    ]
    for index, header in enumerate(rows):
        if {"Config key", "BCM", "Header pin"} <= set(header):
            key_col, bcm_col = header.index("Config key"), header.index("BCM")
            pin_col = header.index("Header pin")
            table: dict[str, tuple[int, int]] = {}
            for row in rows[index + 2 :]:
                if len(row) != len(header) or not row[key_col].startswith("pins."):
                    break
                table[row[key_col].removeprefix("pins.")] = (int(row[bcm_col]), int(row[pin_col]))
            return table
    raise AssertionError("no table with 'Config key', 'BCM' and 'Header pin' columns")


def test_hardware_pin_table_matches_the_config_defaults() -> None:
    defaults = DeviceConfig().pins
    table = readme_pin_table()
    assert {"mat", "button", "buzzer", "led"} <= set(pin_fields())
    assert sorted(table) == sorted(pin_fields())
    for name, (bcm, header_pin) in table.items():
        assert bcm == getattr(defaults, name), f"pins.{name}: README says BCM{bcm}"
        assert header_pin == BCM_TO_HEADER[bcm], f"BCM{bcm} is header pin {BCM_TO_HEADER[bcm]}"


def test_wiring_diagram_is_well_formed_and_names_every_default_pin() -> None:
    source = (ROOT / "hardware" / "wiring.svg").read_text(encoding="utf-8")
    root = ET.fromstring(source)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join(" ".join(element.itertext()) for element in root.iter())
    defaults = DeviceConfig().pins
    for name in pin_fields():
        bcm = getattr(defaults, name)
        assert re.search(rf"\bBCM{bcm}\b", text), f"wiring.svg does not mention BCM{bcm}"
        header_pin = BCM_TO_HEADER[bcm]
        shown = re.search(rf"\bpin {header_pin}\b|>{header_pin}<", source)
        assert shown, f"wiring.svg does not show header pin {header_pin} (BCM{bcm})"


def test_deploy_guide_lists_every_environment_override() -> None:
    from sitwatch.server.config import ENV_OVERRIDES

    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert [name for name in ENV_OVERRIDES if f"`{name}`" not in guide] == []


def test_ingest_template_names_each_instance_in_one_share_group() -> None:
    unit = load_unit(SYSTEMD_DIR / "sitwatch-ingest@.service")
    env = dict(item.split("=", 1) for item in words(unit, "Service", "Environment"))
    assert "%i" in env["SITWATCH_MQTT_CLIENT_ID"]
    assert "%i" not in env["SITWATCH_MQTT_SHARE_GROUP"]
    assert exec_start(unit)[1] == "ingest"
    assert {"sitwatch-server.service", "sitwatch-ingest.service"} <= set(
        words(unit, "Unit", "Conflicts")
    )
