"""Console scripts of the parts a pip extra installs (``sitwatch-server``, ``sitwatch-demo``).

A device-only install (``pip install .`` on a Pi) has these scripts too, without their
libraries. Each script first checks that its extra's modules import, and otherwise says in
one line what to install, instead of a ``ModuleNotFoundError`` traceback. This module
imports nothing outside the standard library until that check has passed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

# What the "server" extra installs (pyproject.toml), by import name. The demo needs them too.
SERVER_MODULES = ("click", "flask", "sqlalchemy", "alembic", "flask_wtf", "flask_login")


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


def server() -> None:
    """``sitwatch-server``."""
    require_extra("sitwatch-server", "server", SERVER_MODULES)
    from sitwatch.server.cli import main

    main()


def demo() -> None:
    """``sitwatch-demo``."""
    require_extra("sitwatch-demo", "demo", SERVER_MODULES)
    from sitwatch.demo import main

    main()
