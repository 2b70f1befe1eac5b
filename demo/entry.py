"""``sitwatch-demo``'s console script, which a device-only install has too: it says in one
line which extra to install when the demo's libraries are missing, then runs the demo.
This module imports nothing outside the standard library until that check has passed."""

from __future__ import annotations

from sitwatch.extras import require_extra
from sitwatch.server.entry import SERVER_MODULES


def main() -> None:
    require_extra("sitwatch-demo", "demo", SERVER_MODULES)
    from sitwatch.demo.cli import main as run_demo

    run_demo()
