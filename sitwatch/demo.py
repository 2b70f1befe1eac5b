"""``sitwatch-demo``: the whole system on one machine. A broker (Mosquitto, or the embedded
amqtt broker when Mosquitto is not installed), the server (ingest + dashboard, SQLite),
and simulated desks living accelerated working days. Ctrl-C stops everything."""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

from sitwatch.broker import BrokerError, free_port, start_any_broker, wait_for_port
from sitwatch.settings import WEEKDAYS

log = logging.getLogger("sitwatch.demo")

DEMO_USER = "demo"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def server_config(workdir: Path, mqtt_port: int, web_port: int) -> Path:
    db = workdir / "sitwatch.db"
    secret = secrets.token_hex(32)
    return _write(
        workdir / "server.toml",
        f'[database]\nurl = "sqlite:///{db}"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n\n'
        f'[web]\nhost = "127.0.0.1"\nport = {web_port}\nsecret_key = "{secret}"\n',
    )


def device_config(workdir: Path, device_id: str, name: str, mqtt_port: int) -> Path:
    data = workdir / device_id
    data.mkdir(parents=True, exist_ok=True)
    # The demo runs at any hour: no quiet or working hours, so every prompt is a full one.
    return _write(
        workdir / f"{device_id}.toml",
        f'device_id = "{device_id}"\nname = "{name}"\ndata_dir = "{data}"\n\n'
        '[tracker.quiet_hours]\nstart = "00:00"\nend = "00:00"\n\n'
        "[tracker.active_hours]\n"
        + "".join(f'{day} = "00:00-24:00"\n' for day in WEEKDAYS)
        + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nheartbeat_s = 600\n',
    )


def send_history(device_ids: list[str], days: int, mqtt_port: int, workdir: Path) -> int:
    """Weeks of realistic history, sent the way a device sends a backlog: queued in an
    outbox and drained over MQTT until the server has acknowledged every event."""
    from sitwatch.clock import SystemClock
    from sitwatch.device.config import MqttConfig
    from sitwatch.device.link import MqttLink
    from sitwatch.device.outbox import Outbox
    from sitwatch.history import history
    from sitwatch.protocol import new_id

    total = 0
    for device_id in device_ids:
        outbox = Outbox(workdir / f"seed-{device_id}.db", max_rows=10_000_000)
        for event in history(device_id, days):
            outbox.add(event)
            total += 1
        link = MqttLink(
            MqttConfig(host="127.0.0.1", port=mqtt_port, heartbeat_s=0, resend_after_s=10),
            device_id,
            new_id(),
            outbox,
            SystemClock(),
            settings_path=workdir / f"seed-{device_id}-settings.json",
            on_settings=lambda settings: None,
        )
        link.start()
        deadline = time.monotonic() + 300
        pause = threading.Event()
        while len(outbox) and time.monotonic() < deadline:
            pause.wait(0.2)
        left = len(outbox)
        link.stop()
        outbox.close()
        if left:
            raise click.ClickException(f"seeding {device_id}: {left} events not acknowledged")
    return total


class Processes:
    """Child processes, stopped in reverse order of starting."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as out:
            # Own process groups: Ctrl-C reaches only the demo, which stops them in order.
            child = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children.append((name, child))
        return child

    def check(self) -> None:
        for name, child in self.children:
            if child.poll() is not None:
                raise click.ClickException(f"{name} exited with code {child.returncode}")

    def stop(self) -> None:
        """Desks first (their goodbye reaches the still-running server), then the server."""
        for _name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)


def _bin(name: str) -> str:
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else (shutil.which(name) or name)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--speed",
    type=click.FloatRange(1, 10_000),
    default=120,
    show_default=True,
    help="Simulated desks live this many times faster than real time.",
)
@click.option("--devices", type=click.IntRange(1, 20), default=2, show_default=True)
@click.option(
    "--seed-history/--no-seed-history",
    default=True,
    show_default=True,
    help="Fill weeks of realistic history first, so the charts have something to show.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 400),
    default=42,
    show_default=True,
    help="With --seed-history: how many days.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Dashboard port (a free one is taken if this one is busy).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop by itself after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--broker",
    "broker_kind",
    type=click.Choice(["auto", "mosquitto", "embedded"]),
    default="auto",
    show_default=True,
    help="auto: Mosquitto if installed, else the embedded amqtt broker.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the demo's files here (default: a new temporary folder).",
)
def main(
    speed: float,
    devices: int,
    seed_history: bool,
    days: int,
    port: int,
    duration: float | None,
    broker_kind: str,
    workdir: str | None,
) -> None:
    """Run broker, server and simulated desks; print the dashboard's address and login."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The history is made by running the real tracker over weeks: not one line per event.
    logging.getLogger("sitwatch.device.tracker").setLevel(logging.WARNING)
    work = Path(workdir or tempfile.mkdtemp(prefix="sitwatch-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "broker").mkdir(exist_ok=True)
    try:
        broker = start_any_broker(str(work / "broker"), kind=broker_kind)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"broker: {type(broker).__name__} on 127.0.0.1:{broker.port}")
    web_port = port if _port_free(port) else free_port()
    server_toml = server_config(work, broker.port, web_port)
    password = secrets.token_urlsafe(9)
    server = _bin("sitwatch-server")
    children = Processes()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        subprocess.run(
            [server, "--config", str(server_toml), "create-user", DEMO_USER, "--password-stdin"],
            input=password.encode(),
            check=True,
            capture_output=True,
        )
        children.start("server", [server, "--config", str(server_toml), "run"], work / "server.log")
        if not wait_for_port("127.0.0.1", web_port, 30):
            raise click.ClickException(f"the server did not start; see {work / 'server.log'}")
        device_ids = [f"desk-{n}" for n in range(1, devices + 1)]
        if seed_history:
            click.echo(f"seeding {days} days of history for {devices} desks ...")
            count = send_history(device_ids, days, broker.port, work)
            click.echo(f"seeded {count} events")
        for number, device_id in enumerate(device_ids, start=1):
            config = device_config(work, device_id, f"Desk {number}", broker.port)
            children.start(
                device_id,
                [
                    _bin("sitwatch-device"),
                    "--config",
                    str(config),
                    "--simulate",
                    "--scripted",
                    "--speed",
                    str(speed),
                ],
                work / f"{device_id}.log",
            )
        click.echo(
            f"\n  dashboard: http://127.0.0.1:{web_port}/\n  login:     {DEMO_USER} / {password}"
            f"\n  files:     {work}\n\n{devices} simulated desks at {speed:g}x speed. "
            "Ctrl-C stops everything.\n"
        )
        end = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (end is None or time.monotonic() < end):
            children.check()
            stop.wait(1)
    except KeyboardInterrupt:
        pass
    except subprocess.CalledProcessError as exc:
        raise click.ClickException(
            f"server set-up failed: {exc.stderr.decode(errors='replace')}"
        ) from None
    finally:
        click.echo("stopping ...")
        children.stop()
        broker.stop()
        click.echo("stopped")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    main()
