"""Optional shell commands run on events (prompt, drill completed, stood up), for home
automations. The event's fields arrive as SITWATCH_* environment variables."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading

from sitwatch.device.config import HooksConfig
from sitwatch.protocol import Event, EventType, format_ts

log = logging.getLogger(__name__)

HOOK_TIMEOUT_S = 30.0


def hook_environment(event: Event) -> dict[str, str]:
    env = {
        "SITWATCH_EVENT": str(event.type),
        "SITWATCH_EVENT_ID": event.id,
        "SITWATCH_DEVICE_ID": event.device_id,
        "SITWATCH_TS": format_ts(event.ts),
        "SITWATCH_DATA": json.dumps(event.data, sort_keys=True),
    }
    for key, value in event.data.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env[f"SITWATCH_{key.upper()}"] = text
    return env


class HookRunner:
    """An event sink: runs the configured command in the background, never blocking the
    tracker; a failing or hanging command is logged and killed after a timeout."""

    def __init__(self, hooks: HooksConfig, timeout_s: float = HOOK_TIMEOUT_S) -> None:
        self._commands = {
            EventType.PROMPT: hooks.on_prompt,
            EventType.DRILL_COMPLETED: hooks.on_drill_completed,
            EventType.STOOD_UP: hooks.on_stood_up,
        }
        self._timeout_s = timeout_s

    def __call__(self, event: Event) -> None:
        command = self._commands.get(event.type)
        if command:
            threading.Thread(target=self._run, args=(command, event), daemon=True).start()

    def _run(self, command: str, event: Event) -> None:
        env = {**os.environ, **hook_environment(event)}
        try:
            done = subprocess.run(
                command, shell=True, env=env, timeout=self._timeout_s, capture_output=True
            )
        except subprocess.TimeoutExpired:
            log.warning(
                "hook for %s timed out after %.0f s: %s", event.type, self._timeout_s, command
            )
            return
        if done.returncode != 0:
            log.warning(
                "hook for %s exited %d: %s", event.type, done.returncode, done.stderr[-500:]
            )
