"""Drive the official phoenix.js client (tests/js/harness.mjs) from asyncio tests.

Theory of operation: one node process per PhoenixJS instance runs the real phoenix.js
1.8.16 Socket with ws as transport. We write commands to its stdin as JSON lines and a
reader task collects every observation line from its stdout into ``observations``, in
arrival order, waking waiters through a Condition. Tests wait for observations with
``wait_for(kind, since=mark, **fields)``, where ``mark()`` is the index to search from, so
each wait is bounded by a timeout and never relies on sleeps. A ``harness_error`` line or
an early exit of node fails the waiting test at once, with node's stderr attached.
``close()`` ends node by closing stdin (the harness disconnects its sockets) and kills it
if it lingers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

Check = Callable[[dict[str, Any]], bool]

JS_DIR = Path(__file__).resolve().parents[1] / "js"
HARNESS = JS_DIR / "harness.mjs"
PHOENIX_VERSION = "1.8.16"
INSTALL_HINT = "run `npm ci --prefix tests/js` from the repository root"

# Short phoenix.js timers so outages and rejoins play out in well under a second; the
# default 30 s heartbeat stays, so heartbeats only appear where a test asks for them.
FAST_TIMERS = {
    "timeout": 2000,
    "heartbeatIntervalMs": 30000,
    "reconnectAfterMs": [10, 50, 100, 150, 200],
    "rejoinAfterMs": [200, 500, 1000],
}


def missing_prerequisite() -> str | None:
    """Say what is missing to run phoenix.js under node, or None when all is there."""
    if shutil.which("node") is None:
        return f"node is not on PATH: install Node >= 18, then {INSTALL_HINT}"
    package = JS_DIR / "node_modules" / "phoenix" / "package.json"
    if not package.exists() or not (JS_DIR / "node_modules" / "ws" / "package.json").exists():
        return f"tests/js/node_modules lacks phoenix or ws: {INSTALL_HINT}"
    version = json.loads(package.read_text())["version"]
    if version != PHOENIX_VERSION:
        return f"tests/js has phoenix {version}, the tests need {PHOENIX_VERSION}: {INSTALL_HINT}"
    return None


class HarnessFailed(AssertionError):
    """The node harness reported an error or exited while a test waited on it."""


class PhoenixJS:
    """One node process running phoenix.js sockets named by the test."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.observations: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._stderr = bytearray()
        self._eof = False
        self._acks = itertools.count(1)
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name="phoenix-js-stdout"),
            asyncio.create_task(self._read_stderr(), name="phoenix-js-stderr"),
        ]

    @classmethod
    async def start(cls, within: float = 20.0) -> PhoenixJS:
        """Spawn node on the harness and wait until it reports ready."""
        process = await asyncio.create_subprocess_exec(
            "node", str(HARNESS), cwd=str(JS_DIR),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        js = cls(process)
        try:
            await js.wait_for("ready", within=within)
        except BaseException:
            await js.close()
            raise
        return js

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            observation = json.loads(line)
            async with self._changed:
                self.observations.append(observation)
                self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(4096):
            self._stderr.extend(chunk)

    def send(self, cmd: str, **fields: Any) -> None:
        """Write one command line to the harness."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())

    def mark(self) -> int:
        """Index of the next observation, to search only what happens from now on."""
        return len(self.observations)

    def find(
        self, kind: str, since: int = 0, where: Check | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        """Observations of this kind whose fields equal those given and that pass `where`."""
        return [
            o for o in self.observations[since:]
            if o["kind"] == kind
            and all(o.get(k) == v for k, v in fields.items())
            and (where is None or where(o))
        ]

    def frames_sent(self, socket: str, since: int = 0, heartbeats: bool = False) -> list[Any]:
        """Frames phoenix.js wrote on `socket` (text as lists, binary as {"binary": hex})."""
        frames = [o["frame"] for o in self.find("sent", since, socket=socket)]
        if heartbeats:
            return frames
        return [f for f in frames if not (isinstance(f, list) and f[3] == "heartbeat")]

    async def wait_for(
        self,
        kind: str,
        since: int = 0,
        within: float = 5.0,
        count: int = 1,
        where: Check | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Wait until `count` matching observations exist after `since`; return the last."""

        def ready() -> bool:
            self._raise_on_failure()
            return len(self.find(kind, since, where, **fields)) >= count

        async with self._changed:
            try:
                async with asyncio.timeout(within):
                    await self._changed.wait_for(ready)
            except TimeoutError:
                seen = self.observations[since:][-15:]
                raise AssertionError(
                    f"phoenix.js did not report {count} x {kind} {fields} within {within} s;"
                    f" last observations: {json.dumps(seen)}"
                ) from None
        return self.find(kind, since, where, **fields)[count - 1]

    async def command(self, cmd: str, within: float = 5.0, **fields: Any) -> dict[str, Any]:
        """Send a command and wait until the harness has run it."""
        ack = next(self._acks)
        since = self.mark()
        self.send(cmd, ack=ack, **fields)
        return await self.wait_for("ack", since=since, within=within, ack=ack)

    async def open_socket(
        self, name: str, url: str, params: dict | None = None, **opts: Any
    ) -> None:
        """Create socket `name` for `url` with fast timers (overridable) and wait until open."""
        since = self.mark()
        await self.command(
            "socket", id=name, url=url, params=params or {}, opts={**FAST_TIMERS, **opts}
        )
        await self.command("connect", socket=name)
        await self.wait_for("open", since=since, socket=name)

    async def join(
        self, socket: str, chan: str, topic: str, params: dict | None = None
    ) -> dict[str, Any]:
        """Create channel `chan` for `topic` on `socket`, join it, return the first outcome."""
        since = self.mark()
        await self.command("channel", socket=socket, id=chan, topic=topic, params=params or {})
        await self.command("join", chan=chan)
        return await self.wait_for("join", since=since, chan=chan)

    def _raise_on_failure(self) -> None:
        errors = self.find("harness_error")
        if errors:
            raise HarnessFailed(f"harness rejected a command: {errors[0]}")
        if self._eof:
            raise HarnessFailed(
                f"node exited ({self.process.returncode}); stderr: {self._stderr.decode()[-2000:]}"
            )

    async def close(self) -> None:
        """End node: close stdin so the harness disconnects, kill it if it lingers."""
        if self.process.returncode is None:
            if self.process.stdin is not None and not self.process.stdin.is_closing():
                self.process.stdin.close()
            try:
                async with asyncio.timeout(3.0):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
