"""Server fixtures: endpoints on 127.0.0.1 port 0 and raw V2/V1 WebSocket clients.

Every endpoint and client a test makes is closed at teardown, and teardown then checks
that no task is left pending (a leaked transport, writer or channel task fails the test).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from channels import ROUTES, Recorder
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mini_server.server import Endpoint

TIMEOUT = 3.0  # generous: the machine is shared


class Raw:
    """A raw client: send frames as Python lists, receive them decoded."""

    def __init__(self, ws: ClientConnection, v1: bool = False) -> None:
        self.ws, self.v1 = ws, v1

    async def send(self, *frame: Any) -> None:
        """Send one V2 frame given as its five elements (or one V1 dict)."""
        value = frame[0] if self.v1 else list(frame)
        await self.ws.send(json.dumps(value))

    async def send_raw(self, data: str | bytes) -> None:
        """Send text or binary exactly as given."""
        await self.ws.send(data)

    async def recv(self, within: float = TIMEOUT) -> Any:
        """The next frame: JSON decoded for text, bytes for binary."""
        data = await asyncio.wait_for(self.ws.recv(), within)
        return json.loads(data) if isinstance(data, str) else data

    async def join(self, topic: str, join_ref: str, payload: dict | None = None) -> Any:
        """Join and return the reply frame."""
        await self.send(join_ref, join_ref, topic, "phx_join", payload or {})
        return await self.recv()

    async def heartbeat(self, ref: str = "hb") -> Any:
        """Send a heartbeat and return the next frame (a barrier for the transport)."""
        await self.send(None, ref, "phoenix", "heartbeat", {})
        return await self.recv()

    async def closed(self, within: float = TIMEOUT) -> tuple[int | None, str | None]:
        """Wait for the connection to close; returns (code, reason) as the client saw them."""
        async def drain() -> None:
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed:
                pass

        await asyncio.wait_for(drain(), within)
        return self.ws.close_code, self.ws.close_reason


def reply(join_ref: Any, ref: Any, topic: str, status: str = "ok", response: Any = None) -> list:
    """The expected phx_reply frame."""
    return [join_ref, ref, topic, "phx_reply",
            {"status": status, "response": {} if response is None else response}]


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


async def wait_until(predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Wait for a condition on server state (checked every 10 ms) or fail after ``within``."""
    async def poll() -> None:
        # snapshot() is the server's public view and has no change event: poll it.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


async def _assert_no_pending_tasks() -> None:
    """Fail when the server left a task behind (give finished tasks one tick to settle)."""
    current = asyncio.current_task()
    for _ in range(50):
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, timeout=0.1)
    assert not pending, f"tasks left pending after the server stopped: {pending}"
