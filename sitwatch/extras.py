"""The check that a pip extra's modules import, for the console scripts of the parts an
extra installs (``server/entry.py``, ``demo/entry.py``).

A device-only install (``pip install .`` on a Pi) has those scripts too, without their
libraries. Each script first checks that its extra's modules import, and otherwise says in
one line what to install, instead of a ``ModuleNotFoundError`` traceback. This module
imports nothing outside the standard library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable


def missing_modules(names: Iterable[str]) -> list[str]:
    """The modules among ``names`` that cannot be imported."""
    absent = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    return absent


def require_extra(prog: str, extra: str, modules: Iterable[str]) -> None:
    """Exit with code 2 and one line naming the extra when one of ``modules`` is missing."""
    absent = missing_modules(modules)
    if absent:
        print(
            f"{prog}: error: the {extra!r} extra is not installed here (no "
            f"{', '.join(absent)}): pip install '.[{extra}]' in the clone, or 'sitwatch[{extra}]'",
            file=sys.stderr,
        )
        sys.exit(2)
