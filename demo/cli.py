"""``sitwatch-demo``: the whole system on one machine. A broker (Mosquitto, or the embedded
amqtt broker when Mosquitto is not installed), the server (ingest + dashboard, SQLite),
weeks of history up to now, and simulated desks living on real time with short limits, so
that every timestamp is true and a prompt comes within minutes. Ctrl-C stops everything."""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import click

from sitwatch.broker import BrokerError, free_port, start_any_broker, wait_for_port
from sitwatch.settings import WEEKDAYS

log = logging.getLogger("sitwatch.demo")

DEMO_USER = "demo"
# The live desks' rules: short enough that a prompt, a drill and a break come within the
# first minutes on real time (the desks' clocks are real: no event is stamped ahead).
DEMO_RULES = {
    "sitting_limit_s": 120,
    "grace_s": 15,
    "break_s": 45,
    "reprompt_s": 60,
    "snooze_s": 60,
    "drill_step_s": 10,
}
# Who sits at desk-1, desk-2, desk-3 (then again): names of sitwatch.device.history.PEOPLE and
# of the simulator's scripts, with what the demo says about them.
PERSONS = {
    "answers": "answers its nudges",
    "snoozes": "snoozes and sits long",
    "odd-hours": "works odd hours: afternoons, evenings, weekends",
}
BY_HAND = "desk-by-hand"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def server_config(workdir: Path, mqtt_port: int, web_host: str, web_port: int) -> Path:
    db = workdir / "sitwatch.db"
    secret = secrets.token_hex(32)
    return _write(
        workdir / "server.toml",
        f'[database]\nurl = "sqlite:///{db}"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n\n'
        f'[web]\nhost = "{web_host}"\nport = {web_port}\nsecret_key = "{secret}"\n',
    )


def device_config(workdir: Path, device_id: str, name: str, mqtt_port: int) -> Path:
    data = workdir / device_id
    data.mkdir(parents=True, exist_ok=True)
    rules = "".join(f"{key} = {value}\n" for key, value in DEMO_RULES.items())
    # The demo runs at any hour: no quiet or working hours, so every prompt is a full one.
    return _write(
        workdir / f"{device_id}.toml",
        f'device_id = "{device_id}"\nname = "{name}"\ndata_dir = "{data}"\n\n'
        f"[tracker]\n{rules}\n"
        '[tracker.quiet_hours]\nstart = "00:00"\nend = "00:00"\n\n'
        "[tracker.active_hours]\n"
        + "".join(f'{day} = "00:00-24:00"\n' for day in WEEKDAYS)
        + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nheartbeat_s = 600\n',
    )


def send_history(
    desks: dict[str, str], days: int, mqtt_port: int, workdir: Path, until: datetime
) -> dict[str, int]:
    """Weeks of realistic history up to ``until`` (each desk its person's, ``desks`` maps
    device id to person), sent the way a device sends a backlog: queued in an outbox and
    drained over MQTT until the server has acknowledged every event. The desks are sent side
    by side: most of the time goes to the outbox's synchronous writes, not to the CPU."""
    cancel = threading.Event()  # Ctrl-C, or another desk failed: the others stop too
    pool = ThreadPoolExecutor(max_workers=len(desks))
    try:
        sent = {
            device_id: pool.submit(
                _send_one, device_id, person, days, mqtt_port, workdir, until, cancel
            )
            for device_id, person in desks.items()
        }
        return {device_id: future.result() for device_id, future in sent.items()}
    except BaseException:
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True)


def _send_one(
    device_id: str,
    person: str,
    days: int,
    mqtt_port: int,
    workdir: Path,
    until: datetime,
    cancel: threading.Event,
) -> int:
    from sitwatch.clock import SystemClock
    from sitwatch.device.config import DeviceConfig, MqttConfig
    from sitwatch.device.history import PEOPLE, history
    from sitwatch.device.link import MqttLink
    from sitwatch.device.outbox import Outbox
    from sitwatch.protocol import new_id

    outbox = Outbox(workdir / f"seed-{device_id}.db", max_rows=10_000_000)
    count = 0
    for event in history(device_id, days, until=until, person=PEOPLE[person]):
        if cancel.is_set():
            outbox.close()
            return count
        outbox.add(event)
        count += 1
    mqtt = MqttConfig(host="127.0.0.1", port=mqtt_port, heartbeat_s=0, resend_after_s=10)
    # No name: the desk's own agent names it on the dashboard when it comes online.
    config = DeviceConfig(device_id=device_id, name="", mqtt=mqtt)
    link = MqttLink(config, new_id(), outbox, SystemClock())
    link.start()
    deadline = time.monotonic() + 300
    while len(outbox) and time.monotonic() < deadline and not cancel.wait(0.2):
        pass
    left = len(outbox)
    link.stop()
    outbox.close()
    if left and not cancel.is_set():
        raise click.ClickException(f"seeding {device_id}: {left} events not acknowledged")
    return count


class Processes:
    """Child processes, stopped in reverse order of starting."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as out:
            # Own process groups: Ctrl-C reaches only the demo, which stops them in order.
            child = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append((name, child, log_path))
        return child

    def check(self) -> None:
        for name, child, log_path in self.children:
            if child.poll() is not None:
                raise click.ClickException(
                    f"{name} exited with code {child.returncode}; see {log_path}"
                )

    def stop(self) -> None:
        """Desks first (their goodbye reaches the still-running server), then the server."""
        for _name, child, _log in reversed(self.children):
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


def _shown(path: str) -> str:
    """A path as a user in this folder would type it (scripts/demo runs in the clone)."""
    relative = os.path.relpath(path)
    if relative.startswith(".."):
        return path
    return relative if os.sep in relative else os.path.join(".", relative)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable_at(host: str) -> str:
    """An address of this machine that a server listening on ``host`` answers on."""
    if host in ("0.0.0.0", "", "localhost"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def _url_host(host: str) -> str:
    """Where a browser finds a server listening on ``host``."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--devices",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Simulated desks: one answers its nudges, one snoozes and sits long, one works "
    "odd hours (then again).",
)
@click.option(
    "--seed-history/--no-seed-history",
    default=True,
    show_default=True,
    help="Fill weeks of realistic history up to now first, so the charts have something to "
    "show (only into a new database).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 400),
    default=42,
    show_default=True,
    help="With --seed-history: how many days, today included.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Where the dashboard listens; 0.0.0.0 opens it to the network (or use the SSH "
    "tunnel the demo prints).",
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
    help="Keep the demo's files (database, logs, configs) here, and reuse them next time "
    "(default: a temporary folder, removed when the demo stops).",
)
def main(
    devices: int,
    seed_history: bool,
    days: int,
    host: str,
    port: int,
    duration: float | None,
    broker_kind: str,
    workdir: str | None,
) -> None:
    """Run broker, server and simulated desks; print the dashboard's address and login."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The history is made by running the real tracker over weeks, and sent by one link per
    # desk: not one line per event or connection. The demo says what matters itself.
    logging.getLogger("sitwatch.device.tracker").setLevel(logging.WARNING)
    logging.getLogger("sitwatch.device.link").setLevel(logging.WARNING)
    work = Path(workdir or tempfile.mkdtemp(prefix="sitwatch-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "broker").mkdir(exist_ok=True)
    fresh = not (work / "sitwatch.db").exists()
    try:
        broker = start_any_broker(str(work / "broker"), kind=broker_kind)
    except BrokerError as exc:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        raise click.ClickException(str(exc)) from None
    click.echo(f"broker: {type(broker).__name__} on 127.0.0.1:{broker.port}")
    if not is_loopback(host):
        click.echo(
            f"warning: --host {host}: the dashboard is open to every machine that can reach "
            "this one, with the login below as its only guard",
            err=True,
        )
    web_port = port if _port_free(host, port) else free_port()
    server_toml = server_config(work, broker.port, host, web_port)
    password = secrets.token_urlsafe(9)
    server = _bin("sitwatch-server")
    children = Processes()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    failed = True
    try:
        _set_password(server, server_toml, password, fresh)
        children.start("server", [server, "--config", str(server_toml), "run"], work / "server.log")
        if not wait_for_port(_reachable_at(host), web_port, 30):
            raise click.ClickException(f"the server did not start; see {work / 'server.log'}")
        desks = {f"desk-{n}": list(PERSONS)[(n - 1) % len(PERSONS)] for n in range(1, devices + 1)}
        if seed_history and fresh:
            click.echo(f"seeding {days} days of history up to now for {_desks(devices)} ...")
            counts = send_history(desks, days, broker.port, work, datetime.now(UTC))
            for device_id, count in counts.items():
                click.echo(f"  {device_id}: {count} events")
        elif seed_history:
            click.echo(f"keeping the history already in {work / 'sitwatch.db'}")
        device = _bin("sitwatch-device")
        for number, (device_id, person) in enumerate(desks.items(), start=1):
            config = device_config(work, device_id, f"Desk {number}", broker.port)
            children.start(
                device_id,
                [device, "--config", str(config), "simulate", "--scripted", "--person", person],
                work / f"{device_id}.log",
            )
        by_hand = device_config(work, BY_HAND, "By hand", broker.port)
        click.echo(
            _summary(
                work, host, web_port, password, desks, broker.port, device, by_hand, not workdir
            )
        )
        end = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (end is None or time.monotonic() < end):
            children.check()
            stop.wait(1)
        failed = False
    except KeyboardInterrupt:
        failed = False
    except subprocess.CalledProcessError as exc:
        raise click.ClickException(
            f"server set-up failed: {exc.stderr.decode(errors='replace')}"
        ) from None
    finally:
        click.echo("stopping ...")
        children.stop()
        broker.stop()
        if workdir is None and not failed:
            shutil.rmtree(work, ignore_errors=True)
            click.echo("stopped (its temporary folder removed)")
        else:
            click.echo(f"stopped; its files and logs stay in {work}")


def _set_password(server: str, server_toml: Path, password: str, fresh: bool) -> None:
    """The demo user with a new password (in a reused work folder the user exists)."""
    command = [server, "--config", str(server_toml), "create-user", DEMO_USER, "--password-stdin"]
    if not fresh:
        reset = subprocess.run([*command, "--reset"], input=password.encode(), capture_output=True)
        if reset.returncode == 0:
            return
    subprocess.run(command, input=password.encode(), check=True, capture_output=True)


def _summary(
    work: Path,
    host: str,
    web_port: int,
    password: str,
    desks: dict[str, str],
    mqtt_port: int,
    device: str,
    by_hand: Path,
    temporary: bool,
) -> str:
    """What a user needs once everything runs: the address, the login, the desks, the logs."""
    lines = [
        "",
        f"  dashboard: http://{_url_host(host)}:{web_port}/",
        f"  login:     {DEMO_USER} / {password}",
    ]
    if is_loopback(host):
        # A headless machine (a Pi over SSH) has no browser: a tunnel brings the page over.
        lines.append(
            f"  over SSH:  ssh -L {web_port}:127.0.0.1:{web_port} {getpass.getuser()}@"
            f"{socket.gethostname()} on your own machine, then open the address above there"
        )
    limit = DEMO_RULES["sitting_limit_s"] / 60
    lines += [
        "",
        f"{_desks(len(desks), 'simulated ')} on real time, with short limits (a prompt after "
        f"{limit:g} min seated, a break after {DEMO_RULES['break_s']} s away):",
        *(f"  {device_id} {PERSONS[person]}" for device_id, person in desks.items()),
        f"  logs:      {work}/server.log, {', '.join(f'{d}.log' for d in desks)}",
        f"  by hand:   {_shown(device)} --config {by_hand} simulate",
        f"             (or any desk with --mqtt-host 127.0.0.1 --mqtt-port {mqtt_port})",
        "",
        "Ctrl-C stops everything"
        + (" and removes the folder above (--workdir DIR keeps it)." if temporary else "."),
        "",
    ]
    return "\n".join(lines)


def _desks(count: int, kind: str = "") -> str:
    return f"{count} {kind}desk{'' if count == 1 else 's'}"


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    main()
