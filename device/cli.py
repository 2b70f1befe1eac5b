"""``sitwatch-device``: the agent on a Pi, ``--simulate`` anywhere, ``--check`` for a first boot."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

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


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help=f"TOML config file (default: {DEFAULT_PATH} if it exists, else built-in defaults)",
)
@click.option(
    "--simulate", is_flag=True, help="Run without a Pi: mock pins driven from the keyboard."
)
@click.option(
    "--scripted", is_flag=True, help="With --simulate: a scripted day instead of the keyboard."
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.01, max=10_000),
    default=1.0,
    show_default=True,
    help="With --simulate: how many times faster than real time (60 = a minute a second).",
)
@click.option("--check", is_flag=True, help="Self-test: LED, buzzer, mat, button and broker.")
@click.option(
    "--data-dir", type=click.Path(file_okay=False), help="Where the outbox and settings live."
)
@click.option("--device-id", help="Override the device id.")
@click.option("--mqtt-host", help="Override the broker host.")
@click.option("--mqtt-port", type=int, help="Override the broker port.")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default="INFO"
)
@click.version_option(__version__, prog_name="sitwatch-device")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    simulate: bool,
    scripted: bool,
    speed: float,
    check: bool,
    data_dir: str | None,
    device_id: str | None,
    mqtt_host: str | None,
    mqtt_port: int | None,
    log_level: str,
) -> None:
    """Watch a chair and nudge its user to move."""
    logging.basicConfig(
        level=log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = _load(config_path)
        if simulate and data_dir is None and config_path is None:
            data_dir = str(_simulation_dir())
        config = _override(
            config,
            data_dir=data_dir,
            device_id=device_id,
            **{"mqtt.host": mqtt_host, "mqtt.port": mqtt_port},
        )
    except ConfigError as exc:
        click.echo(f"sitwatch-device: {exc}", err=True)
        sys.exit(2)
    if ctx.invoked_subcommand is not None:
        ctx.obj = config
        return
    if speed != 1.0 and not simulate:
        click.echo("sitwatch-device: --speed needs --simulate", err=True)
        sys.exit(2)
    if check:
        from sitwatch.device.selfcheck import run_check

        sys.exit(0 if run_check(config, say=click.echo) else 1)
    try:
        run_agent(config, simulate=simulate, scripted=scripted, speed=speed)
    except PermissionError as exc:
        click.echo(
            f"sitwatch-device: cannot write {exc.filename}: permission denied "
            "(set data_dir in the config or use --data-dir)",
            err=True,
        )
        sys.exit(2)


@main.command()
@click.option(
    "--samples",
    type=click.IntRange(3, 1000),
    default=30,
    show_default=True,
    help="Readings averaged for each of the two points (10 per second).",
)
@click.pass_obj
def calibrate(config: DeviceConfig, samples: int) -> None:
    """Two-point calibration of an analog (FSR/Velostat) mat on the MCP3008."""
    from gpiozero import MCP3008

    from sitwatch.device.analog_seat import CalibrationError, calibrate, save_calibration

    pause = threading.Event()
    with MCP3008(channel=config.pins.adc_channel) as adc:
        try:
            result = calibrate(
                lambda: float(adc.value),
                lambda message: click.prompt(message, default="", show_default=False),
                samples=samples,
                pause=lambda: pause.wait(0.1),
            )
        except CalibrationError as exc:
            click.echo(f"sitwatch-device: calibration failed: {exc}", err=True)
            sys.exit(2)
    config.data_path.mkdir(parents=True, exist_ok=True)
    save_calibration(config.calibration_path, result)
    analog = config.analog
    on_at = result.reading_at(analog.trigger_fraction)
    off_below = result.reading_at(analog.trigger_fraction - analog.hysteresis)
    click.echo(
        f"saved {config.calibration_path}: empty {result.empty:.3f}, occupied "
        f"{result.occupied:.3f}; seated from {on_at:.3f}, empty again past {off_below:.3f}"
    )
    if config.pins.mat_kind != "mcp3008":
        click.echo('set mat_kind = "mcp3008" under [pins] in the config to use it')


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
