"""The settings form: TrackerSettings in words a person understands. Durations are typed in
minutes, or in seconds where seconds are natural; the time zone is picked from a list;
working hours are set per weekday and quiet hours as a window; problems are told in plain
words next to the field they are about.

TrackerSettings (in seconds) stays the wire format and its ``parse`` the only judge of what
is allowed: the form only converts what was typed and words the problems pydantic located.
A value shown in minutes has at most four decimals, and minutes typed are stored to the
hundredth of a second, so settings saved unchanged are stored exactly as they were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Form,
    FormField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
)

from sitwatch.settings import (
    HHMM,
    WEEKDAYS,
    ActiveHours,
    SettingsError,
    SettingsProblem,
    TrackerSettings,
)


@dataclass(frozen=True)
class Unit:
    """What a number is typed in: ``seconds`` of the setting's own unit make one of these."""

    name: str  # singular, "" for a plain count
    seconds: float

    def amount(self, number: float) -> str:
        """'1 minute', '30 minutes', '2' (a count)."""
        text = f"{number:g}"
        if not self.name:
            return text
        return f"{text} {self.name}" + ("" if number == 1 else "s")


MINUTES = Unit("minute", 60)
SECONDS = Unit("second", 1)
COUNT = Unit("", 1)


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class AmountField(StringField):
    """A number setting typed in ``unit``; ``setting`` is its TrackerSettings key (seconds,
    or a count). Text, so that what was typed comes back as typed after an error."""

    def __init__(
        self, label: str, setting: str, unit: Unit, whole: bool = False, **kwargs: Any
    ) -> None:
        mode = "numeric" if whole else "decimal"
        super().__init__(label, render_kw={"inputmode": mode, "autocomplete": "off"}, **kwargs)
        self.setting, self.unit, self.whole = setting, unit, whole

    def show(self, value: float) -> None:
        self.data = f"{round(value / self.unit.seconds, 4):g}"

    def value(self) -> float | None:
        """What was typed, in the setting's unit; None for no number (parse rejects it)."""
        number = _number((self.data or "").strip())
        if number is None or (self.whole and not number.is_integer()):
            return None
        if self.whole:
            return int(number)
        return number if self.unit.seconds == 1 else round(number * self.unit.seconds, 2)

    def problem(self) -> str:
        """What is wrong with what was typed, in words (the setting was rejected)."""
        text = (self.data or "").strip()
        if not text:
            return "Enter a whole number" if self.whole else "Enter a number"
        number = _number(text)
        if number is None:
            return "Must be a number"
        if self.whole and not number.is_integer():
            return "Must be a whole number"
        low, high = limits(self.setting)
        if low is not None and number * self.unit.seconds < low:
            if low == 0:
                return "Cannot be negative"
            return f"Must be at least {self.unit.amount(low / self.unit.seconds)}"
        if high is not None and number * self.unit.seconds > high:
            return f"Must be at most {self.unit.amount(high / self.unit.seconds)}"
        return "Not allowed here"


def limits(setting: str) -> tuple[float | None, float | None]:
    """The lowest and highest value TrackerSettings allows for ``setting``."""
    rules = _schema()["properties"][setting]
    return rules.get("minimum"), rules.get("maximum")


@cache
def _schema() -> dict[str, Any]:
    return TrackerSettings.model_json_schema()


# The desk has three prompt patterns (device/patterns.py); higher levels sound like the third.
LEVELS = [
    SelectChoice("1", "1 – gentle"),
    SelectChoice("2", "2 – firmer"),
    SelectChoice("3", "3 – insistent"),
]
TIME_WORDS = "Enter a time as HH:MM on the 24-hour clock, e.g. 09:00"
# The end of day as ActiveHours spells it (parse_span), which a HH:MM box cannot show.
ALL_DAY = "00:00-24:00"
END_OF_DAY = "24:00"
WORK_MODES = [
    SelectChoice("hours", "These hours"),
    SelectChoice("all_day", "All day"),
    SelectChoice("off", "Off"),
]
DAY_NAMES = dict(
    zip(
        WEEKDAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
TIME_BOX = {"inputmode": "numeric", "autocomplete": "off", "maxlength": 5, "size": 5}


def level_choices(current: str | None) -> list[SelectChoice]:
    """LEVELS, plus the current level if it is a higher one the settings allow."""
    if current is None or not current.isdigit() or int(current) <= len(LEVELS):
        return LEVELS
    _low, high = limits("max_level")
    if high is None or int(current) > high:
        return LEVELS
    return [*LEVELS, SelectChoice(current, f"{current} – as insistent as {len(LEVELS)}")]


OTHER_ZONES = "Other"


@cache
def _zones() -> tuple[SelectChoice, ...]:
    zones = []
    for name in available_timezones():
        region, sep, place = name.partition("/")
        shown = (place if sep else name).replace("_", " ")
        zones.append(SelectChoice(name, shown, optgroup=region if sep else OTHER_ZONES))
    return tuple(sorted(zones, key=lambda zone: (zone.optgroup == OTHER_ZONES, zone.value)))


def zone_choices(current: str | None) -> list[SelectChoice]:
    """Every time zone this machine knows, grouped by region (each an <optgroup>), sorted,
    the zones of no region last; plus the current one if the list lacks it, so that it
    shows as chosen."""
    zones = list(_zones())
    if current and all(zone.value != current for zone in zones):
        zones.append(SelectChoice(current, optgroup=OTHER_ZONES))
    return zones


class DayHours(Form):
    """One weekday's working hours: these hours, all day, or off."""

    mode = SelectField("Working hours", choices=WORK_MODES, validate_choice=False)
    start = StringField("from", render_kw=TIME_BOX)
    end = StringField("to", render_kw=TIME_BOX)

    def fill(self, span: str) -> None:
        self.start.data, self.end.data = "09:00", "18:00"
        if not span:
            self.mode.data = "off"
        elif span == ALL_DAY:
            self.mode.data = "all_day"
        else:
            start, _, end = span.partition("-")
            self.mode.data, self.start.data, self.end.data = "hours", start.strip(), end.strip()

    def span(self) -> str:
        """As ActiveHours spells it: '' off, ALL_DAY, or 'HH:MM-HH:MM'."""
        if self.mode.data == "off":
            return ""
        if self.mode.data == "all_day":
            return ALL_DAY
        return f"{(self.start.data or '').strip()}-{(self.end.data or '').strip()}"

    def attach(self) -> None:
        """Mark what is wrong with these hours (ActiveHours rejected them)."""
        start, end = (self.start.data or "").strip(), (self.end.data or "").strip()
        if not HHMM.match(start):
            self.start.errors = [TIME_WORDS]
        elif end != END_OF_DAY and not HHMM.match(end):
            self.end.errors = [TIME_WORDS]
        else:
            self.end.errors = ["Must be later than the start (for the whole day, choose All day)"]


def _day(day: str) -> Any:
    return FormField(DayHours, label=DAY_NAMES[day])


class SettingsForm(FlaskForm):
    """TrackerSettings as a person sets them. ``as_table`` converts what was typed into a
    settings table for TrackerSettings.parse, the only validator, so the device's config
    file, the MQTT topic and this form accept and reject the same settings;
    ``attach_errors`` words what it rejected."""

    sitting_limit_min = AmountField(
        "Prompt me after sitting for",
        "sitting_limit_s",
        MINUTES,
        description="Seated time in one stretch before the desk reminds you to move.",
    )
    reprompt_min = AmountField(
        "Remind me again every",
        "reprompt_s",
        MINUTES,
        description="While you stay seated after a reminder.",
    )
    max_level = SelectField(
        "How insistent prompts may get",
        choices=LEVELS,
        validate_choice=False,
        description="Each reminder in a row is a little stronger, up to this: 1 gentle – "
        "3 insistent.",
    )
    press_ignore_s = AmountField(
        "Ignore button presses for",
        "press_ignore_s",
        SECONDS,
        description="Right after a reminder starts, so a press meant for something else "
        "does not answer it.",
    )
    break_min = AmountField(
        "A break is standing up for",
        "break_s",
        MINUTES,
        description="A break starts the sitting count afresh; a shorter stand does not.",
    )
    grace_s = AmountField(
        "A short lift lasts up to",
        "grace_s",
        SECONDS,
        description="A lift shorter than this is not a break, nor even standing up: "
        "shifting in the chair, reaching for something.",
    )
    snooze_min = AmountField(
        "A snooze lasts",
        "snooze_s",
        MINUTES,
        description="Hold the button during a reminder to snooze it.",
    )
    max_snoozes = AmountField(
        "Snoozes in a row",
        "max_snoozes",
        COUNT,
        whole=True,
        description="After these, only standing up or a drill ends the reminder.",
    )
    drill_step_s = AmountField(
        "Time for each drill exercise",
        "drill_step_s",
        SECONDS,
        description="The guided drill moves on to the next exercise after this.",
    )
    timezone = SelectField(
        "Time zone",
        validate_choice=False,
        description="Working and quiet hours are in this time zone.",
    )
    work_hours_enabled = BooleanField(
        "Buzz only in working hours",
        description="Outside them the desk still counts your sitting, but only its light "
        "shows a reminder. Unticked: the buzzer may sound at any hour.",
    )
    work_mon, work_tue, work_wed = _day("mon"), _day("tue"), _day("wed")
    work_thu, work_fri, work_sat, work_sun = _day("thu"), _day("fri"), _day("sat"), _day("sun")
    quiet_enabled = BooleanField(
        "Quiet hours", description="No buzzer in this window, even in working hours."
    )
    quiet_start = StringField("Quiet from", render_kw={**TIME_BOX, "placeholder": "22:00"})
    quiet_end = StringField(
        "Quiet until",
        description="May run past midnight. The same time twice: no quiet hours.",
        render_kw={**TIME_BOX, "placeholder": "07:00"},
    )
    save = SubmitField("Save and send to the desk")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._offer_current()

    def _offer_current(self) -> None:
        """The choices, with the current level and time zone among them."""
        self.max_level.choices = level_choices(self.max_level.data)
        self.timezone.choices = zone_choices(self.timezone.data)

    def amounts(self) -> list[AmountField]:
        return [field for field in self if isinstance(field, AmountField)]

    def week(self) -> list[tuple[str, FormField]]:
        """(weekday key, its DayHours field), Monday first."""
        return [(day, self[f"work_{day}"]) for day in WEEKDAYS]

    def fill(self, settings: TrackerSettings) -> None:
        for field in self.amounts():
            field.show(getattr(settings, field.setting))
        self.max_level.data = str(settings.max_level)
        self.timezone.data = settings.timezone
        self.work_hours_enabled.data = settings.active_hours is not None
        hours = settings.active_hours or ActiveHours()
        for day, field in self.week():
            field.form.fill(getattr(hours, day))
        quiet = settings.quiet_hours
        self.quiet_enabled.data = quiet is not None
        self.quiet_start.data = quiet.start if quiet else "22:00"
        self.quiet_end.data = quiet.end if quiet else "07:00"
        self._offer_current()

    def as_table(self) -> dict[str, Any]:
        """What was typed as a settings table (seconds), for TrackerSettings.parse."""
        table: dict[str, Any] = {field.setting: field.value() for field in self.amounts()}
        level = (self.max_level.data or "").strip()
        table["max_level"] = int(level) if level.isdigit() else None
        table["timezone"] = (self.timezone.data or "").strip()
        table["active_hours"] = (
            {day: field.form.span() for day, field in self.week()}
            if self.work_hours_enabled.data
            else None
        )
        table["quiet_hours"] = (
            {
                "start": (self.quiet_start.data or "").strip(),
                "end": (self.quiet_end.data or "").strip(),
            }
            if self.quiet_enabled.data
            else None
        )
        return table

    def attach_errors(self, error: SettingsError) -> list[str]:
        """Put each of the error's problems, in words, on the field it is about; return
        those about no single field."""
        unplaced = []
        for problem in error.problems:
            if not self._attach(problem):
                unplaced.append(
                    "These settings could not be saved: "
                    + problem.message.removeprefix("Value error, ")
                )
        return unplaced

    def _attach(self, problem: SettingsProblem) -> bool:
        """Mark ``problem`` on its field; False if it is about no field of this form."""
        by_setting = {field.setting: field for field in self.amounts()}
        match problem.loc:
            case (setting,) if setting in by_setting:
                field = by_setting[setting]
                field.errors = [field.problem()]
            case ("max_level",):
                self.max_level.errors = ["Pick one of the levels in the list"]
            case ("timezone",):
                self.timezone.errors = ["Pick a time zone from the list"]
            case ("quiet_hours", "start"):
                self.quiet_start.errors = [TIME_WORDS]
            case ("quiet_hours", "end"):
                self.quiet_end.errors = [TIME_WORDS]
            case ("active_hours", day) if day in WEEKDAYS:
                self[f"work_{day}"].form.attach()
            case ():  # the one rule across fields: a short lift is no longer than a break
                lift = self.grace_s.value()
                if lift is None:
                    return False
                self.break_min.errors = [
                    "A break must last at least as long as a short lift "
                    f"({SECONDS.amount(lift)}): make it longer, or the short lift shorter"
                ]
            case _:
                return False
        return True
