"""The dashboard's pause buttons and the command each sends (whether a device is paused now
is server/queries/pauses.py).

"Until tomorrow" ends at the start of the next day as the dashboard counts days (the
server's ``timezone`` and ``day_start_hour``, default 04:00): the same moment "today"'s
figures roll over. Outside its active hours a device never buzzes anyway, so between that
hour and the start of work the pause makes no difference.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_wtf import FlaskForm
from wtforms import StringField

from sitwatch.protocol import Command, PauseCommand, ResumeCommand
from sitwatch.server.queries.stats import Calendar

HOUR = "hour"
TOMORROW = "tomorrow"
RESUME = "resume"
SPANS = (HOUR, TOMORROW, RESUME)


class PauseForm(FlaskForm):
    """Three submit buttons named ``span`` (values in SPANS) and the CSRF token; the template
    writes the buttons itself, since WTForms has no button with its own value."""

    span = StringField()


def command_for(span: str, now: datetime, calendar: Calendar) -> Command:
    """The command a button sends at ``now`` (UTC); ``span`` must be one of SPANS."""
    if span == RESUME:
        return ResumeCommand(at=now)
    if span == HOUR:
        until = now + timedelta(hours=1)
    elif span == TOMORROW:
        until = calendar.bounds(calendar.day_of(now))[1]
    else:
        raise ValueError(f"unknown pause span {span!r:.40}")
    return PauseCommand(pause_s=round((until - now).total_seconds(), 3), until=until)
