"""A raw WebSocket client for server tests: send frames as Python lists, read them decoded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

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
        async with asyncio.timeout(within):
            data = await self.ws.recv()
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

        async with asyncio.timeout(within):
            await drain()
        return self.ws.close_code, self.ws.close_reason


def reply(join_ref: Any, ref: Any, topic: str, status: str = "ok", response: Any = None) -> list:
    """The expected phx_reply frame."""
    return [join_ref, ref, topic, "phx_reply",
            {"status": status, "response": {} if response is None else response}]
