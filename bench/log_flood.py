"""Benchmark: how many bytes of server log one misbehaving connection can write.

One client sends ``--joins`` refused joins on one connection, as fast as the server
answers: joins to a topic no route matches ("unmatched topic", a WARNING) and joins the
room refuses (``{"reject": true}``, an INFO line).  The server's records are formatted as
the lab's process server formats them (``%(asctime)s %(name)s %(message)s``) and counted
in bytes, per level.  Before issue 10 every refused join wrote one line; now each kind of
line is rate-limited per connection (``log_lines.Repeats``: a burst, then one line with
the count), so the figure no longer grows with the flood.

    python bench/log_flood.py [--joins 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time

from websockets.asyncio.client import connect

from mini_server.server import Endpoint

DEADLINE = 120.0  # seconds for the whole run; the bench never hangs


class ByteCounter(logging.Handler):
    """Counts the bytes of formatted records, per level name."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        self.bytes: dict[str, int] = {}
        self.lines: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        size = len(self.format(record).encode()) + 1  # the newline a stream adds
        self.bytes[record.levelname] = self.bytes.get(record.levelname, 0) + size
        self.lines[record.levelname] = self.lines.get(record.levelname, 0) + 1


async def flood(url: str, joins: int, topic_of, payload: dict) -> None:
    """Send ``joins`` joins on one connection, read every reply, close."""
    async with connect(f"{url}/websocket?vsn=2.0.0", ping_interval=None, max_queue=None,
                       proxy=None) as ws:
        for n in range(joins):
            await ws.send(json.dumps([str(n), str(n), topic_of(n), "phx_join", payload]))
        for _ in range(joins):
            await ws.recv()


async def main(joins: int = 10_000) -> dict[str, dict[str, int]]:
    """Run both floods; print and return bytes and lines per level."""
    logger = logging.getLogger("mini_server.server")
    counter = ByteCounter()
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(counter)
    results: dict[str, dict[str, int]] = {}
    endpoint = await Endpoint(host="127.0.0.1", port=0, idle_timeout=None).start()
    try:
        async with asyncio.timeout(DEADLINE):
            for name, topic_of, payload in (
                    ("unmatched topic", lambda n: f"nope:{n}", {}),
                    ("room refuses", lambda n: f"room:{n % 50}", {"reject": True})):
                counter.bytes, counter.lines = {}, {}
                started = time.perf_counter()
                await flood(endpoint.url, joins, topic_of, payload)
                for _ in range(100):  # the connection's last lines come as its handler ends
                    if not endpoint.transports:
                        break
                    await asyncio.sleep(0.02)
                took = time.perf_counter() - started
                results[name] = {"bytes": sum(counter.bytes.values()),
                                 "lines": sum(counter.lines.values()),
                                 "warning_bytes": counter.bytes.get("WARNING", 0)}
                print(f"{joins} refused joins ({name}) on one connection: "
                      f"{results[name]['bytes']} bytes in {results[name]['lines']} log lines "
                      f"({results[name]['warning_bytes']} bytes of warnings), {took:.2f} s")
    finally:
        await endpoint.aclose()
        logger.removeHandler(counter)
        logger.setLevel(old_level)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--joins", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().joins))
