"""Probes for client tests: the event log a test waits on, a polling helper, a TCP proxy.

``EventLog`` records a socket's ClientEvents and lets a test await the first event that
matches (no sleeps).  ``until`` waits for a condition on server state (``snapshot()`` has no
change notification).  ``BlackholeProxy`` forwards TCP both ways until its ``blackhole``
switch is on; then it silently drops every byte, with no FIN and no RST: a half-open link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mini_server.protocol import Message


class EventLog:
    """Every ClientEvent of a socket, with an awaitable search (no sleeps)."""

    def __init__(self, socket: Any) -> None:
        self.events: list[Any] = []
        self._new = asyncio.Event()
        socket.on_event(self._on_event)

    def _on_event(self, event: Any) -> None:
        self.events.append(event)
        self._new.set()

    def of(self, kind: str, **data: Any) -> list[Any]:
        """Events of ``kind`` whose data contains every given key/value."""
        return [e for e in self.events if e.kind == kind
                and all(e.data.get(k) == v for k, v in data.items())]

    def sent(self, event: str | None = None, since: int = 0) -> list[Message]:
        """Messages the client put on the wire (heartbeats included), optionally one event."""
        return [e.data["message"] for e in self.events[since:] if e.kind == "sent"
                and (event is None or e.data["message"].event == event)]

    async def wait(self, predicate: Callable[[Any], bool], timeout: float = 3.0,  # noqa: ASYNC109
                   since: int = 0) -> Any:
        """The first event at index >= ``since`` matching ``predicate`` (waits for it)."""
        async def scan() -> Any:
            i = since
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return self.events[i]
                    i += 1
                self._new.clear()
                await self._new.wait()
        return await asyncio.wait_for(scan(), timeout)

    async def wait_kind(self, kind: str, timeout: float = 3.0,  # noqa: ASYNC109
                        since: int = 0, **data: Any) -> Any:
        """The first event of ``kind`` (with matching data) at index >= ``since``."""
        return await self.wait(lambda e: e.kind == kind and all(
            e.data.get(k) == v for k, v in data.items()), timeout, since)


async def until(predicate: Callable[[], bool], timeout: float = 3.0,  # noqa: ASYNC109
                what: str = "") -> None:
    """Wait for a condition on server state (snapshot() is cheap; polled at 50 Hz)."""
    async def poll() -> None:
        # snapshot() has no change notification; it is designed to be polled (DESIGN.md)
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what or predicate}") from None


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


