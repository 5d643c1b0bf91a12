"""The client's max_frame_size: a frame over it closes the connection with 1009 unread."""

from __future__ import annotations

from typing import Any

from mini_server.client import Socket
from mini_server.client.events import EventLog
from mini_server.client.transport import MAX_FRAME_SIZE
from mini_server.server import Channel, Endpoint, ok, reply


class BigChannel(Channel):
    """``send {"n": N}`` pushes a payload of about N bytes, then replies ok."""

    async def join(self, topic: str, payload: Any):
        return ok()

    async def handle_in(self, event: str, payload: Any):
        await self.push("blob", {"data": "x" * payload["n"]})
        return reply("ok", {})


def test_the_default_limit_is_the_servers():
    """1 MiB, the bundled server's own incoming max_frame_size."""
    assert MAX_FRAME_SIZE == Endpoint().max_frame_size == 1_048_576
    assert Socket("ws://127.0.0.1:1/socket").max_frame_size == MAX_FRAME_SIZE


async def test_a_frame_over_max_frame_size_closes_with_1009_and_the_client_reconnects(sockets):
    """Under the limit a push arrives; over it the client closes 1009, then reconnects."""
    async with Endpoint({"big:*": BigChannel}, idle_timeout=None) as server:
        sock = sockets(server.url, max_frame_size=64 * 1024,
                       reconnect_after=lambda _tries: 0.05)
        log = EventLog(sock)
        blobs: list[int] = []
        channel = sock.channel("big:1")
        channel.on("blob", lambda payload: blobs.append(len(payload["data"])))
        sock.connect()
        await channel.join()
        await channel.push("send", {"n": 60_000})
        assert blobs == [60_000]
        channel.push("send", {"n": 200_000})
        close = await log.wait_kind("close", timeout=3)
        assert close.data["code"] == 1009 and not close.data["by_us"]
        assert blobs == [60_000]  # the big frame never reached the channel
        await log.wait_kind("channel_state", timeout=3, since=log.events.index(close),
                            new="joined")  # back, and rejoined
