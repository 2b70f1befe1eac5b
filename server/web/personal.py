"""The personal page (/my-day), where a member lands after logging in: the logged-in
person's own desks combined (server/queries/progress.py says how), today against the same
weekday last week up to the same time of day, this week against last week on one chart,
their daily goal (chosen with the form here) as a ring and a bar, and its streak; and the
weekly summary (/my-week). Only ``Viewer.own_scope`` is read: an admin sees here only the
desks linked to themselves, never members' figures."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import IntegerField, SubmitField
from wtforms.validators import InputRequired, NumberRange

from sitwatch.server.queries import personal, progress, stats
from sitwatch.server.web.charts import goal_ring, week_pair_chart
from sitwatch.server.web.context import current_account, db, now, viewer, web_state
from sitwatch.server.web.filters import format_duration
from sitwatch.server.web.params import date_arg

bp = Blueprint("personal", __name__)


class WholeNumberField(IntegerField):
    """A whole number, with a plain-word error for anything else ("Enter a whole number",
    not WTForms' "Not a valid integer value")."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError("Enter a whole number") from exc


class GoalForm(FlaskForm):
    """The daily goal, in the words the page uses."""

    max_stretch_min = WholeNumberField(
        "Longest stretch, at most",
        validators=[
            InputRequired("Enter a number of minutes"),
            NumberRange(*progress.STRETCH_MIN_RANGE, "Choose %(min)s to %(max)s minutes"),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
        description="minutes in one go before you stand up",
    )
    break_hours = WholeNumberField(
        "Stand up in at least",
        validators=[
            InputRequired("Enter a number of hours"),
            NumberRange(*progress.BREAK_HOURS_RANGE, "Choose %(min)s to %(max)s hours"),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
        description="different hours of the day (a stand-up in each)",
    )
    save = SubmitField("Save my goal")


def delta_words(delta: progress.Delta, then: str) -> str:
    """'23 min less than last Tuesday', 'about the same as last week'."""
    if delta.direction == "same":
        return f"about the same as {then}"
    return f"{format_duration(abs(delta.change_s))} {delta.direction} than {then}"


def _own_desks() -> list[stats.DeviceStatus]:
    seen = viewer()
    return stats.device_statuses(db(), seen.own_scope, now(), web_state().config.offline_after_s)


def current_goal() -> progress.Goal:
    """The logged-in person's goal (the default until they choose one)."""
    account = current_account()
    return progress.DEFAULT_GOAL if account is None else personal.goal_of(db(), account.id)


def day_figures(goal: progress.Goal) -> dict[str, Any]:
    """Everything the personal page shows."""
    state, current = web_state(), now()
    found = personal.personal_view(
        db(), viewer().own_scope, state.calendar, current, state.config.offline_after_s, goal
    )
    today = found.today.day
    weekday = f"last {today:%A}"
    return {
        "view": found,
        "desks": _own_desks(),
        "waiting": sorted(viewer().own_desks),
        "today_words": delta_words(found.today_vs_last_week, f"{weekday} by this time"),
        "week_words": delta_words(found.week.so_far, "last week by this time"),
        "chart": week_pair_chart(found.week),
        "ring": goal_ring(found.today),
        "calendar": state.calendar,
    }


def _page(form: GoalForm, status: int = 200) -> tuple[str, int]:
    goal = current_goal()
    figures = day_figures(goal) if viewer().own_desks else None
    return render_template("personal.html", f=figures, form=form, goal=goal), status


@bp.get("/my-day")
def page() -> tuple[str, int]:
    goal = current_goal()
    form = GoalForm(data={"max_stretch_min": goal.max_stretch_min, "break_hours": goal.break_hours})
    return _page(form)


@bp.post("/my-day/goal")
def set_goal() -> Response | tuple[str, int]:
    form = GoalForm()
    account = current_account()
    if account is None or not form.validate_on_submit():
        return _page(form, 400)
    goal = progress.Goal(
        max_stretch_min=form.max_stretch_min.data or 0, break_hours=form.break_hours.data or 0
    )
    personal.set_goal(db(), account.id, goal, now())
    db().commit()
    flash("Your goal is saved.", "ok")
    return redirect(url_for("personal.page"))


def chosen_week(today: date) -> date:
    """The Monday of ``?week=`` (any day of it), default this week; never after this week."""
    calendar = web_state().calendar
    this_week = calendar.week_start(today)
    asked = date_arg("week", this_week) or this_week
    return min(calendar.week_start(asked), this_week)


def week_figures(week_start: date) -> dict[str, Any]:
    state, current = web_state(), now()
    goal = current_goal()
    found = personal.week_comparison(
        db(), viewer().own_scope, state.calendar, current, state.config.offline_after_s,
        goal, week_start,
    )  # fmt: skip
    this_week = state.calendar.week_start(state.calendar.day_of(current))
    then = "last week by this time" if not found.is_complete else "the week before"
    return {
        "week": found,
        "goal": goal,
        "desks": _own_desks(),
        "words": delta_words(found.so_far, then),
        "chart": week_pair_chart(found),
        "previous_week": week_start - timedelta(days=7),
        "next_week": week_start + timedelta(days=7) if week_start < this_week else None,
    }


@bp.get("/my-week")
def week() -> str:
    today = web_state().calendar.day_of(now())
    week_start = chosen_week(today)
    figures = week_figures(week_start) if viewer().own_desks else None
    return render_template("personal_week.html", f=figures, week_start=week_start)


def week_json(found: progress.WeekComparison, goal: progress.Goal) -> dict[str, Any]:
    """The weekly summary as /api/v1/my-week answers it (seconds, dates as ISO)."""
    return {
        "week_start": found.week_start.isoformat(),
        "elapsed_days": found.elapsed_days,
        "complete": found.is_complete,
        "goal": {"max_stretch_min": goal.max_stretch_min, "break_hours": goal.break_hours},
        "seated_s": round(found.so_far.now_s),
        "last_week_seated_s": round(found.so_far.then_s),
        "change_s": round(found.so_far.change_s),
        "trend": found.so_far.direction,
        "goal_days": found.goal_days,
        "used_days": found.used_days,
        "days": [
            {
                "day": d.this.day.isoformat(),
                "future": d.is_future,
                "seated_s": round(d.this.progress.seated_s),
                "longest_s": round(d.this.progress.longest_s),
                "break_hours": d.this.progress.break_hours,
                "goal_met": d.this.met,
                "last_week_day": d.last.day.isoformat(),
                "last_week_seated_s": round(d.last.seated_s),
                "last_week_so_far_s": round(d.last_so_far.seated_s),
                "change_s": round(d.change.change_s),
                "trend": d.change.direction,
            }
            for d in found.days
        ],
    }
