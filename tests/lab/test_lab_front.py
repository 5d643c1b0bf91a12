"""ChaosProxy with several upstreams: a round-robin front that skips a node that is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, serve
from websockets.exceptions import InvalidHandshake

from mini_server.lab.chaos import ChaosProxy

TIMEOUT = 5.0
REFUSED = (OSError, InvalidHandshake)  # a reset during the handshake surfaces as either


def _named(name: str):
    async def handler(ws) -> None:
        await ws.send(name)  # say which node this connection reached
        async for message in ws:
            await ws.send(message)

    return handler


@contextlib.asynccontextmanager
async def _node(name: str) -> AsyncIterator[Server]:
    async with serve(_named(name), "127.0.0.1", 0) as server:
        yield server


def _url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/socket"


async def _reached(proxy: ChaosProxy) -> str:
    """Which node a fresh connection through the front lands on."""
    async with connect(proxy.url, open_timeout=TIMEOUT, proxy=None) as ws:
        async with asyncio.timeout(TIMEOUT):
            return await ws.recv()


async def test_connections_alternate_between_upstreams() -> None:
    """Each new connection goes to the next upstream in turn; stats count them."""
    async with _node("a") as a, _node("b") as b:
        async with ChaosProxy([_url(a), _url(b)]) as front:
            assert [await _reached(front) for _ in range(4)] == ["a", "b", "a", "b"]
            assert front.stats()["per_upstream"] == {_url(a): 2, _url(b): 2}
            assert front.url.endswith(f":{front.port}/socket")


async def test_a_dead_upstream_is_skipped() -> None:
    """After node a goes down every connection lands on b, and none is reset."""
    async with _node("b") as b:
        async with _node("a") as a:
            a_url = _url(a)
        async with ChaosProxy([a_url, _url(b)]) as front:
            assert [await _reached(front) for _ in range(3)] == ["b", "b", "b"]
            assert front.stats()["per_upstream"] == {a_url: 0, _url(b): 3}


async def test_every_upstream_down_resets_the_client() -> None:
    """With no node reachable the front resets the client instead of hanging."""
    async with _node("a") as a:
        a_url = _url(a)
    async with ChaosProxy([a_url, "ws://127.0.0.1:9/socket"]) as front:
        with pytest.raises(REFUSED):
            await _reached(front)
        assert front.stats()["per_upstream"] == {a_url: 0, "ws://127.0.0.1:9/socket": 0}
