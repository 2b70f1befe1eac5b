"""The browser tests' shared parts: Debian's Chromium driven by playwright (``launch``),
the mark that skips a test without them (``needs_chromium``), and the app on a real HTTP
server in a thread (``serve``)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from sitwatch.broker import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium (/usr/bin/chromium) and the playwright package",
)


def launch(playwright: Any) -> Any:
    """A headless Chromium from ``sync_playwright()``."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def serve(app: Flask, name: str = "dashboard") -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL (use with
    ``yield from`` in a fixture), then shuts the server down."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
