"""Test doubles for the client: a virtual-time event loop and a scripted in-memory server.

``VirtualClockLoop`` (from :mod:`mini_server.fake_clock`, which chapter 08 teaches) is a real
asyncio loop whose clock only moves when nothing is ready to run: it then jumps straight to the
next scheduled timer.  Every ``call_later`` of the client
(reconnect, rejoin, heartbeat, push timeouts, teardown polls) therefore fires at an exact,
predictable time and a test of a 10-minute back-off finishes in milliseconds.

``FakeServer`` is a tiny scripted Phoenix behind ``FakeTransport`` (the browser-WebSocket
shape the Socket expects, with zero latency): it can refuse connections, answer or ignore
heartbeats and joins per topic, and push any frame.  It records every frame the client sent
with the virtual time it was sent at.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mini_server.client.transport import ReadyState
from mini_server.fake_clock import VirtualClockLoop, run_virtual  # noqa: F401 (re-exported)
from mini_server.protocol import Message, V2JSONSerializer

SERVER = V2JSONSerializer()


@dataclass
class Sent:
    """One frame the client sent, decoded, with the virtual time and connection number."""

    time: float
    conn: int
    msg: Message

    @property
    def frame(self) -> list:
        """The five-element V2 form."""
        m = self.msg
        return [m.join_ref, m.ref, m.topic, m.event, m.payload]


class FakeTransport:
    """The WebSocket shape the Socket drives, wired to a FakeServer with zero latency."""

    def __init__(self, server: FakeServer, url: str, number: int) -> None:
        self.server, self.url, self.number = server, url, number
        self.ready_state = ReadyState.CONNECTING
        self.buffered_amount = 0
        self.close_code: int | None = None
        self.onopen = self.onerror = self.onmessage = self.onclose = lambda *a: None

    @property
    def done(self) -> bool:
        return self.ready_state == ReadyState.CLOSED

    async def wait_closed(self) -> None:
        return None

    def send(self, frame: str | bytes) -> None:
        if self.ready_state == ReadyState.OPEN:
            self.server._received(self, SERVER.decode(frame))

    def close(self, code: int | None = None, reason: str = "") -> None:
        if self.ready_state == ReadyState.CONNECTING:
            self.ready_state = ReadyState.CLOSING
            asyncio.get_running_loop().call_soon(self._finish, 1006, "")
        elif self.ready_state == ReadyState.OPEN:
            self.ready_state = ReadyState.CLOSING
            self.close_code = 1005 if code is None else code
            self.server.closes.append((self.number, self.close_code, reason))
            asyncio.get_running_loop().call_soon(self._finish, self.close_code, reason)

    def abort(self) -> None:
        self._finish(1006, "")

    # --- driven by the FakeServer ---
    def _open(self) -> None:
        if self.ready_state == ReadyState.CONNECTING:
            self.ready_state = ReadyState.OPEN
            self.onopen()

    def _fail(self, exc: BaseException) -> None:
        if self.ready_state == ReadyState.CONNECTING:
            self.ready_state = ReadyState.CLOSED
            self.onerror(exc)
            self.onclose(1006, "")
            self.server._touch()

    def _deliver(self, frame: list) -> None:
        if self.ready_state == ReadyState.OPEN:
            self.onmessage(json.dumps(frame))

    def _finish(self, code: int, reason: str) -> None:
        if self.ready_state != ReadyState.CLOSED:
            self.ready_state = ReadyState.CLOSED
            self.onclose(code, reason)


class FakeServer:
    """A scripted Phoenix: pass ``server.transport`` as the Socket's ``transport=``."""

    def __init__(self) -> None:
        self.accepting = True
        self.answer_heartbeats = True
        # topic -> "ok" | "error" | "ignore" | callable(Message) -> one of those
        self.join_results: dict[str, Any] = {}
        self.sent: list[Sent] = []
        self.attempts: list[float] = []
        self.urls: list[str] = []
        self.closes: list[tuple[int, int, str]] = []
        self.transports: list[FakeTransport] = []
        self._changed: asyncio.Event | None = None

    async def wait(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:  # noqa: ASYNC109
        """Wait (in virtual seconds) until ``predicate()`` holds; checked after every frame."""
        self._changed = self._changed or asyncio.Event()

        async def check() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        async with asyncio.timeout(timeout):
            await check()

    def _touch(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def transport(self, url: str, *, open_timeout: float | None = None) -> FakeTransport:
        loop = asyncio.get_running_loop()
        t = FakeTransport(self, url, len(self.transports))
        self.transports.append(t)
        self.attempts.append(loop.time())
        self.urls.append(url)
        loop.call_soon(self._resolve, t)
        self._touch()
        return t

    @property
    def current(self) -> FakeTransport:
        return self.transports[-1]

    def frames(self, event: str | None = None, topic: str | None = None) -> list[Sent]:
        """Frames the client sent, optionally filtered by event and topic."""
        return [s for s in self.sent if (event is None or s.msg.event == event)
                and (topic is None or s.msg.topic == topic)]

    def push(self, frame: list) -> None:
        """Deliver one server frame ``[join_ref, ref, topic, event, payload]`` soon."""
        asyncio.get_running_loop().call_soon(self.current._deliver, frame)

    def drop(self, code: int = 1006) -> None:
        """The server side closes the current connection with ``code``."""
        self.current._finish(code, "")

    def _resolve(self, t: FakeTransport) -> None:
        if self.accepting:
            t._open()
        else:
            t._fail(ConnectionRefusedError(111, "Connect call failed (fake server is down)"))

    def _received(self, t: FakeTransport, msg: Message) -> None:
        loop = asyncio.get_running_loop()
        self.sent.append(Sent(loop.time(), t.number, msg))
        self._touch()

        def reply(status: str, response: dict, join_ref: str | None = msg.join_ref) -> None:
            frame = [join_ref, msg.ref, msg.topic, "phx_reply",
                     {"status": status, "response": response}]
            loop.call_soon(t._deliver, frame)

        if msg.topic == "phoenix" and msg.event == "heartbeat":
            if self.answer_heartbeats:
                reply("ok", {}, None)
        elif msg.event == "phx_join":
            result = self.join_results.get(msg.topic, "ok")
            result = result(msg) if callable(result) else result
            if result == "ok":
                reply("ok", {})
            elif result == "error":
                reply("error", {"reason": "unauthorized"})
        elif msg.event == "phx_leave":
            reply("ok", {})
        elif msg.event == "ping":
            reply("ok", msg.payload)
