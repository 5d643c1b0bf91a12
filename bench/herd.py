"""Benchmark: a thundering herd with real sockets: Phoenix's schedule vs ``capped_jitter``.

The parent serves an :class:`~mini_server.server.Endpoint` in its own loop (the chapters'
in-kernel server); client processes hold ``--clients`` clients, each joined to one channel.
The parent kills the server (clients see 1006), keeps it down for ``--outage`` seconds and
starts it again on the same port; every client reports when it tried and when it was back.
Per schedule and client it prints when the last client was back (seconds after the server
was), the peak of successful attempts in any 100 ms (a sliding window), and what
``lab.herd.simulate_herd`` predicts for the same crowd, counted the same way.

Two kinds of client make the herd:

* **course client**: ``mini_server.client.Socket``, with Phoenix's default, full jitter
  (chapter 04) and ``capped_jitter``.  This is the option as a learner uses it.
* **lean load**: ``herd_load.py``, which keeps only what a herd is made of: a TCP connect
  at each scheduled time, then the WebSocket handshake and the join.  A real client spends
  about 0.25 ms of CPU on every refused attempt (ours and phoenix.js alike), so a few
  hundred of them in one process drift apart during the schedule's 10-250 ms retries, and
  their default herd peaks at a third of what 1,000 devices make.  The lean load keeps
  each client's tries where the schedule puts them, as separate devices would.

Goals: with ``capped_jitter`` all back within 3 s of the return, and a peak at least 5x
below the default schedule's.  The last line is the peak ratio capped_jitter/default for
the largest crowd, both made by the lean load, so that only the schedule differs.

``--phoenix-js`` adds the herd made of phoenix.js sockets in node (``tests/js/herd.mjs``).

    python bench/herd.py [--clients 200 1000] [--outage 3] [--phoenix-js]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crowd import ROOT

sys.path.insert(0, ROOT)
from mini_server import protocol
from mini_server.client import Socket, capped_jitter
from mini_server.client.jitter import CAP
from mini_server.lab.herd import full_jitter, simulate_herd
from mini_server.server import Endpoint

GOAL_BACK = 3.0  # seconds after the server is back
GOAL_CUT = 5.0  # peak per 100 ms, default / jitter
SCHEDULES = ("default", "full_jitter", "capped_jitter")
READY_TIMEOUT = 120.0
SCRIPT = os.path.abspath(__file__)
HERD_LOAD = os.path.join(os.path.dirname(SCRIPT), "herd_load.py")
HERD_JS = os.path.join(ROOT, "tests", "js", "herd.mjs")  # needs `npm ci --prefix tests/js`


def schedule(name: str, seed: int):
    """The reconnect schedule called ``name`` (one RNG per client process)."""
    if name == "default":
        return protocol.reconnect_after
    if name == "full_jitter":  # what chapter 04 teaches first: spread, but slow to come back
        return full_jitter(protocol.reconnect_after, seed=seed)
    return capped_jitter(seed=seed)


async def clients(url: str, count: int, name: str, seed: int) -> None:
    """Child: ``count`` joined sockets; print ``open T_ATTEMPT T_OPEN`` for every reconnect."""
    logging.disable(logging.CRITICAL)
    reconnect_after = schedule(name, seed)
    sockets = []
    opened = 0

    def watch(sock: Socket) -> None:
        attempt = 0.0

        def on_event(event: Any) -> None:
            nonlocal attempt
            if event.kind == "connect":
                attempt = time.monotonic()  # when this attempt knocked on the door

        def on_open() -> None:
            nonlocal opened
            opened += 1
            if opened > count:  # the first open of each socket is the ramp, not the herd
                sys.stdout.write(f"open {attempt!r} {time.monotonic()!r}\n")
                sys.stdout.flush()

        sock.on_event(on_event)
        sock.on_open(on_open)

    for n in range(count):
        sock = Socket(url, reconnect_after=reconnect_after, name=f"c{n}")
        watch(sock)
        sock.connect()
        sockets.append(sock)
        channel = sock.channel("room:herd")
        await channel.join()  # awaited: one at a time keeps the ramp gentle
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    for sock in sockets:
        sock.disconnect()


def client_command(client: str, url: str, share: int, name: str, n: int) -> list[str]:
    """The command line of one client process: the course client, the lean load (Python)
    or phoenix.js (node)."""
    if client == "lean load":
        return [sys.executable, HERD_LOAD, url, str(share), name, str(n)]
    if client == "phoenix.js":
        spec = "default" if name == "default" else f"capped:{CAP:g}"
        return ["node", HERD_JS, url, str(share), spec]
    return [sys.executable, SCRIPT, "clients", url, str(share), name, str(n)]


async def one_herd(count: int, name: str, outage: float,
                   client: str = "course client") -> tuple[float, int]:
    """Kill, wait ``outage``, start again; (last back after the return, peak per 100 ms)."""
    logging.disable(logging.CRITICAL)
    endpoint = Endpoint(port=0, idle_timeout=None)
    await endpoint.start()
    processes = 1 if count <= 500 else 2
    shares = [count // processes + (n < count % processes) for n in range(processes)]
    children = []
    try:
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        for n, share in enumerate(shares):
            children.append(await asyncio.create_subprocess_exec(
                *client_command(client, endpoint.url, share, name, n), env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
        async with asyncio.timeout(READY_TIMEOUT):
            for child in children:
                line = await child.stdout.readline()  # type: ignore[union-attr]
                assert line.split() == [b"ready"], (
                    f"a {client} process did not get ready: {line!r}"
                    + (" (run npm ci --prefix tests/js)" if client == "phoenix.js" else ""))
        await endpoint.kill()
        await asyncio.sleep(outage)
        await endpoint.start()
        back = time.monotonic()
        attempts: list[float] = []
        opens: list[float] = []

        async def collect(child: asyncio.subprocess.Process, share: int) -> None:
            for _ in range(share):
                words = (await child.stdout.readline()).split()  # type: ignore[union-attr]
                attempts.append(float(words[1]))
                opens.append(float(words[2]))

        async with asyncio.timeout(outage + 30):
            await asyncio.gather(*(collect(c, s) for c, s in zip(children, shares, strict=True)))
    finally:
        for child in children:
            child.stdin.close()  # type: ignore[union-attr]
        for child in children:
            try:
                async with asyncio.timeout(10):
                    await child.wait()
            except TimeoutError:
                child.kill()
                await child.wait()
        await endpoint.aclose()
    # The peak counts the successful attempts by when they were made (the demand a server
    # that comes back meets, as simulate_herd counts it); "back" is when the last is open.
    return max(opens) - back, peak_in_any(attempts, 0.1)


def peak_in_any(times: list[float], window: float) -> int:
    """The most of ``times`` in any ``window`` seconds (a sliding window, not fixed buckets:
    a burst that straddles a bucket edge counts whole)."""
    times = sorted(times)
    most = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


RUNS = (  # (client, schedule): who makes the herd, with which reconnect schedule
    *(("course client", name) for name in SCHEDULES),
    ("lean load", "default"), ("lean load", "capped_jitter"))
JS_RUNS = (("phoenix.js", "default"), ("phoenix.js", "capped_jitter"))


async def main(sizes: list[int], outage: float = 3.0, phoenix_js: bool = False) -> float:
    """Every crowd size, client and schedule; returns the lean load's peak ratio
    capped_jitter/default for the largest crowd.

    ``phoenix_js`` adds the herd made of phoenix.js clients (node), with Phoenix's schedule
    and capped_jitter's.
    """
    ratio = 0.0
    for count in sizes:
        print(f"{count} clients, {outage:g} s outage (server killed, then started again)")
        peaks, backs = {}, {}
        for client, name in (*RUNS, *(JS_RUNS if phoenix_js else ())):
            last, peak = await one_herd(count, name, outage, client)
            sim = simulate_herd(count, outage, schedule(name, 0))
            peaks[client, name], backs[client, name] = peak, last
            print(f"  {client + ', ' + name:28} all back {last:.2f} s after the server; "
                  f"peak {peak} per 100 ms  (simulated: {sim.last_reconnect - outage:.2f} s, "
                  f"peak {peak_in_any(list(sim.reconnected), 0.1)})")
        cuts = {client: peaks[client, "default"] / peaks[client, "capped_jitter"]
                for client, name in peaks if name == "default"}
        print("  peak cut default/capped_jitter: "
              + "; ".join(f"{client} {cut:.1f}x" for client, cut in cuts.items())
              + f" (goal >= {GOAL_CUT:g}x); course client's capped_jitter all back "
              f"{backs['course client', 'capped_jitter']:.2f} s (goal <= {GOAL_BACK:g} s)")
        ratio = peaks["lean load", "capped_jitter"] / peaks["lean load", "default"]
    print(f"ratio {ratio:.2f} (goal <= {1 / GOAL_CUT:.2f})")
    return ratio


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "clients":
        url, count, name, seed = sys.argv[2:6]
        asyncio.run(clients(url, int(count), name, int(seed)))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--clients", type=int, nargs="+", default=[200, 1000])
        parser.add_argument("--outage", type=float, default=3.0)
        parser.add_argument("--phoenix-js", action="store_true",
                            help="also run it with phoenix.js clients (npm ci --prefix tests/js)")
        args = parser.parse_args()
        asyncio.run(main(args.clients, args.outage, args.phoenix_js))
