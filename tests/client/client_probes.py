"""Probes for client tests: the event log and polling helper, and a TCP proxy.

``EventLog`` (from the package) records a socket's ClientEvents and lets a test await the
first event that matches (no sleeps).  ``until`` waits for a condition on server state
(``snapshot()`` has no change notification).  ``BlackholeProxy`` forwards TCP both ways
until its ``blackhole`` switch is on; then it silently drops every byte, with no FIN and no
RST: a half-open link.
"""

from __future__ import annotations

import asyncio

from mini_server.client import EventLog  # noqa: F401 (tests import it from here)
from mini_server.testing import wait_until as until  # noqa: F401


class BlackholeProxy:
    """A TCP proxy whose ``blackhole`` switch silently drops bytes both ways (no FIN, no RST)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blackhole = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket"

    async def start(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter):
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            c_writer.close()
            return
        self._writers |= {c_writer, s_writer}
        pumps = [asyncio.ensure_future(self._pump(c_reader, s_writer)),
                 asyncio.ensure_future(self._pump(s_reader, c_writer))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            for w in (c_writer, s_writer):
                w.close()
                self._writers.discard(w)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.blackhole:
                writer.write(data)
                await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            await self._server.wait_closed()


