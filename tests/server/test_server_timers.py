"""Channel timers (send_after, send_interval) end with their channel, however it ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from raw_client import TIMEOUT, reply

from mini_server.server import Channel, error, noreply, ok
from mini_server.server import reply as reply_with
from mini_server.testing import wait_until

TICK = 0.05  # seconds between interval messages: short, so a leak shows within a few ticks


class Ticker(Channel):
    """Pushes ``tick`` every TICK s from join; ``{"refuse": true}`` starts it and refuses."""

    async def join(self, topic: str, payload: Any) -> Any:
        """Start an interval timer (even when refusing, to prove the refusal ends it)."""
        self.assigns["n"] = 0
        self.send_interval(TICK, "tick")
        if payload.get("refuse"):
            return error({"reason": "refused"})
        if payload.get("once"):
            self.send_after(TICK, "once")
        return ok()

    async def handle_info(self, msg: Any) -> Any:
        """Push each tick with its count."""
        self.assigns["n"] += 1
        await self.push(msg, {"n": self.assigns["n"]})
        return noreply()

    async def handle_in(self, event: str, payload: Any) -> Any:
        """``crash`` raises; anything else replies ok."""
        if event == "crash":
            raise RuntimeError("crash on purpose")
        return reply_with("ok", {})


ROUTES = {"tick:*": Ticker}


async def ticks(client: Any, count: int) -> list[Any]:
    """The next ``count`` frames, which must all be ticks."""
    frames = [await client.recv() for _ in range(count)]
    assert all(f[3] == "tick" for f in frames), frames
    return frames


async def silent(client: Any, within: float = 4 * TICK) -> None:
    """Nothing arrives for ``within`` seconds (the wait is the assertion)."""
    with pytest.raises(TimeoutError):
        frame = await client.recv(within=within)
        pytest.fail(f"expected silence, got {frame}")


async def timers_reach(server: Any, expected: int) -> None:
    """The endpoint's count of live timers reaches ``expected`` (bounded wait)."""
    await wait_until(lambda: server.snapshot()["timers"] == expected, TIMEOUT,
                     f"the endpoint still holds timers, expected {expected}")


async def test_send_interval_pushes_every_tick_at_a_fixed_rate(make_server, raw):
    """A send_interval started in join delivers one message per interval, counted in order."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    assert await client.join("tick:1", "1") == reply("1", "1", "tick:1")
    loop = asyncio.get_running_loop()
    start = loop.time()
    frames = await ticks(client, 5)
    assert [f[4]["n"] for f in frames] == [1, 2, 3, 4, 5]
    assert frames[0][0] == "1" and frames[0][1] is None  # a push: join_ref, null ref
    assert loop.time() - start >= 4 * TICK  # five ticks cannot come faster than the rate
    assert server.snapshot()["timers"] == 1


async def test_leave_cancels_the_interval_timer(make_server, raw):
    """After phx_leave no tick arrives and the endpoint holds no timer."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("tick:1", "1")
    await ticks(client, 2)
    await client.send("1", "2", "tick:1", "phx_leave", {})
    frames = [await client.recv()]
    while frames[-1][3] != "phx_close":  # a tick queued before the leave may come first
        frames.append(await client.recv())
    assert [f[3] for f in frames if f[3] != "tick"] == ["phx_reply", "phx_close"]
    await timers_reach(server, 0)
    await silent(client)


async def test_a_closed_connection_cancels_every_timer(make_server, raw):
    """Two channels ticking on one socket: the client closes; the endpoint holds no timer."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("tick:a", "1")
    await client.join("tick:b", "2")
    await timers_reach(server, 2)
    await client.ws.close()
    await timers_reach(server, 0)


async def test_a_crash_cancels_the_timer_though_terminate_is_not_called(make_server, raw):
    """A crashing channel gets phx_error; its interval never fires again."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("tick:1", "1")
    await ticks(client, 1)
    await client.send("1", "9", "tick:1", "crash", {})
    while (frame := await client.recv())[3] == "tick":
        pass
    assert frame[3] == "phx_error"
    await timers_reach(server, 0)
    await silent(client)


async def test_a_refused_join_cancels_a_timer_started_in_join(make_server, raw):
    """join started an interval, then refused: no tick ever arrives, no timer is left."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    refused = await client.join("tick:1", "1", {"refuse": True})
    assert refused == reply("1", "1", "tick:1", "error", {"reason": "refused"})
    await timers_reach(server, 0)
    await silent(client)


async def test_a_server_kill_cancels_every_timer(make_server, raw):
    """kill() aborts connections and cancels channel tasks: their timers go with them."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("tick:1", "1")
    await timers_reach(server, 1)
    await server.kill()
    await timers_reach(server, 0)
    await client.closed()


async def test_send_after_fires_once_then_is_gone(make_server, raw):
    """send_after delivers one message; afterwards only the interval timer is live."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("tick:1", "1", {"once": True})
    await timers_reach(server, 2)
    events = []
    while "once" not in events:
        events.append((await client.recv())[3])
    assert events.count("once") == 1
    await timers_reach(server, 1)
