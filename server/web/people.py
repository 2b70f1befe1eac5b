"""The admins' Users page (/users): every user with their role, desks and sharing, and a
form to link a desk to a user or unlink it (as ``sitwatch-server user link/unlink``).
Roles, passwords and accounts are changed with the CLI."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField, SubmitField
from wtforms.validators import InputRequired, Length

from sitwatch.server.members import desks_of, link_desk, unlink_desk
from sitwatch.server.models import Device, User
from sitwatch.server.users import UserError
from sitwatch.server.web.context import db, viewer
from sitwatch.server.web.params import admin_or_403

log = logging.getLogger(__name__)

bp = Blueprint("people", __name__)


class LinkForm(FlaskForm):
    username = StringField("User", validators=[InputRequired(), Length(max=64)])
    device_id = StringField("Desk id", validators=[InputRequired(), Length(max=64)])
    link = SubmitField("Link")
    unlink = SubmitField("Unlink")


@bp.before_request
def _admins_only() -> None:
    admin_or_403()


@bp.app_context_processor
def _admin_link() -> dict[str, Any]:
    """For the navigation: asked only where a logged-in user's menu is drawn."""
    return {"viewer_is_admin": lambda: viewer().is_admin}


@bp.get("/users")
def index() -> str:
    return _page(LinkForm(formdata=None))


def _page(form: LinkForm) -> str:
    users = list(db().scalars(select(User).order_by(User.username)))
    return render_template(
        "users.html",
        users=[(u, sorted(desks_of(db(), u.id))) for u in users],
        desk_ids=list(db().scalars(select(Device.id).order_by(Device.id))),
        form=form,
    )


@bp.post("/users/links")
def links() -> Any:
    form = LinkForm()
    if not form.validate_on_submit():
        return _page(form), 400
    username, device_id = form.username.data or "", form.device_id.data or ""
    try:
        if form.unlink.data:
            changed = unlink_desk(db(), username, device_id)
            done = "unlinked from" if changed else "was not linked to"
        else:
            changed = link_desk(db(), username, device_id)
            done = "linked to" if changed else "already linked to"
    except UserError as exc:
        flash(str(exc), "error")
        return _page(form), 404
    db().commit()
    log.info("admin %r: desk %r %s user %r", current_user.username, device_id, done, username)
    flash(f"Desk {device_id} {done} {username}.", "ok")
    return redirect(url_for("people.index"))
