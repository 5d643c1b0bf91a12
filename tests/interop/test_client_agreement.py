"""mini_server's Python client and phoenix.js send the server the same frames in an outage.

One scripted outage (connect, join two rooms, ping, server killed and restarted, rejoin,
ping, leave one room, disconnect) is played by each client in turn against a fresh
server; the server's transport log records what it received. The two recordings must
match step for step: connections and their close codes, and per frame the event, the
topic and how the join_ref relates to the topic's earlier joins (refs are opaque).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from phoenix_js import FAST_TIMERS, PhoenixJS
from server_frames import ServerFrameLog
from server_snapshots import wait_snapshot

from mini_server.client import Channel, ChannelState, Socket
from mini_server.server import Endpoint

TOPICS = ("room:a", "room:b")
WAIT = 5.0  # seconds any single step may take on a loaded machine


def schedule(ms: list[int]) -> Callable[[int], float]:
    """The FAST_TIMERS list of milliseconds as a Python `tries -> seconds` function."""
    return lambda tries: ms[min(tries, len(ms)) - 1] / 1000


class ScriptedClient(Protocol):
    """The steps of the outage script, done by one client library."""

    async def connect(self, url: str) -> None: ...
    async def join(self, topic: str) -> None: ...
    async def ping(self, topic: str, n: int) -> None: ...
    def outage_starts(self) -> None: ...
    async def wait_dropped(self) -> None: ...
    async def wait_rejoined(self) -> None: ...
    async def leave(self, topic: str) -> None: ...
    async def disconnect(self) -> None: ...


class PhoenixJSClient:
    """The script's steps done by phoenix.js 1.8.16 in node."""

    def __init__(self, js: PhoenixJS) -> None:
        self.js = js
        self.outage = 0

    async def connect(self, url: str) -> None:
        await self.js.open_socket("s", url)

    async def join(self, topic: str) -> None:
        assert (await self.js.join("s", topic, topic))["status"] == "ok"

    async def ping(self, topic: str, n: int) -> None:
        since = self.js.mark()
        await self.js.command("push", chan=topic, event="ping", payload={"n": n}, tag=n)
        reply = await self.js.wait_for("reply", since=since, within=WAIT, tag=n)
        assert (reply["status"], reply["response"]) == ("ok", {"n": n})

    def outage_starts(self) -> None:
        self.outage = self.js.mark()  # node may report the close before kill() returns

    async def wait_dropped(self) -> None:
        await self.js.wait_for("close", since=self.outage, within=WAIT, socket="s")
        for topic in TOPICS:
            await self.js.wait_for("chan_error", since=self.outage, within=WAIT, chan=topic)

    async def wait_rejoined(self) -> None:
        for topic in TOPICS:
            await self.js.wait_for("join", since=self.outage, within=WAIT, chan=topic,
                                   status="ok")

    async def leave(self, topic: str) -> None:
        since = self.js.mark()
        await self.js.command("leave", chan=topic)
        await self.js.wait_for("chan_close", since=since, within=WAIT, chan=topic)

    async def disconnect(self) -> None:
        since = self.js.mark()
        await self.js.command("disconnect", socket="s")
        await self.js.wait_for("disconnected", since=since, within=WAIT, socket="s")


class PythonClient:
    """The script's steps done by mini_server.client with the same timers."""

    def __init__(self) -> None:
        self.socket: Socket | None = None
        self.channels: dict[str, Channel] = {}
        self.refs_before: dict[str, str | None] = {}
        self.events: list[Any] = []  # the client's event stream, to explain a failure

    def explain(self, exc: BaseException) -> AssertionError:
        """A failure that shows what the client reported last."""
        tail = "\n  ".join(f"{e.time:.3f} {e.prefix} {e.kind}: {e.text}" for e in self.events[-30:])
        return AssertionError(f"{exc}\nlast client events:\n  {tail}")

    async def connect(self, url: str) -> None:
        self.socket = Socket(
            url,
            heartbeat_interval=FAST_TIMERS["heartbeatIntervalMs"] / 1000,
            timeout=FAST_TIMERS["timeout"] / 1000,
            reconnect_after=schedule(FAST_TIMERS["reconnectAfterMs"]),
            rejoin_after=schedule(FAST_TIMERS["rejoinAfterMs"]),
        )
        self.socket.on_event(self.events.append)
        self.socket.connect()
        await self.socket.wait_open(WAIT)

    async def join(self, topic: str) -> None:
        assert self.socket is not None
        channel = self.channels[topic] = self.socket.channel(topic)
        async with asyncio.timeout(WAIT):
            reply = await channel.join()
        assert reply.status == "ok"

    async def ping(self, topic: str, n: int) -> None:
        async with asyncio.timeout(WAIT):
            reply = await self.channels[topic].push("ping", {"n": n})
        assert (reply.status, reply.response) == ("ok", {"n": n})

    def outage_starts(self) -> None:
        pass  # the channels' states tell what happened, whenever it happened

    async def wait_dropped(self) -> None:
        for topic, channel in self.channels.items():
            await channel.wait_state(ChannelState.ERRORED, WAIT)
            self.refs_before[topic] = channel.join_ref

    async def wait_rejoined(self) -> None:
        for topic, channel in self.channels.items():
            try:
                await channel.wait_state(ChannelState.JOINED, WAIT)
            except TimeoutError as exc:
                raise self.explain(exc) from None
            assert channel.join_ref != self.refs_before[topic]

    async def leave(self, topic: str) -> None:
        channel = self.channels[topic]
        async with asyncio.timeout(WAIT):
            await channel.leave()
        await channel.wait_state(ChannelState.CLOSED, WAIT)

    async def disconnect(self) -> None:
        assert self.socket is not None
        self.socket.disconnect()
        await self.socket.wait_closed(WAIT)

    async def close(self) -> None:
        """Leave nothing running, whatever step the test stopped at."""
        if self.socket is not None and self.socket.connection_state != "closed":
            self.socket.disconnect()
        if self.socket is not None:
            await self.socket.wait_closed(WAIT)


async def play_outage(client: ScriptedClient) -> list[tuple[Any, ...]]:
    """Run the outage script against a fresh server; return what the server received."""
    with ServerFrameLog() as received:
        async with Endpoint(port=0) as endpoint:
            await client.connect(endpoint.url)
            for topic in TOPICS:
                await client.join(topic)
            await client.ping("room:a", 1)
            client.outage_starts()
            await endpoint.kill()
            await client.wait_dropped()
            await endpoint.restart()
            await client.wait_rejoined()
            await wait_snapshot(endpoint, lambda s: s["channel_count"] == 2, WAIT)
            await client.ping("room:a", 2)
            await client.leave("room:b")
            await wait_snapshot(endpoint, lambda s: s["channel_count"] == 1, WAIT)
            await client.disconnect()
            await wait_snapshot(endpoint, lambda s: s["socket_count"] == 0, WAIT)
        return received.normalised()


@asynccontextmanager
async def python_client() -> AsyncIterator[PythonClient]:
    """A PythonClient that is disconnected afterwards."""
    client = PythonClient()
    try:
        yield client
    finally:
        await client.close()


EXPECTED = [
    ("connected",),
    ("phx_join", "room:a", "first join"),
    ("phx_join", "room:b", "first join"),
    ("ping", "room:a", "current join_ref"),
    ("closed", 1006),
    ("connected",),
    ("phx_join", "room:a", "new join_ref"),
    ("phx_join", "room:b", "new join_ref"),
    ("ping", "room:a", "current join_ref"),
    ("phx_leave", "room:b", "current join_ref"),
    ("closed", 1005),
]


async def test_phoenix_js_outage_frames_match_protocol(js: PhoenixJS) -> None:
    """phoenix.js sends the server the frames PROTOCOL.md predicts for the outage script."""
    assert await play_outage(PhoenixJSClient(js)) == EXPECTED


async def test_python_client_sends_server_what_phoenix_js_sends(js: PhoenixJS) -> None:
    """In the same outage the Python client's frames match phoenix.js's, step for step."""
    from_js = await play_outage(PhoenixJSClient(js))
    async with python_client() as client:
        from_python = await play_outage(client)
    assert from_python == from_js

