"""A PubSub adapter over Valkey/Redis PUBLISH/SUBSCRIBE: Phoenix.PubSub.Redis's design in Python.

Theory of operation
-------------------
Every node of a cluster runs one :class:`RedisAdapter` against the same Valkey (or Redis)
server and the same Redis channel, the *namespace* (Phoenix.PubSub.Redis uses
``"phx:" <> adapter name``, one channel for all topics).  The adapter keeps two connections,
as phoenix_pubsub_redis does with a Redix pool and one Redix.PubSub process:

* **publish**: ``PubSub.broadcast`` has already delivered to this node's subscribers; the
  adapter then sends one ``PUBLISH namespace <message>`` so that every other node hears it.
* **subscribe**: a task reads the namespace; each message is decoded and, unless it is
  this node's own, handed to :meth:`PubSub.local_broadcast` (which encodes once per
  serializer, the fastlane).

The message is Phoenix's tuple ``{vsn, mode, node_name, topic, message, dispatcher}``
(``:erlang.term_to_binary``) spelled as JSON: ``[vsn, mode, node, topic, event, kind,
payload]``; ``kind`` says whether ``payload`` is JSON or base64 of a binary payload.
The **node-skip rule** is Phoenix's: Redis delivers a PUBLISH to every subscriber, the
publisher included, so with mode ``"except"`` a node ignores a message naming itself
(it already delivered locally), and with mode ``"only"`` (a direct broadcast) only the
named node delivers.  Node names must therefore be unique; two nodes sharing a name
never see each other's broadcasts.

Failures, as in phoenix_pubsub_redis and Redix:

* A PUBLISH that cannot be sent (Valkey down, partitioned, slower than ``publish_timeout``,
  5 s like Redix's command timeout) is logged and counted in ``publish_failed``; the
  broadcast is lost for the other nodes (Redis pub/sub stores nothing).  Local subscribers
  already have it.  (Phoenix logs a closed connection the same way but returns other
  errors to the caller, whose ``broadcast!`` then raises; here no failure reaches the
  channel.)
* When the subscription connection breaks, the adapter reconnects by itself and subscribes
  again, after ``reconnect_after(tries)`` seconds (Redix's backoff: 0.5 s, times 1.5 per
  failed attempt, at most 30 s).  Whatever was published meanwhile never reaches this
  node: the gap is counted in ``disconnects``, not repaired.  Catch-up from storage
  (chapter 05) or sequence numbers are how an application notices and recovers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mini_server.protocol import Broadcast
from mini_server.server.log_lines import server_logger

if TYPE_CHECKING:
    from mini_server.server.pubsub import PubSub

log = server_logger(__name__)

MESSAGE_VSN = 1  # our own format's version (Phoenix's term format is at @redis_msg_vsn 3)
DEFAULT_NAMESPACE = "phx:mini_server"
PUBLISH_TIMEOUT = 5.0  # seconds; Redix's default command timeout


def redix_backoff(tries: int) -> float:
    """Redix's reconnect schedule: 0.5 s, then x1.5 per failed attempt, capped at 30 s."""
    return min(0.5 * 1.5 ** max(tries - 1, 0), 30.0)


def encode_message(mode: str, node: str, message: Broadcast) -> bytes:
    """One Redis message: ``[vsn, mode, node, topic, event, kind, payload]`` as JSON bytes."""
    payload = message.payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        kind, payload = "binary", base64.b64encode(bytes(payload)).decode("ascii")
    else:
        kind = "json"
    return json.dumps(
        [MESSAGE_VSN, mode, node, message.topic, message.event, kind, payload],
        separators=(",", ":"),
    ).encode()


def decode_message(data: bytes | str) -> tuple[str, str, Broadcast]:
    """``(mode, node, Broadcast)`` from :func:`encode_message`; ValueError if it is not ours."""
    try:
        vsn, mode, node, topic, event, kind, payload = json.loads(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a mini_server pubsub message: {exc}") from None
    if vsn != MESSAGE_VSN or mode not in ("except", "only"):
        raise ValueError(f"unknown message version or mode: {vsn!r}, {mode!r}")
    if kind == "binary":
        payload = base64.b64decode(payload)
    return mode, node, Broadcast(topic, event, payload)


def should_deliver(mode: str, target: str, node_name: str) -> bool:
    """Phoenix's node-skip rule: "except" skips the named node, "only" delivers there alone."""
    return target != node_name if mode == "except" else target == node_name


class RedisAdapter:
    """Carries broadcasts between nodes through one Valkey/Redis channel."""

    def __init__(
        self,
        url: str,
        node_name: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        publish_timeout: float = PUBLISH_TIMEOUT,
        reconnect_after: Callable[[int], float] = redix_backoff,
    ) -> None:
        if not node_name:
            raise ValueError(
                "node_name is required and must be unique in the cluster "
                "(Phoenix.PubSub.Redis raises for an unnamed node too)"
            )
        self.url, self.node_name, self.namespace = url, node_name, namespace
        self.publish_timeout, self.reconnect_after = publish_timeout, reconnect_after
        self.pubsub: PubSub | None = None
        self.connected = False
        self.subscribed = asyncio.Event()  # set while the subscription is live
        self.counts = {
            "published": 0,
            "publish_failed": 0,
            "received": 0,
            "skipped": 0,
            "delivered": 0,
            "undecodable": 0,
            "disconnects": 0,
        }
        self._publisher: Any = None
        self._reader: asyncio.Task | None = None

    # --- PubSubAdapter ----------------------------------------------------------------
    def attach(self, pubsub: PubSub) -> None:
        """Remember which local PubSub receives the other nodes' broadcasts."""
        self.pubsub = pubsub

    async def broadcast(self, broadcast: Broadcast) -> None:
        """PUBLISH to every other node; a failure is logged and counted, never raised."""
        await self._publish(encode_message("except", self.node_name, broadcast))

    async def direct_broadcast(self, node_name: str, broadcast: Broadcast) -> None:
        """PUBLISH for one named node only (Phoenix.PubSub.direct_broadcast)."""
        await self._publish(encode_message("only", node_name, broadcast))

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self, ready_within: float = 10.0) -> RedisAdapter:
        """Connect, subscribe, and wait at most ``ready_within`` s for the subscription."""
        import valkey.asyncio as valkey  # imported here: a single node never needs it

        self._publisher = valkey.Valkey.from_url(
            self.url,
            socket_connect_timeout=self.publish_timeout,
            socket_timeout=self.publish_timeout,
        )
        if self._reader is None:
            self._reader = asyncio.create_task(
                self._subscribe_loop(), name=f"pubsub-redis:{self.node_name}"
            )
        async with asyncio.timeout(ready_within):
            await self.subscribed.wait()
        return self

    async def close(self) -> None:
        """Stop reading and close both connections; idempotent."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await publisher.aclose()
        self.connected = False
        self.subscribed.clear()

    def describe(self) -> dict[str, Any]:
        """Node name, connection state and counters, for snapshot()."""
        return {
            "adapter": "redis",
            "node": self.node_name,
            "namespace": self.namespace,
            "connected": self.connected,
            **self.counts,
        }

    # --- internals -----------------------------------------------------------------------
    async def _publish(self, data: bytes) -> None:
        if self._publisher is None:
            self.counts["publish_failed"] += 1
            log.error("! pubsub %s: not started; broadcast not published", self.node_name)
            return
        try:
            async with asyncio.timeout(self.publish_timeout):
                await self._publisher.publish(self.namespace, data)
        except Exception as exc:  # refused, reset, timed out: valkey's errors share no base
            self.counts["publish_failed"] += 1
            log.error(
                "! pubsub %s: failed to publish broadcast (%s); other nodes miss it",
                self.node_name,
                type(exc).__name__,
            )
            return
        self.counts["published"] += 1

    async def _subscribe_loop(self) -> None:
        """Subscribe, read until the connection breaks, back off, subscribe again."""
        import valkey.asyncio as valkey

        tries = 0
        while True:
            client = valkey.Valkey.from_url(self.url, socket_connect_timeout=5.0)
            channel = client.pubsub()
            try:
                await channel.subscribe(self.namespace)  # sent, not yet confirmed
                async for item in channel.listen():
                    if item.get("type") == "subscribe":  # Valkey's confirmation: now live
                        self.connected, tries = True, 0
                        self.subscribed.set()
                        log.info("= pubsub %s: subscribed to %s", self.node_name, self.namespace)
                    elif item.get("type") == "message":
                        self._on_message(item["data"])
                raise ConnectionError("subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken or refused connection: try again later
                if self.connected:
                    self.counts["disconnects"] += 1
                    log.error(
                        "! pubsub %s: disconnected from Valkey (%s); awaiting reconnection",
                        self.node_name,
                        type(exc).__name__,
                    )
                self.connected = False
                self.subscribed.clear()
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await channel.aclose()
                        await client.aclose()
            tries += 1
            await asyncio.sleep(self.reconnect_after(tries))

    def _on_message(self, data: bytes) -> None:
        self.counts["received"] += 1
        try:
            mode, target, message = decode_message(data)
        except ValueError as exc:
            self.counts["undecodable"] += 1
            log.warning("! pubsub %s: ignored a message (%s)", self.node_name, exc)
            return
        if not should_deliver(mode, target, self.node_name):
            self.counts["skipped"] += 1
            return
        self.counts["delivered"] += 1
        if self.pubsub is not None:
            self.pubsub.local_broadcast(message)
