"""Slow readers: a client that stops reading is aborted (1006) and its buffer freed (issue 10).

The stuck client is websockets' own client that never calls ``recv()``: past its
``max_queue`` it stops reading the socket, and a tiny ``SO_RCVBUF`` makes TCP push back on
the server within a few kilobytes.  Every broadcast is 32 KB, as in the issue's figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import weakref
from collections.abc import AsyncIterator
from typing import Any

from raw_client import TIMEOUT, reply
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mini_server.server import Endpoint
from mini_server.server.states import ConnectionState
from mini_server.testing import wait_until

BLOB = {"blob": "x" * 32_768}
BUDGET = 1_048_576  # 32 frames of BLOB


async def stuck_client(server: Endpoint, topic: str) -> ClientConnection:
    """A V2 client joined to ``topic`` that will never read again (reads only the join reply)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    ws = await connect(
        f"{server.url}/websocket?vsn=2.0.0",
        sock=sock,
        open_timeout=TIMEOUT,
        ping_interval=None,
        close_timeout=0.5,
        max_queue=1,
        max_size=None,
        proxy=None,
    )
    await ws.send(json.dumps(["s", "s", topic, "phx_join", {}]))
    async with asyncio.timeout(TIMEOUT):
        assert json.loads(await ws.recv())[3] == "phx_reply"
    return ws


async def close_code_seen(ws: ClientConnection) -> int | None:
    """Read what was delivered until the connection ends; the close code the client saw."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(TIMEOUT):
            while True:
                await ws.recv()
    return ws.close_code


@contextlib.asynccontextmanager
async def heartbeating(
    ws: ClientConnection, every: float = 0.05, ref_size: int = 0
) -> AsyncIterator[None]:
    """Send a heartbeat every ``every`` seconds (never reading the replies) while inside."""
    pad = "r" * ref_size

    async def beat() -> None:
        with contextlib.suppress(ConnectionClosed):
            for n in range(10_000):
                await ws.send(json.dumps([None, f"hb{n}{pad}", "phoenix", "heartbeat", {}]))
                await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def server_side(server: Endpoint, ws: ClientConnection) -> Any:
    """The server's Transport for the client connection ``ws`` (matched by its port)."""
    port = ws.local_address[1]
    return next(t for t in server.transports if t.ws.remote_address[1] == port)


async def pump_until_gone(
    server: Endpoint, reader: Any, topic: str, transport: Any, limit: int = 2000
) -> int:
    """Broadcast 32 KB frames (a healthy subscriber reads each) until ``transport`` ends."""
    peak = 0
    for _ in range(limit):
        if transport.state is not ConnectionState.OPEN:
            return peak
        await server.broadcast(topic, "blob", BLOB)
        assert (await reader.recv())[3] == "blob"  # the bystander keeps up, frame by frame
        peak = max(peak, transport.outgoing_bytes)
    raise AssertionError(
        f"still open after {limit} broadcasts ({transport.outgoing_bytes} bytes queued)"
    )


async def fill_tcp_buffers(server: Endpoint, reader: Any, topic: str, transport: Any) -> None:
    """Broadcast until frames wait in ``transport``'s queue: the TCP buffers are full."""
    for _ in range(150):  # at most 4.8 MB: under the default 8 MiB budget
        await server.broadcast(topic, "blob", BLOB)
        assert (await reader.recv())[3] == "blob"
        if len(transport._out) > 2:
            break
    assert len(transport._out) > 2 and transport.state is ConnectionState.OPEN


async def assert_freed(server: Endpoint, gone: weakref.ref[Any]) -> None:
    """The connection is gone from the server, and so is everything it held."""
    await wait_until(lambda: gone() not in server.transports, timeout=TIMEOUT)
    transport = gone()
    assert transport is not None
    assert transport.outgoing_bytes == 0 and len(transport._out) == 0
    del transport
    gc.collect()
    assert gone() is None, "the aborted transport (and its frames) is still referenced"


async def test_non_reading_client_is_aborted_past_the_byte_budget(make_server, raw):
    """Under a 32 KB broadcast stream a client that never reads is aborted with 1006."""
    server = await make_server(max_outgoing_bytes=BUDGET, idle_timeout=30)
    reader = await raw(endpoint=server)
    await reader.join("echo:big", "r")
    ws = await stuck_client(server, "echo:big")
    transport = server_side(server, ws)
    async with asyncio.timeout(20):
        peak = await pump_until_gone(server, reader, "echo:big", transport)
    assert peak <= BUDGET  # the queue never held more than the budget
    assert transport.close_why is not None and "bytes unread" in transport.close_why
    assert await close_code_seen(ws) == 1006  # no close frame: the TCP connection dropped
    gone = weakref.ref(transport)
    del transport
    await assert_freed(server, gone)
    assert await reader.heartbeat() == reply(None, "hb", "phoenix")  # nobody else touched


async def test_heartbeating_non_reader_is_aborted_past_the_byte_budget(make_server, raw):
    """A client that heartbeats but never reads is aborted too, at the default budget."""
    server = await make_server(idle_timeout=30)
    reader = await raw(endpoint=server)
    await reader.join("echo:big", "r")
    ws = await stuck_client(server, "echo:big")
    transport = server_side(server, ws)
    async with heartbeating(ws), asyncio.timeout(20):
        peak = await pump_until_gone(server, reader, "echo:big", transport)
    assert peak <= server.max_outgoing_bytes == 8 * 1_048_576
    assert await close_code_seen(ws) == 1006
    gone = weakref.ref(transport)
    del transport
    await assert_freed(server, gone)
    assert await reader.heartbeat() == reply(None, "hb", "phoenix")


async def test_idle_close_does_not_wait_behind_unread_frames(make_server, raw):
    """A stuck client under the budget is closed at its idle timeout, not kept forever."""
    server = await make_server(idle_timeout=0.5, close_timeout=0.3)
    reader = await raw(endpoint=server)
    await reader.join("echo:big", "r")
    ws = await stuck_client(server, "echo:big")
    transport = server_side(server, ws)
    await fill_tcp_buffers(server, reader, "echo:big", transport)
    gone = weakref.ref(transport)
    async with asyncio.timeout(0.5 + 2 * 0.3 + TIMEOUT):  # idle + the close timeout's bound
        await wait_until(lambda: gone() not in server.transports, timeout=5)
    assert transport.close_why is not None and "close not written" in transport.close_why
    assert await close_code_seen(ws) == 1006  # its close frame could not reach it
    del transport
    await assert_freed(server, gone)


async def test_heartbeating_non_reader_without_broadcasts_is_aborted(make_server, raw):
    """Heartbeats whose replies are never read stop being heard; the connection then ends."""
    server = await make_server(idle_timeout=0.5, close_timeout=0.3)
    ws = await stuck_client(server, "echo:hb")
    transport = server_side(server, ws)
    gone = weakref.ref(transport)
    # A 16 KB ref comes back in each reply: the replies alone fill the TCP buffers.
    async with heartbeating(ws, every=0.001, ref_size=16_384), asyncio.timeout(TIMEOUT + 5):
        await wait_until(lambda: gone() not in server.transports, timeout=TIMEOUT + 4)
    assert transport.close_why is not None and "close not written" in transport.close_why
    assert await close_code_seen(ws) == 1006
    del transport
    await assert_freed(server, gone)


async def test_heartbeating_non_reader_is_aborted_by_the_send_timeout(make_server, raw):
    """A client that heartbeats but has read nothing for send_timeout is aborted (1006)."""
    server = await make_server(idle_timeout=30, send_timeout=0.5)
    reader = await raw(endpoint=server)
    await reader.join("echo:big", "r")
    ws = await stuck_client(server, "echo:big")
    transport = server_side(server, ws)
    gone = weakref.ref(transport)
    async with heartbeating(ws):
        await fill_tcp_buffers(server, reader, "echo:big", transport)
        async with asyncio.timeout(0.5 + TIMEOUT):
            await wait_until(lambda: gone() not in server.transports, timeout=0.5 + TIMEOUT)
    assert transport.close_why is not None and "nothing read for 0.5 s" in transport.close_why
    assert await close_code_seen(ws) == 1006
    del transport
    await assert_freed(server, gone)
    assert await reader.heartbeat() == reply(None, "hb", "phoenix")
