"""No code in the course calls asyncio's wait_for (issue 11 item 3).

On Python 3.11 it can return a result and drop a cancellation that arrives as the awaited
call finishes (CPython gh-86296); ``async with asyncio.timeout(s): await x`` does not.
Other ``wait_for`` methods (``panel.wait_for``, ``js.wait_for``) are fine: only the asyncio
one is looked for, in .py files and in notebook cells.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("mini_server", "tests", "chapters", "solutions", "exercises", "bench")
SKIP_PARTS = {"node_modules", ".venv", ".ipynb_checkpoints"}
EXCLUDED: tuple[str, ...] = ()  # folders allowed to use it: none
# Built from pieces so that this file does not contain what it looks for.
NEEDLE = re.compile(r"\basyncio\s*\.\s*" + "wait" + "_for" + r"\b")


def _lines(path: Path) -> list[tuple[str, str]]:
    """(location, line) pairs: file:line for .py, file:cell N line M for notebooks."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return [(str(n), line) for n, line in enumerate(text.splitlines(), 1)]
    cells = json.loads(text)["cells"]
    return [
        (f"cell {c} line {n}", line)
        for c, cell in enumerate(cells)
        for n, line in enumerate("".join(cell["source"]).splitlines(), 1)
    ]


def _scanned() -> list[Path]:
    paths = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if (
                path.suffix in {".py", ".ipynb"}
                and path.is_file()
                and not SKIP_PARTS & set(path.parts)
                and not relative.startswith(EXCLUDED)
            ):
                paths.append(path)
    return paths


def test_the_scan_covers_the_course():
    """The scan reads the package, the tests and every notebook (not an empty set)."""
    scanned = {p.relative_to(ROOT).as_posix() for p in _scanned()}
    assert "mini_server/client/socket.py" in scanned
    assert "tests/test_no_wait_for.py" in scanned
    assert "bench/fanout.py" in scanned
    assert "solutions/03_channel_subscriptions/03_channel_subscriptions.ipynb" in scanned
    assert "exercises/03_channel_subscriptions/03_channel_subscriptions.ipynb" in scanned
    assert any(p.startswith("chapters/") and p.endswith(".ipynb") for p in scanned)
    assert not any("node_modules" in p for p in scanned)


def test_the_needle_finds_a_call():
    """The pattern matches the call as written in code and in notebook text."""
    call = "await asyncio." + "wait" + "_for(ws.recv(), 5)"
    assert NEEDLE.search(call)
    assert not NEEDLE.search("await panel." + "wait" + "_for(healthy, timeout=5)")


def test_nothing_calls_asyncio_wait_for():
    """Every await bound uses asyncio.timeout; the failure names each file and line."""
    found = [
        f"{path.relative_to(ROOT).as_posix()}:{where}: {line.strip()}"
        for path in _scanned()
        for where, line in _lines(path)
        if NEEDLE.search(line)
    ]
    assert not found, (
        "use `async with asyncio.timeout(s): await x` instead (gh-86296):\n" + "\n".join(found)
    )
