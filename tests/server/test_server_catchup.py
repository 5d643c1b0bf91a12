"""history:* end to end through our client: catch-up after outages, replay before live, retries.

Every test drives a real Endpoint (or the lab's OS-process server) and a real SQLite file in
tmp_path; the client is ``mini_server.client.Socket`` with a ``LastSeen`` params function.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import pytest

from mini_server.client import ChannelState, LastSeen, Socket, push_until_acked
from mini_server.lab.chaos import ChaosProxy
from mini_server.lab.servers import ProcessServer
from mini_server.server import Endpoint
from mini_server.server.history import History
from mini_server.server.history_channel import HistoryChannel, history_routes, publish
from mini_server.testing import wait_until

TIMEOUT = 5.0  # generous: the machine is shared
TOPIC = "history:lobby"
FAST = {
    "reconnect_after": lambda tries: 0.05,
    "rejoin_after": lambda tries: 0.05,
    "timeout": 1.0,
    "heartbeat_interval": 30.0,
}


@pytest.fixture
def history(tmp_path) -> Iterator[History]:
    store = History(tmp_path / "history.sqlite3")
    yield store
    store.close()


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[..., Socket]]:
    """Client sockets with short timers; all disconnected at teardown."""
    made: list[Socket] = []

    def make(url: str, **options: Any) -> Socket:
        sock = Socket(url, **{**FAST, **options})
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.disconnect()
    for sock in made:
        await sock.wait_closed(TIMEOUT)


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition on plain state (ids seen, rows stored); fail naming ``what``."""
    await wait_until(predicate, TIMEOUT, f"timed out waiting for {what}")


async def follow(sock: Socket, topic: str = TOPIC) -> tuple[Any, LastSeen]:
    """Join ``topic`` with a LastSeen params function and wait until joined."""
    seen = LastSeen()
    channel = sock.channel(topic, params=seen.params)
    seen.follow(channel)
    channel.join()
    sock.connect()
    await channel.wait_joined(TIMEOUT)
    return channel, seen


async def test_rejoin_replays_what_was_missed_during_a_kill_then_goes_live(history, sockets):
    """Live 1-3, kill, 4-6 stored while down, restart: 4-6 replayed, then 7-8 live; no dupes."""
    async with Endpoint(history_routes(history)) as endpoint:
        sock = sockets(endpoint.url)
        channel, seen = await follow(sock)
        sent = [(await publish(endpoint, history, TOPIC, n)).id for n in range(1, 4)]
        await until(lambda: len(seen.ids) == 3, "three live messages")
        await endpoint.kill()
        await channel.wait_state(ChannelState.ERRORED, TIMEOUT)
        sent += [(await publish(endpoint, history, TOPIC, n)).id for n in range(4, 7)]
        await endpoint.restart()
        await until(lambda: len(seen.ids) == 6, "the replay of the three missed messages")
        sent += [(await publish(endpoint, history, TOPIC, n)).id for n in range(7, 9)]
        await until(lambda: len(seen.ids) == 8, "two live messages after the replay")
    assert seen.ids == sent
    assert seen.replayed == 3 and seen.duplicates == 0
    assert seen.params_calls == 2, "the params function must run again for the rejoin"


async def test_every_rejoin_sends_the_newest_last_seen_id(history, sockets):
    """The join payloads sent are {last_seen_id: 0}, then the id seen before each outage."""
    async with Endpoint(history_routes(history)) as endpoint:
        sock = sockets(endpoint.url)
        sent_joins: list[Any] = []
        sock.on_event(
            lambda e: (
                sent_joins.append(e.data["message"].payload)
                if e.kind == "sent" and e.data["message"].event == "phx_join"
                else None
            )
        )
        channel, seen = await follow(sock)
        expected = [{"last_seen_id": 0}]
        for round_ in range(2):
            last = (await publish(endpoint, history, TOPIC, round_)).id
            await until(lambda last=last: seen.last_id == last, "the live message")
            await endpoint.kill()
            await endpoint.restart()
            joins = len(expected)
            await until(
                lambda joins=joins: (
                    len(sent_joins) > joins and channel.state is ChannelState.JOINED
                ),
                "the rejoin",
            )
            expected.append({"last_seen_id": last})
    assert sent_joins == expected


class GatedHistoryChannel(HistoryChannel):
    """Waits before replaying, so a test can broadcast between the join and the replay."""

    entered: ClassVar[asyncio.Event]
    gate: ClassVar[asyncio.Event]

    async def replay(self) -> None:
        """Signal, wait for the gate, then replay as usual."""
        self.entered.set()
        async with asyncio.timeout(TIMEOUT):
            await self.gate.wait()
        await super().replay()


async def test_messages_broadcast_during_the_join_come_after_the_replay_once(history, sockets):
    """Broadcasts made after the subscription but before the replay: in order, none twice."""
    gated = type(
        "Gated",
        (GatedHistoryChannel,),
        {"history": history, "entered": asyncio.Event(), "gate": asyncio.Event()},
    )
    stored = [history.append(TOPIC, n).id for n in range(1, 4)]  # missed before joining
    async with Endpoint({"history:*": gated}) as endpoint:
        sock = sockets(endpoint.url)
        _, seen = await follow(sock)  # the join reply came: the channel is subscribed
        async with asyncio.timeout(TIMEOUT):
            await gated.entered.wait()
        # Stored and broadcast now: the replay query (after the gate) sees them too, and the
        # live copies wait in the mailbox behind the replay.
        stored += [(await publish(endpoint, history, TOPIC, n)).id for n in (4, 5)]
        assert seen.ids == [], "a live message overtook the replay"
        gated.gate.set()
        await until(lambda: len(seen.ids) == 5, "the replay")
        stored.append((await publish(endpoint, history, TOPIC, 6)).id)
        await until(lambda: len(seen.ids) == 6, "the live message after the replay")
    assert seen.ids == stored
    assert seen.duplicates == 0, "a message broadcast during the join was pushed twice"
    assert seen.replayed == 5


async def test_join_refuses_a_last_seen_id_that_is_not_a_count(history, sockets):
    """last_seen_id "abc" or -1 is refused with a reason; null means from the start."""
    async with Endpoint(history_routes(history)) as endpoint:
        sock = sockets(endpoint.url)
        sock.connect()
        for bad in ("abc", -1, True):
            reply = await sock.channel(f"history:{bad}", {"last_seen_id": bad}).join()
            assert reply.status == "error" and "last_seen_id" in reply.response["reason"]
        reply = await sock.channel("history:null", {"last_seen_id": None}).join()
        assert reply.status == "ok" and reply.response == {"last_seen_id": 0}


async def test_post_with_the_same_client_id_is_applied_once(history, sockets):
    """Two posts with one client id: one row, one broadcast, the second reply says duplicate."""
    async with Endpoint(history_routes(history)) as endpoint:
        sender = sockets(endpoint.url)
        channel, _ = await follow(sender)
        _, seen = await follow(sockets(endpoint.url))
        first = await push_until_acked(channel, "post", {"body": "hi"}, client_id="m-1")
        again = await push_until_acked(channel, "post", {"body": "hi"}, client_id="m-1")
        other = await push_until_acked(channel, "post", {"body": "hi"})  # a fresh UUID
        await until(lambda: len(seen.ids) == 2, "two broadcasts")
        await asyncio.sleep(0.1)  # a duplicate broadcast would arrive well within this
    assert first.reply.response == {"id": first.reply.response["id"], "duplicate": False}
    assert again.reply.response == {"id": first.reply.response["id"], "duplicate": True}
    assert other.reply.response["duplicate"] is False and other.client_id != "m-1"
    assert history.count(TOPIC) == 2
    assert seen.ids == [first.reply.response["id"], other.reply.response["id"]]


async def test_a_retry_after_a_lost_reply_is_not_stored_twice(history, sockets):
    """The reply is lost with the connection; the retry is acked as a duplicate, stored once."""
    async with Endpoint(history_routes(history)) as endpoint, ChaosProxy(endpoint) as proxy:
        _, seen = await follow(sockets(endpoint.url))
        sock = sockets(proxy.url)
        channel, _ = await follow(sock)
        proxy.latency(0.3)  # the reply waits in the proxy long enough to be dropped there
        acked = asyncio.create_task(
            push_until_acked(channel, "post", {"body": "once"}, timeout=0.8, attempts=5)
        )
        await until(lambda: history.count(TOPIC) == 1, "the server storing the post")
        proxy.drop()  # the connection dies with the reply still in flight
        proxy.restore()
        async with asyncio.timeout(TIMEOUT):
            result = await acked
        await until(lambda: len(seen.ids) == 1, "the broadcast")
        await asyncio.sleep(0.1)
    assert result.attempts >= 2, "the first push was acknowledged: the reply was not lost"
    assert result.reply.response["duplicate"] is True
    assert history.count(TOPIC) == 1 and seen.duplicates == 0 and len(seen.ids) == 1


async def test_kill_9_loses_assigns_but_not_the_database(tmp_path, sockets):
    """OS-process server: after SIGKILL the assigns count restarts, the stored one goes on."""
    path = tmp_path / "critical.sqlite3"
    server = await ProcessServer("test-kill-9-history", history=path).start()
    try:
        sock = sockets(server.url)
        channel, seen = await follow(sock)
        for _ in range(3):
            reply = await channel.push("incr", {})
        assert reply.response == {"assigns": 3, "database": 3}
        posted = await push_until_acked(channel, "post", {"body": "kept"})
        await server.kill()
        await channel.wait_state(ChannelState.ERRORED, TIMEOUT)
        await server.start()
        await channel.wait_joined(TIMEOUT)
        reply = await channel.push("incr", {})
        assert reply.response == {"assigns": 1, "database": 4}
    finally:
        await server.close()
    with History(path) as store:  # the parent reads the file the killed process wrote
        assert store.counter(TOPIC) == 4
        assert [m.body for m in store.since(TOPIC)] == ["kept"]
    assert seen.ids == [posted.reply.response["id"]] and seen.duplicates == 0
