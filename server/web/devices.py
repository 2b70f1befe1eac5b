"""The device pages: the list of the devices the viewer manages (/devices) and one
device's figures (/devices/<id>, the overview for that device)."""

from __future__ import annotations

from flask import Blueprint, render_template

from sitwatch.server.queries import stats
from sitwatch.server.queries.pauses import paused_devices
from sitwatch.server.web.access import DeskAccess
from sitwatch.server.web.context import db, now, viewer, web_state
from sitwatch.server.web.overview import page_figures
from sitwatch.server.web.params import device_or_404

bp = Blueprint("devices", __name__)


@bp.get("/devices")
def index() -> str:
    state = web_state()
    current = now()
    seen = viewer()
    scope = seen.manage_scope
    rows = stats.device_statuses(db(), scope, current, state.config.offline_after_s)
    return render_template(
        "devices.html",
        devices=rows,
        # In office privacy mode an admin manages every desk but sees the figures of few.
        with_figures={d.id for d in rows if seen.access(d.id) is DeskAccess.FULL},
        offline_after_s=state.config.offline_after_s,
        paused=paused_devices(db(), scope, current),
    )


@bp.get("/devices/<device_id>")
def device(device_id: str) -> str:
    device_or_404(device_id)
    page = page_figures(device_id)
    return render_template(
        "device.html",
        device=page["devices"][0],
        p=page,
        paused_until=page["paused"].get(device_id),  # page_figures looked it up already
    )
