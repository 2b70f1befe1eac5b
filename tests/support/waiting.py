"""The one way tests wait for something another thread or process does: poll with a
deadline, and fail the test with a message naming what never happened."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout: float = 10.0,
    what: str = "",
    *,
    detail: Callable[[], object] | None = None,
    step: float = 0.02,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that. After
    ``timeout`` real seconds raise AssertionError naming ``what`` (else the condition's
    source line), with ``detail()`` appended (e.g. a log read at that moment)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            message = f"timed out after {timeout} s waiting for {what or _describe(condition)}"
            if detail is not None:
                message += f"\n{detail()}"
            raise AssertionError(message)
        time.sleep(step)


def _describe(condition: Callable[[], object]) -> str:
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):  # a builtin or a bound method of a C type
        return repr(condition)
