"""The chaos proxy: pass, drop, blackhole and latency in front of a plain echo server."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidHandshake

from mini_server.lab.chaos import ChaosProxy, start_proxy
from mini_server.lab.frames import FrameCounter, Traffic

REFUSED = (OSError, InvalidHandshake)  # a reset during the handshake surfaces as either


async def _echo(ws):
    with contextlib.suppress(ConnectionClosed):  # a drop resets the server side too
        async for message in ws:
            await ws.send(message)


@pytest.fixture
async def echo_url():
    async with serve(_echo, "127.0.0.1", 0, ping_interval=None) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/socket"


@pytest.fixture
async def proxy(echo_url):
    async with ChaosProxy(echo_url) as p:
        yield p


def _client(url):
    return connect(url + "/websocket", ping_interval=None, open_timeout=2, close_timeout=0.5)


def _frame(opcode, payload, masked=False):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n | (0x80 if masked else 0))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126 | (0x80 if masked else 0), n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127 | (0x80 if masked else 0), n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


def test_url_points_at_the_proxy_port_with_the_server_path(proxy, echo_url):
    """The proxy URL keeps scheme and path but swaps host:port for the proxy's."""
    assert proxy.url == f"ws://127.0.0.1:{proxy.port}/socket"
    assert proxy.upstream_url == echo_url


def test_frame_counter_reads_headers_split_across_chunks():
    """Frames are counted from their headers even when headers and lengths straddle chunks."""
    totals = Traffic()
    counter = FrameCounter(totals)
    stream = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
              + _frame(1, b"x" * 5) + _frame(2, b"y" * 300, masked=True)
              + _frame(1, b"z" * 70000) + _frame(8, b"\x03\xe8"))
    for i in range(0, len(stream), 7):
        counter.feed(stream[i:i + 7])
    assert totals.frames == 4
    assert totals.by_opcode == {"text": 2, "binary": 1, "close": 1}
    assert totals.bytes == len(stream)


def test_frame_counter_ignores_the_body_of_a_refused_upgrade():
    """A 403 answer is HTTP, not WebSocket frames, so nothing is counted as a frame."""
    totals = Traffic()
    FrameCounter(totals).feed(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 3\r\n\r\nabc")
    assert totals.frames == 0


async def test_pass_forwards_and_counts_frames_per_direction(proxy):
    """In pass mode messages round-trip and each direction counts its text frames."""
    async with _client(proxy.url) as ws:
        for i in range(3):
            await ws.send(f"m{i}")
            async with asyncio.timeout(2):
                assert await ws.recv() == f"m{i}"
    stats = proxy.stats()
    assert stats["client_to_server"]["by_opcode"]["text"] == 3
    assert stats["server_to_client"]["by_opcode"]["text"] == 3


async def test_drop_resets_open_connections_with_1006(proxy):
    """drop() resets a live connection: the client sees an abnormal closure (1006)."""
    async with _client(proxy.url) as ws:
        await ws.send("hi")
        async with asyncio.timeout(2):
            await ws.recv()
        assert proxy.drop() == 1
        with pytest.raises(ConnectionClosedError):
            async with asyncio.timeout(2):
                await ws.recv()
        assert ws.close_code == 1006


async def test_drop_refuses_new_connections_until_restore(proxy):
    """While dropped, new connections are reset; after restore() they work again."""
    proxy.drop()
    with pytest.raises(REFUSED):
        async with _client(proxy.url):
            pass
    proxy.restore()
    async with _client(proxy.url) as ws:
        await ws.send("back")
        async with asyncio.timeout(2):
            assert await ws.recv() == "back"


async def test_blackhole_holds_traffic_without_closing(proxy):
    """A blackholed link forwards nothing and closes nothing; restore delivers what was held."""
    async with _client(proxy.url) as ws:
        proxy.blackhole()
        await ws.send("held")
        recv = asyncio.ensure_future(ws.recv())
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await asyncio.shield(recv)  # the timeout cancels the shield, not the recv
            assert proxy.connections == 1 and ws.close_code is None
            proxy.restore()
            async with asyncio.timeout(2):
                assert await recv == "held"
        finally:
            recv.cancel()  # a no-op once it has its frame; stops it leaking if an assert failed


async def test_latency_delays_each_direction(proxy):
    """With latency L a round trip through the proxy takes at least 2 L."""
    loop = asyncio.get_running_loop()
    async with _client(proxy.url) as ws:
        proxy.latency(0.1)
        start = loop.time()
        await ws.send("slow")
        async with asyncio.timeout(2):
            await ws.recv()
        assert loop.time() - start >= 0.2


async def test_close_stops_listening(echo_url):
    """After close() the proxy port refuses connections."""
    proxy = await ChaosProxy(echo_url).start()
    await proxy.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_unreachable_upstream_resets_the_client():
    """With no server behind it the proxy resets the client instead of hanging."""
    async with ChaosProxy("ws://127.0.0.1:9/socket") as proxy:
        with pytest.raises(REFUSED):
            async with _client(proxy.url):
                pass


async def test_start_proxy_again_replaces_the_previous_one(echo_url):
    """A re-run cell's start_proxy("p") closes the earlier "p" (its port stops listening)."""
    first = await start_proxy(echo_url, "p")
    second = await start_proxy(echo_url, "p")
    try:
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", first.port)
        async with _client(second.url) as ws:
            await ws.send("still here")
            async with asyncio.timeout(2):
                assert await ws.recv() == "still here"
    finally:
        await second.close()
