"""Desk provisioning: a desk's broker login (in Mosquitto's password file), its row on the
server, and the ``[mqtt]`` part of its device.toml; revoking takes the login away again.

The login's user name is the desk's device id: the shipped ACL
(examples/mosquitto-sitwatch.acl) lets a user publish only under ``sitwatch/<its name>/``
and the desks' listener binds the client id to it, so a login speaks for its own desk only.
Mosquitto reads the password file at start and on SIGHUP: after a change it must be
reloaded (``systemctl reload mosquitto``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from sitwatch import protocol
from sitwatch.server.models import Device

DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/sitwatch-desks/desks.passwd")
# Logins the shipped ACL gives other rights (the server's, Home Assistant's) and the server's
# client ids (sitwatch-ingest, sitwatch-web-...): a desk named so would hold them.
RESERVED = re.compile(r"^(sitwatch|homeassistant)", re.IGNORECASE)
# Mosquitto 2's own hash ($7$: PBKDF2-SHA512, as mosquitto_passwd writes it), for machines
# without mosquitto_passwd.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 24  # 192 random bits, as 32 URL-safe characters


class DeskError(ValueError):
    """A desk that cannot be added or revoked; the message says why."""


def check_desk_id(desk_id: str) -> str:
    if not protocol.DEVICE_ID.match(desk_id):
        raise DeskError(f"bad desk id {desk_id!r}: use 1-64 of A-Z a-z 0-9 _ -")
    if RESERVED.match(desk_id):
        raise DeskError(
            f"desk id {desk_id!r}: names beginning with sitwatch or homeassistant belong to"
            " the server and Home Assistant"
        )
    return desk_id


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    """A password-file hash Mosquitto 2 accepts: ``$7$<iterations>$<salt>$<hash>``, base64."""
    salt = salt or os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encode = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


@dataclass(frozen=True)
class PasswordFile:
    """Mosquitto's password file (``user:hash`` lines). Changed with ``mosquitto_passwd``
    when it is installed (``tool``), else by hashing here the way Mosquitto does."""

    path: Path
    tool: str | None = field(default_factory=lambda: shutil.which("mosquitto_passwd"))

    def users(self) -> list[str]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [line.split(":", 1)[0] for line in lines if ":" in line]

    def set(self, user: str, password: str) -> None:
        if self.tool is None:
            self._rewrite(user, f"{user}:{mosquitto_hash(password)}")
            return
        create = [] if self.path.exists() else ["-c"]
        # The password goes on stdin (twice: it asks again), never on a command line that
        # other users see in ps; umask keeps its temporary copy of the file private.
        subprocess.run(
            [self.tool, *create, str(self.path), user],
            input=f"{password}\n{password}\n",
            text=True,
            capture_output=True,
            check=True,
            umask=0o027,
        )

    def remove(self, user: str) -> None:
        if self.tool is None:
            self._rewrite(user, None)
            return
        subprocess.run(
            [self.tool, "-D", str(self.path), user], capture_output=True, check=True, umask=0o027
        )

    def _rewrite(self, user: str, line: str | None) -> None:
        """Replace (or with None drop) ``user``'s line in place, keeping the file's owner and
        mode (Mosquitto's group must go on reading it)."""
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        kept = [old for old in lines if old.split(":", 1)[0] != user]
        text = "\n".join([*kept, *([line] if line else [])]) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.truncate()
            out.write(text)


@dataclass(frozen=True)
class DeskLogin:
    desk_id: str
    password: str

    def device_toml(self, host: str, port: int, ca_certs: str | None) -> str:
        """The desk's device.toml lines for its broker login (TOML-quoted)."""
        lines = [
            f"device_id = {_quoted(self.desk_id)}",
            "",
            "[mqtt]",
            f"host = {_quoted(host)}",
            f"port = {port}",
            f"username = {_quoted(self.desk_id)}",
            f"password = {_quoted(self.password)}",
        ]
        if ca_certs:
            lines += ["", "[mqtt.tls]", f"ca_certs = {_quoted(ca_certs)}"]
        return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_desk(
    session: Session,
    passwords: PasswordFile,
    desk_id: str,
    now: datetime,
    name: str | None = None,
    *,
    new_password: bool = False,
) -> DeskLogin:
    """Give ``desk_id`` a broker login with a random password and a row on the server
    (flushed, not committed). A desk with a login already gets a new password only with
    ``new_password``. Raises DeskError."""
    check_desk_id(desk_id)
    if desk_id in passwords.users() and not new_password:
        raise DeskError(f"desk {desk_id!r} has a broker login already (--new-password replaces it)")
    device = session.get(Device, desk_id)
    if device is None:
        device = Device(id=desk_id, name=desk_id, online=False, first_seen_at=now, last_seen_at=now)
        session.add(device)
    if name and name.strip():
        device.name = " ".join(name.split())
    session.flush()
    login = DeskLogin(desk_id, secrets.token_urlsafe(PASSWORD_BYTES))
    passwords.set(desk_id, login.password)
    return login


def revoke_desk(passwords: PasswordFile, desk_id: str) -> None:
    """Take the desk's broker login away. Its history stays on the server. Raises DeskError."""
    if desk_id not in passwords.users():
        raise DeskError(f"desk {desk_id!r} has no broker login in {passwords.path}")
    passwords.remove(desk_id)
