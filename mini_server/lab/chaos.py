"""A fault-injecting TCP proxy: put it between a client and a server, then break the network.

Theory of operation
-------------------
:class:`ChaosProxy` listens on 127.0.0.1 (port chosen by the OS) and opens one upstream
connection per client connection.  Each direction is a :class:`_Pipe`: a reader task fills a
queue with ``(arrival time, chunk)`` and a writer task forwards it.  The fault model is
Toxiproxy's, applied to every connection at once:

* **pass** - bytes flow (after ``latency`` seconds, if set).
* **drop** - an unstable network: every current connection is reset (RST, via SO_LINGER 0)
  on both sides, and new connections are accepted and reset at once, as a firewall that
  answers with RST would, until :meth:`ChaosProxy.restore`.  Clients see close code 1006.
* **blackhole** - a half-open link: connections stay open but nothing is forwarded either
  way, not even a FIN or a RST.  Only a heartbeat (client) or an idle timeout (server)
  notices.  Held bytes are delivered in order on restore, as TCP retransmission would
  deliver them when a real link comes back (dropping them would tear WebSocket frames apart).
* **latency(seconds)** - every chunk is delivered ``seconds`` after it arrived, in order.

Bytes and WebSocket frames are counted per direction as they are *delivered*
(:mod:`mini_server.lab.frames` reads frame headers only, so counting is cheap).  A reader
stops reading while more than ``hold_limit`` bytes wait in its queue, as a full TCP window
would.

**Several upstreams** (``ChaosProxy([server_a, server_b])``) make it a round-robin front, as
a load balancer in front of a cluster: each new connection goes to the next upstream in
turn, and an upstream that refuses (a killed node) is skipped for the next one, so a
client reconnecting through the front lands on a node that is still up.  The client is
reset only when every upstream refuses.  ``stats()["per_upstream"]`` counts where
connections went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from mini_server.lab import log_routing
from mini_server.lab.frames import FrameCounter, Traffic

logger = logging.getLogger(__name__)

_EOF, _RESET = object(), object()  # queue markers: a FIN or a RST seen on the other side


class HasUrl(Protocol):
    """Anything with a ``url`` such as ws://127.0.0.1:4000/socket (a server handle)."""

    url: str


def _address(url: str) -> tuple[str, int]:
    """(host, port) of a ws:// or redis:// URL."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"upstream URL {url!r} needs a host and a port")
    return parts.hostname, parts.port


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: SO_LINGER on with a zero timeout, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Pipe:
    """One direction of one connection: read, hold (blackhole / latency), deliver, count."""

    def __init__(self, proxy: ChaosProxy, link: _Link, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, totals: Traffic) -> None:
        self.proxy, self.link, self.reader, self.writer = proxy, link, reader, writer
        self.counter = FrameCounter(totals)
        self.queue: deque[tuple[float, Any]] = deque()
        self.held = 0
        self.arrived = asyncio.Event()  # the queue got something
        self.drained = asyncio.Event()  # the queue fell below hold_limit

    async def read_loop(self) -> None:
        """Queue every chunk with its arrival time; queue the FIN or RST that ends it."""
        loop = asyncio.get_running_loop()
        end: Any = _EOF
        try:
            while chunk := await self.reader.read(65536):
                self._put(loop.time(), chunk)
                self.held += len(chunk)
                while self.held > self.proxy.hold_limit:
                    self.drained.clear()
                    await self.drained.wait()
        except (ConnectionError, OSError):
            end = _RESET
        self._put(loop.time(), end)

    def _put(self, at: float, item: Any) -> None:
        self.queue.append((at, item))
        self.arrived.set()

    async def write_loop(self) -> None:
        """Deliver queued chunks once the link flows and their latency has passed."""
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.arrived.clear()
                await self.arrived.wait()
            await self.proxy._flowing.wait()
            at, item = self.queue[0]
            wait = at + self.proxy.delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # latency is the feature; re-check the mode after it
                continue
            self.queue.popleft()
            if item is _RESET:
                _reset(self.writer)
                return
            if item is _EOF:
                if self.writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        self.writer.write_eof()
                return
            self.held -= len(item)
            self.drained.set()
            self.counter.feed(item)
            self.writer.write(item)
            await self.writer.drain()


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, proxy: ChaosProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proxy, self.client_reader, self.client_writer = proxy, reader, writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []
        self.peer = writer.get_extra_info("peername")

    async def run(self) -> None:
        """Connect upstream, then pump both directions until both have ended."""
        up_reader = None
        for index, (host, port) in self.proxy._candidates():
            try:
                async with asyncio.timeout(self.proxy.connect_timeout):
                    up_reader, self.upstream_writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError) as exc:
                logger.info("! proxy :%s: upstream %s:%s unreachable (%s)",
                            self.proxy.port, host, port, exc)
                continue
            self.proxy.per_upstream[index] += 1
            break
        if up_reader is None or self.upstream_writer is None:
            logger.info("! proxy :%s: no upstream reachable; resetting client", self.proxy.port)
            _reset(self.client_writer)
            return
        pipes = (
            _Pipe(self.proxy, self, self.client_reader, self.upstream_writer,
                  self.proxy.client_to_server),
            _Pipe(self.proxy, self, up_reader, self.client_writer, self.proxy.server_to_client),
        )
        self.tasks = [asyncio.create_task(coro) for p in pipes
                      for coro in (p.read_loop(), p.write_loop())]
        try:
            # Both writers end on a delivered FIN or RST; a writer hitting a dead socket
            # raises, and then the whole link is reset.
            done, _ = await asyncio.wait(self.tasks[1::2], return_when=asyncio.FIRST_EXCEPTION)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                self.reset()
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.close()

    def reset(self) -> None:
        """RST both sides now and forget what was held (the drop fault)."""
        for task in self.tasks:
            task.cancel()
        _reset(self.client_writer)
        if self.upstream_writer is not None:
            _reset(self.upstream_writer)

    def close(self) -> None:
        """Close both sides normally (both directions already ended)."""
        self.client_writer.close()
        if self.upstream_writer is not None:
            self.upstream_writer.close()


class ChaosProxy:
    """A TCP proxy in front of a WebSocket server, with Toxiproxy-style faults."""

    def __init__(self, upstream: str | HasUrl | Sequence[str | HasUrl], *,
                 host: str = "127.0.0.1", port: int = 0,
                 hold_limit: int = 4 * 1024 * 1024, connect_timeout: float = 5.0) -> None:
        self._upstreams = (list(upstream) if isinstance(upstream, (list, tuple))
                           else [upstream])
        if not self._upstreams:
            raise ValueError("a proxy needs at least one upstream")
        self._upstream = self._upstreams[0]
        self._turn = 0  # round robin: the upstream the next connection tries first
        self.per_upstream = [0] * len(self._upstreams)
        self.host, self.port = host, port
        self.hold_limit, self.connect_timeout = hold_limit, connect_timeout
        self.mode = "pass"
        self.delay = 0.0
        self.client_to_server, self.server_to_client = Traffic(), Traffic()
        self.accepted = self.resets = 0
        self._links: dict[_Link, asyncio.Task] = {}
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> ChaosProxy:
        """Listen on host:port (port 0: the OS picks a free one)."""
        log_routing.install()  # in a kernel: our log lines go to panels, not stray stderr
        self.loop = asyncio.get_running_loop()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("= proxy :%s -> %s", self.port, self.upstream_url)
        return self

    async def close(self) -> None:
        """Stop listening and reset every connection; idempotent."""
        if self._server is not None:
            self._server.close()
        for link, task in list(self._links.items()):
            link.reset()
            task.cancel()
        await asyncio.gather(*self._links.values(), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ChaosProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- addresses ----------------------------------------------------------------
    @property
    def upstream_url(self) -> str:
        """The server's ws URL (read from the handle each time: restarts keep the port)."""
        up = self._upstream
        return up if isinstance(up, str) else up.url

    def upstream_address(self) -> tuple[str, int]:
        """(host, port) of the (first) server."""
        return _address(self.upstream_url)

    @property
    def upstream_urls(self) -> list[str]:
        """Every upstream's URL, in round-robin order."""
        return [up if isinstance(up, str) else up.url for up in self._upstreams]

    def _candidates(self) -> list[tuple[int, tuple[str, int]]]:
        """(index, address) in the order this connection tries them; advances the turn."""
        count = len(self._upstreams)
        first, self._turn = self._turn, (self._turn + 1) % count
        urls = self.upstream_urls
        return [((first + i) % count, _address(urls[(first + i) % count])) for i in range(count)]

    @property
    def url(self) -> str:
        """The same ws URL as the server's, but through the proxy."""
        parts = urlsplit(self.upstream_url)
        return urlunsplit(parts._replace(netloc=f"{self.host}:{self.port}"))

    @property
    def connections(self) -> int:
        """Client connections open through the proxy right now."""
        return len(self._links)

    # --- faults -------------------------------------------------------------------
    def drop(self) -> int:
        """Reset every connection and refuse new ones until restore(); returns how many."""
        self._set_mode("drop")
        self._require_started().set()  # nothing is held any more: the links are gone
        count = len(self._links)
        for link in list(self._links):
            link.reset()
        self.resets += count
        logger.info("x proxy :%s: reset %d connection(s)", self.port, count)
        return count

    def blackhole(self) -> None:
        """Keep connections open but forward nothing, either way, until restore()."""
        self._set_mode("blackhole")
        self._require_started().clear()

    def latency(self, seconds: float) -> None:
        """Deliver every chunk ``seconds`` after it arrived (0 turns latency off)."""
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds}")
        self.delay = float(seconds)
        logger.info("= proxy :%s: latency %.3f s", self.port, self.delay)

    def restore(self) -> None:
        """Back to a healthy network: pass, no latency; held bytes are delivered."""
        self.delay = 0.0
        self._set_mode("pass")
        self._require_started().set()

    def stats(self) -> dict[str, Any]:
        """Mode, latency and per-direction counters, as plain data."""
        return {
            "mode": self.mode, "latency": self.delay, "connections": self.connections,
            "accepted": self.accepted, "resets": self.resets,
            "per_upstream": dict(zip(self.upstream_urls, self.per_upstream, strict=True)),
            "client_to_server": self.client_to_server.as_dict(),
            "server_to_client": self.server_to_client.as_dict(),
        }

    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            logger.info("= proxy :%s: %s -> %s", self.port, self.mode, mode)
        self.mode = mode

    def _require_started(self) -> asyncio.Event:
        if self._flowing is None:
            raise RuntimeError("the proxy is not started: await proxy.start() first")
        return self._flowing

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "drop":
            self.resets += 1
            _reset(writer)
            return
        link = _Link(self, reader, writer)
        self._links[link] = asyncio.current_task()
        try:
            await link.run()
        except asyncio.CancelledError:
            # Only close() cancels this task, which asyncio's stream callback would log as
            # an error; the link has cleaned up in its finally, so end quietly.
            pass
        finally:
            self._links.pop(link, None)

    def __repr__(self) -> str:
        return f"<ChaosProxy {self.url} -> {self.upstream_url} mode={self.mode}>"


_proxies: dict[str, ChaosProxy] = {}


async def start_proxy(upstream: str | HasUrl | Sequence[str | HasUrl],
                      name: str = "default") -> ChaosProxy:
    """Start a proxy in front of ``upstream`` (several: a round-robin front); replaces ``name``."""
    previous = _proxies.pop(name, None)
    if previous is not None and previous.loop is asyncio.get_running_loop():
        await previous.close()
    proxy = await ChaosProxy(upstream).start()
    _proxies[name] = proxy
    return proxy
