"""Execute a chapter headless in fast mode and record what it left behind.

Theory of operation
-------------------
:func:`run_chapter` starts a fresh ``python3`` kernel with ``COURSE_FAST=1`` (and the
repository on ``PYTHONPATH``, so a plain checkout works), runs every cell with a per-cell
timeout (a hang fails fast instead of eating the suite's time), and, *before* shutting the
kernel down, inspects it through ``/proc``: which TCP ports its process tree listens on and
which child processes it still has.  A chapter's last cell must have stopped everything, so
both must be empty at that point.  After shutdown it looks again for any process of that tree
still alive and any 127.0.0.1 listening port that appeared during the run and is held by one.
Linux only (``/proc``); other systems skip.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = ROOT / "chapters"
CELL_TIMEOUT = 60  # seconds per cell: a hang fails fast
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp
LOCALHOST = "0100007F"  # 127.0.0.1, as /proc/net/tcp spells it (little-endian hex)


@dataclass
class ChapterRun:
    """An executed chapter and what its kernel left behind."""

    notebook: nbformat.NotebookNode
    seconds: float  # executing the cells
    wall: float = 0.0  # kernel start, cells and kernel shutdown
    leftover_ports: set[int] = field(default_factory=set)
    leftover_children: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    orphan_ports: set[int] = field(default_factory=set)

    def text(self) -> str:
        """Everything the chapter printed (stdout streams and plain-text results)."""
        parts = []
        for cell in self.notebook.cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream" and out.get("name") == "stdout":
                    parts.append(out["text"])
                elif "data" in out and "text/plain" in out["data"]:
                    parts.append(out["data"]["text/plain"])
        return "".join(parts)


def listening_sockets() -> dict[int, int]:
    """Socket inode -> port of every TCP socket listening on 127.0.0.1 or 0.0.0.0."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            address, port = cols[1].split(":")
            if cols[3] == LISTEN and (address in (LOCALHOST, "00000000") or table.endswith("6")):
                found[int(cols[9])] = int(port, 16)
    return found


def localhost_ports() -> set[int]:
    """Ports listening on 127.0.0.1 right now."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        address, port = cols[1].split(":")
        if cols[3] == LISTEN and address == LOCALHOST:
            ports.add(int(port, 16))
    return ports


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def describe(pid: int) -> str:
    """pid and command line, for a failure message."""
    try:
        cmd = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
    except OSError:
        cmd = "?"
    return f"{pid} {cmd}"


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def ports_held(pids: list[int]) -> set[int]:
    """Listening ports whose sockets these processes hold."""
    listening = listening_sockets()
    return {listening[i] for pid in pids for i in socket_inodes(pid) if i in listening}


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    result, todo = [], [pid]
    while todo:
        current = todo.pop()
        result.append(current)
        todo.extend(children(current))
    return result


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_chapter(name: str, fast: bool = True) -> ChapterRun:
    """Execute chapters/<name>.ipynb headless; raises CellExecutionError on any error."""
    return run_notebook(CHAPTERS / f"{name}.ipynb", fast)


def run_notebook(path: Path, fast: bool = True) -> ChapterRun:
    """Execute the notebook at ``path`` from its own folder; see the module docstring."""
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COURSE_FAST"] = "1" if fast else "0"
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    ports_before = localhost_ports()
    run = ChapterRun(nb, 0.0)
    started = time.monotonic()
    with client.setup_kernel(env=env):
        cells_started = time.monotonic()
        kernel_pid = client.km.provisioner.pid
        kernel_ports = ports_held([kernel_pid])  # ZMQ channels and heartbeat: the kernel's own
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        run.seconds = time.monotonic() - cells_started
        family = tree(kernel_pid)
        run.leftover_ports = ports_held(family) - kernel_ports
        run.leftover_children = [describe(p) for p in family if p != kernel_pid and alive(p)]
    deadline = time.monotonic() + 5
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel is shutting down; give it a moment to exit
    run.survivors = [describe(p) for p in family if alive(p)]
    run.wall = time.monotonic() - started
    new_ports = localhost_ports() - ports_before
    run.orphan_ports = new_ports & ports_held([p for p in family if alive(p)])
    return run


if __name__ == "__main__":  # python tests/chapters/notebook_runner.py 03_channel_subscriptions
    for chapter in sys.argv[1:]:
        result = run_chapter(chapter)
        print(result.text())
        print(f"{chapter}: cells {result.seconds:.1f} s, wall {result.wall:.1f} s; leftovers: "
              f"ports {result.leftover_ports}, children {result.leftover_children}, "
              f"survivors {result.survivors}")
