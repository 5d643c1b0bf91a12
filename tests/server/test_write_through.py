"""Write-through: frames go straight out when nothing waits, queue otherwise, never reorder.

A frame is written at once only when its connection has nothing queued or in flight and
websockets' transport is not paused; these tests hold a connection paused (a client that
stops reading, with a tiny receive window) and check that what is sent meanwhile queues,
stays bounded, and arrives in order once the client reads again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from raw_client import TIMEOUT
from test_slow_readers import BLOB, server_side, stuck_client
from websockets.asyncio.client import ClientConnection

from mini_server.server import Endpoint

WRITE_LIMIT = 32_768  # websockets' default write_limit: the transport pauses above it


async def read_frames(ws: ClientConnection, count: int) -> list[list[Any]]:
    """The next ``count`` frames, decoded."""
    frames = []
    async with asyncio.timeout(TIMEOUT * 3):
        for _ in range(count):
            frames.append(json.loads(await ws.recv()))
    return frames


async def test_a_broadcast_to_idle_subscribers_is_written_before_broadcast_returns(
        make_server, raw):
    """Nothing is left queued for a writer task: each frame went straight to the transport."""
    server: Endpoint = await make_server()
    clients = [await raw(endpoint=server) for _ in range(20)]
    for n, client in enumerate(clients):
        await client.join("echo:all", f"j{n}")
    await server.broadcast("echo:all", "news", {"n": 1})
    queued = [s["outgoing"] for s in server.snapshot()["sockets"]]  # no await in between
    assert queued == [{"frames": 0, "bytes": 0}] * 20
    for client in clients:
        assert (await client.recv())[2:] == ["echo:all", "news", {"n": 1}]


async def test_pushes_replies_and_broadcasts_keep_their_order_from_many_senders(
        make_server, raw):
    """Each client sees every shout in send order, and its own shout before that shout's reply.

    Eight clients shout pipelined (no waiting for replies) while the server broadcasts its
    own numbered ticks, so write-through and queued frames interleave on every connection.
    """
    server: Endpoint = await make_server()
    clients = [await raw(endpoint=server) for _ in range(8)]
    for n, client in enumerate(clients):
        await client.join("echo:order", f"j{n}")
    shouts, ticks = 40, 60

    async def shout(n: int, client: Any) -> None:
        for k in range(shouts):
            await client.send(f"j{n}", f"{n}.{k}", "echo:order", "shout", {"from": n, "k": k})
            if k % 7 == 0:
                await client.send(f"j{n}", f"p{n}.{k}", "echo:order", "push", {"k": k})

    async def tick() -> None:
        for t in range(ticks):
            await server.broadcast("echo:order", "tick", {"t": t})
            await asyncio.sleep(0)

    await asyncio.gather(tick(), *(shout(n, c) for n, c in enumerate(clients)))
    pushes = len(range(0, shouts, 7))
    expected = len(clients) * shouts + ticks + shouts + 2 * pushes
    for n, client in enumerate(clients):
        frames = await read_frames(client.ws, expected)
        from_each: dict[int, list[int]] = {}
        seen_ticks, own_replies = [], []
        for join_ref, ref, _topic, event, payload in frames:
            if event == "shout":
                from_each.setdefault(payload["from"], []).append(payload["k"])
            elif event == "tick" and "t" in payload:
                seen_ticks.append(payload["t"])
            elif event == "phx_reply":
                assert join_ref == f"j{n}"
                own_replies.append(ref)
                if not ref.startswith("p"):
                    # Phoenix's order: the broadcast made in handle_in precedes its reply.
                    k = int(ref.split(".")[1])
                    assert k in from_each.get(n, []), f"reply {ref} before its shout"
        assert from_each == {m: list(range(shouts)) for m in range(len(clients))}
        assert seen_ticks == list(range(ticks))
        sent = [f"{n}.{k}" if kind == "s" else f"p{n}.{k}"
                for k in range(shouts) for kind in ("s", "p") if kind == "s" or k % 7 == 0]
        assert own_replies == sent


async def test_a_paused_connection_queues_within_its_budget_and_keeps_order(make_server):
    """While a client reads nothing its frames queue (not into websockets' buffer); then in order.

    Small frames sent while big ones wait must not overtake them, including in the moments
    the transport resumes writing while frames are still queued.
    """
    server: Endpoint = await make_server()
    ws = await stuck_client(server, "echo:slow")
    transport = server_side(server, ws)
    seq = 0
    for _ in range(200):  # loopback send buffers grow to megabytes before TCP pushes back
        await server.broadcast("echo:slow", "blob", {**BLOB, "seq": seq})
        seq += 1
        await asyncio.sleep(0)
        if len(transport._out) > 3:
            break
    assert len(transport._out) > 3, "the client's TCP window never filled"
    # Back-pressure: the frames wait in our queue (counted against the budget), not in
    # websockets' write buffer, which stays within its limit plus the frame that crossed it.
    assert ws.protocol.state.name == "OPEN"
    assert transport.ws.transport.get_write_buffer_size() <= WRITE_LIMIT + 2 * len(BLOB["blob"])
    assert 0 < transport.outgoing_bytes <= server.max_outgoing_bytes
    for _ in range(20):  # small ones, which alone would be written through at once
        await server.broadcast("echo:slow", "small", {"seq": seq})
        seq += 1
    assert server.snapshot()["sockets"][0]["outgoing"]["frames"] >= 20

    async def keep_sending() -> None:
        nonlocal seq
        # Until the queue has drained: meanwhile the transport pauses and resumes with
        # frames still queued, the moments a frame must not jump the queue.
        for _ in range(20_000):
            await server.broadcast("echo:slow", "small", {"seq": seq})
            seq += 1
            await asyncio.sleep(0)
            if not transport._out:
                return
        raise AssertionError("the queue never drained")

    sender = asyncio.create_task(keep_sending())
    got = []
    async with asyncio.timeout(TIMEOUT * 4):
        while not sender.done() or len(got) < seq:
            frame = json.loads(await ws.recv())
            if frame[3] in ("blob", "small"):
                got.append(frame[4]["seq"])
    await sender
    assert got == list(range(seq))
    assert transport.outgoing_bytes == 0 and not transport._out
    await ws.close()
