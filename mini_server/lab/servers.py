"""Servers you can kill: in the kernel's event loop, or as a separate OS process.

Theory of operation
-------------------
Two kinds of handle, one interface (``url``, ``port``, ``running``, and the coroutines
``kill()``, ``stop()``, ``restart()``, ``state()``, ``close()``):

* :class:`KernelServer` runs an :class:`~mini_server.server.Endpoint` in the running loop,
  so a learner can define Channel classes in a cell and serve them.  ``kill()`` aborts every
  TCP connection (clients see 1006), ``stop()`` drains with 1012, ``restart()`` comes back
  on the same port with empty memory.  ``state()`` is the endpoint's snapshot.
* :class:`ProcessServer` runs :mod:`mini_server.lab.process_server` with the demo routes
  (plus ``history:*`` on a SQLite file when given ``history=PATH``; one node of a cluster
  sharing PubSub through Valkey/Redis when given ``pubsub_url=redis://...``).
  ``kill()`` is a real SIGKILL, ``stop()`` a SIGTERM (graceful, 1012), ``restart()`` a new
  process on the same port (a deploy).  ``state()`` is fetched over loopback HTTP.  The
  child watches its stdin pipe, so it dies with the kernel even when the kernel is killed.

Both bind 127.0.0.1 on a port the OS chooses.  Handles live in a registry keyed by name:
starting ``"default"`` again (a re-run cell) closes the previous ``"default"`` first.
``close()`` (and so ``stop_all()``) is for good: a closed handle refuses ``restart()`` and
``start()``, so a panel button left on screen cannot bring back a server a chapter stopped.  At
interpreter exit an ``atexit`` hook SIGKILLs and reaps every child process still running.
Each kernel is its own process, so registries never mix across kernels.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import json
import logging
import os
import re
import signal
import socket
import sys
import weakref
from collections.abc import Mapping
from typing import Any

from mini_server.lab import log_routing
from mini_server.server import Channel, Endpoint
from mini_server.server.endpoint import reserve_port

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0  # generous: twenty kernels may be starting on two cores
STOP_TIMEOUT = 3.0  # the CLI contract: exit within 2 s of SIGTERM
_READY = re.compile(r"(ws://\S+)\s+state=(http://127\.0\.0\.1:(\d+)/state)")

_registry: dict[str, ServerHandle] = {}
_spawned: weakref.WeakSet[ProcessServer] = weakref.WeakSet()  # for atexit, registered or not


def _down(url: str) -> dict[str, Any]:
    """The snapshot of a server that is not running: nobody is connected."""
    return {"running": False, "url": url, "sockets": [], "topics": {},
            "socket_count": 0, "channel_count": 0, "timers": 0}


class ServerHandle:
    """What every lab server offers; see the module docstring."""

    kind = "abstract"

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.get_running_loop()  # the loop that owns its sockets and tasks
        self.closed = False  # set by close(): stopped for good, never started again

    def _refuse_if_closed(self, action: str) -> None:
        if self.closed:
            raise RuntimeError(f"cannot {action} server {self.name!r}: it was closed "
                               "(servers.stop_all() or close()); start a new one with "
                               "servers.start_server()")

    port: int

    @property
    def url(self) -> str:
        """The ws URL clients are given (they append /websocket)."""
        return f"ws://127.0.0.1:{self.port}/socket"

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        raise NotImplementedError

    async def kill(self) -> None:
        """Abort: no close frames, all server memory gone (clients see 1006)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Graceful: every client gets close 1012."""
        raise NotImplementedError

    async def restart(self) -> None:
        """Stop gracefully if running, then serve again on the same port with empty memory."""
        raise NotImplementedError

    async def state(self) -> dict[str, Any]:
        """The server's snapshot (sockets, channels per topic, totals)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop for good and leave the registry."""
        self.closed = True
        if _registry.get(self.name) is self:
            del _registry[self.name]
        await self.stop()

    def __repr__(self) -> str:
        status = "running" if self.running else "down"
        return f"<{type(self).__name__} {self.name!r} {self.url} {status}>"


class KernelServer(ServerHandle):
    """An Endpoint served by this kernel's own event loop."""

    kind = "kernel"

    def __init__(self, name: str, endpoint: Endpoint) -> None:
        super().__init__(name)
        self.endpoint = endpoint

    @property
    def port(self) -> int:  # type: ignore[override]
        """The listening port (kept across restarts)."""
        return self.endpoint.port

    @property
    def running(self) -> bool:
        """True while the endpoint listens."""
        return self.endpoint.running

    async def kill(self) -> None:
        """Abort every connection without close frames; all state gone."""
        await self.endpoint.kill()

    async def stop(self) -> None:
        """Close every connection with 1012 and stop listening."""
        await self.endpoint.stop()

    async def restart(self) -> None:
        """Back on the same port with fresh state."""
        self._refuse_if_closed("restart")
        await self.endpoint.restart()

    async def close(self) -> None:
        """Stop for good, leave the registry and give the port back."""
        await super().close()
        await self.endpoint.aclose()

    async def state(self) -> dict[str, Any]:
        """The endpoint's snapshot."""
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """The endpoint's snapshot, without awaiting (in-kernel only)."""
        return self.endpoint.snapshot()


class ProcessServer(ServerHandle):
    """The demo server in a child OS process (python -m mini_server.lab.process_server)."""

    kind = "process"

    def __init__(self, name: str, *, idle_timeout: float | None = None,
                 drop_heartbeats: bool = False, history: str | os.PathLike | None = None,
                 pubsub_url: str | None = None, node_name: str | None = None) -> None:
        super().__init__(name)
        self.pubsub_url = pubsub_url  # redis://...: a node of a cluster (chapter 06)
        self.node_name = node_name or name
        self.port = 0
        self.idle_timeout, self.drop_heartbeats = idle_timeout, drop_heartbeats
        self.history = None if history is None else os.fspath(history)  # a SQLite file path
        self.process: asyncio.subprocess.Process | None = None
        self.state_url = ""
        self._state_port = 0
        self._port_hold: socket.socket | None = None  # our port while no child serves it
        self._stderr_pump: asyncio.Task | None = None  # child's log lines -> our logging

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first start)."""
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        """True while the child process lives."""
        return self.process is not None and self.process.returncode is None

    async def start(self) -> ProcessServer:
        """Spawn the child on self.port (0 the first time) and wait for its ready line."""
        self._refuse_if_closed("start")
        if self.running:
            return self
        args = [sys.executable, "-m", "mini_server.lab.process_server",
                "--port", str(self.port), "--watch-stdin"]
        if self.idle_timeout is not None:
            args += ["--idle-timeout", str(self.idle_timeout)]
        if self.drop_heartbeats:
            args.append("--drop-heartbeats")
        if self.history is not None:
            args += ["--history", self.history]
        if self.pubsub_url is not None:
            args += ["--pubsub-url", self.pubsub_url, "--node-name", self.node_name]
        held, self._port_hold = self._port_hold, None
        if held is not None:  # the new child listens on the very socket that kept the port
            args += ["--fd", str(held.fileno())]
        self.state_url, self._state_port = "", 0  # until the new child says where it listens
        # In a kernel the child's stderr would be copied under whichever cell runs; there we
        # read it and re-log each line, so it goes where the lab's log lines go.
        pipe_stderr = log_routing.router() is not None
        try:
            self.process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE if pipe_stderr else None,
                pass_fds=() if held is None else (held.fileno(),))
        finally:
            if held is not None:
                held.close()  # the child has its own copy now
        _spawned.add(self)
        if pipe_stderr:
            self._stderr_pump = asyncio.create_task(self._pump_stderr(self.process),
                                                    name=f"{self.name} stderr")
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = await self.process.stdout.readline()
        except TimeoutError:
            await self.kill()
            raise RuntimeError(f"process server did not start within {START_TIMEOUT} s") from None
        match = _READY.search(line.decode(errors="replace"))
        if match is None:
            await self.kill()
            raise RuntimeError(f"process server failed to start (exit code "
                               f"{self.process.returncode}); its stderr says why")
        self.port = int(match[1].rsplit(":", 1)[1].split("/", 1)[0])
        self.state_url, self._state_port = match[2], int(match[3])
        logger.info("= %s: pid %s serving %s", self.name, self.pid, self.url)
        return self

    async def _pump_stderr(self, process: asyncio.subprocess.Process) -> None:
        child = logging.getLogger("mini_server.server.process")
        while line := await process.stderr.readline():  # ends at EOF: the child is gone
            child.warning("%s (pid %s): %s", self.name, process.pid,
                          line.decode(errors="replace").rstrip())

    async def _reaped(self) -> None:
        # the child is gone: let its last stderr lines through, bounded (EOF comes at once)
        pump, self._stderr_pump = self._stderr_pump, None
        if pump is not None:
            _, pending = await asyncio.wait([pump], timeout=2)
            for task in pending:
                task.cancel()

    async def kill(self) -> None:
        """SIGKILL the child and reap it."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):  # it may have just died by itself
                self.process.kill()
            await self.process.wait()
            logger.info("x %s: killed pid %s", self.name, self.pid)
            self._hold_port()
        await self._reaped()

    def _hold_port(self) -> None:
        # While down, keep the port bound (not listening) so no other server on the host,
        # another learner's kernel say, is handed it and receives our clients' reconnects.
        if self.port and self._port_hold is None:
            self._port_hold = reserve_port("127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop for good, leave the registry and give the port back."""
        await super().close()
        held, self._port_hold = self._port_hold, None
        if held is not None:
            held.close()

    async def stop(self) -> None:
        """SIGTERM (graceful 1012); SIGKILL if it takes longer than STOP_TIMEOUT."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.process.wait()
        except TimeoutError:
            logger.warning("- %s: pid %s ignored SIGTERM; killing", self.name, self.pid)
            await self.kill()
        self._hold_port()
        await self._reaped()

    async def restart(self) -> None:
        """A deploy: stop the process, start a new one on the same port."""
        self._refuse_if_closed("restart")
        await self.stop()
        await self.start()

    async def state(self) -> dict[str, Any]:
        """GET /state from the child over loopback (a down server: zero everything)."""
        if not self.running or not self._state_port:
            return _down(self.url)
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", self._state_port)
        try:
            writer.write(b"GET /state HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            async with asyncio.timeout(2):
                response = await reader.read()
        finally:
            writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            raise RuntimeError(f"state endpoint answered {head[:40]!r}")
        return json.loads(body)

    def reap_now(self) -> None:
        """SIGKILL and reap synchronously (atexit: the event loop may be gone)."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.process.pid, 0)


async def _replace(name: str) -> None:
    old = _registry.pop(name, None)
    if old is None:
        return
    logger.info("= replacing server %r (%s)", name, old.url)
    if old.loop is asyncio.get_running_loop():
        await old.close()
    elif isinstance(old, ProcessServer):
        old.reap_now()  # its loop is gone (another test, a restarted loop): no await possible
    else:
        logger.warning("! server %r belonged to another event loop; it cannot be stopped", name)


async def start_server(name: str = "default",
                       channels: Mapping[str, type[Channel]] | None = None,
                       **endpoint_options: Any) -> KernelServer:
    """Serve ``channels`` (None: the demo routes) in this kernel; replaces ``name``."""
    log_routing.install()  # in a kernel: server log lines go to panels, not stray stderr
    await _replace(name)
    endpoint = Endpoint(channels, host="127.0.0.1", port=0, **endpoint_options)
    handle = KernelServer(name, await endpoint.start())
    _registry[name] = handle
    return handle


async def start_process_server(name: str = "default", *, idle_timeout: float | None = None,
                               drop_heartbeats: bool = False,
                               history: str | os.PathLike | None = None,
                               pubsub_url: str | None = None,
                               node_name: str | None = None) -> ProcessServer:
    """Run the demo server as a child OS process; replaces ``name``.

    ``history``: a SQLite file path; the child then also serves ``history:*`` from it.
    ``pubsub_url``: a redis:// URL; the child is then one node of a cluster whose
    broadcasts travel through that Valkey/Redis, named ``node_name`` (default ``name``).
    """
    log_routing.install()  # in a kernel: the child's log lines go to panels, not stray stderr
    await _replace(name)
    handle = await ProcessServer(name, idle_timeout=idle_timeout,
                                 drop_heartbeats=drop_heartbeats, history=history,
                                 pubsub_url=pubsub_url, node_name=node_name).start()
    _registry[name] = handle
    return handle


async def read_state(server: Any) -> dict[str, Any]:
    """The snapshot of a lab handle (``await state()``) or of a bare Endpoint (``snapshot()``)."""
    if isinstance(server, ServerHandle):
        return await server.state()
    if hasattr(server, "snapshot"):
        return server.snapshot()
    state = server.state()
    return await state if inspect.isawaitable(state) else state


def running_servers() -> dict[str, ServerHandle]:
    """The registry: name -> handle, for "what is running in this kernel?"."""
    return dict(_registry)


async def stop_all() -> None:
    """Stop every registered server (end of a chapter)."""
    for handle in list(_registry.values()):
        await handle.close()


@atexit.register
def _reap_children() -> None:
    # The children would also exit on their own (stdin EOF), but not before this process
    # is fully gone; reaping here means nothing outlives the kernel even briefly.
    for handle in list(_spawned):
        handle.reap_now()
