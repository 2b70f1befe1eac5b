"""Device agent benchmarks: what the idle agent costs (CPU, peak RSS), how late a prompt
fires after the sitting limit, and how long a button press takes to reach the broker."""

from __future__ import annotations

import compileall
import importlib.util
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from common import wait_for
from ingest_bench import fresh_broker, fresh_sqlite

from sitwatch.clock import ScaledClock, SystemClock
from sitwatch.device.config import DeviceConfig, MqttConfig
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime + stime from /proc/<pid>/stat, the sum of every thread's on-CPU time from
    /proc/<pid>/task/*/schedstat): the first in clock ticks, the second in nanoseconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the line
    nanos = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            nanos += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return ticks / CLOCK_TICKS, nanos / 1e9


def memory_kb(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0])
    return found


def device_command() -> list[str]:
    """The agent's command, its sources compiled first: a Pi's install (pip) holds compiled
    bytecode, a checkout run with PYTHONDONTWRITEBYTECODE (as here) does not, and compiling
    every module at start-up cost the agent about 1 MB of peak memory and some start-up."""
    compile_sources()
    script = Path(sys.executable).with_name("sitwatch-device")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sitwatch.device.cli"]


def compile_sources() -> None:
    """Bytecode for sitwatch's own modules wherever they are imported from (an editable
    install's checkout or site-packages), as pip writes it at install."""
    import sitwatch

    folders = {Path(sitwatch.__file__).parent}
    for name in ("sitwatch.device", "sitwatch.server", "sitwatch.demo"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            folders.add(Path(spec.origin).parent)
    for folder in sorted(folders):
        compileall.compile_dir(folder, quiet=1)


def agent_idle(seconds: float, workdir: Path) -> dict[str, Any]:
    """``sitwatch-device --simulate`` (speed 1) with a seated user, connected to its own
    Mosquitto and acknowledged by a real ingest worker, left alone for ``seconds``."""
    from sitwatch.server.config import ServerConfig
    from sitwatch.server.db import make_engine
    from sitwatch.server.ingest.worker import IngestWorker

    place = workdir / "agent"
    place.mkdir()
    url = fresh_sqlite(place)
    engine = make_engine(url)
    with fresh_broker() as broker:
        config = ServerConfig.model_validate(
            {"database": {"url": url}, "mqtt": {"host": broker.host, "port": broker.port}}
        )
        worker = IngestWorker(config, engine, client_id="bench-agent-ingest").start()
        if not worker.wait_ready(10):
            raise RuntimeError("ingest worker for the agent benchmark did not subscribe")
        log = (place / "agent.log").open("wb")
        process = subprocess.Popen(
            [
                *device_command(),
                "--simulate",
                "--speed",
                "1",
                "--data-dir",
                str(place / "data"),
                "--device-id",
                "bench-agent",
                "--mqtt-host",
                broker.host,
                "--mqtt-port",
                str(broker.port),
                "--log-level",
                "WARNING",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            assert process.stdin is not None
            process.stdin.write(b"s\n")  # sit down, and keep stdin open: the user stays
            process.stdin.flush()
            seated = wait_for(lambda: worker.stored >= 1, 30, 0.05)
            time.sleep(2.0)  # start-up is over: imports, connection, the first publish
            ticks0, nanos0 = cpu_seconds(process.pid)
            start = time.monotonic()
            time.sleep(seconds)
            ticks1, nanos1 = cpu_seconds(process.pid)
            elapsed = time.monotonic() - start
            memory = memory_kb(process.pid)
            alive = process.poll() is None
            process.stdin.write(b"q\n")
            process.stdin.flush()
            process.stdin.close()
            process.wait(15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            log.close()
            worker.stop()
            engine.dispose()
    cpu_s = ticks1 - ticks0
    return {
        "seconds": elapsed,
        "seated_event_stored": seated,
        "alive_throughout": alive,
        "exit_code": process.returncode,
        "cpu_seconds": cpu_s,
        "cpu_seconds_schedstat": nanos1 - nanos0,
        "cpu_percent_of_core": 100 * cpu_s / elapsed,
        "cpu_percent_of_core_schedstat": 100 * (nanos1 - nanos0) / elapsed,
        "cpu_seconds_per_hour": cpu_s / elapsed * 3600,
        "peak_rss_mb": memory.get("VmHWM", 0) / 1024,
        "rss_mb": memory.get("VmRSS", 0) / 1024,
        "stat_resolution_s": 1 / CLOCK_TICKS,
    }


def prompt_delay(trials: int, workdir: Path, factor: float = 600.0) -> dict[str, Any]:
    """An Agent on MockFactory pins with a ScaledClock at ``factor`` and a 60 s limit: how
    late (in real seconds) the prompt reaches the event sinks after its deadline."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from sitwatch.device.agent import Agent

    delays = []
    settings = TrackerSettings(sitting_limit_s=60, quiet_hours=None)
    config = DeviceConfig(data_dir=str(workdir / "prompt"), tracker=settings)
    for _ in range(trials):
        factory = MockFactory(pin_class=MockPWMPin)
        clock = ScaledClock(factor)
        fired = threading.Event()
        late: list[float] = []

        def sink(
            event: Event,
            clock: ScaledClock = clock,
            late: list[float] = late,
            fired: threading.Event = fired,
        ) -> None:
            if event.type is EventType.PROMPT:
                late.append((clock.monotonic() - event.mono) / clock.factor)
                fired.set()

        agent = Agent(config, clock, pin_factory=factory, sinks=[sink])
        runner = threading.Thread(target=agent.run, daemon=True)
        runner.start()
        try:
            factory.pin(config.pins.mat).drive_low()  # sits down
            if fired.wait(10 + settings.sitting_limit_s / factor):
                delays.append(late[0])
        finally:
            agent.stop()
            runner.join(5)
            agent.close()
            factory.close()
    return {
        "trials": trials,
        "prompted": len(delays),
        "time_factor": factor,
        "sitting_limit_s": settings.sitting_limit_s,
        "median_s": statistics.median(delays) if delays else None,
        "max_s": max(delays) if delays else None,
        "samples_s": delays,
    }


def button_to_broker(presses: int, workdir: Path) -> dict[str, Any]:
    """A DeviceService on MockFactory pins and the real clock, connected to its own
    Mosquitto; a bare subscriber on its event topic. Latency from the button's release (a
    press is told from a hold on release) to the drill event arriving at the subscriber."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from sitwatch.device.service import DeviceService
    from sitwatch.protocol import parse_event

    latencies = []
    with fresh_broker() as broker:
        arrivals: list[tuple[float, str]] = []
        subscribed = threading.Event()

        def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
            arrivals.append((time.perf_counter(), str(parse_event(message.payload).type)))

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-button-sub")
        client.on_message = on_message
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        client.subscribe("sitwatch/bench-button/event", qos=1)
        subscribed.wait(10)
        factory = MockFactory(pin_class=MockPWMPin)
        config = DeviceConfig(
            device_id="bench-button",
            data_dir=str(workdir / "button"),
            tracker=TrackerSettings(quiet_hours=None),
            mqtt=MqttConfig(host=broker.host, port=broker.port, heartbeat_s=0),
        )
        service = DeviceService(config, SystemClock(), pin_factory=factory)
        service.start()
        runner = threading.Thread(target=service.run, daemon=True)
        runner.start()
        try:
            if not wait_for(lambda: service.link.is_connected, 10):
                raise RuntimeError("device did not connect")
            button = factory.pin(config.pins.button)
            for _ in range(presses):
                before = len(arrivals)
                button.drive_low()
                time.sleep(0.1)
                released = time.perf_counter()
                button.drive_high()
                if wait_for(lambda before=before: len(arrivals) > before, 5, 0.001):
                    latencies.append(arrivals[before][0] - released)
                time.sleep(0.05)
        finally:
            service.stop()
            runner.join(5)
            service.close()
            factory.close()
            client.disconnect()
            client.loop_stop()
    kinds = {kind for _, kind in arrivals}
    return {
        "presses": presses,
        "arrived": len(latencies),
        "event_types": sorted(kinds),
        "median_s": statistics.median(latencies) if latencies else None,
        "p95_s": sorted(latencies)[int(0.95 * (len(latencies) - 1))] if latencies else None,
        "max_s": max(latencies) if latencies else None,
    }


def agent_startup(trials: int, workdir: Path) -> dict[str, Any]:
    """``sitwatch-device simulate`` started ``trials`` times against its own Mosquitto: real
    seconds from the process's start to its retained "online" status reaching a subscriber
    (imports, config, outbox, mock pins, a plain TCP connection), and its peak RSS by then. Also
    ``sitwatch-device --help``'s wall time, which imports no config models."""
    from sitwatch.protocol import parse_status

    seconds: list[float] = []
    peaks: list[float] = []
    with fresh_broker() as broker:
        for n in range(trials):
            device_id = f"bench-start-{n}"
            online = threading.Event()

            def on_message(
                _c: object, _u: object, message: mqtt.MQTTMessage, online: threading.Event = online
            ) -> None:
                if parse_status(message.payload).state == "online":
                    online.set()

            watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-w{n}")
            watcher.on_message = on_message
            watcher.connect(broker.host, broker.port)
            watcher.subscribe(f"sitwatch/{device_id}/status", qos=1)
            watcher.loop_start()
            place = workdir / f"start-{n}"
            command = [
                *device_command(),
                "simulate",
                "--data-dir",
                str(place),
                "--device-id",
                device_id,
                "--mqtt-host",
                broker.host,
                "--mqtt-port",
                str(broker.port),
                "--log-level",
                "WARNING",
            ]
            start = time.perf_counter()
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                if online.wait(30):
                    seconds.append(time.perf_counter() - start)
                    peaks.append(memory_kb(process.pid).get("VmHWM", 0) / 1024)
            finally:
                process.terminate()
                process.communicate(timeout=15)
                watcher.disconnect()
                watcher.loop_stop()
    helps = []
    for _ in range(trials):
        start = time.perf_counter()
        subprocess.run([*device_command(), "--help"], capture_output=True, check=True)
        helps.append(time.perf_counter() - start)
    return {
        "trials": trials,
        "connected": len(seconds),
        "median_s": statistics.median(seconds) if seconds else None,
        "max_s": max(seconds) if seconds else None,
        "samples_s": seconds,
        "peak_rss_at_connect_mb": statistics.median(peaks) if peaks else None,
        "help_median_s": statistics.median(helps),
        "help_samples_s": helps,
    }
