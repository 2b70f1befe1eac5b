"""Runs the agent on gpiozero's MockFactory pins: a person drives the seat and the button
from the keyboard, or a scripted person does (``SCRIPTS``: the demo's desks, which run on
real time with short limits). Time may run faster."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from sitwatch.clock import Clock
from sitwatch.device.config import PinsConfig
from sitwatch.device.hardware import Input, button_input
from sitwatch.device.tracker import DRILL_EMPTY_SHARE
from sitwatch.drill import CIRCUIT
from sitwatch.protocol import Event, EventType, drill_counts
from sitwatch.settings import TrackerSettings

HELP = (
    "keys: [s] sit down / stand up   [b] press button   [h] hold 2 s (snooze)   "
    "[p] hold 6 s (pause 1 h)   [w] wait 5 min   [t] status   [q] quit"
)
if TYPE_CHECKING:
    from sitwatch.device.service import DeviceService

STEPS = {step.key: step for step in CIRCUIT}
SEATED_IN_DRILL = " -- sit-down detected: stand up for the circuit, or it will not count"


def describe(event: Event) -> str:
    """One line a person reads in the simulator."""
    data = event.data
    match event.type:
        case EventType.SEATED:
            return "seated"
        case EventType.STOOD_UP:
            return f"stood up after {data['session_s'] / 60:.1f} min"
        case EventType.BREAK:
            return "break credited: the sitting clock starts again"
        case EventType.PROMPT:
            quiet = " (silent: quiet or off-work hours, LED only)" if data["quiet"] else ""
            return (
                f"TIME TO MOVE, level {data['level']}, seated {data['seated_s'] / 60:.0f} min"
                f"{quiet}: press [b] for the glute circuit, or stand up"
            )
        case EventType.PROMPT_ACK:
            return f"prompt answered by {data['how']} after {data['response_s']:.0f} s"
        case EventType.SNOOZE:
            return f"snoozed for {data['snooze_s'] / 60:.0f} min ({data['count']} in a row)"
        case EventType.PAUSE:
            return f"prompts paused for {data['pause_s'] / 60:.0f} min"
        case EventType.DRILL_STARTED:
            return "guided glute circuit started"
        case EventType.DRILL_STEP:
            step = STEPS.get(str(data["step"]))
            if step is None:
                return f"drill step {data['step']}"
            reps = f" ({step.reps})" if step.reps else ""
            seated = SEATED_IN_DRILL if data.get("seated") else ""
            return (
                f"step {int(data['index']) + 1}/{len(CIRCUIT)}: {step.title}{reps}: {step.how}"
                f"{seated}"
            )
        case EventType.DRILL_COMPLETED:
            how = "" if data["guided"] else " (logged with the button)"
            if drill_counts(event):
                return f"drill completed{how}"
            return (
                f"drill NOT counted{how}: the seat was taken for more than "
                f"{1 - DRILL_EMPTY_SHARE:.0%} of the circuit; stand up for the circuit"
            )
    return str(event.type)


class EventPrinter:
    """An event sink printing each event with its simulated wall time."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self._out = out

    def __call__(self, event: Event) -> None:
        stamp = event.ts.strftime("%H:%M:%S")
        print(f"[{stamp}] {describe(event)}", file=self._out, flush=True)


class MockDesk:
    """The person at the desk: sits on a MockFactory mat pin, and presses the button by
    handing the agent (``post``, its input queue) a press of the length the key means."""

    def __init__(
        self, factory: Any, pins: PinsConfig, clock: Clock, post: Callable[[Input], None]
    ) -> None:
        self._mat = factory.pin(pins.mat)
        self._pins = pins
        self._clock = clock
        self._post = post
        self._wait = threading.Event()
        self.seated = False
        self.sit(False)

    def sit(self, seated: bool) -> None:
        self.seated = seated
        closed = seated != self._pins.mat_active_high  # a pull-up mat closes to ground
        if closed:
            self._mat.drive_low()
        else:
            self._mat.drive_high()

    def press(self, held_s: float = 0.2) -> None:
        """Hold the button ``held_s`` seconds of simulated time, then let go. Its length is
        the one asked for: timed through the pin, a real-time wait scaled up by the speed
        (and stretched by a busy machine) made a short press a 2 s hold or a 6 s pause."""
        self.wait(held_s)
        self._post(button_input(held_s, self._pins))

    def wait(self, seconds: float) -> None:
        """Wait ``seconds`` of (possibly accelerated) simulated time."""
        self._wait.wait(self._clock.real_seconds(seconds))


def keyboard_loop(
    desk: MockDesk,
    pins: PinsConfig,
    status: Callable[[], str],
    stop: Callable[[], None],
    stream: IO[str] = sys.stdin,
) -> None:
    """Read single keys (or lines when not a terminal) until [q] or end of input."""
    print(HELP, flush=True)
    for key in _keys(stream):
        if key == "q":
            break
        if key == "s":
            desk.sit(not desk.seated)
            print("(you sit down)" if desk.seated else "(you stand up)", flush=True)
        elif key == "b":
            desk.press(0.2)
        elif key == "h":
            desk.press(pins.button_hold_s + 0.2)
        elif key == "p":
            desk.press(pins.pause_hold_s + 0.2)
        elif key == "w":
            desk.wait(300)
        elif key == "t":
            print(status(), flush=True)
        elif key in ("?", "\n"):
            print(HELP, flush=True)
    stop()


def _keys(stream: IO[str]):  # type: ignore[no-untyped-def]
    if not stream.isatty():
        for line in stream:
            yield from line.strip().lower() or "\n"
        return
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while True:
            key = stream.read(1)
            if not key:
                return
            yield key.lower()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


SEATED_DRILL_CHANCE = 0.15  # the "answers" person tries the circuit on the chair: not counted

# A scripted person reads the rules each round, so a change from the dashboard takes hold.
Rules = Callable[[], TrackerSettings]


def answers_nudges(
    desk: MockDesk, rules: Rules, pins: PinsConfig, rng: random.Random, running: threading.Event
) -> None:
    """Sits past the limit, answers the prompt with the guided circuit off the chair (after
    the first round, so the demo's first minutes show a drill that counts, now and then
    tries it on the chair first: not counted, the prompt stays until the stand-up), sits
    again (shifting in the seat), then stands up for a coffee: a break."""
    first_round = True
    while running.is_set():
        settings = rules()
        desk.sit(True)
        first = settings.sitting_limit_s * rng.uniform(0.3, 0.6)
        desk.wait(first)
        desk.sit(False)  # shifting in the seat: a lift shorter than the grace period
        desk.wait(settings.grace_s * rng.uniform(0.2, 0.5))
        desk.sit(True)
        desk.wait(settings.sitting_limit_s - first + rng.uniform(5, 20))  # past the limit
        desk.wait(settings.press_ignore_s + rng.uniform(1, 8))  # reads the prompt
        desk.press()  # answers with the guided circuit
        if rng.random() < SEATED_DRILL_CHANCE and not first_round:
            desk.wait(len(CIRCUIT) * settings.drill_step_s + rng.uniform(5, 20))  # on the chair
        desk.sit(False)
        desk.wait(len(CIRCUIT) * settings.drill_step_s + rng.uniform(5, 20))
        desk.sit(True)
        desk.wait(settings.sitting_limit_s * rng.uniform(0.4, 0.8))
        desk.sit(False)  # a real stand-up: coffee
        desk.wait(settings.break_s + rng.uniform(10, 60))
        first_round = False


def snoozes_and_sits_long(
    desk: MockDesk, rules: Rules, pins: PinsConfig, rng: random.Random, running: threading.Event
) -> None:
    """Snoozes every prompt (the last hold is refused: only standing up answers then), sits
    on while the prompts escalate, and only then stands up."""
    while running.is_set():
        settings = rules()
        desk.sit(True)
        desk.wait(settings.sitting_limit_s + rng.uniform(5, 15))  # prompted
        for _ in range(settings.max_snoozes + 1):
            desk.wait(settings.press_ignore_s + rng.uniform(1, 4))
            desk.press(pins.button_hold_s + 0.3)  # snooze
            desk.wait(settings.snooze_s + rng.uniform(2, 5))  # sat out: the prompt comes back
        desk.wait(settings.reprompt_s * rng.uniform(1.5, 3))  # escalating
        desk.sit(False)
        desk.wait(settings.break_s + rng.uniform(10, 120))
        if rng.random() < 0.3:
            desk.press()  # a drill done on one's own, logged with the button


def comes_and_goes(
    desk: MockDesk, rules: Rules, pins: PinsConfig, rng: random.Random, running: threading.Event
) -> None:
    """Short, irregular sits (sometimes past the limit; then standing up answers the
    prompt), short stands and breaks, now and then a drill done on one's own."""
    while running.is_set():
        settings = rules()
        desk.sit(True)
        desk.wait(settings.sitting_limit_s * rng.uniform(0.2, 1.4))
        desk.sit(False)
        if rng.random() < 0.5:
            desk.wait(rng.uniform(settings.grace_s + 5, settings.break_s - 5))  # no break
        else:
            desk.wait(settings.break_s * rng.uniform(1.2, 3))
        if rng.random() < 0.25:
            desk.press()


# The people ``--person`` names; sitwatch.device.history.PEOPLE has their weeks of history.
SCRIPTS = {"answers": answers_nudges, "snoozes": snoozes_and_sits_long, "odd-hours": comes_and_goes}


def status_line(service: DeviceService) -> str:
    snap = service.agent.tracker.snapshot()
    due = "" if snap.to_prompt_s is None else f", prompt in {snap.to_prompt_s / 60:.1f} min"
    link = "connected" if service.link.is_connected else "unreachable"
    return (
        f"state {snap.state}, seated {snap.stretch_seated_s / 60:.1f} min this stretch{due}, "
        f"outbox {len(service.outbox)} unconfirmed, broker {link}"
    )


def start_simulation(
    service: DeviceService,
    factory: Any,
    clock: Clock,
    *,
    scripted: bool,
    running: threading.Event,
    person: str = "answers",
) -> threading.Thread:
    """Print events and start the simulated person (keyboard or scripted) in a thread."""
    service.agent.sinks.append(EventPrinter())
    pins = service.config.pins
    desk = MockDesk(factory, pins, clock, service.agent.inputs.put)
    tracker = service.agent.tracker
    # Seeded by the device id: two desks playing the same person still differ.
    rng = random.Random(service.config.device_id)

    def act() -> None:
        if scripted:
            SCRIPTS[person](desk, lambda: tracker.settings, pins, rng, running)
        else:
            keyboard_loop(desk, pins, lambda: status_line(service), service.stop)

    thread = threading.Thread(target=act, name="simulated-desk", daemon=True)
    thread.start()
    return thread
