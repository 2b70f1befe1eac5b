"""The device agent: feeds hardware inputs to the tracker, and the tracker's events to the
buzzer/LED and to every sink (outbox, hooks, Home Assistant figures).

All tracker calls happen on the agent's own thread: gpiozero callbacks and the MQTT link
only put items on ``inputs``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sitwatch.clock import Clock
from sitwatch.device import patterns
from sitwatch.device.analog_seat import load_calibration
from sitwatch.device.config import DeviceConfig
from sitwatch.device.hardware import DeskHardware, Input, InputKind
from sitwatch.device.tracker import ButtonResult, SittingTracker
from sitwatch.protocol import Event, EventType, drill_counts, new_id
from sitwatch.settings import TrackerSettings

log = logging.getLogger(__name__)

MAX_IDLE_S = 30.0  # longest real wait with nothing due (keeps the loop cheap when idle)

EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class _Online:
    online: bool


@dataclass(frozen=True)
class _Pause:
    pause_s: float


@dataclass(frozen=True)
class _Resume:
    issued_ago_s: float


_STOP = object()


def _cue_for(event: Event) -> patterns.Pattern | None:
    match event.type:
        case EventType.PROMPT:
            cue = patterns.time_to_move(int(event.data["level"]))
            return cue.silent() if event.data.get("quiet") else cue
        case EventType.DRILL_STEP:
            return patterns.STAND_UP if event.data.get("seated") else patterns.DRILL_STEP
        case EventType.DRILL_COMPLETED:
            return patterns.DRILL_DONE if drill_counts(event) else patterns.DRILL_NOT_COUNTED
        case EventType.SNOOZE:
            return patterns.SNOOZED
        case EventType.PROMPT_ACK | EventType.BREAK | EventType.PAUSE:
            return patterns.IDLE
    return None


_BUTTON_CUES = {ButtonResult.SNOOZE_REFUSED: patterns.REFUSED}


class Agent:
    def __init__(
        self,
        config: DeviceConfig,
        clock: Clock,
        *,
        pin_factory: Any = None,
        settings: TrackerSettings | None = None,
        sinks: Iterable[EventSink] = (),
        boot_id: str | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.boot_id = boot_id or new_id()
        self.inputs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.sinks: list[EventSink] = list(sinks)
        self.online = True
        self.tracker = SittingTracker(
            settings or config.tracker,
            clock,
            self._on_event,
            device_id=config.device_id,
            boot_id=self.boot_id,
        )
        self.hardware = DeskHardware(
            config.pins,
            clock,
            self.inputs.put,
            pin_factory=pin_factory,
            analog=config.analog,
            calibration=load_calibration(config.calibration_path),
        )
        self.hardware.start()
        self._seat_seen = False  # the last seat state given to the tracker
        self._reconcile_seat()

    # ----- thread-safe entry points (MQTT link, simulator, signal handlers) ----------

    def post_settings(self, settings: TrackerSettings) -> None:
        self.inputs.put(settings)

    def post_online(self, online: bool) -> None:
        self.inputs.put(_Online(online))

    def post_pause(self, pause_s: float) -> None:
        self.inputs.put(_Pause(pause_s))

    def post_resume(self, issued_ago_s: float) -> None:
        self.inputs.put(_Resume(issued_ago_s))

    def stop(self) -> None:
        self.inputs.put(_STOP)

    # ----- the loop ------------------------------------------------------------------

    def step(self, timeout_s: float = 0.0) -> bool:
        """Wait up to ``timeout_s`` (real seconds) for input, handle all that is queued,
        then run due deadlines. Returns False once ``stop()`` was called."""
        try:
            item = self.inputs.get(timeout=timeout_s) if timeout_s > 0 else self.inputs.get_nowait()
        except queue.Empty:
            item = None
        running = True
        while item is not None:
            running = self._handle(item) and running
            try:
                item = self.inputs.get_nowait()
            except queue.Empty:
                item = None
        self._reconcile_seat()
        self.tracker.tick()
        return running

    def run(self, stop: threading.Event | None = None) -> None:
        """Run until ``stop()`` (or ``stop`` is set and something wakes the loop)."""
        while stop is None or not stop.is_set():
            deadline = self.tracker.next_deadline()
            wait = MAX_IDLE_S
            if deadline is not None:
                left = max(0.0, deadline - self.clock.monotonic())
                wait = min(MAX_IDLE_S, self.clock.real_seconds(left))
            if not self.step(max(wait, 0.001)):
                return

    def close(self) -> None:
        self.hardware.close()

    # ----- handlers ------------------------------------------------------------------

    def _handle(self, item: object) -> bool:
        if item is _STOP:
            return False
        if isinstance(item, Input):
            self._handle_input(item)
        elif isinstance(item, TrackerSettings):
            log.info("applying new settings: %s", item.model_dump())
            self.tracker.apply_settings(item)
        elif isinstance(item, _Online):
            self._set_online(item.online)
        elif isinstance(item, _Pause):
            self.tracker.pause(item.pause_s)
        elif isinstance(item, _Resume):
            self.tracker.resume(item.issued_ago_s)
        return True

    def _reconcile_seat(self) -> None:
        """Follow the mat's settled level: an edge lost to contact bounce or debounce is
        corrected at the next pass instead of leaving a phantom sitter."""
        occupied = self.hardware.seat_occupied
        if occupied != self._seat_seen:
            self._seat_seen = occupied
            self.tracker.seat_changed(occupied)

    def _handle_input(self, item: Input) -> None:
        match item.kind:
            case InputKind.SEAT:
                self._reconcile_seat()  # the level now, not the (possibly stale) edge
                return
            case InputKind.PRESS:
                result = self.tracker.button_pressed()
            case InputKind.HOLD:
                result = self.tracker.button_held()
            case InputKind.LONG_HOLD:
                result = self.tracker.button_long_held()
        log.info("button %s (%.1f s): %s", item.kind, item.held_s, result)
        cue = _BUTTON_CUES.get(result)
        if cue is not None:
            self.hardware.play(cue)

    def _set_online(self, online: bool) -> None:
        if online == self.online:
            return
        self.online = online
        # The link logs the outage (once, as a warning); here it only changes the LED.
        log.debug("broker %s", "connected" if online else "unreachable: buffering events")
        if self.tracker.snapshot().prompt_level == 0 or online:
            self.hardware.play(patterns.IDLE if online else patterns.OFFLINE)

    def _on_event(self, event: Event) -> None:
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:  # a failing sink must not stop tracking or the others
                log.exception("event sink %r failed on %s", sink, event.type)
        cue = _cue_for(event)
        if cue is patterns.IDLE and not self.online:
            cue = patterns.OFFLINE
        if cue is not None:
            self.hardware.play(cue)
