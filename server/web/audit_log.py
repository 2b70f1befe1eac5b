"""The audit log page (/audit): the latest entries, newest first, for admins."""

from __future__ import annotations

from flask import Blueprint, render_template

from sitwatch.server import audit
from sitwatch.server.web.auth import admin_only
from sitwatch.server.web.context import db

bp = Blueprint("audit", __name__)

PAGE_ENTRIES = 200


@bp.get("/audit")
@admin_only
def page() -> str:
    return render_template(
        "audit.html",
        entries=audit.latest(db(), PAGE_ENTRIES),
        page_entries=PAGE_ENTRIES,
        describe=audit.describe,
    )
