"""Phoenix.ChannelTest's vocabulary for pytest: connect, join, push, then assert what came back.

Theory of operation
-------------------
``connect(target, params)`` opens a test socket and returns it, or ``None`` when the socket's
``connect`` hook refuses (Phoenix's ``:error``; the endpoint logs the refusal either way):

* **in process** when ``target`` is an :class:`~mini_server.server.Endpoint` (it need not be
  started): no websocket, no port.  As Phoenix.ChannelTest stands in for the transport
  process, :class:`TestTransport` stands in for the websocket: it *is* a
  :class:`~mini_server.server.transport.Transport`, so every message goes through the real
  routing (``Transport.receive_message``), channel processes, mailboxes and PubSub; only the
  bytes are skipped.  Each payload still makes the JSON round trip the wire would impose
  (tuples become lists, keys strings), so the channel sees what a client could send.
* **over a real socket** when ``target`` is a URL (or has ``.url``: a server handle, a chaos
  proxy): the same methods on a :class:`~mini_server.testing.RawClient`, for end-to-end tests.

``socket.subscribe_and_join(topic, payload)`` subscribes the test to the topic (in process)
and joins; it returns :class:`JoinResult` ``(status, reply, channel)``, Phoenix's
``{:ok, reply, socket}`` / ``{:error, reply}`` (``channel`` is None on an error).  On the
channel: ``push`` returns the ref for ``assert_reply``; ``leave`` is a push of
``phx_leave``; ``close`` ends the channel as a closed socket would (``terminate`` sees
``("shutdown", "closed")``); ``broadcast_from`` (in process) triggers ``handle_out``.

Assertions read an :class:`Inbox`, which works like an Elixir process mailbox: every frame the
server sends the test socket lands there (and, in process, every PubSub broadcast on a
subscribed topic); ``assert_*`` takes out the first item that matches, leaving the others
for later assertions, and waits up to ``timeout`` for one to arrive; ``refute_*`` waits the
whole ``timeout`` and fails if a match arrives.  Defaults are ExUnit's: 100 ms both
(``assert_receive_timeout``, ``refute_receive_timeout``); over a real socket an assert waits up
to 3 s, since a shared machine is slower than a mailbox.  A failing assertion names what
arrived instead (the unread items), so the test output shows the mistake.

Patterns follow Elixir's: :data:`ANY` is ``_``; a dict matches a dict holding *at least* its
keys (``{"n": ANY}``); lists and tuples match element by element; a function is a guard
(``lambda p: p["n"] > 0``); anything else compares with ``==``.

Differences a reader of Phoenix's docs should know: channel assertions look only at their
channel's topic (Phoenix's mailbox holds every channel's messages); a crash does not kill the
test (there are no links) but arrives as ``phx_error``, which ``assert_push`` can match;
over a real socket ``assert_broadcast`` means a fastlane frame (join_ref and ref null), the
only trace of a broadcast a client can see, and ``broadcast_from`` is not available.

Time: run an in-process test on the fake clock (:func:`mini_server.fake_clock.run_virtual`,
:func:`mini_server.testing.run_with_fake_clock`) and every timeout, ``send_after`` and
``advance`` is exact and instantaneous.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from websockets.exceptions import InvalidStatus

from mini_server.protocol import (
    PHX_JOIN,
    PHX_LEAVE,
    PHX_REPLY,
    Broadcast,
    Message,
    Reply,
    V2JSONSerializer,
)
from mini_server.server.channel import Channel
from mini_server.server.endpoint import Endpoint
from mini_server.server.pubsub import Subscription
from mini_server.server.states import ConnectionState
from mini_server.server.transport import Transport

__all__ = [
    "ANY",
    "ASSERT_TIMEOUT",
    "REFUTE_TIMEOUT",
    "ChannelSocket",
    "Closed",
    "InProcessSocket",
    "Inbox",
    "JoinResult",
    "TestSocket",
    "WireSocket",
    "connect",
    "matches",
]

ASSERT_TIMEOUT = 0.1  # ExUnit's :assert_receive_timeout default, 100 ms
REFUTE_TIMEOUT = 0.1  # ExUnit's :refute_receive_timeout default, 100 ms
WIRE_ASSERT_TIMEOUT = 3.0  # over a real socket: loopback on a busy machine, not a mailbox
CLOSE_TIMEOUT = 5.0  # Phoenix.ChannelTest.close/2's default, 5000 ms

_WIRE = V2JSONSerializer()


# --- patterns -----------------------------------------------------------------------


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()  # Elixir's _: matches anything


def matches(pattern: Any, value: Any) -> bool:
    """Does ``value`` match ``pattern``, read as an Elixir pattern (see the module docstring)?"""
    if pattern is ANY:
        return True
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(sub, value[key]) for key, sub in pattern.items())
    if isinstance(pattern, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(pattern)
                and all(matches(p, v) for p, v in zip(pattern, value, strict=True)))
    if callable(pattern) and not isinstance(pattern, type):
        try:
            return bool(pattern(value))
        except (KeyError, IndexError, TypeError, ValueError):  # a guard that does not apply
            return False
    return pattern == value


# --- the inbox ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection closed (over a real socket): nothing more will arrive."""

    code: int | None


Item = Message | Broadcast | Closed


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(item: Item) -> str:
    """One line for a failure message: what kind of item, its event and payload, its topic."""
    if isinstance(item, Closed):
        return f"the connection closed (code {item.code})"
    if isinstance(item, Broadcast):
        return f"broadcast {item.event!r} {_short(item.payload)} on {item.topic}"
    if item.event == PHX_REPLY and isinstance(item.payload, dict):
        return (f"reply to ref {item.ref} {item.payload.get('status')!r} "
                f"{_short(item.payload.get('response'))} on {item.topic}")
    return f"push {item.event!r} {_short(item.payload)} on {item.topic}"


class Inbox:
    """What a test socket received, read like an Elixir mailbox: matches are taken out.

    Items arrive by ``put`` (in process) or by awaiting ``pull`` (a websocket reader).
    ``seen`` keeps every item in arrival order; ``unread`` those no assertion took yet.
    """

    def __init__(self, pull: Callable[[], Awaitable[Item]] | None = None) -> None:
        self.seen: list[Item] = []
        self.unread: list[Item] = []
        self._pull = pull
        self._arrived = asyncio.Event()
        self.closed = False

    def put(self, item: Item) -> None:
        """A new item, readable by the next ``take``."""
        self.seen.append(item)
        self.unread.append(item)
        self.closed = self.closed or isinstance(item, Closed)
        self._arrived.set()

    async def take(self, predicate: Callable[[Item], bool],
                   timeout: float) -> Item | None:  # noqa: ASYNC109
        """The first unread item matching ``predicate``, taken out; None after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for item in self.unread:
                if predicate(item):
                    self.unread.remove(item)
                    return item
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await self._next()
            except TimeoutError:
                pass  # look once more, then give up

    async def _next(self) -> None:
        if self._pull is not None:
            self.put(await self._pull())
            return
        self._arrived.clear()
        await self._arrived.wait()

    def unread_text(self, limit: int = 8) -> str:
        """The unread items, for a failure message ("nothing" when there are none)."""
        if not self.unread:
            return "nothing"
        lines = [describe(item) for item in self.unread[:limit]]
        if len(self.unread) > limit:
            lines.append(f"... and {len(self.unread) - limit} more")
        return "; ".join(lines)


# --- joined channels ------------------------------------------------------------------


class JoinResult(NamedTuple):
    """Phoenix's ``{:ok, reply, socket}`` or ``{:error, reply}``, as one shape."""

    status: str
    reply: Any
    channel: ChannelSocket | None


class ChannelSocket:
    """One joined channel as a test drives it: push, leave, close and the assertions."""

    def __init__(self, socket: TestSocket, topic: str, join_ref: str) -> None:
        self.socket, self.topic, self.join_ref = socket, topic, join_ref

    def __repr__(self) -> str:
        return f"<ChannelSocket {self.topic} join_ref {self.join_ref}>"

    @property
    def assigns(self) -> dict[str, Any]:
        """The channel process's assigns now (in process only)."""
        return self.socket.channel_assigns(self)

    async def push(self, event: str, payload: Any = None) -> str:
        """Send ``event`` to the channel (its ``handle_in``); returns the ref for assert_reply."""
        ref = self.socket.make_ref()
        await self.socket.send(Message(self.topic, event, {} if payload is None else payload,
                                       ref, self.join_ref))
        return ref

    async def leave(self) -> str:
        """Leave as a client does (``phx_leave``); returns the ref: its reply is ok."""
        return await self.push(PHX_LEAVE)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:  # noqa: ASYNC109
        """End the channel as a closed socket would; returns once it has terminated."""
        await self.socket.close_channel(self, timeout)

    async def broadcast_from(self, event: str, payload: Any) -> None:
        """Broadcast on this topic from the test (in process): the channel's handle_out runs."""
        await self.socket.broadcast_from(self, event, payload)

    # --- assertions ---------------------------------------------------------------------

    def _reply_to(self, ref: str, status: Any, payload: Any) -> Callable[[Item], bool]:
        return lambda m: (isinstance(m, Message) and m.event == PHX_REPLY and m.ref == ref
                          and m.topic == self.topic and isinstance(m.payload, dict)
                          and matches(status, m.payload.get("status"))
                          and matches(payload, m.payload.get("response")))

    def _push(self, event: str, payload: Any) -> Callable[[Item], bool]:
        return lambda m: (isinstance(m, Message) and m.topic == self.topic
                          and m.event == event and m.event != PHX_REPLY
                          and matches(payload, m.payload))

    async def _assert(self, predicate: Callable[[Item], bool], what: str,
                      timeout: float | None) -> Item:  # noqa: ASYNC109
        wait = self.socket.assert_timeout if timeout is None else timeout
        item = await self.socket.inbox.take(predicate, wait)
        if item is None:
            raise AssertionError(f"expected {what} within {wait:g} s; arrived instead: "
                                 f"{self.socket.inbox.unread_text()}")
        return item

    async def _refute(self, predicate: Callable[[Item], bool], what: str,
                      timeout: float | None) -> None:  # noqa: ASYNC109
        wait = self.socket.refute_timeout if timeout is None else timeout
        item = await self.socket.inbox.take(predicate, wait)
        if item is not None:
            raise AssertionError(f"expected no {what} within {wait:g} s, but got "
                                 f"{describe(item)}")

    async def assert_reply(self, ref: str, status: Any, payload: Any = ANY,
                           timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The reply to ``ref`` matches ``status`` and ``payload``; returns its response."""
        item = await self._assert(self._reply_to(ref, status, payload),
                                  f"a reply to ref {ref} {status!r} {payload!r} on "
                                  f"{self.topic}", timeout)
        return item.payload["response"]  # type: ignore[union-attr]

    async def refute_reply(self, ref: str, status: Any = ANY, payload: Any = ANY,
                           timeout: float | None = None) -> None:  # noqa: ASYNC109
        """No matching reply to ``ref`` arrives within ``timeout``."""
        await self._refute(self._reply_to(ref, status, payload),
                           f"reply to ref {ref} {status!r} {payload!r}", timeout)

    async def assert_push(self, event: str, payload: Any = ANY,
                          timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The channel pushed ``event`` matching ``payload`` to the client; returns the payload."""
        item = await self._assert(self._push(event, payload),
                                  f"a push {event!r} {payload!r} on {self.topic}", timeout)
        return item.payload  # type: ignore[union-attr]

    async def refute_push(self, event: str, payload: Any = ANY,
                          timeout: float | None = None) -> None:  # noqa: ASYNC109
        """No push of ``event`` matching ``payload`` arrives within ``timeout``."""
        await self._refute(self._push(event, payload),
                           f"push {event!r} {payload!r} on {self.topic}", timeout)

    async def assert_broadcast(self, event: str, payload: Any = ANY,
                               timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """``event`` matching ``payload`` was broadcast on this topic; returns the payload."""
        item = await self._assert(self.socket.broadcast_predicate(self.topic, event, payload),
                                  f"a broadcast {event!r} {payload!r} on {self.topic}", timeout)
        return item.payload  # type: ignore[union-attr]

    async def refute_broadcast(self, event: str, payload: Any = ANY,
                               timeout: float | None = None) -> None:  # noqa: ASYNC109
        """No broadcast of ``event`` matching ``payload`` within ``timeout``."""
        await self._refute(self.socket.broadcast_predicate(self.topic, event, payload),
                           f"broadcast {event!r} {payload!r} on {self.topic}", timeout)


# --- test sockets ---------------------------------------------------------------------


class TestSocket:
    """What ``connect`` returns: join channels on it; in process or over a real socket."""

    __test__ = False  # not a pytest test class, whatever its name
    assert_timeout = ASSERT_TIMEOUT
    refute_timeout = REFUTE_TIMEOUT

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self._ref = 0

    def make_ref(self) -> str:
        """The next ref, as a string (phoenix.js counts the same way)."""
        self._ref += 1
        return str(self._ref)

    async def join(self, topic: str, payload: Any = None, *,
                   channel: type[Channel] | None = None) -> JoinResult:
        """Join ``topic`` (with ``channel`` instead of the routed one, in process)."""
        ref = self.make_ref()
        await self.send(Message(topic, PHX_JOIN, {} if payload is None else payload, ref, ref),
                        channel)
        item = await self.inbox.take(
            lambda m: isinstance(m, Message) and m.event == PHX_REPLY and m.ref == ref,
            self.assert_timeout)
        if item is None:
            raise AssertionError(f"no reply to the join of {topic} (ref {ref}); arrived "
                                 f"instead: {self.inbox.unread_text()}")
        status, reply = item.payload["status"], item.payload["response"]  # type: ignore[union-attr]
        return JoinResult(status, reply,
                          ChannelSocket(self, topic, ref) if status == "ok" else None)

    async def subscribe_and_join(self, topic: str, payload: Any = None, *,
                                 channel: type[Channel] | None = None) -> JoinResult:
        """Subscribe the test to ``topic`` (for assert_broadcast), then join it."""
        self.subscribe(topic)
        return await self.join(topic, payload, channel=channel)

    async def __aenter__(self) -> TestSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what each kind of socket provides ------------------------------------------------

    async def send(self, msg: Message, channel: type[Channel] | None = None) -> None:
        """Deliver one client message to the server."""
        raise NotImplementedError

    def subscribe(self, topic: str) -> None:
        """Listen to PubSub on ``topic`` (a no-op over a real socket)."""

    def broadcast_predicate(self, topic: str, event: str, payload: Any) -> Callable[[Item], bool]:
        """What counts as a broadcast of ``event`` on ``topic`` for this socket."""
        raise NotImplementedError

    def channel_assigns(self, chan: ChannelSocket) -> dict[str, Any]:
        """The assigns of ``chan``'s channel process."""
        raise TypeError("a client cannot see a channel's assigns over a real socket: ask the "
                        "channel (a reply) or read the server's snapshot()")

    async def close_channel(self, chan: ChannelSocket, timeout: float) -> None:  # noqa: ASYNC109
        """End ``chan`` as a closed socket would."""
        raise NotImplementedError

    async def broadcast_from(self, chan: ChannelSocket, event: str, payload: Any) -> None:
        """Broadcast from the test on ``chan``'s topic."""
        raise TypeError("broadcast_from needs the server's PubSub: test in process, or call "
                        "endpoint.broadcast(...) on the server")

    async def close(self) -> None:
        """Close the socket: every channel on it ends as on a closed connection."""
        raise NotImplementedError


class _InProcessSerializer:
    """The wire without the bytes: each frame is the Message a V2 client would decode."""

    vsn = "test"

    def decode(self, raw: Any) -> Message:
        return raw  # the test hands over Message objects already round-tripped

    def encode(self, msg: Message | Reply) -> Message:
        return _WIRE.decode_client(_WIRE.encode(msg))

    def fastlane(self, broadcast: Broadcast) -> Message:
        return _WIRE.decode_client(_WIRE.fastlane(broadcast))


class TestTransport(Transport):
    """A Transport without a websocket: frames go into the test's inbox instead of a queue."""

    __test__ = False

    def __init__(self, endpoint: Endpoint, inbox: Inbox, params: dict[str, Any],
                 assigns: dict[str, Any], socket_id: str | None) -> None:
        super().__init__(endpoint, None, _InProcessSerializer(),  # type: ignore[arg-type]
                         params, assigns, socket_id)
        self.inbox = inbox

    def send_frame(self, frame: Any) -> None:
        """What the writer would send: into the inbox while the connection is open."""
        if self.state is ConnectionState.OPEN:
            self.inbox.put(frame)

    async def shut(self) -> None:
        """The connection ended: stop every channel as the reader's exit does."""
        if self.state is ConnectionState.OPEN:
            self.lifecycle.fire("ended")
            await self._stop_channels()


class InProcessSocket(TestSocket):
    """A test socket on an Endpoint's routing, channels and PubSub, without a websocket."""

    def __init__(self, endpoint: Endpoint, params: dict[str, Any], assigns: dict[str, Any],
                 socket_id: str | None) -> None:
        super().__init__(Inbox())
        self.endpoint = endpoint
        self.transport = TestTransport(endpoint, self.inbox, params, assigns, socket_id)
        self.subscriptions: list[Subscription] = []

    def __repr__(self) -> str:
        return f"<InProcessSocket id={self.socket_id!r} channels={list(self.transport.channels)}>"

    @property
    def assigns(self) -> dict[str, Any]:
        """What ``connect`` assigned (each channel gets a copy at join)."""
        return self.transport.assigns

    @property
    def socket_id(self) -> str | None:
        """The socket id the endpoint's ``socket_id`` hook gave it."""
        return self.transport.socket_id

    async def send(self, msg: Message, channel: type[Channel] | None = None) -> None:
        """Through the JSON round trip, then the transport's routing, as a frame would go."""
        await self.transport.receive_message(_WIRE.decode(_WIRE.encode_client(msg)), channel)

    def subscribe(self, topic: str) -> None:
        """Phoenix's ``@endpoint.subscribe(topic)``: Broadcasts land in the inbox."""
        self.subscriptions.append(self.endpoint.pubsub.subscribe(
            Subscription(topic, self, self.inbox.put)))

    def broadcast_predicate(self, topic: str, event: str, payload: Any) -> Callable[[Item], bool]:
        """A PubSub Broadcast on the topic (whatever the channels then push)."""
        return lambda b: (isinstance(b, Broadcast) and b.topic == topic and b.event == event
                          and matches(payload, b.payload))

    def channel_assigns(self, chan: ChannelSocket) -> dict[str, Any]:
        """The live assigns of the channel process now serving ``chan``'s topic."""
        server = self.transport.channels.get(chan.topic)
        if server is None or server.join_ref != chan.join_ref:
            raise LookupError(f"{chan.topic} (join_ref {chan.join_ref}) is not joined any more")
        return server.channel.assigns

    async def close_channel(self, chan: ChannelSocket, timeout: float) -> None:  # noqa: ASYNC109
        """Phoenix's ``close/2``: terminate(("shutdown", "closed")), then it is gone."""
        server = self.transport.channels.get(chan.topic)
        if server is None or server.join_ref != chan.join_ref:
            return
        del self.transport.channels[chan.topic]
        async with asyncio.timeout(timeout):
            await server.shutdown(("shutdown", "closed"))

    async def broadcast_from(self, chan: ChannelSocket, event: str, payload: Any) -> None:
        """To every subscriber of the topic but the test itself (Phoenix's broadcast_from)."""
        await self.endpoint.pubsub.broadcast(chan.topic, event, payload, from_owner=self)

    async def close(self) -> None:
        """Stop every channel (terminate sees ("shutdown", "closed")) and unsubscribe."""
        await self.transport.shut()
        for sub in self.subscriptions:
            self.endpoint.pubsub.unsubscribe(sub)
        self.subscriptions.clear()


class WireSocket(TestSocket):
    """The same vocabulary over a real websocket (a RawClient) for end-to-end tests."""

    assert_timeout = WIRE_ASSERT_TIMEOUT

    def __init__(self, client: Any) -> None:
        super().__init__(client.inbox)
        self.client = client

    def __repr__(self) -> str:
        return f"<WireSocket {self.client.ws.id}>"

    def make_ref(self) -> str:
        """Refs shared with the RawClient, so raw sends never reuse one."""
        return self.client.make_ref()

    async def send(self, msg: Message, channel: type[Channel] | None = None) -> None:
        """One V2 frame on the websocket."""
        if channel is not None:
            raise TypeError("over a real socket the server's routes choose the channel")
        await self.client.send(msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload)

    def broadcast_predicate(self, topic: str, event: str, payload: Any) -> Callable[[Item], bool]:
        """A fastlane frame: join_ref and ref null (what a client sees of a broadcast)."""
        return lambda m: (isinstance(m, Message) and m.topic == topic and m.event == event
                          and m.join_ref is None and m.ref is None
                          and matches(payload, m.payload))

    async def close_channel(self, chan: ChannelSocket, timeout: float) -> None:  # noqa: ASYNC109
        """A client can only close its whole socket: every channel on it ends."""
        async with asyncio.timeout(timeout):
            await self.close()

    async def close(self) -> None:
        """Close the websocket."""
        await self.client.close()


async def connect(target: Endpoint | str | Any, params: dict[str, Any] | None = None,
                  connect_info: dict[str, Any] | None = None) -> TestSocket | None:
    """A test socket after the endpoint's ``connect`` hook accepted ``params``, else None.

    ``target`` is an Endpoint (in process, no websocket) or a URL / anything with ``.url``
    (a real websocket: the handshake's 403 becomes None).
    """
    params = dict(params or {})
    if isinstance(target, Endpoint):
        accepted = await target.authorize(params, dict(connect_info or {}))
        if accepted is None:
            return None
        assigns, socket_id = accepted
        return InProcessSocket(target, params, assigns, socket_id)
    from mini_server.testing import RawClient  # testing imports this module

    try:
        client = await RawClient.connect(target if isinstance(target, str) else target.url,
                                         params)
    except InvalidStatus as exc:
        if exc.response.status_code == 403:  # what Phoenix answers a refused connect
            return None
        raise
    return WireSocket(client)
