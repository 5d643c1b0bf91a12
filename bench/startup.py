"""Benchmark: start-up, from process start to a listening server, against bare websockets.

What a learner waits for when a chapter starts an OS-process server, or a node of chapter
06's cluster: ``python -m mini_server --port 0`` until it prints its URL, next to a bare
``websockets`` server started the same way until it prints its port (the interpreter's own
start-up and websockets' import are in both, so the ratio is what our package adds).  Kinds
alternate round by round; the last line is the ratio of medians.

    python bench/startup.py [--rounds 5]

Measured (2 cores, Python 3.11): ours 106 ms vs bare 70 ms on a quiet machine (1.51x),
253 ms vs 147 ms beside a CI run (1.72x).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crowd import spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL = 2.5
LIMIT = 30.0  # seconds for one server to start
BARE = """
import asyncio
from websockets.asyncio.server import serve

async def main():
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as server:
        print("port", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""
KINDS = (("bare websockets", ["-c", BARE]),
         ("ours (CLI)", ["-m", "mini_server", "--host", "127.0.0.1", "--port", "0",
                         "--log-level", "WARNING"]))


async def start_once(args: list[str]) -> float:
    """Seconds from spawning ``python args`` to its first line on stdout; then it is ended."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(LIMIT):
            line = await process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{args[:2]} exited before it listened")
        return time.perf_counter() - started
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def main(rounds: int = 5) -> float:
    """Each kind ``rounds`` times, alternating; print the spreads; return ours / bare."""
    times: dict[str, list[float]] = {label: [] for label, _ in KINDS}
    for _ in range(rounds):
        for label, args in KINDS:
            times[label].append(await start_once(args))
    print(f"process start to listening, {rounds} rounds")
    for label, values in times.items():
        print(f"  {label:16} {spread(values)}")
    ratio = statistics.median(times["ours (CLI)"]) / statistics.median(times["bare websockets"])
    print(f"ratio {ratio:.2f} (goal <= {GOAL})")
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
