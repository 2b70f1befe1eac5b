"""The Insights page (/insights): the figures of server/queries/insights.py for a range of
days and all devices or one, drawn as server-rendered SVG like the other charts (funnel and
exercise bars, bout histogram, hour x weekday heatmap, seat-time budget per day): no
script, a <title> tooltip on every mark, numbers in data attributes for the tests."""

from __future__ import annotations

from flask import Blueprint, render_template

from sitwatch.server.queries import stats
from sitwatch.server.queries.insights import BOUT_LABELS, DRILL_WITHIN_S, STAND_WITHIN_S
from sitwatch.server.web.charts import (
    budget_chart,
    exercise_chart,
    funnel_chart,
    heatmap_chart,
    histogram_chart,
)
from sitwatch.server.web.context import db, now, viewer_scope, web_state
from sitwatch.server.web.filters import percent
from sitwatch.server.web.params import insights_request

bp = Blueprint("insights", __name__)


@bp.get("/insights")
def page() -> str:
    found = insights_request()
    state = web_state()
    today = state.calendar.day_of(now())
    devices = stats.device_statuses(db(), viewer_scope(), now(), state.config.offline_after_s)
    return render_template(
        "insights.html",
        ins=found,
        devices=devices,
        device=next((d for d in devices if d.id == found.device_id), None),
        today=today,
        funnel=funnel_chart(found.funnel),
        histogram=histogram_chart(found.bouts),
        heatmap=heatmap_chart(found.heatmap),
        budget=budget_chart(found.days, found.goals),
        exercises=exercise_chart(found.exercises),
        calendar=state.calendar,
        stand_within_min=STAND_WITHIN_S // 60,
        drill_within_min=DRILL_WITHIN_S // 60,
        bout_labels=BOUT_LABELS,
        percent=percent,
    )
