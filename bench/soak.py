"""Soak: N clients x M random faults through chaos proxies; does everything converge?

Every client is a course ``Socket`` joined to one ``history:*`` topic (chapter 05's catch-up
channel over SQLite: idempotent ``post`` by client id, replay above ``last_seen_id`` on every
rejoin).  It keeps posting messages with ``push_until_acked`` (retries reuse the client id),
and follows its topic with ``LastSeen``.  Clients reach the server through ``--proxies``
chaos proxies, and a fault injector plays ``--faults`` random faults, one at a time, each
held for a random while: a **drop** (one proxy resets every connection), a **half-open
link** (one proxy blackholes), a **latency spike** (one proxy delays every byte), a **kill**
(the server aborts everything and comes back with empty memory) and a **graceful restart**
(close 1012, drain, back).  Then posting stops and the run waits for convergence: every
client connected and joined, and caught up with everything stored on its topic.

It prints, from what the clients and the server's ``snapshot()`` show (no private state):

* **rejoined %**: clients connected and joined at the end;
* **duplicate subscriptions**: extra channels (or sockets) the server holds for one client;
* **acked-but-lost messages**: posts the server acknowledged that are not in the store;
* deliveries missing after catch-up, duplicate deliveries, messages stored twice.

The whole run has a hard deadline (``--deadline``, default 300 s): past it the run stops,
prints what it has, marks the report ``DEADLINE``, and cleans up within a bounded time.
Not part of the default test run; ``tests/test_bench.py`` runs a tiny one.

    python bench/soak.py [--clients 200] [--faults 50] [--proxies 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mini_server.client import Socket
from mini_server.client.delivery import LastSeen, push_until_acked
from mini_server.client.push import PushTimeout
from mini_server.lab.chaos import ChaosProxy
from mini_server.server import Endpoint
from mini_server.server.history import History
from mini_server.server.history_channel import history_routes
from mini_server.testing import wait_until

FAULTS = ("drop", "blackhole", "latency", "kill", "restart")
TOPICS = 20  # clients share topics, so every post fans out to about N/20 subscribers
CLEANUP = 20.0  # seconds cleanup may take after the run, deadline or not


@dataclass
class Client:
    """One simulated user: socket, channel, what it posted and what it saw."""

    name: str
    sock: Socket
    channel: Any
    seen: LastSeen
    acked: dict[str, int] = field(default_factory=dict)  # client_id -> stored id
    posted: int = 0
    retries: int = 0


def _timers(rng: random.Random) -> dict[str, Any]:
    # Short, jittered timers: faults are noticed within seconds and 200 clients do not
    # reconnect in one burst (chapter 04's thundering herd).
    return {"heartbeat_interval": 1.0, "timeout": 2.0,
            "reconnect_after": lambda tries: rng.uniform(0.05, min(2.0, 0.1 * 2 ** tries)),
            "rejoin_after": lambda tries: rng.uniform(0.1, min(2.0, 0.2 * tries))}


async def _post_forever(client: Client, stop: asyncio.Event, rng: random.Random) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        client.posted += 1
        client_id = f"{client.name}-{n}"
        while True:  # one message until acked; a stop leaves it un-acked, never half-counted
            try:
                acked = await push_until_acked(client.channel, "post", {"body": client_id},
                                               client_id=client_id, attempts=1, timeout=2.0)
            except PushTimeout:
                client.retries += 1
                if stop.is_set():
                    return
                continue
            if acked.reply.status == "ok":
                client.acked[client_id] = acked.reply.response["id"]
            break
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(0.5, 1.5)):
                await stop.wait()


async def _one_fault(kind: str, endpoint: Endpoint, proxies: list[ChaosProxy],
                     rng: random.Random, hold: float) -> None:
    proxy = rng.choice(proxies)

    async def held(low: float, high: float) -> None:
        await asyncio.sleep(hold * rng.uniform(low, high))

    if kind == "drop":
        proxy.drop()
        await held(0.2, 1.0)
        proxy.restore()
    elif kind == "blackhole":
        proxy.blackhole()
        await held(0.5, 3.0)  # often past 2 heartbeats: clients notice
        proxy.restore()
    elif kind == "latency":
        proxy.latency(rng.uniform(0.2, 1.5))
        await held(0.5, 2.0)
        proxy.restore()
    elif kind == "kill":
        await endpoint.kill()
        await held(0.1, 1.0)
        await endpoint.start()
    else:
        await endpoint.restart()


def _converged(clients: list[Client], history: History) -> bool:
    return all(c.sock.is_connected() and c.channel.state.value == "joined"
               and c.seen.last_id >= history.last_id(c.channel.topic) for c in clients)


def _report(clients: list[Client], endpoint: Endpoint, history: History,
            faults: Counter, started: float, settled: float | None,
            deadline_hit: bool) -> dict[str, Any]:
    stored = {s.client_id: s.id for topic in {c.channel.topic for c in clients}
              for s in history.since(topic, 0)}
    per_client_id = Counter(s.client_id for topic in {c.channel.topic for c in clients}
                            for s in history.since(topic, 0))
    snapshot = endpoint.snapshot() if endpoint.running else {"sockets": []}
    sockets = Counter(s["params"].get("client") for s in snapshot["sockets"])
    channels = Counter((s["params"].get("client"), ch["topic"]) for s in snapshot["sockets"]
                       for ch in s["channels"])
    rejoined = sum(1 for c in clients if c.sock.is_connected()
                   and c.channel.state.value == "joined")
    result = {
        "clients": len(clients), "faults": dict(faults),
        "posted": sum(c.posted for c in clients),
        "acked": sum(len(c.acked) for c in clients),
        "retries": sum(c.retries for c in clients), "stored": len(stored),
        "rejoined": rejoined, "rejoined_pct": 100.0 * rejoined / max(1, len(clients)),
        "duplicate_subscriptions": (sum(n - 1 for n in channels.values() if n > 1)
                                    + sum(n - 1 for n in sockets.values() if n > 1)),
        "acked_but_lost": sum(1 for c in clients for cid, mid in c.acked.items()
                              if stored.get(cid) != mid),
        "missing_deliveries": sum(len(c.seen.missing(
            [s.id for s in history.since(c.channel.topic, 0)])) for c in clients),
        "duplicate_deliveries": sum(c.seen.duplicates for c in clients),
        "stored_twice": sum(n - 1 for n in per_client_id.values() if n > 1),
        "settled_in": settled, "took": time.monotonic() - started,
        "deadline_hit": deadline_hit,
    }
    counts = ", ".join(f"{kind} {faults[kind]}" for kind in FAULTS)
    print(f"soak: {len(clients)} clients x {sum(faults.values())} faults ({counts})")
    print(f"posted {result['posted']}, acked {result['acked']} "
          f"({result['retries']} push retries), stored {result['stored']}")
    when = ("not converged" if settled is None
            else f"converged {settled:.1f} s after the last fault")
    print(f"rejoined: {rejoined}/{len(clients)} ({result['rejoined_pct']:.1f} %), {when}")
    print(f"duplicate subscriptions: {result['duplicate_subscriptions']}")
    print(f"acked-but-lost messages: {result['acked_but_lost']}")
    print(f"deliveries missing after catch-up: {result['missing_deliveries']}; duplicate "
          f"deliveries: {result['duplicate_deliveries']}; stored twice: "
          f"{result['stored_twice']}")
    print(f"took {result['took']:.1f} s" + ("  DEADLINE: stopped before the end"
                                            if deadline_hit else ""))
    return result


async def main(clients: int = 200, faults: int = 50, proxies: int = 4, seed: int = 1,
               deadline: float = 300.0, settle: float = 60.0,
               gap: tuple[float, float] = (0.3, 1.0), hold: float = 1.0) -> dict[str, Any]:
    """Run the soak; print the report and return its figures.

    ``gap`` is the pause between faults (seconds, uniform), ``hold`` scales how long each
    fault lasts.  The five kinds are played equally often (M // 5 each, the rest drawn at
    random), in a random order.
    """
    rng = random.Random(seed)
    started = time.monotonic()
    history = History.temporary()
    endpoint = Endpoint(history_routes(history), host="127.0.0.1", port=0, idle_timeout=3.0,
                        drain_timeout=1.0)
    chaos: list[ChaosProxy] = []
    crowd: list[Client] = []
    played: Counter = Counter({kind: 0 for kind in FAULTS})
    stop = asyncio.Event()
    workers: list[asyncio.Task] = []
    settled: float | None = None
    deadline_hit = False
    quiet = logging.getLogger("mini_server")
    old_level = quiet.level
    quiet.setLevel(logging.ERROR)  # thousands of expected closes are not news
    try:
        async with asyncio.timeout(deadline):
            await endpoint.start()
            chaos = [await ChaosProxy(endpoint).start() for _ in range(proxies)]
            for i in range(clients):
                name = f"c{i}"
                sock = Socket(chaos[i % proxies].url, params={"client": name}, **_timers(rng))
                seen = LastSeen()
                channel = sock.channel(f"history:{i % TOPICS}", seen.params)
                seen.follow(channel)
                channel.join()
                sock.connect()
                crowd.append(Client(name, sock, channel, seen))
            await wait_until(lambda: all(c.channel.state.value == "joined" for c in crowd),
                             max(10.0, clients * 0.1), "not every client joined", 0.1)
            workers = [asyncio.create_task(_post_forever(c, stop, rng)) for c in crowd]
            plan = [FAULTS[n % len(FAULTS)] for n in range(faults - faults % len(FAULTS))]
            plan += rng.sample(FAULTS, faults % len(FAULTS))
            rng.shuffle(plan)
            for kind in plan:
                played[kind] += 1
                await _one_fault(kind, endpoint, chaos, rng, hold)
                await asyncio.sleep(rng.uniform(*gap))
            for proxy in chaos:
                proxy.restore()
            last_fault = time.monotonic()
            stop.set()
            async with asyncio.timeout(10):  # in-flight pushes end within their timeout
                await asyncio.gather(*workers, return_exceptions=True)
            with contextlib.suppress(AssertionError):  # not converged: the report says so
                await wait_until(lambda: _converged(crowd, history), settle, interval=0.1)
                settled = time.monotonic() - last_fault
    except TimeoutError:
        deadline_hit = True
    finally:
        stop.set()
        result = _report(crowd, endpoint, history, played, started, settled, deadline_hit)
        for task in workers:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLEANUP):
                await asyncio.gather(*workers, return_exceptions=True)
                for c in crowd:
                    c.sock.disconnect()
                await asyncio.gather(*(c.sock.wait_closed(5) for c in crowd),
                                     return_exceptions=True)
                for proxy in chaos:
                    await proxy.close()
                await endpoint.aclose()
        history.close()
        quiet.setLevel(old_level)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--proxies", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=300.0,
                        help="seconds; the run stops and reports when they are up")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="seconds to wait for convergence after the last fault")
    options = parser.parse_args()
    asyncio.run(main(options.clients, options.faults, options.proxies, options.seed,
                     options.deadline, options.settle))
