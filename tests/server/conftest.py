"""Server fixtures: endpoints on 127.0.0.1 port 0 and raw V2/V1 WebSocket clients.

Every endpoint and client a test makes is closed at teardown, and teardown then checks
that no task is left pending (a leaked transport, writer or channel task fails the test).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels import ROUTES, Recorder
from raw_client import TIMEOUT, Raw
from websockets.asyncio.client import connect

from mini_server.server import Endpoint


@pytest.fixture
async def recorder() -> AsyncIterator[type[Recorder]]:
    """The test channels' recorder, fresh for this test."""
    Recorder.reset()
    yield Recorder
    Recorder.queue = None


@pytest.fixture
async def make_server(recorder: Any) -> AsyncIterator[Callable[..., Awaitable[Endpoint]]]:
    """Start endpoints (test routes unless given); all are stopped at teardown."""
    endpoints: list[Endpoint] = []

    async def start(channels: Any = ROUTES, **options: Any) -> Endpoint:
        endpoint = Endpoint(channels, host="127.0.0.1", port=0, **options)
        endpoints.append(endpoint)
        return await endpoint.start()

    yield start
    for endpoint in endpoints:
        await endpoint.aclose()
    await _assert_no_pending_tasks()


@pytest.fixture
async def server(make_server: Any) -> Endpoint:
    """One endpoint with the test routes."""
    return await make_server()


@pytest.fixture
async def raw(server: Endpoint) -> AsyncIterator[Callable[..., Awaitable[Raw]]]:
    """Open raw clients to ``server`` (query ``vsn=2.0.0`` unless given); closed at teardown."""
    clients: list[Raw] = []

    async def open_client(query: str = "vsn=2.0.0", endpoint: Endpoint | None = None,
                          v1: bool = False) -> Raw:
        target = endpoint or server
        url = f"{target.url}/websocket" + (f"?{query}" if query else "")
        client = Raw(await connect(url, open_timeout=TIMEOUT, ping_interval=None,
                                   close_timeout=1, max_size=None, proxy=None), v1=v1)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.ws.close()


async def _assert_no_pending_tasks() -> None:
    """Fail when the server left a task behind (give finished tasks one tick to settle)."""
    current = asyncio.current_task()
    for _ in range(50):
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=0.1)
    assert not pending, f"tasks left pending after the server stopped: {pending}"
