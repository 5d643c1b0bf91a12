"""Pure pieces of the server, without sockets: pubsub fastlane, mailbox, bad frames, routes."""

from __future__ import annotations

import asyncio

import pytest

from mini_server.protocol import (
    Broadcast,
    CloseCode,
    ProtocolError,
    V1JSONSerializer,
    V2JSONSerializer,
)
from mini_server.server import Channel, PubSub, Subscription, is_normal_stop, stop
from mini_server.server.bad_frames import CloseWith, answer
from mini_server.server.channel import ReplyResult, match_route
from mini_server.server.mailbox import Mailbox


class CountingSerializer(V2JSONSerializer):
    """A V2 serializer that counts fastlane encodings."""

    def __init__(self) -> None:
        self.fastlanes = 0

    def fastlane(self, broadcast: Broadcast):
        """Count, then encode as V2 does."""
        self.fastlanes += 1
        return super().fastlane(broadcast)


def subscriber(pubsub, topic, serializer, frames, delivered, intercept=()):
    """Subscribe a fake channel that records frames and deliveries."""
    owner = object()
    pubsub.subscribe(Subscription(topic, owner, delivered.append, serializer, frames.append,
                                  frozenset(intercept)))
    return owner


def test_fastlane_encodes_once_per_serializer_and_shares_the_frame():
    """Three subscribers on one serializer cost one encode and receive the same frame."""
    pubsub, ser, frames, delivered = PubSub(), CountingSerializer(), [], []
    for _ in range(3):
        subscriber(pubsub, "t", ser, frames, delivered)
    assert pubsub.local_broadcast(Broadcast("t", "ev", {"a": 1})) == 3
    assert ser.fastlanes == 1
    assert frames == ['[null,null,"t","ev",{"a":1}]'] * 3
    assert frames[0] is frames[1] is frames[2]
    assert delivered == []


def test_fastlane_encodes_separately_for_v1_and_v2():
    """V1 and V2 subscribers each get their own serializer's encoding."""
    pubsub, v1_frames, v2_frames, delivered = PubSub(), [], [], []
    subscriber(pubsub, "t", V1JSONSerializer(), v1_frames, delivered)
    subscriber(pubsub, "t", V2JSONSerializer(), v2_frames, delivered)
    pubsub.local_broadcast(Broadcast("t", "ev", {}))
    assert v1_frames == ['{"event":"ev","payload":{},"ref":null,"topic":"t"}']  # Phoenix's order
    assert v2_frames == ['[null,null,"t","ev",{}]']


def test_intercepted_event_goes_to_deliver_not_fastlane():
    """An intercepted event reaches the channel (handle_out), never the transport directly."""
    pubsub, ser, frames, delivered = PubSub(), CountingSerializer(), [], []
    subscriber(pubsub, "t", ser, frames, delivered, intercept=("new_msg",))
    pubsub.local_broadcast(Broadcast("t", "new_msg", {"x": 1}))
    assert (ser.fastlanes, frames) == (0, [])
    assert delivered == [Broadcast("t", "new_msg", {"x": 1})]


def test_broadcast_from_skips_the_owner():
    """local_broadcast with from_owner skips that subscriber only."""
    pubsub, frames_a, frames_b, delivered = PubSub(), [], [], []
    a = subscriber(pubsub, "t", V2JSONSerializer(), frames_a, delivered)
    subscriber(pubsub, "t", V2JSONSerializer(), frames_b, delivered)
    assert pubsub.local_broadcast(Broadcast("t", "ev", {}), from_owner=a) == 1
    assert (len(frames_a), len(frames_b)) == (0, 1)


def test_unencodable_payload_raises_before_anyone_gets_it():
    """A payload that cannot be encoded raises and nobody receives half a broadcast."""
    pubsub, frames, delivered = PubSub(), [], []
    subscriber(pubsub, "t", V2JSONSerializer(), frames, delivered, intercept=("ev",))
    subscriber(pubsub, "t", V1JSONSerializer(), frames, delivered)
    with pytest.raises(ProtocolError):
        pubsub.local_broadcast(Broadcast("t", "ev", b"binary needs V2"))
    assert (frames, delivered) == ([], [])


def test_unsubscribe_removes_the_topic_when_empty():
    """Unsubscribing the last subscriber forgets the topic; a second unsubscribe is a no-op."""
    pubsub = PubSub()
    sub = pubsub.subscribe(Subscription("t", object(), lambda b: None))
    pubsub.unsubscribe(sub)
    pubsub.unsubscribe(sub)
    assert (pubsub.subscribers("t"), list(pubsub.topics())) == (0, [])


async def test_adapter_sees_every_broadcast_and_peers_deliver_locally():
    """The adapter seam: a broadcast reaches the adapter; a peer's local_broadcast delivers."""
    class Forward:
        def attach(self, pubsub):
            self.pubsub = pubsub

        async def broadcast(self, message):
            peer.local_broadcast(message)  # a one-peer "cluster"

    peer, got = PubSub(), []
    peer.subscribe(Subscription("t", object(), got.append))
    node = PubSub(adapter=Forward())
    await node.broadcast("t", "ev", {"n": 1})
    assert got == [Broadcast("t", "ev", {"n": 1})]


async def test_mailbox_put_waits_at_maxsize_and_resumes_after_get():
    """put blocks while the mailbox is full and continues once an item is taken."""
    box = Mailbox(2)
    await box.put(1)
    await box.put(2)
    third = asyncio.create_task(box.put(3))
    await asyncio.sleep(0)  # give the task a chance to run: it must stay blocked
    assert not third.done()
    assert await box.get() == 1
    async with asyncio.timeout(1):
        await third
    assert [await box.get(), await box.get()] == [2, 3]


async def test_mailbox_interrupt_jumps_the_queue():
    """An interrupt is returned before older items."""
    box = Mailbox(10)
    await box.put("a")
    box.interrupt("stop")
    assert [await box.get(), await box.get()] == ["stop", "a"]


async def test_mailbox_close_releases_a_waiting_writer_and_refuses_items():
    """Closing drops items, wakes blocked writers and refuses later ones."""
    box = Mailbox(1)
    await box.put(1)
    blocked = asyncio.create_task(box.put(2))
    await asyncio.sleep(0)
    box.close()
    async with asyncio.timeout(1):
        await blocked
    assert (len(box), box.put_nowait(3)) == (0, False)


def test_mailbox_put_nowait_has_a_hard_cap():
    """Internal deliveries are refused past ten times maxsize."""
    box = Mailbox(1)
    assert all(box.put_nowait(n) for n in range(10))
    assert box.put_nowait(10) is False


@pytest.mark.parametrize("raw", ['["1","r","t","ev"]', "nope", b"\x01", "[]"])
def test_every_undecodable_frame_closes_with_1011_as_phoenix_crashes(raw):
    """Whatever the frame, Phoenix's socket process crashes and Bandit closes with 1011."""
    result = answer(raw, ProtocolError("bad"))
    assert result == CloseWith(CloseCode.INTERNAL_ERROR, result.why)
    assert "bad" in result.why  # the reason is kept for the log


def test_routes_match_wildcards_and_exact_topics_first_match_wins():
    """A trailing * matches any suffix, other patterns match exactly, in order."""
    class A(Channel):
        pass

    class B(Channel):
        pass

    routes = {"room:lobby": A, "room:*": B, "*": A}
    assert match_route(routes, "room:lobby") is A
    assert match_route(routes, "room:1") is B
    assert match_route(routes, "anything") is A
    assert match_route({"room:*": B}, "roo") is None


def test_stop_reasons_and_reply_helper():
    """normal/shutdown/("shutdown", x) are quiet stops; a tuple reply becomes ReplyResult."""
    assert all(map(is_normal_stop, ["normal", "shutdown", ("shutdown", "left")]))
    assert not any(map(is_normal_stop, ["boom", ("error", "x"), ("shutdown", 1, 2)]))
    assert stop("normal", reply=("ok", None)).reply == ReplyResult("ok", {})
