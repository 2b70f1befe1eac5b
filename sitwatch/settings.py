"""The sitting rules a desk runs by: one validated model shared by the device's config file,
the retained MQTT config topic and the dashboard's settings form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class SettingsProblem:
    """One thing wrong in a settings table, as pydantic located it."""

    loc: tuple[str, ...]  # key path, e.g. ("quiet_hours", "start"); () for the whole table
    shown: str  # the value given, shortened for display
    message: str  # pydantic's message, e.g. "Value error, expected HH:MM (24 h), got '25:00'"

    @property
    def key(self) -> str:
        return ".".join(self.loc) or "(top level)"


class SettingsError(ValueError):
    """Settings that fail validation. The message names every bad key and value, one line
    each (for the CLI and logs); ``problems`` keeps them located, for a form to mark fields."""

    def __init__(self, message: str, problems: tuple[SettingsProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


def parse_hhmm(text: str) -> time:
    """'22:30' -> time(22, 30)."""
    if not HHMM.match(text):
        raise ValueError(f"expected HH:MM (24 h), got {text!r}")
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class QuietHours(BaseModel):
    """A daily window (local time) in which prompts are silent; may wrap midnight.
    Equal start and end: no quiet hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Annotated[str, Field(description="start, HH:MM local time")] = "22:00"
    end: Annotated[str, Field(description="end, HH:MM local time")] = "07:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    def contains(self, local: time) -> bool:
        start, end = parse_hhmm(self.start), parse_hhmm(self.end)
        if start == end:
            return False
        if start < end:
            return start <= local < end
        return local >= start or local < end


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WORKDAY = "09:00-18:00"


def parse_span(text: str) -> tuple[time, time]:
    """'09:00-18:00' -> (time(9), time(18)); the end must come after the start.
    An end of '24:00' means the end of the day."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"expected HH:MM-HH:MM, got {text!r}")
    first = parse_hhmm(start.strip())
    last = time.max if end.strip() == "24:00" else parse_hhmm(end.strip())
    if last <= first:
        raise ValueError(f"the end of {text!r} must come after its start")
    return first, last


class ActiveHours(BaseModel):
    """Per-weekday working hours (local time); outside them the device tracks but never
    buzzes. An empty string means no active hours that day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mon: str = WORKDAY
    tue: str = WORKDAY
    wed: str = WORKDAY
    thu: str = WORKDAY
    fri: str = WORKDAY
    sat: str = ""
    sun: str = ""

    @field_validator(*WEEKDAYS)
    @classmethod
    def _span(cls, value: str) -> str:
        if value:
            parse_span(value)
        return value

    def contains(self, local: datetime) -> bool:
        span = getattr(self, WEEKDAYS[local.weekday()])
        if not span:
            return False
        start, end = parse_span(span)
        return start <= local.time() < end


class TrackerSettings(BaseModel):
    """Sitting rules, in seconds unless the name says otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sitting_limit_s: Annotated[
        float, Field(ge=60, le=4 * 3600, description="seated time before the first prompt")
    ] = 30 * 60
    grace_s: Annotated[
        float, Field(ge=0, le=600, description="a lift shorter than this does not end a session")
    ] = 60
    break_s: Annotated[
        float, Field(ge=10, le=3600, description="time off the seat that counts as a break")
    ] = 120
    reprompt_s: Annotated[
        float, Field(ge=30, le=3600, description="re-prompt interval while still seated")
    ] = 15 * 60
    max_level: Annotated[
        int, Field(ge=1, le=5, description="escalation cap of the prompt pattern")
    ] = 3
    snooze_s: Annotated[float, Field(ge=60, le=3600, description="length of a snooze")] = 10 * 60
    max_snoozes: Annotated[
        int, Field(ge=0, le=10, description="snoozes in a row before only standing answers")
    ] = 2
    drill_step_s: Annotated[
        float, Field(ge=5, le=300, description="time per guided drill step")
    ] = 30
    press_ignore_s: Annotated[
        float, Field(ge=0, le=10, description="button presses this soon after a prompt are ignored")
    ] = 2
    timezone: Annotated[str, Field(description="IANA time zone for quiet hours")] = "UTC"
    quiet_hours: QuietHours | None = QuietHours()
    # None: every hour is active. Prompts outside active hours are silent (LED only).
    active_hours: ActiveHours | None = ActiveHours()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _grace_within_break(self) -> Self:
        if self.grace_s > self.break_s:
            raise ValueError(
                f"grace_s ({self.grace_s:g}) must not exceed break_s ({self.break_s:g})"
            )
        return self

    @classmethod
    def parse(cls, data: Any, where: str = "settings") -> TrackerSettings:
        """Validate ``data``; raise SettingsError naming each bad key and its value."""
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a table of settings, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc, where), problems_of(exc)) from None


def problems_of(exc: ValidationError) -> tuple[SettingsProblem, ...]:
    problems = []
    for err in exc.errors(include_url=False):
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        loc = tuple(str(part) for part in err["loc"])
        problems.append(SettingsProblem(loc, shown, err["msg"]))
    return tuple(problems)


def describe_errors(exc: ValidationError, where: str) -> str:
    """One line per problem: 'where.key = value: why'."""
    lines = [f"{where}.{p.key} = {p.shown}: {p.message}" for p in problems_of(exc)]
    return "invalid " + where + ":\n  " + "\n  ".join(lines)
