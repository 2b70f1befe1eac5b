"""Seat detection from an analog pressure sensor (FSR or Velostat mat through an ADC).

Pure logic: readings in, occupied/empty out. Two-point calibration (an empty and an
occupied reading) sets the scale; the seat counts as occupied once the moving average
passes ``trigger_fraction`` of the way from empty to occupied, and as empty again only
below ``trigger_fraction - hysteresis``, so a sensor hovering at the threshold does not
flap. Works whichever way the reading moves under load.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_GAP = 0.05  # readings closer than this cannot tell a sitter from an empty seat


class CalibrationError(ValueError):
    """A calibration that cannot separate an empty seat from an occupied one."""


@dataclass(frozen=True)
class Calibration:
    empty: float  # ADC reading (0..1) with nobody on the seat
    occupied: float  # ADC reading with the user sitting normally

    def __post_init__(self) -> None:
        for name in ("empty", "occupied"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise CalibrationError(f"{name} reading {value!r} is outside 0..1")
        if abs(self.occupied - self.empty) < MIN_GAP:
            raise CalibrationError(
                f"empty ({self.empty:.3f}) and occupied ({self.occupied:.3f}) readings are "
                f"too close (need {MIN_GAP} apart): check the sensor and its resistor"
            )

    def fraction(self, reading: float) -> float:
        """0.0 at the empty reading, 1.0 at the occupied reading."""
        return (reading - self.empty) / (self.occupied - self.empty)

    def reading_at(self, fraction: float) -> float:
        return self.empty + fraction * (self.occupied - self.empty)


class AnalogSeat:
    def __init__(
        self,
        calibration: Calibration,
        trigger_fraction: float = 0.75,
        hysteresis: float = 0.15,
        window: int = 5,
    ) -> None:
        if not 0.0 < trigger_fraction - hysteresis < trigger_fraction <= 1.0:
            raise CalibrationError("need 0 < trigger_fraction - hysteresis < trigger_fraction <= 1")
        self.calibration = calibration
        self.on_at = trigger_fraction
        self.off_below = trigger_fraction - hysteresis
        self._recent: deque[float] = deque(maxlen=window)
        self.occupied = False

    def add(self, reading: float) -> bool:
        """Take one reading; returns whether the seat is occupied now."""
        self._recent.append(reading)
        level = self.calibration.fraction(sum(self._recent) / len(self._recent))
        if self.occupied and level < self.off_below:
            self.occupied = False
        elif not self.occupied and level >= self.on_at:
            self.occupied = True
        return self.occupied


def measure(read: Callable[[], float], samples: int, pause: Callable[[], None]) -> float:
    """The average of ``samples`` readings, ``pause()`` between them."""
    total = 0.0
    for _ in range(samples):
        total += read()
        pause()
    return total / samples


def calibrate(
    read: Callable[[], float],
    ask: Callable[[str], None],
    *,
    samples: int = 30,
    pause: Callable[[], None] = lambda: None,
) -> Calibration:
    """Walk the user through the two readings; ``ask`` shows a message and waits for them."""
    ask("Leave the seat EMPTY, then press Enter.")
    empty = measure(read, samples, pause)
    ask(f"Empty reading {empty:.3f}. Now SIT normally, then press Enter.")
    occupied = measure(read, samples, pause)
    return Calibration(empty=round(empty, 4), occupied=round(occupied, 4))


def save_calibration(path: Path, calibration: Calibration) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(calibration)))
    os.replace(tmp, path)


def read_calibration(path: Path) -> Calibration:
    """The stored calibration; raises FileNotFoundError if there is none, and
    CalibrationError naming the reason if the file cannot be used."""
    try:
        data = json.loads(path.read_text())
        return Calibration(empty=float(data["empty"]), occupied=float(data["occupied"]))
    except (FileNotFoundError, CalibrationError):
        raise
    except OSError as exc:
        raise CalibrationError(exc.strerror or str(exc)) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CalibrationError(f"{type(exc).__name__}: {exc}") from exc


def load_calibration(path: Path) -> Calibration | None:
    """The stored calibration, or None (missing or unreadable, with a logged reason)."""
    try:
        return read_calibration(path)
    except FileNotFoundError:
        return None
    except CalibrationError as exc:
        log.warning("ignoring unusable calibration file %s: %s", path, exc)
        return None
