"""The sitting state machine: seat, button and clock in; typed events out.

Pure logic: no gpiozero, no paho, no I/O. Time comes from an injected Clock; every duration
uses its monotonic reading. Call ``tick()`` at ``next_deadline()`` (or any time) and the
input methods when the debounced seat or the button changes.

Rules (all lengths from TrackerSettings):
- A lift shorter than ``grace_s`` is invisible: the sitting session goes on.
- A lift of ``grace_s`` ends the session (``stood_up``, stamped when the user left).
- Off the seat for ``break_s``: a ``break`` is credited and the sitting stretch restarts.
  A shorter stand is not a break: seated time keeps adding up towards the limit.
- Seated for ``sitting_limit_s`` in a stretch: ``prompt``; while still seated it repeats
  every ``reprompt_s`` with a level that rises to ``max_level``. In quiet hours the prompt
  is marked ``quiet`` (the hardware keeps the buzzer silent); so is one outside the
  per-weekday ``active_hours``. Time still counts.
- Button, short press: while prompted starts the guided circuit (``drill_started``, a
  ``drill_step`` per step every ``drill_step_s``, ``drill_completed``); during a drill moves
  to the next step; otherwise logs a drill done on one's own.
  Presses in the first ``press_ignore_s`` of a prompt are ignored (no accidental dismissal).
- Honest drills: the circuit is done on the floor and on one's feet, so a drill counts
  (``drill_completed`` verified) only when the seat was empty for at least
  ``DRILL_EMPTY_SHARE`` (80 %) of it: of the guided circuit from its start to its end, of a
  drill logged with the button the circuit's length before the press. Not "empty at the
  end" too: whoever finishes the band walks early and sits down while the last step's time
  runs out has still done the circuit. A drill started by a prompt answers it
  (``prompt_ack`` how=drill, sent as the circuit ends) only when verified; otherwise the
  prompt stays open: a stand-up during the circuit answers it then (how=stood_up), else it
  re-prompts while seated as it would have, or the next stand-up answers it. A step to be
  done off the chair that begins with the seat taken says so (``drill_step`` seated), so
  the desk can tell the user to stand up.
- Button, hold: snoozes a prompt for ``snooze_s``, at most ``max_snoozes`` in a row; after
  that only standing up or a drill answers it. A very long hold pauses prompts for an hour.
- The server may pause prompts too, and end a pause early (``resume``: a ``pause`` event
  with ``pause_s`` 0).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sitwatch.clock import Clock
from sitwatch.drill import CIRCUIT, DrillStep
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings

log = logging.getLogger(__name__)

PAUSE_S = 3600.0
DRILL_EMPTY_SHARE = 0.8  # of a drill's time the seat must be empty for the drill to count


class State(StrEnum):
    EMPTY = "empty"  # nobody on the seat, no stretch running
    SEATED = "seated"
    AWAY = "away"  # stood up, not yet long enough for a break
    PROMPTING = "prompting"
    SNOOZED = "snoozed"
    IN_DRILL = "in_drill"
    PAUSED = "paused"


class ButtonResult(StrEnum):
    """What a button press did, so the hardware can give the right cue."""

    IGNORED = "ignored"
    DRILL_STARTED = "drill_started"
    DRILL_NEXT = "drill_next"
    DRILL_LOGGED = "drill_logged"
    SNOOZED = "snoozed"
    SNOOZE_REFUSED = "snooze_refused"
    PAUSED = "paused"


@dataclass(frozen=True)
class Snapshot:
    """What the tracker knows now, for a status display."""

    state: State
    seated: bool
    stretch_seated_s: float
    to_prompt_s: float | None
    drill_step: DrillStep | None
    prompt_level: int


class SeatLog:
    """The seat's recent changes (monotonic seconds), to tell how long it was empty in a span
    of time."""

    def __init__(self) -> None:
        self._changes: deque[tuple[float, bool]] = deque()  # (mono, occupied), oldest first
        self._occupied_before = False  # before the first change kept (a new tracker: empty)

    def record(self, at: float, occupied: bool) -> None:
        if not self._changes or self._changes[-1][1] != occupied:
            self._changes.append((at, occupied))

    def empty_s(self, start: float, end: float) -> float:
        """Seconds of [start, end] the seat was empty."""
        empty, since, occupied = 0.0, start, self._occupied_before
        for at, now_occupied in self._changes:
            if at >= end:
                break
            if at > start and not occupied:
                empty += at - since
            since, occupied = max(at, start), now_occupied
        return empty + (0.0 if occupied else end - since)

    def forget_before(self, mono: float) -> None:
        """Drop what no span from ``mono`` on needs (the change in force at ``mono`` stays)."""
        while len(self._changes) >= 2 and self._changes[1][0] <= mono:
            self._occupied_before = self._changes.popleft()[1]


class SittingTracker:
    def __init__(
        self,
        settings: TrackerSettings,
        clock: Clock,
        emit: Callable[[Event], None],
        *,
        device_id: str,
        boot_id: str,
        steps: tuple[DrillStep, ...] = CIRCUIT,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._emit_event = emit
        self._device_id = device_id
        self._boot_id = boot_id
        self._steps = steps
        self._zone = ZoneInfo(settings.timezone)
        # Seat
        self._session_start: float | None = None  # mono the current session began
        self._lift_start: float | None = None  # mono the seat emptied during a session
        self._away_since: float | None = None  # mono the last session ended
        self._stretch_done_s = 0.0  # seated time of finished sessions since the last break
        # Prompts
        self._prompt_at: float | None = None  # mono of the first unanswered prompt
        self._last_prompt_mono = float("-inf")  # mono of the latest prompt or re-prompt
        self._next_prompt_at: float | None = None  # a re-prompt is due then (if seated)
        self._level = 0
        self._snoozed_until: float | None = None
        self._snoozes_in_row = 0
        self._paused_until: float | None = None
        self._paused_since: float | None = None  # mono the running pause began
        # Drill
        self._drill_index: int | None = None
        self._drill_step_until: float | None = None
        self._drill_started_at: float | None = None
        self._drill_answers_s: float | None = None  # response time of the prompt it answers
        self._left_in_drill: float | None = None  # mono a session ended during that drill
        self._seat_log = SeatLog()

    # ----- inputs ---------------------------------------------------------------------

    def apply_settings(self, settings: TrackerSettings) -> None:
        """New rules take effect at once; a running stretch keeps its seated time."""
        self.tick()
        self.settings = settings
        self._zone = ZoneInfo(settings.timezone)
        self.tick()

    def seat_changed(self, occupied: bool) -> None:
        self.tick()
        now = self._clock.monotonic()
        self._seat_log.record(now, occupied)
        kept_from = now - self.drill_length_s
        if self._drill_started_at is not None:
            kept_from = min(kept_from, self._drill_started_at)
        self._seat_log.forget_before(kept_from)
        if occupied:
            self._sat_down(now)
        elif self._session_start is not None and self._lift_start is None:
            self._lift_start = now

    def button_pressed(self) -> ButtonResult:
        """A short press (released before the hold time)."""
        self.tick()
        now = self._clock.monotonic()
        if self._drill_index is not None:
            self._next_drill_step(now)
            return ButtonResult.DRILL_NEXT
        if self._prompt_at is not None:
            if now - self._last_prompt_mono < self.settings.press_ignore_s:
                return ButtonResult.IGNORED
            # The prompt stays open until the circuit shows whether it was done off the seat.
            self._drill_answers_s = now - self._prompt_at
            self._snoozed_until = None
            self._next_prompt_at = now + max(self.settings.reprompt_s, self.drill_length_s)
            self._start_drill(now)
            return ButtonResult.DRILL_STARTED
        verified = self._was_empty(now - self.drill_length_s, now)
        self._emit(EventType.DRILL_COMPLETED, now, guided=False, verified=verified)
        return ButtonResult.DRILL_LOGGED

    def button_held(self) -> ButtonResult:
        """The button has been held for the hold time (about 2 s): snooze a prompt."""
        self.tick()
        now = self._clock.monotonic()
        if self._prompt_at is None or self._drill_index is not None:
            return ButtonResult.IGNORED
        if self._snoozed_until is not None:
            return ButtonResult.IGNORED
        if self._snoozes_in_row >= self.settings.max_snoozes:
            return ButtonResult.SNOOZE_REFUSED
        self._snoozes_in_row += 1
        self._snoozed_until = now + self.settings.snooze_s
        self._emit(
            EventType.SNOOZE, now, snooze_s=self.settings.snooze_s, count=self._snoozes_in_row
        )
        return ButtonResult.SNOOZED

    def button_long_held(self, pause_s: float = PAUSE_S) -> ButtonResult:
        """A very long hold (about 6 s): no prompts for ``pause_s``; time still counts."""
        return self.pause(pause_s)

    def pause(self, pause_s: float) -> ButtonResult:
        self.tick()
        now = self._clock.monotonic()
        self._paused_until = now + pause_s
        self._paused_since = now
        self._snoozed_until = None
        self._emit(EventType.PAUSE, now, pause_s=pause_s)
        return ButtonResult.PAUSED

    def resume(self, issued_ago_s: float = 0.0) -> bool:
        """End a running pause now, unless it began after the resume was issued
        ``issued_ago_s`` seconds ago (a late resume must not cancel a newer pause). Emits a
        ``pause`` event with ``pause_s`` 0, so the server sees the pause is over. Returns
        whether a pause ended."""
        self.tick()
        now = self._clock.monotonic()
        if self._paused_until is None or self._paused_since is None:
            return False
        if self._paused_since > now - max(0.0, issued_ago_s):
            log.info("keeping a pause that began after the resume was sent")
            return False
        self._end_pause(now)
        self._emit(EventType.PAUSE, now, pause_s=0.0)
        return True

    # ----- time -----------------------------------------------------------------------

    def tick(self) -> None:
        """Handle every deadline that has passed, each at its own time, in order."""
        now = self._clock.monotonic()
        for _ in range(1000):  # bounded: each pass settles one deadline
            due = self._earliest_deadline()
            if due is None or due[0] > now:
                return
            at, action = due
            action(at)
        log.error("tracker: deadline loop did not settle")

    def next_deadline(self) -> float | None:
        """Monotonic time of the next thing that will happen without input."""
        due = self._earliest_deadline()
        return None if due is None else due[0]

    # ----- views ----------------------------------------------------------------------

    @property
    def is_seated(self) -> bool:
        return self._session_start is not None and self._lift_start is None

    @property
    def state(self) -> State:
        now = self._clock.monotonic()
        if self._drill_index is not None:
            return State.IN_DRILL
        if self._paused_until is not None and now < self._paused_until:
            return State.PAUSED
        if self._snoozed_until is not None:
            return State.SNOOZED
        if self._prompt_at is not None:
            return State.PROMPTING
        if self._session_start is not None:
            return State.SEATED
        if self._away_since is not None:
            return State.AWAY
        return State.EMPTY

    def stretch_seated_s(self, now: float | None = None) -> float:
        """Seated time since the last break, in seconds."""
        now = self._clock.monotonic() if now is None else now
        current = 0.0 if self._session_start is None else now - self._session_start
        return self._stretch_done_s + current

    def snapshot(self) -> Snapshot:
        now = self._clock.monotonic()
        to_prompt = None
        if self._session_start is not None and self._prompt_at is None:
            to_prompt = max(0.0, self.settings.sitting_limit_s - self.stretch_seated_s(now))
        step = None if self._drill_index is None else self._steps[self._drill_index]
        return Snapshot(
            self.state, self.is_seated, self.stretch_seated_s(now), to_prompt, step, self._level
        )

    @property
    def drill_length_s(self) -> float:
        return len(self._steps) * self.settings.drill_step_s

    # ----- deadlines ------------------------------------------------------------------

    def _earliest_deadline(self) -> tuple[float, Callable[[float], None]] | None:
        candidates: list[tuple[float, Callable[[float], None]]] = []
        if self._lift_start is not None:
            candidates.append((self._lift_start + self.settings.grace_s, self._end_session))
        if self._away_since is not None and self._session_start is None:
            candidates.append((self._away_since + self.settings.break_s, self._credit_break))
        if self._drill_step_until is not None:
            candidates.append((self._drill_step_until, self._next_drill_step))
        if self._snoozed_until is not None:
            candidates.append((self._snoozed_until, self._end_snooze))
        if self._paused_until is not None:
            candidates.append((self._paused_until, self._end_pause))
        prompt_at = self._prompt_due()
        if prompt_at is not None:
            candidates.append((prompt_at, self._fire_prompt))
        return min(candidates, key=lambda c: c[0], default=None)

    def _prompt_due(self) -> float | None:
        if self._session_start is None or self._lift_start is not None:
            return None  # nobody to prompt (a short lift resolves itself first)
        if self._drill_index is not None:
            return None
        if self._snoozed_until is not None or self._paused_until is not None:
            return None
        reached = self._session_start + self.settings.sitting_limit_s - self._stretch_done_s
        if self._next_prompt_at is None:
            return reached
        return max(reached, self._next_prompt_at)

    # ----- transitions ----------------------------------------------------------------

    def _sat_down(self, now: float) -> None:
        if self._lift_start is not None:  # back within the grace period: same session
            self._lift_start = None
            return
        if self._session_start is not None:
            return
        away_s = None if self._away_since is None else now - self._away_since
        self._session_start = now
        self._away_since = None
        if self._prompt_at is None and self._stretch_done_s >= self.settings.sitting_limit_s:
            # Back after a stand that was too short for a break: remind again later, not now.
            self._next_prompt_at = max(self._next_prompt_at or 0.0, now + self.settings.reprompt_s)
        data: dict[str, Any] = {} if away_s is None else {"away_s": round(away_s, 3)}
        self._emit(EventType.SEATED, now, **data)

    def _end_session(self, at: float) -> None:
        """The lift lasted the grace period: the session ended when the user left."""
        assert self._session_start is not None and self._lift_start is not None
        left = self._lift_start
        session_s = left - self._session_start
        self._stretch_done_s += session_s
        self._session_start = None
        self._lift_start = None
        self._away_since = left
        self._emit(EventType.STOOD_UP, left, session_s=round(session_s, 3))
        if self._prompt_at is not None and self._drill_index is not None:
            # The running drill decides how the prompt was answered, when it ends.
            if self._left_in_drill is None:
                self._left_in_drill = left
        elif self._prompt_at is not None:
            response_s = max(0.0, left - self._prompt_at)
            self._emit(EventType.PROMPT_ACK, left, how="stood_up", response_s=round(response_s, 3))
            self._clear_prompt()
        self._snoozed_until = None

    def _credit_break(self, at: float) -> None:
        assert self._away_since is not None
        self._emit(EventType.BREAK, at, away_s=round(at - self._away_since, 3))
        self._away_since = None
        self._stretch_done_s = 0.0
        self._next_prompt_at = None
        self._level = 0
        self._snoozes_in_row = 0

    def _fire_prompt(self, at: float) -> None:
        if self._prompt_at is None:
            self._prompt_at = at
        self._level = min(self._level + 1, self.settings.max_level)
        self._last_prompt_mono = at
        self._next_prompt_at = at + self.settings.reprompt_s
        self._emit(
            EventType.PROMPT,
            at,
            level=self._level,
            seated_s=round(self.stretch_seated_s(at), 3),
            quiet=self._is_quiet(at),
        )

    def _end_snooze(self, at: float) -> None:
        self._snoozed_until = None
        if self._prompt_at is not None:
            self._next_prompt_at = at  # the prompt comes back when the snooze ends

    def _end_pause(self, at: float) -> None:
        self._paused_until = None
        self._paused_since = None
        # A prompt that fell due during the pause comes now, not stamped in the past.
        self._next_prompt_at = max(self._next_prompt_at or at, at)

    def _clear_prompt(self) -> None:
        self._prompt_at = None
        self._snoozed_until = None
        self._snoozes_in_row = 0

    def _start_drill(self, now: float) -> None:
        self._emit(EventType.DRILL_STARTED, now, guided=True)
        self._drill_index = -1
        self._drill_started_at = now
        self._left_in_drill = None
        self._next_drill_step(now)

    def _next_drill_step(self, at: float) -> None:
        assert self._drill_index is not None
        self._drill_index += 1
        if self._drill_index >= len(self._steps):
            self._end_drill(at)
            return
        step = self._steps[self._drill_index]
        self._drill_step_until = at + self.settings.drill_step_s
        seated = step.off_seat and self.is_seated
        self._emit(EventType.DRILL_STEP, at, index=self._drill_index, step=step.key, seated=seated)

    def _end_drill(self, at: float) -> None:
        assert self._drill_started_at is not None
        verified = self._was_empty(self._drill_started_at, at)
        answers_s, left = self._drill_answers_s, self._left_in_drill
        self._drill_index = self._drill_step_until = self._drill_started_at = None
        self._drill_answers_s = self._left_in_drill = None
        # The answer first: its cue (idle) must not cut the drill's own, which comes last.
        if answers_s is not None and self._prompt_at is not None:
            if verified:
                self._emit(EventType.PROMPT_ACK, at, how="drill", response_s=round(answers_s, 3))
                self._clear_prompt()
            elif left is not None:
                response_s = max(0.0, left - self._prompt_at)
                self._emit(
                    EventType.PROMPT_ACK, at, how="stood_up", response_s=round(response_s, 3)
                )
                self._clear_prompt()
        self._emit(EventType.DRILL_COMPLETED, at, guided=True, verified=verified)

    # ----- helpers --------------------------------------------------------------------

    def _was_empty(self, start: float, end: float) -> bool:
        """Whether the seat was empty long enough in [start, end] for a drill to count."""
        span_s = end - start
        return span_s > 0 and self._seat_log.empty_s(start, end) >= DRILL_EMPTY_SHARE * span_s

    def _is_quiet(self, at: float) -> bool:
        """Quiet hours, or outside working hours. Local time through zoneinfo, so a DST
        change moves the windows with the clock on the wall."""
        local = self._wall_at(at).astimezone(self._zone)
        quiet, active = self.settings.quiet_hours, self.settings.active_hours
        if quiet is not None and quiet.contains(local.time()):
            return True
        return active is not None and not active.contains(local)

    def _wall_at(self, at: float) -> datetime:
        return self._clock.wall() - timedelta(seconds=self._clock.monotonic() - at)

    def _emit(self, kind: EventType, at: float, **data: Any) -> None:
        event = Event(
            type=kind,
            device_id=self._device_id,
            boot_id=self._boot_id,
            mono=at,
            ts=self._wall_at(at),
            clock_synced=self._clock.is_synced(),
            data=data,
        )
        log.info("event %s %s", kind, data)
        self._emit_event(event)
