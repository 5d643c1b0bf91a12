"""Benchmark: server memory while one subscriber stops reading under a broadcast stream.

One reading subscriber and one that never reads (websockets' client with a 4 KB receive
buffer that never calls ``recv()``, with or without heartbeats) share a topic; the server
broadcasts ``--messages`` frames of ``--size`` bytes.  Each run starts a fresh endpoint and
measures this process's RSS against its own baseline, taken after everyone has joined and
before the first broadcast, so the machine cancels out:

* **byte budget**: the server as configured today (``max_outgoing_bytes``, default 8 MiB);
* **frames only**: the old budget rule, emulated with an unlimited byte budget and the old
  limit of 10 000 frames (at 32 KB, 330 MB before it acts); the idle and close fixes stay
  on.  Run last, because memory the allocator kept from it would hide the growth of the
  runs after it (which is also why figures of later runs in one process are rougher).

The stated bound, checked on the last line: with the byte budget, peak RSS growth stays
under the budget plus 16 MiB (websockets' and the kernel's buffers, allocator slack).

    python bench/slow_reader.py [--messages 2000] [--size 32768] [--budget 8388608]

Measured (issue 10 items 1-2; 2 shared cores, Python 3.11, websockets 17; each scenario
alone in a fresh process, 2000 x 32 KB broadcasts, idle_timeout 1 s, close_timeout 0.5 s,
RSS baseline 27.7 MiB):

==========================  ==========  ===================  ==============================
server                      peak RSS    RSS 2.5 s after      the non-reading client
==========================  ==========  ===================  ==============================
before (main a6007c2)       +59.8 MiB   +59.8 MiB            still open (idle timeout 1 s)
before, heartbeating        +59.9 MiB   +59.9 MiB            still open
after, 8 MiB budget         +7.9 MiB    +0.1 MiB             aborted after 347 broadcasts
after, heartbeating         +7.9 MiB    +0.1 MiB             aborted after 346 broadcasts
after, frames-only budget   +59.8 MiB   +0.1 MiB             dropped by idle + close timeout
==========================  ==========  ===================  ==============================

Before, the connection and its 60 MiB stayed as long as the process (10 000 frames would
have been ~330 MB); after, growth stays under the budget and is returned at the abort.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mini_server.server import Channel, Endpoint, ok

MIB = 1_048_576
SLACK = 16 * MIB
IDLE, CLOSE = 1.0, 0.5  # short server timeouts (seconds), so "after" comes soon


class Room(Channel):
    """Broadcasts go straight to the transports."""

    async def join(self, topic: str, payload: Any):
        return ok()


@dataclass
class Run:
    """One scenario's figures (bytes, counts)."""

    label: str
    baseline: int
    peak: int
    after: int
    aborted_after: int | None  # broadcasts sent when the stuck client was dropped, if during
    gone: bool  # dropped by the end (during the stream, or by the idle and close timeouts)
    close_code: int | None
    settle: float  # seconds waited after the stream before "after" was read


def rss() -> int:
    """This process's resident set size in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


async def joined(url: str, topic: str, *, reading: bool) -> ClientConnection:
    """A V2 client joined to ``topic``; a non-reading one has a 4 KB receive buffer."""
    options: dict[str, Any] = {
        "ping_interval": None,
        "max_size": None,
        "proxy": None,
        "open_timeout": 10,
        "close_timeout": 0.5,
    }
    if not reading:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        options.update(sock=sock, max_queue=1)  # past one frame websockets stops reading
    ws = await connect(f"{url}/websocket?vsn=2.0.0", **options)
    await ws.send(json.dumps(["1", "1", topic, "phx_join", {}]))
    async with asyncio.timeout(10):
        await ws.recv()
    return ws


async def heartbeat(ws: ClientConnection, every: float = 0.05) -> None:
    """Heartbeat every ``every`` seconds (the replies are read or not, by the caller)."""
    with contextlib.suppress(ConnectionClosed):
        for n in range(1_000_000):
            await ws.send(json.dumps([None, str(n), "phoenix", "heartbeat", {}]))
            await asyncio.sleep(every)


async def next_broadcast(ws: ClientConnection) -> None:
    """Read up to the next broadcast, skipping heartbeat replies."""
    while json.loads(await ws.recv())[3] != "new_msg":
        pass


async def close_code(ws: ClientConnection) -> int | None:
    """Drain what reached the client; the close code it saw (None while still open)."""
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(2):
            while True:
                await ws.recv()
    return ws.close_code


async def run_one(
    label: str,
    messages: int,
    size: int,
    beats: bool,
    idle: float = IDLE,
    close: float = CLOSE,
    **options: Any,
) -> Run:
    """Stream ``messages`` broadcasts past a stuck subscriber; RSS before, at peak, after.

    "After" is read once the idle timeout and two close timeouts have passed since the
    stream ended: by then a connection the server gave up on is gone.
    """
    gc.collect()
    topic, payload = "room:bench", {"body": "x" * size}
    options = {"idle_timeout": idle, "close_timeout": close, **options}
    async with Endpoint({"room:*": Room}, port=0, **options) as server:
        reader = await joined(server.url, topic, reading=True)
        stuck = await joined(server.url, topic, reading=False)
        tasks = [asyncio.create_task(heartbeat(reader, idle / 4))]  # the healthy one stays alive
        if beats:
            tasks.append(asyncio.create_task(heartbeat(stuck)))
        baseline = peak = rss()
        aborted_after = None
        try:
            async with asyncio.timeout(300):
                for n in range(messages):
                    await server.broadcast(topic, "new_msg", payload)
                    await next_broadcast(reader)  # the healthy subscriber keeps up
                    peak = max(peak, rss())
                    if aborted_after is None and server.snapshot()["socket_count"] < 2:
                        aborted_after = n + 1
                await asyncio.sleep(idle + 2 * close + 0.5)
            gc.collect()
            after = rss()
            gone = server.snapshot()["socket_count"] < 2
            code = await close_code(stuck) if gone else None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stuck.transport.abort()  # a stuck client would never finish a closing handshake
            await asyncio.gather(reader.close(), stuck.close(), return_exceptions=True)
    return Run(label, baseline, peak, after, aborted_after, gone, code, idle + 2 * close + 0.5)


def line(run: Run) -> str:
    """One scenario's figures, growth shown against its own baseline."""
    if run.aborted_after is not None:
        fate = f"aborted after {run.aborted_after} broadcasts"
    elif run.gone:
        fate = "dropped after the stream (idle/close timeout)"
    else:
        fate = f"STILL OPEN {run.settle:g} s after the stream"
    if run.gone:
        fate += f", client saw {run.close_code}"
    return (
        f"{run.label:<42} peak +{(run.peak - run.baseline) / MIB:6.1f} MiB "
        f"(x{run.peak / max(run.baseline, 1):.2f}), after +"
        f"{(run.after - run.baseline) / MIB:6.1f} MiB, {fate}"
    )


async def main(
    messages: int, size: int, budget: int, idle: float = IDLE, close: float = CLOSE
) -> None:
    runs = []
    for beats in (False, True):
        runs.append(
            await run_one(
                f"byte budget {budget / MIB:g} MiB" + (", heartbeats" * beats),
                messages,
                size,
                beats,
                idle,
                close,
                max_outgoing_bytes=budget,
            )
        )
    for beats in (False, True):
        runs.append(
            await run_one(
                "frames only (old budget rule)" + (", heartbeats" * beats),
                messages,
                size,
                beats,
                idle,
                close,
                max_outgoing_bytes=1 << 62,
                max_outgoing=10_000,
            )
        )
    print(f"{size}-byte broadcasts x {messages}, one reading and one non-reading subscriber")
    print(f"baseline RSS (first run): {runs[0].baseline / MIB:.1f} MiB")
    for run in runs:
        print(line(run))
    growth = [max(r.peak - r.baseline, 1) for r in runs]
    print(f"ratio peak growth byte budget/frames only: {growth[0] / growth[2]:.2f}")
    bound = budget + SLACK
    within = all(g <= bound for g in growth[:2])
    print(
        f"bound: byte-budget peak growth <= budget + {SLACK // MIB} MiB "
        f"({bound / MIB:g} MiB): {'yes' if within else 'NO'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32_768)
    parser.add_argument("--budget", type=int, default=8 * MIB)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.size, args.budget))
