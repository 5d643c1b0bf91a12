"""Fuzz: 10 000+ random and mutated frames while a healthy client keeps working."""

from __future__ import annotations

import asyncio
import json
import random

from raw_client import TIMEOUT, Raw, reply
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

SEED = 20261129
FRAMES = 10_000
MAX_FRAME = 4096  # small, so oversize frames are cheap to send
FUZZERS = 4
TOPICS = ["echo:1", "echo:2", "filter:1", "joincrash:1", "pushjoin:1", "assigns:1", "exact",
          "nope:1", "phoenix", ""]
EVENTS = ["phx_join", "phx_leave", "heartbeat", "ping", "fail", "noreply", "push", "shout",
          "shout_from", "crash", "stop", "stop_reply", "stop_error", "async", "bin", "new_msg",
          "bad_return", "phx_reply", "phx_close", "unknown"]
REFS = [None, "1", "2", "3", "10", "", "x" * 300]
JSON_VALUES = [None, True, 0, -1, 1.5, 1e308, "", "s", "é☃", [], [1], {}, {"a": {"b": []}},
               {"reject": True}, {"after_join": 1}, {"name": "n", "skip": ["n"]}]


def valid_frame(rng: random.Random) -> list:
    """A well-formed V2 frame with random fields."""
    join_ref = rng.choice(REFS)
    ref = join_ref if rng.random() < 0.3 else rng.choice(REFS)
    payload = rng.choice([{}, {"a": 1}, {"reject": True}, {"after_join": 2},
                          {"name": "x", "skip": ["y"]}, {"body": "hi"}])
    return [join_ref, ref, rng.choice(TOPICS), rng.choice(EVENTS), payload]


def mutate_text(rng: random.Random, text: str) -> str:
    """Delete, insert, replace or duplicate a few characters."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randrange(len(chars) + 1)
        op = rng.randrange(4)
        if op == 0 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op == 1:
            chars.insert(pos, rng.choice('[]{}",:0123456789nulltrue\\\x00é'))
        elif op == 2 and chars:
            chars[min(pos, len(chars) - 1)] = chr(rng.randrange(32, 0x3000))
        else:
            chars[pos:pos] = chars[pos:pos + rng.randint(1, 8)]
    return "".join(chars)


def binary_push(rng: random.Random) -> bytes:
    """A kind-0 binary push, valid or with lengths and bytes scrambled."""
    fields = [s.encode() for s in (rng.choice(["1", "2", ""]), "9", rng.choice(TOPICS),
                                   rng.choice(EVENTS))]
    data = bytes([0, *(len(f) for f in fields)]) + b"".join(fields) + rng.randbytes(
        rng.randrange(16))
    if rng.random() < 0.5:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        data = bytes(buf[: rng.randrange(len(buf) + 1)] if rng.random() < 0.3 else buf)
    return data


class InvalidText(bytes):
    """Bytes to send in a *text* frame: not UTF-8, so the server must close with 1007."""


def fuzz_frame(rng: random.Random) -> str | bytes:
    """One frame from a mix of strategies."""
    kind = rng.random()
    # Weights keep roughly one frame in five fatal (a close and a reconnect), so the run
    # spends its time on frames rather than on handshakes.
    if kind < 0.52:
        return json.dumps(valid_frame(rng))
    if kind < 0.72:
        frame = valid_frame(rng)
        frame[rng.choice([0, 0, 3, 3, 4, 4, 4, 1, 2])] = rng.choice(JSON_VALUES)
        return json.dumps(frame[: rng.choice([5, 5, 5, 5, 5, 4, 2])] + [1] * rng.randrange(2))
    if kind < 0.79:
        return mutate_text(rng, json.dumps(valid_frame(rng)))
    if kind < 0.88:
        return binary_push(rng)
    if kind < 0.91:
        return rng.randbytes(rng.randrange(64))
    if kind < 0.94:
        return json.dumps(rng.choice(JSON_VALUES))
    if kind < 0.96:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(40)))
    if kind < 0.97:
        return InvalidText(json.dumps(valid_frame(rng)).encode()[:rng.randrange(30)] + b"\xff")
    return json.dumps(valid_frame(rng)) + " " * MAX_FRAME if rng.random() < 0.5 else "[" * 3000


async def fuzzer(url: str, rng: random.Random, count: int, stats: dict) -> None:
    """Send ``count`` frames, each followed by a heartbeat barrier; reconnect when closed.

    The barrier proves the server processed the frame before the next one is sent, so
    every frame counted really reached the decoder (or caused the close we then observe).
    """
    sent = 0
    while sent < count:
        v1 = rng.random() < 0.1
        try:
            ws = await connect(f"{url}/websocket" + ("" if v1 else "?vsn=2.0.0"),
                               ping_interval=None, close_timeout=1, max_size=None, proxy=None)
        except (OSError, InvalidStatus):
            stats["connect_failures"] += 1
            continue
        stats["connections"] += 1
        try:
            while sent < count:
                frame = fuzz_frame(rng)
                await ws.send(frame, text=True if isinstance(frame, InvalidText) else None)
                sent += 1
                await _barrier(ws, f"b{sent}", v1)
        except ConnectionClosed:
            stats["closed_by_server"] += 1
            stats["codes"][ws.close_code] = stats["codes"].get(ws.close_code, 0) + 1
        finally:
            await ws.close()
    stats["frames"] += sent


async def _barrier(ws, ref: str, v1: bool) -> None:
    """Send a heartbeat and read until its reply (other frames are discarded)."""
    if v1:
        await ws.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {},
                                  "ref": ref}))
    else:
        await ws.send(json.dumps([None, ref, "phoenix", "heartbeat", {}]))
    while True:
        async with asyncio.timeout(TIMEOUT):
            data = await ws.recv()
        if isinstance(data, str) and f'"{ref}"' in data and "phx_reply" in data:
            return


async def test_server_survives_fuzzing_while_healthy_client_is_served(make_server, raw):
    """Thousands of garbage frames hurt nobody: the healthy client gets every reply and tick."""
    server = await make_server(max_frame_size=MAX_FRAME)
    healthy = await raw(endpoint=server)
    await healthy.join("echo:healthy", "h")
    stats = {"frames": 0, "connections": 0, "closed_by_server": 0, "connect_failures": 0,
             "codes": {}}
    done = asyncio.Event()
    seen = {"heartbeats": 0, "ticks": []}

    async def watch() -> None:
        # Heartbeats and server broadcasts interleave; each heartbeat must be answered.
        n = 0
        while not done.is_set():
            n += 1
            await server.broadcast("echo:healthy", "tick", {"n": n})
            await healthy.send(None, f"hb{n}", "phoenix", "heartbeat", {})
            assert await healthy.recv() == [None, None, "echo:healthy", "tick", {"n": n}]
            seen["ticks"].append(n)
            assert await healthy.recv() == reply(None, f"hb{n}", "phoenix")
            seen["heartbeats"] += 1
            await asyncio.sleep(0.02)  # pacing, not synchronisation

    watcher = asyncio.create_task(watch())
    rngs = [random.Random(SEED + i) for i in range(FUZZERS)]
    try:
        async with asyncio.timeout(100):
            await asyncio.gather(
                *(fuzzer(server.url, rng, FRAMES // FUZZERS, stats) for rng in rngs))
    finally:
        done.set()
        async with asyncio.timeout(TIMEOUT):
            await watcher
    print(f"\nfuzz: {stats}, healthy heartbeats {seen['heartbeats']}")
    assert stats["frames"] >= 10_000
    assert set(stats["codes"]) >= {1007, 1009, 1011}  # the fuzz really hit the close paths
    assert seen["heartbeats"] >= 10 and seen["ticks"] == list(range(1, seen["heartbeats"] + 1))
    assert server.running
    fresh = Raw(await connect(f"{server.url}/websocket?vsn=2.0.0"))
    try:
        assert await fresh.join("echo:after", "a") == reply("a", "a", "echo:after",
                                                            response={"joined": "echo:after"})
    finally:
        await fresh.ws.close()
