"""``history:*``: a channel that catches a returning client up from the database, then goes live.

Theory of operation
-------------------
The client joins with ``{"last_seen_id": N}`` (phoenix.js: a params *function*, so every
rejoin sends the newest id the client has seen, not the one it had at the first join).  The
channel must send every stored message with an id above N, in order, **before** any live one,
and none twice.  Phoenix's building blocks give exactly that, in this order:

1. ``join`` validates N, remembers it as ``assigns["last_pushed"]`` and queues ``("replay",)``
   with ``send_info`` (Phoenix: ``send(self(), :after_join)``).  It does not query yet: the
   channel only subscribes to the topic *after* ``join`` returns, and a message stored between
   a query in ``join`` and the subscription would be missed by both.
2. The server subscribes, sends the join reply, then serves the mailbox: ``("replay",)`` is
   first in it.  Live ``new_msg`` broadcasts are **intercepted** (``intercept``), so instead of
   taking the fastlane straight to the socket they queue in the same mailbox, behind the replay.
3. ``replay`` reads ``history.since(topic, N)`` (now subscribed: nothing can fall in between)
   and pushes each message, marked ``"replayed": true``, advancing ``last_pushed``.
4. ``handle_out`` pushes a live message only if its id is above ``last_pushed``: a message
   stored after the subscription but before the query arrives twice (replay and live) and is
   sent once.

Stored ids increase in the order messages are broadcast on one node (store and local dispatch
run without an await in between), so "id above last_pushed" is a complete dedupe here; across
nodes a message may overtake another and a production app would track a set or a window.

Events (``handle_in``):

* ``post {"body": X, "client_id": C}``: store X (idempotently when C is given: a retry of a
  message whose reply was lost is recognised by the UNIQUE client id and not stored or
  broadcast again), broadcast ``new_msg {"id", "body"}`` only when it was new, reply ok
  ``{"id": id, "duplicate": bool}``.  Without ``"body"``: reply error ``{"reason": ...}``.
* ``incr``: add one to a counter kept twice, in ``assigns["count"]`` (channel memory) and in
  the database (``history.increment(topic)``); reply ok ``{"assigns": a, "database": d}``.
* ``counts``: the same reply without incrementing.
* anything else: no clause, the channel crashes (as in Phoenix).

A channel class is bound to one :class:`~mini_server.server.history.History` by
:func:`history_channel`; :func:`history_routes` adds it to the demo routes as ``history:*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mini_server.redaction import redact
from mini_server.server.channel import (
    Channel,
    JoinError,
    JoinOk,
    NoReply,
    ReplyResult,
    error,
    noreply,
    ok,
    reply,
)
from mini_server.server.demo import DEMO_ROUTES
from mini_server.server.history import History, Stored
from mini_server.server.log_lines import Clip

NEW_MSG = "new_msg"
TOPIC_PATTERN = "history:*"


def _last_seen(payload: Any) -> int | None:
    """The join's last_seen_id: missing or null is 0 (send everything); None if invalid."""
    value = payload.get("last_seen_id") if isinstance(payload, dict) else None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


class HistoryChannel(Channel):
    """Replays stored messages above ``last_seen_id``, then live ones; idempotent ``post``."""

    intercept = (NEW_MSG,)
    history: ClassVar[History]

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """Accept a valid ``last_seen_id`` and queue the replay for right after the reply."""
        last_seen = _last_seen(payload)
        if last_seen is None:
            return error({"reason": "last_seen_id must be a non-negative integer or null"})
        self.assigns["last_pushed"] = last_seen
        self.assigns["count"] = 0
        self.send_info(("replay",))
        return ok({"last_seen_id": last_seen})

    async def handle_info(self, msg: Any) -> NoReply:
        """The replay queued by ``join``."""
        if msg == ("replay",):
            await self.replay()
        return noreply()

    async def replay(self) -> None:
        """Push every stored message above ``last_pushed``, oldest first."""
        for stored in self.history.since(self.topic, self.assigns["last_pushed"]):
            await self.push(NEW_MSG, {**stored.payload(), "replayed": True})
            self.assigns["last_pushed"] = stored.id

    async def handle_out(self, event: str, payload: Any) -> NoReply:
        """Push a live message unless the replay already sent it."""
        if payload["id"] > self.assigns["last_pushed"]:
            await self.push(event, payload)
            self.assigns["last_pushed"] = payload["id"]
        return noreply()

    async def handle_in(self, event: str, payload: Any) -> ReplyResult:
        """post (idempotent by client_id), incr and counts; anything else crashes."""
        if event == "post":
            if not isinstance(payload, dict) or "body" not in payload:
                return reply("error", {"reason": "post needs a body: {'body': ...}"})
            stored = self.history.append(self.topic, payload["body"], payload.get("client_id"))
            if stored.inserted:
                await self.broadcast(NEW_MSG, stored.payload())
            return reply("ok", {"id": stored.id, "duplicate": not stored.inserted})
        if event in ("incr", "counts"):
            if event == "incr":
                self.assigns["count"] += 1
                self.history.increment(self.topic)
            return reply(
                "ok",
                {"assigns": self.assigns["count"], "database": self.history.counter(self.topic)},
            )
        raise ValueError(f"history channel has no clause for {Clip(event)!r} "
                         f"with {Clip(redact(payload))!r}")


def history_channel(history: History) -> type[HistoryChannel]:
    """A HistoryChannel class that stores in ``history``."""
    return type("BoundHistoryChannel", (HistoryChannel,), {"history": history})


def history_routes(
    history: History, base: Mapping[str, type[Channel]] = DEMO_ROUTES
) -> dict[str, type[Channel]]:
    """``base`` (the demo routes) plus ``history:*`` bound to ``history``."""
    return {**base, TOPIC_PATTERN: history_channel(history)}


async def publish(endpoint: Any, history: History, topic: str, body: Any) -> Stored:
    """Server-side message: store it, then broadcast it live (``Endpoint.broadcast``)."""
    stored = history.append(topic, body)
    await endpoint.broadcast(topic, NEW_MSG, stored.payload())
    return stored
