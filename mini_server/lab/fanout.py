"""What intercept costs: broadcast fan-out through the fastlane vs through handle_out.

Theory of operation
-------------------
Phoenix encodes a non-intercepted broadcast once per serializer and writes the same bytes to
every subscriber's transport (the "fastlane"); an intercepted event instead goes through each
subscriber's channel process, which calls ``handle_out`` and encodes its own push (Phoenix's
``intercept/1`` docs warn that the broadcast is then encoded N times).  :func:`measure`
times both on one endpoint, with the same raw V2 subscribers and the same messages, rounds
alternating so a drift in machine load hits both alike; the figure to read is the
:attr:`Fanout.ratio`, which does not depend on the machine's speed the way the times do.

Chapter 07 runs it small, in the kernel.  ``bench/fanout.py`` is the real benchmark: servers
and clients in separate processes, ours against ``websockets.broadcast`` at 1k and 10k.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from mini_server.server import Channel, Endpoint, noreply, ok

__all__ = ["Fanout", "FastRoom", "InterceptRoom", "measure", "run_one"]

READ_TIMEOUT = 120.0  # seconds for every subscriber to read every broadcast


class FastRoom(Channel):
    """Broadcasts go straight to the transports (no intercept)."""

    async def join(self, topic: str, payload: Any):
        """Accept anyone."""
        return ok()


class InterceptRoom(FastRoom):
    """The same room with ``new_msg`` intercepted and pushed by each subscriber."""

    intercept = ("new_msg",)

    async def handle_out(self, event: str, payload: Any):
        """Push it unchanged: the cost measured is intercept itself, not any filtering."""
        await self.push(event, payload)
        return noreply()


@dataclass(frozen=True)
class Fanout:
    """Best times of each way, in seconds, for ``subscribers x messages`` deliveries."""

    subscribers: int
    messages: int
    rounds: int
    fastlane: float
    intercept: float
    size: int = 0

    @property
    def deliveries(self) -> int:
        """Frames delivered per way and round."""
        return self.subscribers * self.messages

    @property
    def ratio(self) -> float:
        """How many times longer the intercepted fan-out took."""
        return self.intercept / self.fastlane

    def lines(self) -> list[str]:
        """The report as lines, ratio last."""
        d = self.deliveries
        return [
            f"{self.subscribers} subscribers x {self.messages} broadcasts = {d} deliveries, "
            f"best of {self.rounds}" + (f", {self.size}-byte bodies" if self.size else ""),
            f"fastlane (baseline): {self.fastlane:.3f} s  ({d / self.fastlane:,.0f} deliveries/s)",
            f"intercept:           {self.intercept:.3f} s  ({d / self.intercept:,.0f} "
            "deliveries/s)",
            f"ratio intercept/fastlane time: {self.ratio:.2f}",
        ]


async def subscribe(url: str, topic: str, count: int) -> list[ClientConnection]:
    """Open ``count`` raw V2 connections joined to ``topic``."""
    clients = []
    try:
        for n in range(count):
            ws = await connect(f"{url}/websocket?vsn=2.0.0", ping_interval=None, max_queue=None)
            clients.append(ws)
            await ws.send(json.dumps([str(n), str(n), topic, "phx_join", {}]))
            async with asyncio.timeout(READ_TIMEOUT):
                await ws.recv()
    except BaseException:
        await asyncio.gather(*(ws.close() for ws in clients))
        raise
    return clients


async def drain(ws: ClientConnection, expected: int) -> None:
    """Read broadcasts until ``expected`` have arrived."""
    for _ in range(expected):
        await ws.recv()


async def run_one(server: Endpoint, topic: str, subscribers: int, messages: int,
                  size: int = 0) -> float:
    """Seconds for every subscriber to receive ``messages`` broadcasts on ``topic``."""
    clients = await subscribe(server.url, topic, subscribers)
    readers = [asyncio.create_task(drain(ws, messages)) for ws in clients]
    try:
        padding = "x" * size
        start = time.perf_counter()
        for n in range(messages):
            await server.broadcast(topic, "new_msg", {"body": f"message {n}{padding}"})
        async with asyncio.timeout(READ_TIMEOUT):
            await asyncio.gather(*readers)
        return time.perf_counter() - start
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in clients))


async def measure(subscribers: int = 50, messages: int = 200, rounds: int = 3,
                  size: int = 0) -> Fanout:
    """Both ways on one fresh endpoint, best of ``rounds`` each; the endpoint is closed after.

    ``size`` pads each body by that many bytes.  The whole stream may be queued before a
    reader catches up, so the endpoint's outgoing budget is lifted: no slow-consumer aborts.
    """
    routes = {"fast:*": FastRoom, "intercept:*": InterceptRoom}
    fast, slow = [], []
    async with Endpoint(routes, port=0, max_outgoing_bytes=1 << 34,
                        max_outgoing=1 << 30) as server:
        for n in range(rounds):  # alternate, so drift in machine load hits both alike
            fast.append(await run_one(server, f"fast:{n}", subscribers, messages, size))
            slow.append(await run_one(server, f"intercept:{n}", subscribers, messages, size))
    return Fanout(subscribers, messages, rounds, min(fast), min(slow), size)
