"""Benchmark: broadcast fan-out through the fastlane vs through handle_out (intercept).

Phoenix encodes a non-intercepted broadcast once per serializer and writes the same bytes to
every subscriber's transport (the "fastlane"); an intercepted event instead goes through each
subscriber's channel process, which calls ``handle_out`` and encodes its own push. The course
says intercept costs one encode per subscriber: this measures what that costs here.

Both runs use the same server, the same subscribers and the same messages, so the machine's
speed cancels out: the figure to read is the ratio, printed on the last line.

    python bench/fanout.py [--subscribers 50] [--messages 200] [--size 0]

Issue 10 measured redaction's cost with ``--subscribers 10 --messages 1000 --size 50000``:
redaction never runs per frame (only where a value is shown), so the figure is unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from mini_server.server import Channel, Endpoint, noreply, ok


class FastRoom(Channel):
    """Broadcasts go straight to the transports (no intercept)."""

    async def join(self, topic: str, payload: Any):
        return ok()


class InterceptRoom(FastRoom):
    """The same room with ``new_msg`` intercepted and pushed by each subscriber."""

    intercept = ("new_msg",)

    async def handle_out(self, event: str, payload: Any):
        await self.push(event, payload)
        return noreply()


async def subscribe(url: str, topic: str, count: int) -> list[ClientConnection]:
    """Open ``count`` raw V2 connections joined to ``topic``."""
    clients = []
    for n in range(count):
        ws = await connect(f"{url}/websocket?vsn=2.0.0", ping_interval=None, max_queue=None)
        await ws.send(json.dumps([str(n), str(n), topic, "phx_join", {}]))
        await ws.recv()
        clients.append(ws)
    return clients


async def drain(ws: ClientConnection, expected: int) -> None:
    """Read broadcasts until ``expected`` have arrived."""
    for _ in range(expected):
        await ws.recv()


async def run_one(server: Endpoint, topic: str, subscribers: int, messages: int,
                  size: int = 0) -> float:
    """Seconds for every subscriber to receive ``messages`` broadcasts on ``topic``."""
    clients = await subscribe(server.url, topic, subscribers)
    try:
        readers = [asyncio.create_task(drain(ws, messages)) for ws in clients]
        start = time.perf_counter()
        padding = "x" * size
        for n in range(messages):
            await server.broadcast(topic, "new_msg", {"body": f"message {n}{padding}"})
        async with asyncio.timeout(120):
            await asyncio.gather(*readers)
        return time.perf_counter() - start
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def main(subscribers: int, messages: int, rounds: int, size: int = 0) -> None:
    routes = {"fast:*": FastRoom, "intercept:*": InterceptRoom}
    # The whole stream may be queued before a reader catches up: no slow-consumer aborts here.
    async with Endpoint(routes, port=0, max_outgoing_bytes=1 << 34,
                        max_outgoing=1 << 30) as server:
        fast, slow = [], []
        for n in range(rounds):  # alternate, so drift in machine load hits both alike
            fast.append(await run_one(server, f"fast:{n}", subscribers, messages, size))
            slow.append(await run_one(server, f"intercept:{n}", subscribers, messages, size))
    deliveries = subscribers * messages
    best_fast, best_slow = min(fast), min(slow)
    print(f"{subscribers} subscribers x {messages} broadcasts = {deliveries} deliveries, "
          f"best of {rounds}" + (f", {size}-byte bodies" if size else ""))
    print(f"fastlane (baseline): {best_fast:.3f} s  ({deliveries / best_fast:,.0f} deliveries/s)")
    print(f"intercept:           {best_slow:.3f} s  ({deliveries / best_slow:,.0f} deliveries/s)")
    print(f"ratio intercept/fastlane time: {best_slow / best_fast:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=0, help="padding bytes per body")
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.messages, args.rounds, args.size))
