"""Benchmark: broadcast fan-out through the fastlane vs through handle_out (intercept).

Phoenix encodes a non-intercepted broadcast once per serializer and writes the same bytes to
every subscriber's transport (the "fastlane"); an intercepted event instead goes through each
subscriber's channel process, which calls ``handle_out`` and encodes its own push. The course
says intercept costs one encode per subscriber: this measures what that costs here.

Both runs use the same server, the same subscribers and the same messages, so the machine's
speed cancels out: the figure to read is the ratio, printed on the last line. The measurement
itself is ``mini_server.lab.fanout.measure`` (chapter 07 runs it at a small size).

    python bench/fanout.py [--subscribers 50] [--messages 200] [--size 0]

Issue 10 measured redaction's cost with ``--subscribers 10 --messages 1000 --size 50000``:
redaction never runs per frame (only where a value is shown), so the figure is unchanged.
"""

from __future__ import annotations

import argparse
import asyncio

from mini_server.lab.fanout import measure


async def main(subscribers: int, messages: int, rounds: int, size: int = 0) -> None:
    """Measure both ways and print the report, ratio on the last line."""
    result = await measure(subscribers, messages, rounds, size)
    print("\n".join(result.lines()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=0, help="padding bytes per body")
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.messages, args.rounds, args.size))
