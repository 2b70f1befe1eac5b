"""``sitwatch-device``: ``run`` the agent on a Pi, ``simulate`` it anywhere, ``check`` the
wiring on a first boot, ``calibrate`` an analog mat."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sitwatch import __version__
from sitwatch.device import DEFAULT_CONFIG_PATH as DEFAULT_PATH

# ``--help`` and option errors import nothing more: the config models (pydantic), the
# simulator and gpiozero are imported once a command runs (a second on a Pi Zero).
if TYPE_CHECKING:
    from sitwatch.device.config import DeviceConfig

log = logging.getLogger("sitwatch.device")
# The command-line options that set a config key, so an error names what the user typed.
OPTIONS = {
    "data_dir": "--data-dir",
    "device_id": "--device-id",
    "mqtt.host": "--mqtt-host",
    "mqtt.port": "--mqtt-port",
}


def _simulation_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sitwatch-sim"


class Settings:
    """The config and where each of its values came from: the file, an option, or the
    built-in default."""

    def __init__(self, config_path: str | None) -> None:
        from sitwatch.device.config import parse_config, read_config_file

        if config_path is None and DEFAULT_PATH.exists():
            config_path = str(DEFAULT_PATH)
        self.path = None if config_path is None else Path(config_path)
        self.given: dict[str, Any] = {}
        if self.path is not None:
            self.given = read_config_file(self.path)
        self.config = parse_config(self.given, where=str(self.path or "config"))
        self.options: set[str] = set()

    def override(self, **changes: object) -> None:
        """Command-line options win over the file; validated like the file."""
        from sitwatch.device.config import parse_config

        # Only what was set: the defaults come back, and mqtt.hosts is not met by a host.
        data = self.config.model_dump(exclude_unset=True)
        for dotted, value in changes.items():
            if value is None:
                continue
            table = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                table = table.setdefault(key, {})
            table[leaf] = value
            if dotted == "mqtt.host":  # --mqtt-host names the one broker instead of a list
                table.pop("hosts", None)
            self.options.add(dotted)
        self.config = parse_config(data, where="command line")

    def _in_file(self, dotted: str) -> bool:
        table: Any = self.given
        for key in dotted.split("."):
            if not isinstance(table, dict) or key not in table:
                return False
            table = table[key]
        return True

    def setting(self, dotted: str, value: object) -> str:
        """``dotted = value`` with where it was set, e.g. "/etc/sitwatch/device.toml:
        data_dir = '/x'", "--data-dir '/x'" or "data_dir = '/x' (the default)"."""
        if dotted in self.options and dotted in OPTIONS:
            return f"{OPTIONS[dotted]} {value!r}"
        if self.path is not None and self._in_file(dotted):
            return f"{self.path}: {dotted} = {value!r}"
        return f"{dotted} = {value!r} (the default)"

    def where(self, dotted: str) -> str:
        """The file for a key set there, else "" (for messages that name the key)."""
        return f"{self.path}: " if self.path is not None and self._in_file(dotted) else ""


def _ranged(kind: type[float] | type[int], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in the range {low}..{high}")
        return value

    return parse


# The options every command takes, and their values when not given.
COMMON_DEFAULTS: dict[str, Any] = {
    "config_path": None,
    "data_dir": None,
    "device_id": None,
    "mqtt_host": None,
    "mqtt_port": None,
    "log_level": "INFO",
}
# Flags of the first releases, still taken: ``--check`` is ``check``, ``--simulate`` is
# ``simulate`` (with ``--scripted`` and ``--speed`` before or after it).
OLD_COMMAND_FLAGS = {"check": "check", "simulate": "simulate"}


def _common_options() -> argparse.ArgumentParser:
    """Options taken before a command's name and after it (``--config F check`` and
    ``check --config F``). Their default is SUPPRESS, so that a command's own parser does
    not overwrite with a default what was given before its name."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config",
        dest="config_path",
        metavar="FILE",
        help=f"TOML config file (default: {DEFAULT_PATH} if it exists, else built-in defaults)",
    )
    common.add_argument("--data-dir", help="Where the outbox and settings live.")
    common.add_argument("--device-id", help="Override the device id.")
    common.add_argument("--mqtt-host", metavar="HOST", help="Override the broker host.")
    common.add_argument(
        "--mqtt-port", metavar="PORT", type=_ranged(int, 1, 65535), help="Override the broker port."
    )
    common.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Default INFO."
    )
    return common


# The simulator's scripted people (the keys of sitwatch.device.simulator.SCRIPTS, which a
# test holds to this list): named here so that --help need not import the simulator.
PEOPLE = ("answers", "odd-hours", "snoozes")


def _simulate_options(parser: argparse.ArgumentParser, shown: bool = True) -> None:
    def say(text: str) -> str:
        return text if shown else argparse.SUPPRESS

    parser.add_argument(
        "--scripted",
        action="store_true",
        help=say("A scripted person sits at the desk instead of you at the keyboard."),
    )
    parser.add_argument(
        "--person",
        choices=PEOPLE,
        help=say("With --scripted: who (default answers: answers every nudge with a drill)."),
    )
    parser.add_argument(
        "--speed",
        type=_ranged(float, 0.01, 10_000),
        help=say(
            "How many times faster than real time (60 = a minute a second; default 1), for "
            "a desk on its own: one that joins a server should keep real time."
        ),
    )


# name: what it does, one line (``sitwatch-device --help`` lists them).
COMMANDS = {
    "run": "the agent on this Pi's pins (the default; what the systemd unit runs)",
    "check": "self-test: LED, buzzer, mat, button and broker, one line each",
    "simulate": "the agent without a Pi, on mock pins: from the keyboard, or --scripted",
    "calibrate": "two-point calibration of an analog (FSR/Velostat) mat on an MCP3008",
}
COMMAND_HELP = {
    "check": "Self-test, one line per step: LED, buzzer, mat, button and broker. Stop the "
    "service first (sudo systemctl stop sitwatch-device): the pins can be claimed only once.",
    "simulate": "The agent without a Pi, on gpiozero's mock pins: you sit and press from the "
    "keyboard, or a scripted person does (--scripted).",
}


def _parser() -> argparse.ArgumentParser:
    """argparse (standard library) rather than click: the agent runs for months on a small
    Pi, and click's modules were a megabyte of its resident memory (bench/README.md)."""
    common = _common_options()
    listing = "\n".join(f"  {name:<11}{summary}" for name, summary in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="sitwatch-device",
        usage="%(prog)s [OPTIONS] [COMMAND] [COMMAND OPTIONS]",
        description="Watch a chair and nudge its user to move.",
        epilog=f"commands:\n{listing}\n\nThe options above may also follow the command's "
        "name.\n'sitwatch-device COMMAND --help' shows a command's own options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"sitwatch-device {__version__}")
    for flag in OLD_COMMAND_FLAGS:
        parser.add_argument(f"--{flag}", action="store_true", help=argparse.SUPPRESS)
    _simulate_options(parser, shown=False)
    # Listed in the epilog: argparse's own listing puts a bare "COMMAND" line above them.
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help=argparse.SUPPRESS, prog="sitwatch-device"
    )
    made = {
        name: commands.add_parser(
            name,
            help=summary,
            description=COMMAND_HELP.get(name, summary[0].upper() + summary[1:] + "."),
            parents=[common],
            argument_default=argparse.SUPPRESS,
        )
        for name, summary in COMMANDS.items()
    }
    _simulate_options(made["simulate"])
    made["calibrate"].add_argument(
        "--samples",
        type=_ranged(int, 3, 1000),
        default=30,
        help="Readings averaged for each of the two points, 10 per second (default 30).",
    )
    return parser


def _fail(message: str) -> NoReturn:
    """One line on stderr (a list of problems is joined with "; "), exit code 2."""
    lines = [" ".join(line.split()) for line in message.splitlines() if line.strip()]
    head, rest = (lines[0], lines[1:]) if lines else ("failed", [])
    if rest:
        head = f"{head} {'; '.join(rest)}" if head.endswith(":") else "; ".join([head, *rest])
    print(f"sitwatch-device: {head}", file=sys.stderr)
    sys.exit(2)


def _command(args: argparse.Namespace) -> str:
    """The command to run: the one named, else an old flag's, else ``run``."""
    flagged = [name for flag, name in OLD_COMMAND_FLAGS.items() if getattr(args, flag, False)]
    named = [args.command] if args.command else []
    chosen = set(named + flagged)
    if len(chosen) > 1:
        _fail(f"choose one command, not {' and '.join(sorted(chosen))}")
    command = chosen.pop() if chosen else "run"
    if command != "simulate":
        for option in ("scripted", "person", "speed"):
            if hasattr(args, option):
                _fail(f"--{option} goes with the simulate command")
    return command


def _prepare_data_dir(settings: Settings) -> DeviceConfig:
    """Create data_dir, or fail naming it; returns the config with data_dir absolute, since
    lgpio changes the working directory when it loads."""
    config = settings.config
    path = config.data_path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        why = "it is a file, not a folder"
    except NotADirectoryError:
        why = "part of the path is a file, not a folder"
    except OSError as exc:
        why = f"cannot create it: {exc.strerror}"
    else:
        if os.access(path, os.W_OK | os.X_OK):
            return config.model_copy(update={"data_dir": str(path.absolute())})
        why = "this user cannot write there"
    _fail(
        f"{settings.setting('data_dir', config.data_dir)}: {why} "
        "(data_dir in the config or --data-dir sets another folder)"
    )


def _check_calibration(settings: Settings, config: DeviceConfig) -> None:
    """An analog mat needs its calibration before the agent can tell a sitter."""
    from sitwatch.device.analog_seat import CalibrationError, read_calibration

    if config.pins.mat_kind != "mcp3008":
        return
    path = config.calibration_path
    try:
        read_calibration(path)
    except FileNotFoundError:
        why = f"{path} does not exist: run `sitwatch-device calibrate` first"
    except CalibrationError as exc:
        why = f"{path} cannot be used ({exc}): run `sitwatch-device calibrate` again"
    else:
        return
    _fail(f"{settings.setting('pins.mat_kind', 'mcp3008')} needs a calibration, and {why}")


def _open_pins(settings: Settings, config: DeviceConfig, *, simulate: bool) -> Any:
    from sitwatch.device.hardware import HardwareError, open_pin_factory

    name = "mock" if simulate else config.pins.factory
    try:
        return open_pin_factory(name, work_dir=config.data_path)
    except HardwareError as exc:
        _fail(f"{settings.where(exc.key) if exc.key else ''}{exc}")


def main(argv: list[str] | None = None) -> None:
    parsed = _parser().parse_args(argv)
    from sitwatch.device.config import ConfigError, missing_files

    args = argparse.Namespace(**{**COMMON_DEFAULTS, "command": None, **vars(parsed)})
    command = _command(args)
    simulate = command == "simulate"
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    data_dir = args.data_dir
    try:
        settings = Settings(args.config_path)
        if simulate and data_dir is None and settings.path is None:
            data_dir = str(_simulation_dir())
        settings.override(
            data_dir=data_dir,
            device_id=args.device_id,
            **{"mqtt.host": args.mqtt_host, "mqtt.port": args.mqtt_port},
        )
    except ConfigError as exc:
        _fail(str(exc))
    if args.data_dir is None:  # the simulator's own folder is a default, not an option
        settings.options.discard("data_dir")
    # Everything a user can fix is checked before the first log line, so that a failed
    # start says one thing.
    if command != "calibrate":  # calibrating needs no broker
        problems = missing_files(settings.config)
        if problems:
            _fail("\n".join(f"{settings.setting(k, v)}: {why}" for k, v, why in problems))
    config = _prepare_data_dir(settings)
    if command in ("run", "simulate"):
        _check_calibration(settings, config)
    from sitwatch.device.hardware import HardwareError

    factory = _open_pins(settings, config, simulate=simulate)
    try:
        if command == "calibrate":
            run_calibration(config, args.samples, pin_factory=factory)
        elif command == "check":
            from sitwatch.device.selfcheck import run_check

            sys.exit(0 if run_check(config, pin_factory=factory, say=print) else 1)
        else:
            run_agent(
                config,
                pin_factory=factory,
                simulate=simulate,
                scripted=getattr(args, "scripted", False),
                speed=getattr(args, "speed", 1.0),
                person=getattr(args, "person", "answers"),
            )
    except HardwareError as exc:  # e.g. "pins.mat = 17: GPIO busy (...)"
        _fail(f"{settings.where(exc.key) if exc.key else ''}{exc}")
    except ConfigError as exc:  # e.g. "mqtt.tls: cannot load certificates: ..."
        _fail(f"{settings.path}: {exc}" if settings.path else str(exc))
    except PermissionError as exc:
        _fail(
            f"cannot write {exc.filename}: permission denied "
            "(set data_dir in the config or use --data-dir)"
        )


def _ask(message: str) -> None:
    """Show ``message`` and wait for Enter."""
    try:
        input(f"{message} ")
    except EOFError:
        _fail("calibration cancelled (end of input)")


def run_calibration(config: DeviceConfig, samples: int, *, pin_factory: Any = None) -> None:
    """Two-point calibration of an analog (FSR/Velostat) mat on the MCP3008."""
    from gpiozero import MCP3008

    from sitwatch.device.analog_seat import CalibrationError, calibrate, save_calibration
    from sitwatch.device.hardware import claim

    pause = threading.Event()
    channel = config.pins.adc_channel
    with claim("adc_channel", MCP3008, channel, pin_factory=pin_factory) as adc:
        try:
            result = calibrate(
                lambda: float(adc.value), _ask, samples=samples, pause=lambda: pause.wait(0.1)
            )
        except CalibrationError as exc:
            _fail(f"calibration failed: {exc}")
    config.data_path.mkdir(parents=True, exist_ok=True)
    save_calibration(config.calibration_path, result)
    analog = config.analog
    on_at = result.reading_at(analog.trigger_fraction)
    off_below = result.reading_at(analog.trigger_fraction - analog.hysteresis)
    print(
        f"saved {config.calibration_path}: empty {result.empty:.3f}, occupied "
        f"{result.occupied:.3f}; seated from {on_at:.3f}, empty again past {off_below:.3f}"
    )
    if config.pins.mat_kind != "mcp3008":
        print('set mat_kind = "mcp3008" under [pins] in the config to use it')


def run_agent(
    config: DeviceConfig,
    *,
    pin_factory: Any,
    simulate: bool,
    scripted: bool = False,
    speed: float = 1.0,
    person: str = "answers",
) -> None:
    """The agent on ``pin_factory`` (a MockFactory when ``simulate``)."""
    from sitwatch.clock import ScaledClock, SystemClock
    from sitwatch.device.service import DeviceService

    factory = pin_factory
    # At speed 1 (the demo's desks, a desk joining a server) the real clocks, as on a Pi.
    clock = ScaledClock(speed) if simulate and speed != 1.0 else SystemClock()
    log.info(
        "sitwatch-device %s starting as %r, data in %s",
        __version__,
        config.device_id,
        config.data_dir,
    )
    service = DeviceService(config, clock, pin_factory=factory)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: service.stop())
    service.start()
    running = threading.Event()
    running.set()
    if simulate:
        from sitwatch.device.simulator import start_simulation

        start_simulation(service, factory, clock, scripted=scripted, running=running, person=person)
    try:
        service.run()
    finally:
        running.clear()
        service.close()
        log.info("sitwatch-device stopped")


if __name__ == "__main__":
    main()
