"""``sitwatch-device``: the agent on a Pi, ``--simulate`` anywhere, ``--check`` for a first boot."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from sitwatch import __version__
from sitwatch.clock import ScaledClock, SystemClock
from sitwatch.device.config import DEFAULT_PATH, ConfigError, DeviceConfig, load_config

log = logging.getLogger("sitwatch.device")


def _simulation_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sitwatch-sim"


def _load(config_path: str | None) -> DeviceConfig:
    if config_path is None and DEFAULT_PATH.exists():
        config_path = str(DEFAULT_PATH)
    return load_config(config_path)


def _override(config: DeviceConfig, **changes: object) -> DeviceConfig:
    """Command-line options win over the file; validated like the file."""
    from sitwatch.device.config import parse_config

    data = config.model_dump()
    for dotted, value in changes.items():
        if value is None:
            continue
        table = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            table = table[key]
        table[leaf] = value
    return parse_config(data, where="command line")


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


def _parser() -> argparse.ArgumentParser:
    """argparse (standard library) rather than click: the agent runs for months on a small
    Pi, and click's modules were a megabyte of its resident memory (bench/README.md)."""
    parser = argparse.ArgumentParser(
        prog="sitwatch-device", description="Watch a chair and nudge its user to move."
    )
    parser.add_argument(
        "--config",
        dest="config_path",
        metavar="FILE",
        help=f"TOML config file (default: {DEFAULT_PATH} if it exists, else built-in defaults)",
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="Run without a Pi: mock pins driven from the keyboard.",
    )
    parser.add_argument(
        "--scripted",
        action="store_true",
        help="With --simulate: a scripted day instead of the keyboard.",
    )
    parser.add_argument(
        "--speed",
        type=_ranged(float, 0.01, 10_000),
        default=1.0,
        help="With --simulate: how many times faster than real time (60 = a minute a "
        "second; default 1).",
    )
    parser.add_argument(
        "--check", action="store_true", help="Self-test: LED, buzzer, mat, button and broker."
    )
    parser.add_argument("--data-dir", help="Where the outbox and settings live.")
    parser.add_argument("--device-id", help="Override the device id.")
    parser.add_argument("--mqtt-host", help="Override the broker host.")
    parser.add_argument(
        "--mqtt-port", type=_ranged(int, 1, 65535), help="Override the broker port."
    )
    parser.add_argument(
        "--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO"
    )
    parser.add_argument("--version", action="version", version=f"sitwatch-device {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="[calibrate]")
    calibrate_cmd = commands.add_parser(
        "calibrate",
        help="Two-point calibration of an analog (FSR/Velostat) mat on the MCP3008.",
        description="Two-point calibration of an analog (FSR/Velostat) mat on the MCP3008.",
    )
    calibrate_cmd.add_argument(
        "--samples",
        type=_ranged(int, 3, 1000),
        default=30,
        help="Readings averaged for each of the two points, 10 per second (default 30).",
    )
    return parser


def _fail(message: str) -> NoReturn:
    print(f"sitwatch-device: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    data_dir = args.data_dir
    try:
        config = _load(args.config_path)
        if args.simulate and data_dir is None and args.config_path is None:
            data_dir = str(_simulation_dir())
        config = _override(
            config,
            data_dir=data_dir,
            device_id=args.device_id,
            **{"mqtt.host": args.mqtt_host, "mqtt.port": args.mqtt_port},
        )
    except ConfigError as exc:
        _fail(str(exc))
    if args.command == "calibrate":
        run_calibration(config, args.samples)
        return
    if args.speed != 1.0 and not args.simulate:
        _fail("--speed needs --simulate")
    if args.check:
        from sitwatch.device.selfcheck import run_check

        sys.exit(0 if run_check(config, say=print) else 1)
    try:
        run_agent(config, simulate=args.simulate, scripted=args.scripted, speed=args.speed)
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


def run_calibration(config: DeviceConfig, samples: int) -> None:
    """Two-point calibration of an analog (FSR/Velostat) mat on the MCP3008."""
    from gpiozero import MCP3008

    from sitwatch.device.analog_seat import CalibrationError, calibrate, save_calibration

    pause = threading.Event()
    with MCP3008(channel=config.pins.adc_channel) as adc:
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
    config: DeviceConfig, *, simulate: bool, scripted: bool = False, speed: float = 1.0
) -> None:
    from sitwatch.device.service import DeviceService

    factory = None
    clock = ScaledClock(speed) if simulate else SystemClock()
    if simulate:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        factory = MockFactory(pin_class=MockPWMPin)
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

        start_simulation(service, factory, clock, scripted=scripted, running=running)
    try:
        service.run()
    finally:
        running.clear()
        service.close()
        log.info("sitwatch-device stopped")


if __name__ == "__main__":
    main()
