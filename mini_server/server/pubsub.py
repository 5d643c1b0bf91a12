"""Local publish/subscribe with Phoenix's fastlane, and a seam for multi-node delivery.

Theory of operation
-------------------
A :class:`PubSub` maps a topic to its :class:`Subscription` list (duplicates allowed:
subscribing twice delivers twice, as in Phoenix.PubSub's Registry).  ``broadcast`` first
dispatches to local subscribers, then hands the message to the adapter for other nodes.

Delivery follows Phoenix's fastlane rule.  A channel subscribes with its connection's
serializer, a ``send_frame`` callable that appends to the connection's outgoing queue, and
its ``intercept`` list:

* an event the channel does **not** intercept is encoded **once per serializer** (join_ref
  and ref null) and the same frame is handed to every such subscriber's ``send_frame``: no
  channel task runs, the frame goes straight to the transport;
* an intercepted event goes to the subscriber's ``deliver`` (the channel mailbox), so that
  channel's ``handle_out`` decides, in its own task, whether and what to push.

A subscription without a serializer (the socket id topic, a test) always gets ``deliver``.
Dispatch is synchronous and never awaits: a broadcast made inside ``handle_in`` has put its
frames on every transport queue, the sender's included, before that callback's reply is
queued, which is Phoenix's ordering.  Delivery is at-most-once: nothing is stored for a
subscriber that is gone.

The adapter seam: :class:`PubSubAdapter` receives every broadcast after local dispatch
(``LocalAdapter`` does nothing).  A multi-node adapter forwards it to its peers, and each
peer calls :meth:`PubSub.local_broadcast` on its side, which is how Phoenix.PubSub.PG2 works;
``pubsub_redis.RedisAdapter`` does it through Valkey/Redis as Phoenix.PubSub.Redis does.
(Phoenix calls the adapter first and dispatches locally after; local-first here keeps
dispatch synchronous, and local subscribers get a broadcast even when the adapter fails.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mini_server.protocol import Broadcast, Frame, Payload, Serializer
from mini_server.server.log_lines import server_logger

log = server_logger(__name__)


@dataclass(eq=False, slots=True)
class Subscription:
    """One subscriber of one topic; ``owner`` identifies it for broadcast_from."""

    topic: str
    owner: object
    deliver: Callable[[Broadcast], None]
    serializer: Serializer | None = None
    send_frame: Callable[[Frame], None] | None = None
    intercept: frozenset[str] = field(default_factory=frozenset)


class PubSubAdapter(Protocol):
    """Carries broadcasts to other nodes; a peer calls ``pubsub.local_broadcast``."""

    def attach(self, pubsub: PubSub) -> None: ...
    async def broadcast(self, broadcast: Broadcast) -> None: ...


class LocalAdapter:
    """A single node: nothing to forward."""

    def attach(self, pubsub: PubSub) -> None:
        """Nothing to wire up on one node."""

    async def broadcast(self, broadcast: Broadcast) -> None:
        """No other nodes to reach."""

    def describe(self) -> dict[str, Any]:
        """What snapshot() shows for a single node."""
        return {"adapter": "local"}


class PubSub:
    """Topic -> subscriptions, with encode-once fastlane delivery."""

    def __init__(self, adapter: PubSubAdapter | None = None) -> None:
        self._topics: dict[str, list[Subscription]] = {}
        self.adapter: PubSubAdapter = adapter or LocalAdapter()
        self.adapter.attach(self)

    def subscribe(self, sub: Subscription) -> Subscription:
        """Add a subscription; returns it for a later unsubscribe."""
        self._topics.setdefault(sub.topic, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove one subscription (a no-op if it is already gone)."""
        subs = self._topics.get(sub.topic)
        if subs is None:
            return
        try:
            subs.remove(sub)
        except ValueError:
            return
        if not subs:
            del self._topics[sub.topic]

    def subscribers(self, topic: str) -> int:
        """How many subscriptions the topic has on this node."""
        return len(self._topics.get(topic, ()))

    def describe(self) -> dict[str, Any]:
        """The adapter's view (node name, connection, counters) for snapshot()."""
        describe = getattr(self.adapter, "describe", None)
        return describe() if callable(describe) else {"adapter": type(self.adapter).__name__}

    def topics(self) -> Iterable[str]:
        """Topics with at least one local subscriber."""
        return list(self._topics)

    async def broadcast(self, topic: str, event: str, payload: Payload,
                        *, from_owner: object = None) -> None:
        """Deliver locally (skipping ``from_owner``), then to other nodes via the adapter."""
        message = Broadcast(topic, event, payload)
        self.local_broadcast(message, from_owner=from_owner)
        await self.adapter.broadcast(message)

    def local_broadcast(self, message: Broadcast, *, from_owner: object = None) -> int:
        """Deliver to this node's subscribers now; returns how many got it."""
        event = message.event
        # One pass decides each subscriber's path and encodes once per serializer before
        # anything is delivered: a payload that cannot be encoded raises here and nobody
        # gets half a broadcast.  (frame None: the subscriber's deliver, i.e. its mailbox.)
        plan: list[tuple[Subscription, Frame | None]] = []
        frames: dict[int, Frame] = {}
        for sub in self._topics.get(message.topic, ()):
            if from_owner is not None and sub.owner is from_owner:
                continue
            serializer = sub.serializer
            if serializer is None or sub.send_frame is None or event in sub.intercept:
                plan.append((sub, None))
                continue
            frame = frames.get(id(serializer))
            if frame is None:
                frame = frames[id(serializer)] = serializer.fastlane(message)
            plan.append((sub, frame))
        for sub, frame in plan:
            try:
                if frame is None:
                    sub.deliver(message)
                else:
                    sub.send_frame(frame)  # type: ignore[misc]
            except Exception:
                # One broken subscriber must not stop delivery to the others.
                log.exception("! pubsub: delivery of %s to %r failed", message.event, sub.owner)
        return len(plan)
