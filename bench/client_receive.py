"""Benchmark: what the client's event text costs while it receives large broadcasts.

One client joins a room and the server broadcasts ``--messages`` payloads of ``--size``
bytes to it.  Timed from the first broadcast to the last one delivered to the channel's
binding, three ways: nobody reads the event stream's text (the default since issue 10: it
is built lazily), a listener reads every event's text (as a panel does: formatting and
redaction run for each frame), and mini_server.client logging at DEBUG (the text goes to a
log handler).  The ratios against the first are printed on the last line.

    python bench/client_receive.py [--messages 2000] [--size 50000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from mini_server.client import Socket
from mini_server.server import Channel, Endpoint, ok

DEADLINE = 120.0


class Room(Channel):
    """Accepts every join."""

    async def join(self, topic: str, payload: Any):
        return ok()


async def receive(url: str, endpoint: Endpoint, messages: int, size: int, how: str) -> float:
    """Seconds for ``messages`` broadcasts of ``size`` bytes to reach the binding."""
    sock = Socket(url, heartbeat_interval=60)
    if how == "listener reads text":
        sock.on_event(lambda event: event.text)
    channel = sock.channel("room:bench")
    got = asyncio.Event()
    count = 0

    def on_blob(_payload: Any) -> None:
        nonlocal count
        count += 1
        if count == messages:
            got.set()

    channel.on("blob", on_blob)
    sock.connect()
    await channel.join()
    payload = {"body": "x" * size, "access_token": "not shown"}
    started = time.perf_counter()
    for _ in range(messages):
        await endpoint.broadcast("room:bench", "blob", payload)
    await got.wait()
    took = time.perf_counter() - started
    sock.disconnect()
    await sock.wait_closed(5)
    return took


async def main(messages: int = 2000, size: int = 50_000, rounds: int = 3) -> dict[str, float]:
    """Run the three cases on one server (best of ``rounds``); print and return their times."""
    client_log = logging.getLogger("mini_server.client")
    old_level = client_log.level
    results: dict[str, float] = {}
    async with Endpoint({"room:*": Room}, idle_timeout=None,
                        max_outgoing_bytes=1 << 30, max_outgoing=1 << 20) as endpoint:
        async with asyncio.timeout(DEADLINE):
            for how in ("nobody reads text", "listener reads text", "DEBUG log handler"):
                if how == "DEBUG log handler":
                    client_log.setLevel(logging.DEBUG)
                    handler = logging.NullHandler()
                    client_log.addHandler(handler)
                try:
                    results[how] = min([await receive(endpoint.url, endpoint, messages, size,
                                                      how) for _ in range(rounds)])
                finally:
                    if how == "DEBUG log handler":
                        client_log.removeHandler(handler)
                        client_log.setLevel(old_level)
                print(f"{messages} x {size}-byte broadcasts received, {how}: "
                      f"{results[how]:.3f} s (best of {rounds})")
    base = results["nobody reads text"]
    print("ratio time / nobody reads text: "
          + ", ".join(f"{how} {t / base:.2f}x" for how, t in results.items()))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.messages, options.size, options.rounds))
