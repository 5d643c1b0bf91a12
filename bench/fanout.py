"""Benchmark: broadcast fan-out against ``websockets.broadcast``, and intercept vs fastlane.

A server process (ours, or a bare ``websockets`` server calling ``broadcast()``) holds
``--subscribers`` connections opened by client processes (``crowd.py``); it broadcasts
``--messages`` small messages one after the other, and each broadcast is timed from the
moment the server starts it until the last client has it.  Kinds alternate round by round,
so drift in the machine's load hits them alike.  Our server runs twice: ``fastlane``
(Phoenix's encode-once path: the same bytes to every subscriber's transport) and, with
``--intercept``, an intercepted event (each subscriber's channel task runs ``handle_out``
and encodes its own push).  The figure to read is the ratio of medians, fastlane/bare; the
last line is the worst of the sizes run.

    python bench/fanout.py [--subscribers 1000] [--messages 30] [--rounds 3] [--big]
                           [--intercept]

``--big`` also runs 10 000 subscribers (two client processes; a few minutes).

Measured (issue 15; 2 cores shared with other jobs, Python 3.11, websockets 17; median
fan-out ours/bare, clients in separate processes; 10k runs are noisy, one or two each):

===================================  ===========  ==============
server                               1 000        10 000
===================================  ===========  ==============
before: each frame via a writer task  1.67-3.09   3.46 (max 2.2 s)
after: write-through                  0.73-1.25   1.18
intercept (after), for comparison     1.33        2.38
===================================  ===========  ==============
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crowd import run_crowd, spread

GOAL = 1.3


async def main(subscribers: int = 1000, messages: int = 30, rounds: int = 3,
               big: bool = False, intercept: bool = False, size: int = 16) -> float:
    """Run every size and kind; print the figures; return the worst fastlane/bare ratio."""
    kinds = ["bare", "fastlane", *(["intercept"] if intercept else [])]
    sizes = [subscribers, *([10_000] if big and subscribers < 10_000 else [])]
    ratios = []
    for count in sizes:
        processes = 1 if count <= 2000 else 2
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(rounds):
            for kind in kinds:
                run = await run_crowd(kind, count, messages, processes=processes, size=size)
                times[kind].extend(run.fanout[1:] or run.fanout)  # the first one warms up
        print(f"{count} subscribers x {messages} broadcasts, {rounds} rounds, "
              f"clients in {processes} process(es)")
        for kind in kinds:
            print(f"  {kind:10} fan-out {spread(times[kind])}")
        bare = statistics.median(times["bare"])
        ratio = statistics.median(times["fastlane"]) / bare
        ratios.append(ratio)
        print(f"  ratio fastlane/bare at {count}: {ratio:.2f}")
        if intercept:
            print(f"  ratio intercept/bare at {count}: "
                  f"{statistics.median(times['intercept']) / bare:.2f}")
    worst = max(ratios)
    print(f"ratio {worst:.2f} (goal <= {GOAL})")
    return worst


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also 10 000 subscribers")
    parser.add_argument("--intercept", action="store_true", help="also intercepted events")
    parser.add_argument("--size", type=int, default=16, help="bytes of body per message")
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.messages, args.rounds, args.big, args.intercept,
                     args.size))
