"""Benchmark: a burst of joins against a bare echo server, and what INFO logging costs.

A client process (``crowd.py``) opens ``--clients`` connections, 100 handshakes at a time,
and joins one channel on each; the figure is the time from its first connect to its last
join reply.  Servers, each in its own process: a bare ``websockets`` server answering every
frame with an ok reply (the baseline: the least a server can do for a join), ours with
logging at WARNING, and ours at INFO (the CLI's default: a line per connect and per join,
written to stderr, here /dev/null).  Kinds alternate round by round.  The last line is the
INFO run against the echo baseline.

    python bench/joins.py [--clients 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crowd import Child, spread

GOAL = 2.0
KINDS = (("bare echo", "echo", None), ("ours, WARNING", "fastlane", "WARNING"),
         ("ours, INFO", "fastlane", "INFO"))


async def burst(kind: str, level: str | None, clients: int) -> float:
    """Seconds for ``clients`` connections to connect and join, against one fresh server."""
    server = await Child.start("serve", kind, *(["--log-level", level] if level else []),
                               quiet=True)
    crowd = None
    try:
        port = (await server.line())[1]
        crowd = await Child.start("clients", port, str(clients), "1")
        words = await crowd.line()
        return float(words[1])
    finally:
        if crowd is not None:
            await crowd.close()
        await server.close()


async def main(clients: int = 500, rounds: int = 3) -> float:
    """Every kind ``rounds`` times; print the figures; return INFO / echo (medians)."""
    times: dict[str, list[float]] = {label: [] for label, _, _ in KINDS}
    for _ in range(rounds):
        for label, kind, level in KINDS:
            times[label].append(await burst(kind, level, clients))
    print(f"{clients} connects + joins, {rounds} rounds")
    for label, values in times.items():
        print(f"  {label:14} {spread(values)}")
    median = {label: statistics.median(values) for label, values in times.items()}
    print(f"  INFO / WARNING: {median['ours, INFO'] / median['ours, WARNING']:.2f}")
    ratio = median["ours, INFO"] / median["bare echo"]
    print(f"ratio {ratio:.2f} (goal <= {GOAL})")
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.rounds))
