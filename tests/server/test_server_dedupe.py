"""dedupe:*: intercepted numbers buffered per subscriber, each pushed once per window."""

from __future__ import annotations

from typing import Any

import pytest
from raw_client import reply

from mini_server.server.dedupe_channel import DedupeChannel, dedupe_routes, unique_in_order

ROUTES = {"dedupe:*": DedupeChannel}
WINDOW = 0.3  # seconds: long enough that "nothing before the flush" is a real wait


async def numbers(client: Any, count: int, within: float = 3.0) -> list[Any]:
    """The next ``count`` frames, which must be number pushes; returns the frames."""
    frames = [await client.recv(within=within) for _ in range(count)]
    assert all(f[3] == "number" for f in frames), frames
    return frames


async def nothing_for(client: Any, seconds: float) -> None:
    """No frame arrives within ``seconds`` (the wait is the assertion)."""
    with pytest.raises(TimeoutError):
        frame = await client.recv(within=seconds)
        pytest.fail(f"expected nothing yet, got {frame}")


def test_unique_in_order_keeps_first_seen_order():
    """Each value once, where it first appeared."""
    assert unique_in_order([3, 1, 3, 2, 1, 3]) == [3, 1, 2]
    assert unique_in_order([]) == []


async def test_nothing_before_the_flush_then_each_number_once_in_first_seen_order(
        make_server, raw):
    """Numbers 3 1 3 2 1 broadcast at once: silence for the window, then 3, 1, 2 once each."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("dedupe:n", "1", {"window": WINDOW})
    for n in [3, 1, 3, 2, 1]:
        await server.broadcast("dedupe:n", "number", {"number": n})
    await nothing_for(client, WINDOW / 2)
    frames = await numbers(client, 3)
    assert [f[4] for f in frames] == [{"number": 3}, {"number": 1}, {"number": 2}]
    await nothing_for(client, WINDOW)  # flushed once: no second copy
    assert server.snapshot()["timers"] == 0


async def test_intercepted_pushes_carry_the_subscribers_join_ref(make_server, raw):
    """A handle_out push is [join_ref, null, ...], unlike a fastlane broadcast's null join_ref."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("dedupe:n", "7", {"window": 0.05})
    await server.broadcast("dedupe:n", "number", {"number": 1})
    (frame,) = await numbers(client, 1)
    assert frame == ["7", None, "dedupe:n", "number", {"number": 1}]


async def test_two_subscribers_with_different_windows_see_different_things(make_server, raw):
    """The same stream 1 1 | 1 (a pause longer than the short window): 1 1 vs 1."""
    server = await make_server(ROUTES)
    short, long = await raw(endpoint=server), await raw(endpoint=server)
    await short.join("dedupe:n", "1", {"window": 0.05})
    await long.join("dedupe:n", "1", {"window": 1.0})
    for n in [1, 1]:
        await server.broadcast("dedupe:n", "number", {"number": n})
    assert [f[4]["number"] for f in await numbers(short, 1)] == [1]  # the short window flushed
    await server.broadcast("dedupe:n", "number", {"number": 1})
    assert [f[4]["number"] for f in await numbers(short, 1)] == [1]  # a new window: 1 again
    assert [f[4]["number"] for f in await numbers(long, 1)] == [1]  # one window: 1 once
    await nothing_for(long, 0.2)


async def test_each_channel_peeks_only_at_its_own_buffer(make_server, raw):
    """Two dedupe topics on one socket: numbers for one sit in its buffer, not the other's."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("dedupe:a", "1", {"window": 5.0})
    await client.join("dedupe:b", "2", {"window": 5.0})
    await client.send("1", "3", "dedupe:a", "number", {"number": 4})
    await client.send("1", "4", "dedupe:a", "number", {"number": 4})
    assert await client.recv() == reply("1", "3", "dedupe:a")
    assert await client.recv() == reply("1", "4", "dedupe:a")
    await client.send("1", "5", "dedupe:a", "peek", {})
    await client.send("2", "6", "dedupe:b", "peek", {})
    assert await client.recv() == reply("1", "5", "dedupe:a", "ok", {
        "buffer": [4, 4], "awaiting": True, "window": 5.0, "flushes": 0})
    assert await client.recv() == reply("2", "6", "dedupe:b", "ok", {
        "buffer": [], "awaiting": False, "window": 5.0, "flushes": 0})


async def test_leaving_with_a_flush_pending_cancels_it(make_server, raw):
    """A buffered number and a pending flush: leave; nothing is pushed, no timer is left."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    await client.join("dedupe:n", "1", {"window": WINDOW})
    await server.broadcast("dedupe:n", "number", {"number": 1})
    await client.send("1", "2", "dedupe:n", "peek", {})
    assert (await client.recv())[4]["response"]["awaiting"] is True
    assert server.snapshot()["timers"] == 1
    await client.send("1", "3", "dedupe:n", "phx_leave", {})
    assert [(await client.recv())[3] for _ in range(2)] == ["phx_reply", "phx_close"]
    assert server.snapshot()["timers"] == 0
    await nothing_for(client, 1.5 * WINDOW)


@pytest.mark.parametrize("window", [0, -1, "1", True, 61])
async def test_a_join_with_a_bad_window_is_refused(make_server, raw, window):
    """window must be a number of seconds in (0, 60]."""
    server = await make_server(ROUTES)
    client = await raw(endpoint=server)
    answer = await client.join("dedupe:n", "1", {"window": window})
    assert answer[4]["status"] == "error" and "window" in answer[4]["response"]["reason"]


def test_dedupe_routes_add_dedupe_topics_to_the_demo_routes():
    """dedupe_routes keeps room:* and lab:* and adds dedupe:*."""
    routes = dedupe_routes()
    assert {"room:*", "lab:*"} <= set(routes) and routes["dedupe:*"] is DedupeChannel
