"""The import direction of the layout: the shared package (sitwatch/) imports neither side,
and each side imports only the shared package, never the other side or the demo (a Pi's
install has the device without the server's libraries). Every module is read with ``ast``,
so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Folder -> the package it installs as (pyproject.toml's package-dir), and the packages its
# modules must not import.
FORBIDDEN = {
    "sitwatch": ("sitwatch", ("sitwatch.device", "sitwatch.server", "sitwatch.demo")),
    "device": ("sitwatch.device", ("sitwatch.server", "sitwatch.demo")),
    "server": ("sitwatch.server", ("sitwatch.device", "sitwatch.demo")),
}


def module_package(folder: str, path: Path) -> str:
    """The package a module file is in, as Python resolves its relative imports."""
    package, _forbidden = FORBIDDEN[folder]
    inner = path.parent.relative_to(ROOT / folder).parts
    return ".".join((package, *inner))


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file. ``from X import a`` names
    ``X.a`` too, since ``a`` may be a submodule (``from sitwatch import device``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def is_inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def wrong_direction(folder: str) -> list[str]:
    """``path:line imports module`` for each import in ``folder`` of a package it must not
    import: once per import statement, not once per name it imports."""
    _package, forbidden = FORBIDDEN[folder]
    wrong: dict[str, str] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        package = module_package(folder, path)
        for line, module in imported_modules(path, package):
            if any(is_inside(module, banned) for banned in forbidden):
                wrong.setdefault(f"{path.relative_to(ROOT)}:{line}", module)
    return [f"{where} imports {module}" for where, module in wrong.items()]


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_module_imports_against_the_direction(folder: str) -> None:
    assert wrong_direction(folder) == []


def test_relative_and_lazy_imports_are_resolved(tmp_path: Path) -> None:
    """The check itself: it sees through relative imports and imports inside functions."""
    module = tmp_path / "sample.py"
    module.write_text(
        "from . import device\n"
        "from ..server.cli import main\n"
        "def later():\n"
        "    import sitwatch.server.db\n"
    )
    names = {name for _line, name in imported_modules(module, "sitwatch.device")}
    assert "sitwatch.device.device" in names  # `from . import device` inside sitwatch.device
    assert "sitwatch.server.cli" in names
    assert "sitwatch.server.db" in names
    names = {name for _line, name in imported_modules(module, "sitwatch")}
    assert "sitwatch.device" in names
