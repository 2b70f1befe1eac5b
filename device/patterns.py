"""Buzzer and LED patterns: one per thing the user must notice, distinct by ear and by eye.

| pattern        | buzzer                              | LED                         |
|----------------|-------------------------------------|-----------------------------|
| time to move 1 | 3 beeps, 0.15 s on / 0.15 s off     | slow pulse until answered   |
| time to move 2 | 5 beeps, 0.10 s / 0.10 s            | faster pulse                |
| time to move 3 | 16 beeps, 0.07 s / 0.07 s           | fast blink                  |
| drill step     | 1 beep, 0.4 s                       | two quick flashes           |
| drill done     | 3 beeps, 0.3 s / 0.1 s              | on for 3 s, then off        |
| stand up       | 2 long beeps, 0.6 s / 0.3 s         | 4 flashes, 0.3 s / 0.3 s    |
| not counted    | 1 long beep, 1.2 s                  | 2 slow blinks, 0.8 s / 0.4 s|
| snoozed        | 1 short beep                        | off                         |
| refused        | 2 very short beeps                  | 2 very quick flashes        |
| offline        | silent                              | 0.1 s flash every 3 s       |
| idle           | silent                              | off                         |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LedMode(StrEnum):
    OFF = "off"
    ON = "on"
    BLINK = "blink"
    PULSE = "pulse"


@dataclass(frozen=True)
class LedPattern:
    mode: LedMode
    on_s: float = 0.0  # blink: on time; pulse: fade-in time
    off_s: float = 0.0  # blink: off time; pulse: fade-out time
    times: int | None = None  # None: until the next pattern; then off


@dataclass(frozen=True)
class Pattern:
    name: str
    beeps: int  # how many beeps, each ``beep_s`` on and ``gap_s`` off
    beep_s: float
    gap_s: float
    led: LedPattern

    @property
    def audible(self) -> bool:
        return self.beeps > 0

    def silent(self) -> Pattern:
        """The same pattern without sound (quiet hours)."""
        return Pattern(self.name + " (quiet)", 0, 0.0, 0.0, self.led)


TIME_TO_MOVE = (
    Pattern("time to move 1", 3, 0.15, 0.15, LedPattern(LedMode.PULSE, 1.0, 1.0)),
    Pattern("time to move 2", 5, 0.10, 0.10, LedPattern(LedMode.PULSE, 0.4, 0.4)),
    Pattern("time to move 3", 16, 0.07, 0.07, LedPattern(LedMode.BLINK, 0.15, 0.15)),
)
DRILL_STEP = Pattern("drill step", 1, 0.4, 0.1, LedPattern(LedMode.BLINK, 0.1, 0.1, times=2))
DRILL_DONE = Pattern("drill done", 3, 0.3, 0.1, LedPattern(LedMode.BLINK, 3.0, 0.01, times=1))
# A drill step to be done off the chair began with the seat taken: "stand up for the circuit".
STAND_UP = Pattern("stand up", 2, 0.6, 0.3, LedPattern(LedMode.BLINK, 0.3, 0.3, times=4))
# The circuit ended without the seat empty for most of it: it does not count.
DRILL_NOT_COUNTED = Pattern(
    "drill not counted", 1, 1.2, 0.1, LedPattern(LedMode.BLINK, 0.8, 0.4, times=2)
)
SNOOZED = Pattern("snoozed", 1, 0.1, 0.1, LedPattern(LedMode.OFF))
REFUSED = Pattern("refused", 2, 0.05, 0.1, LedPattern(LedMode.BLINK, 0.05, 0.1, times=2))
OFFLINE = Pattern("offline", 0, 0.0, 0.0, LedPattern(LedMode.BLINK, 0.1, 2.9))
IDLE = Pattern("idle", 0, 0.0, 0.0, LedPattern(LedMode.OFF))


def time_to_move(level: int) -> Pattern:
    return TIME_TO_MOVE[max(1, min(level, len(TIME_TO_MOVE))) - 1]
