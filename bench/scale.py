"""Benchmark: 10 000 sockets: the worst broadcast against the median, and memory per socket.

Three servers in turn, each in its own process with ``--subscribers`` joined connections
opened by client processes (``crowd.py``): a bare ``websockets`` server (the baseline for
memory), ours as the kernel runs it (``gc_freeze`` off) and ours as the CLI and the lab's
process server run it (``gc_freeze`` on: ``gc.freeze()`` after the join ramp).  Each
broadcasts ``--messages`` messages of ``--size`` bytes, one after the other.

Reported per server: fan-out min/median/max, the worst broadcast over the median (a full
garbage collection in the middle of one shows up here), the longest full collection and
how many ran, and RSS and GC-tracked objects per socket (after joins minus before).  Goals:
no broadcast slower than 2x the median (with gc_freeze), RSS per socket within 2x bare.
The last line is the larger of the two ratios against their shared goal of 2.

    python bench/scale.py [--subscribers 10000] [--messages 40] [--size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crowd import run_crowd, spread

GOAL = 2.0
KIB = 1024


async def main(subscribers: int = 10_000, messages: int = 40, size: int = 100) -> float:
    """Run the three servers; print the figures; return the larger of the two ratios."""
    processes = 1 if subscribers <= 2000 else 2
    runs = {}
    for label, kind, freeze in (("bare websockets", "bare", False),
                                ("ours, gc_freeze off", "fastlane", False),
                                ("ours, gc_freeze on", "fastlane", True)):
        runs[label] = await run_crowd(kind, subscribers, messages, processes=processes,
                                      size=size, gc_freeze=freeze, settle=1.5 if freeze else 0)
    print(f"{subscribers} joined sockets x {messages} broadcasts of {size} bytes, "
          f"clients in {processes} process(es)")
    for label, run in runs.items():
        fanout = run.fanout[1:] or run.fanout
        worst = max(fanout) / statistics.median(fanout)
        print(f"  {label:20} fan-out {spread(fanout)}; worst/median {worst:.2f}; "
              f"longest full GC {run.longest_full_gc * 1e3:.0f} ms ({run.full_gcs} runs); "
              f"{run.rss_per_socket / KIB:.1f} KiB and {run.objects_per_socket:.0f} "
              f"GC-tracked objects (outside the frozen generation) per socket")
    bare, frozen = runs["bare websockets"], runs["ours, gc_freeze on"]
    # At smoke-test sizes RSS may not move at all: never divide by nothing.
    memory = frozen.rss_per_socket / max(bare.rss_per_socket, 1.0)
    fanout = frozen.fanout[1:] or frozen.fanout
    pauses = max(fanout) / statistics.median(fanout)
    print(f"memory: RSS per socket ours/bare {memory:.2f} (goal <= {GOAL})")
    print(f"pauses: worst broadcast / median {pauses:.2f} (goal <= {GOAL})")
    worst = max(memory, pauses)
    print(f"ratio {worst:.2f} (goal <= {GOAL})")
    return worst


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--size", type=int, default=100, help="bytes of body per message")
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.messages, args.size))
