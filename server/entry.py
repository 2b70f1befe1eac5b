"""``sitwatch-server``'s console script, which a device-only install has too: it says in one
line which extra to install when the server's libraries are missing, then runs the CLI.
This module imports nothing outside the standard library until that check has passed."""

from __future__ import annotations

from sitwatch.extras import require_extra

# What the "server" extra installs (pyproject.toml), by import name. The demo needs them too.
SERVER_MODULES = ("click", "flask", "sqlalchemy", "alembic", "flask_wtf", "flask_login")


def main() -> None:
    require_extra("sitwatch-server", "server", SERVER_MODULES)
    from sitwatch.server.cli import main as run_cli

    run_cli()
