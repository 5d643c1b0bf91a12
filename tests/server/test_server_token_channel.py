"""token:*: a fresh signed token pushed right after the join and every interval; rejoins with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from raw_client import reply

from mini_server.client import ChannelState, NewestToken, Socket
from mini_server.server import Endpoint
from mini_server.server.token import sign, verify
from mini_server.server.token_channel import SALT, token_channel, token_routes
from mini_server.testing import wait_until

SECRET = "a test secret key base, long enough for Phoenix"
INTERVAL = 0.1
TIMEOUT = 5.0
ROUTES = {"token:*": token_channel(SECRET, interval=INTERVAL)}  # max_age 3 intervals


def fresh(user: Any = 42, **options: Any) -> str:
    """A token for ``user`` as the page would hand it out."""
    return sign(SECRET, SALT, user, **options)


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[..., Socket]]:
    """Client sockets with short timers; all disconnected at teardown."""
    made: list[Socket] = []

    def make(url: str) -> Socket:
        sock = Socket(url, reconnect_after=lambda tries: 0.05, rejoin_after=lambda tries: 0.05,
                      timeout=1.0, heartbeat_interval=30.0)
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.disconnect()
    for sock in made:
        await sock.wait_closed(TIMEOUT)


async def test_join_reply_comes_first_then_a_fresh_token_every_interval(make_server, raw):
    """The ok reply names the user; then new_token n=1 (after-join), 2, 3 at the interval."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    assert await client.join("token:me", "1", {"token": fresh()}) == reply(
        "1", "1", "token:me", "ok", {"user_id": 42})
    loop = asyncio.get_running_loop()
    frames, times = [], []
    for _ in range(3):
        frames.append(await client.recv())
        times.append(loop.time())
    assert [(f[0], f[1], f[3], f[4]["n"]) for f in frames] == [
        ("1", None, "new_token", 1), ("1", None, "new_token", 2), ("1", None, "new_token", 3)]
    assert times[2] - times[0] >= 1.5 * INTERVAL  # the second and third wait for the timer
    tokens = [f[4]["token"] for f in frames]
    assert len(set(tokens)) == 3, "each push carries a newly signed token"
    assert all(verify(SECRET, SALT, t) == 42 for t in tokens)


@pytest.mark.parametrize(("payload", "reason"), [
    ({}, "missing"),
    ({"token": ""}, "missing"),
    ({"token": "nonsense"}, "invalid"),
    ({"token": sign(SECRET, "another salt", 42)}, "invalid"),
    ({"token": sign(SECRET, SALT, 42, now=0)}, "expired"),
])
async def test_join_refuses_missing_invalid_and_expired_tokens(make_server, raw, payload, reason):
    """A join without a valid token is refused with Phoenix.Token's reason; no timer starts."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    assert await client.join("token:me", "1", payload) == reply(
        "1", "1", "token:me", "error", {"reason": reason})
    assert server.snapshot()["timers"] == 0


async def test_each_channel_keeps_its_own_user_and_count_in_assigns(make_server, raw):
    """Two token channels on one socket, two users: each status shows only its own assigns."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("token:a", "1", {"token": fresh("ann")})
    await client.join("token:b", "2", {"token": fresh("bob")})
    await client.send("1", "3", "token:a", "status", {})
    await client.send("2", "4", "token:b", "status", {})
    replies = {}
    while len(replies) < 2:
        frame = await client.recv()
        if frame[3] == "phx_reply":
            replies[frame[2]] = frame[4]["response"]
    assert replies["token:a"]["user_id"] == "ann" and replies["token:b"]["user_id"] == "bob"
    assert server.snapshot()["timers"] == 2  # one per channel


async def outage_after_max_age(endpoint: Endpoint, channel: Any, first_signed: float) -> None:
    """Once the first token is older than max_age, a short outage: kill, restart at once."""
    loop = asyncio.get_running_loop()
    await wait_until(lambda: loop.time() - first_signed > 4 * INTERVAL, TIMEOUT)  # > max_age
    await endpoint.kill()
    await channel.wait_state(ChannelState.ERRORED, TIMEOUT)
    await endpoint.restart()


async def test_rejoin_with_the_newest_token_succeeds_after_the_first_expired(sockets):
    """A NewestToken params function rejoins with a pushed token though the first expired."""
    async with Endpoint(ROUTES) as endpoint:
        sock = sockets(endpoint.url)
        signed_at = asyncio.get_running_loop().time()
        newest = NewestToken(fresh())
        channel = sock.channel("token:me", params=newest.params)
        newest.follow(channel)
        sock.connect()
        await channel.join()
        await outage_after_max_age(endpoint, channel, signed_at)
        await channel.wait_joined(TIMEOUT)
        assert newest.received >= 4, "tokens were pushed while connected"
    assert newest.params_calls == 2, "the params function runs again for the rejoin"


async def test_a_dict_of_params_rejoins_with_the_first_token_and_is_refused(sockets):
    """The same outage with params captured as a dict: the rejoin is refused as expired."""
    async with Endpoint(ROUTES) as endpoint:
        sock = sockets(endpoint.url)
        signed_at = asyncio.get_running_loop().time()
        channel = sock.channel("token:me", params={"token": fresh()})
        refusals: list[Any] = []
        sock.on_event(lambda e: refusals.append(e.data) if e.kind == "received"
                      and e.data["message"].event == "phx_reply"
                      and e.data["message"].payload["status"] == "error" else None)
        sock.connect()
        await channel.join()
        await outage_after_max_age(endpoint, channel, signed_at)
        await wait_until(lambda: refusals, TIMEOUT, "the refused rejoin")
        assert channel.state is not ChannelState.JOINED
    assert refusals[0]["message"].payload["response"] == {"reason": "expired"}


def test_token_routes_adds_token_topics_to_the_demo_routes():
    """token_routes keeps room:* and lab:* and binds token:* to the secret and timings."""
    routes = token_routes(SECRET, interval=2.0)
    assert {"room:*", "lab:*", "token:*"} <= set(routes)
    bound = routes["token:*"]
    assert (bound.secret_key_base, bound.interval, bound.max_age) == (SECRET, 2.0, 6.0)
    with pytest.raises(ValueError, match="interval"):
        token_channel(SECRET, interval=0)
