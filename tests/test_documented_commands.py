"""Every ``sitwatch-device``/``sitwatch-server``/``sitwatch-demo`` command line that the
README, the docs, the systemd units, the examples and the dashboard's templates tell a user
to type exists: each runs through the real console script with ``--help`` appended, and
every option it names is one that command's help lists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "systemd").glob("*")),
    *sorted((ROOT / "examples").glob("*")),
    *sorted((ROOT / "server" / "web" / "templates").glob("*.html")),
]
PROGRAMS = ("sitwatch-device", "sitwatch-server", "sitwatch-demo")
# A program named where a command starts: after a path ending in bin/, at the start of a code
# span (Markdown backticks, HTML <code>), or at the start of a line in a fenced code block.
# Not when it names a unit (sitwatch-device.service, journalctl -u sitwatch-device) or
# begins a message the program printed ("sitwatch-device: no GPIO pin backend ...").
_NAME = r"(sitwatch-(?:device|server|demo))(?![\w.@:-])"
INLINE = re.compile(r"(?:(?<=bin/)|(?<=`)|(?<=<code>))" + _NAME + r"([^`<>#|;&)\n]*)")
LINE_START = re.compile(r"^\s*(?:\$\s+)?" + _NAME + r"([^`<>#|;&)\n]*)")


def _lines(path: Path) -> list[tuple[int, str]]:
    """Numbered lines, a shell line continued with a backslash joined to the next."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if pending is not None:
            number, line = pending[0], pending[1] + " " + line.lstrip()
        if line.endswith("\\"):
            pending = (number, line[:-1])
            continue
        pending = None
        joined.append((number, line))
    return joined


def documented_commands() -> dict[tuple[str, ...], str]:
    """argv (program first) -> where it was found, for each documented command line."""
    found: dict[tuple[str, ...], str] = {}
    for path in SOURCES:
        fenced = False
        for number, line in _lines(path):
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            matches = list(INLINE.finditer(line))
            if fenced and not matches:
                matches = list(LINE_START.finditer(line))
            for match in matches:
                argv = (match.group(1), *shlex.split(match.group(2)))
                found.setdefault(argv, f"{path.relative_to(ROOT)}:{number}")
    return found


COMMANDS = documented_commands()


def test_the_sources_name_commands() -> None:
    """The extraction itself: it finds what these files are known to say."""
    programs = {argv[0] for argv in COMMANDS}
    assert programs == set(PROGRAMS)
    assert ("sitwatch-device", "--config", "/etc/sitwatch/device.toml") in COMMANDS  # a unit
    assert any(argv[:2] == ("sitwatch-server", "create-user") for argv in COMMANDS)  # login.html
    assert not any("service" in " ".join(argv) for argv in COMMANDS)


def run(argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name(argv[0])
    return subprocess.run(
        [str(script), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@cache
def top_help(program: str) -> str:
    return run((program, "--help")).stdout


@pytest.mark.parametrize("argv", sorted(COMMANDS), ids=lambda argv: " ".join(argv))
def test_documented_command_exists(argv: tuple[str, ...]) -> None:
    where = COMMANDS[argv]
    done = run((*argv, "--help"))
    assert done.returncode == 0, f"{where}: {' '.join(argv)}: {done.stderr.strip()}"
    # argparse shows --help even past an option it does not know: compare with the help.
    known = done.stdout + top_help(argv[0])
    for arg in argv[1:]:
        option = arg.split("=", 1)[0]
        if option.startswith("--"):
            assert re.search(rf"{re.escape(option)}\b", known), (
                f"{where}: {' '.join(argv)}: {option} is not an option of this command"
            )
