"""The logged-in person's own page (/me): their role and desks, whether admins may see
their desks in office privacy mode (the share switch), and the export of all their data as
JSON or as CSV files in a zip (server/personal_data.py)."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import SubmitField

from sitwatch.server.models import User
from sitwatch.server.personal_data import export_json, export_of, export_zip
from sitwatch.server.queries import stats
from sitwatch.server.web.context import current_account, db, now, viewer, web_state

log = logging.getLogger(__name__)

bp = Blueprint("my_data", __name__)


class ShareForm(FlaskForm):
    share = SubmitField("Share my desks with admins")
    stop = SubmitField("Stop sharing")


def _account() -> User:
    account = current_account()
    if account is None:  # the user was deleted while logged in
        abort(404, "no such user")
    return account


@bp.get("/me")
def page() -> str:
    account = _account()
    desks = stats.device_statuses(db(), viewer().scope, now(), web_state().config.offline_after_s)
    own = [d for d in desks if d.id in viewer().own_desks]
    return render_template(
        "my_data.html",
        account=account,
        desks=own,
        waiting=sorted(viewer().own_desks - {d.id for d in own}),
        office_mode=web_state().config.privacy.office_mode,
        share_form=ShareForm(),
    )


@bp.post("/me/share")
def share() -> Any:
    account = _account()
    form = ShareForm()
    if not form.validate_on_submit():
        abort(400, "the form expired; reload the page and try again")
    if not (form.share.data or form.stop.data):
        abort(400, "use one of the page's buttons")
    account.shares_with_admins = bool(form.share.data)
    db().commit()
    log.info("user %r %s their desks with admins", account.username,
             "shares" if account.shares_with_admins else "stopped sharing")  # fmt: skip
    flash("Admins may now see your desks." if account.shares_with_admins
          else "Your desks are no longer shared with admins.", "ok")  # fmt: skip
    return redirect(url_for("my_data.page"))


def _download(body: bytes | str, mimetype: str, name: str) -> Response:
    return Response(
        body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _file_name(account: User, suffix: str) -> str:
    return f"sitwatch-{re.sub(r'[^A-Za-z0-9_-]', '_', account.username)}-data.{suffix}"


@bp.get("/me/export.json")
def export_as_json() -> Response:
    account = _account()
    log.info("user %r exported their data (json)", account.username)
    body = export_json(export_of(db(), account))
    return _download(body, "application/json", _file_name(account, "json"))


@bp.get("/me/export.zip")
def export_as_csv() -> Response:
    account = _account()
    log.info("user %r exported their data (csv)", account.username)
    body = export_zip(export_of(db(), account))
    return _download(body, "application/zip", _file_name(account, "zip"))
