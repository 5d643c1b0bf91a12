"""``dedupe:*``: the book's DedupeChannel, deduplicating outgoing messages per subscriber.

Theory of operation
-------------------
A broadcast normally takes the fastlane: encoded once, written to every subscriber's
connection, no channel code runs.  ``intercept`` changes that for the events it names: each
subscriber's channel process gets the broadcast in its mailbox and its ``handle_out``
decides what, if anything, to push to its own client.  That is as close to the client as the
server gets, so it is where per-subscriber filtering belongs.

This channel intercepts ``number`` and, per subscriber:

1. ``handle_out("number", {"number": n})`` appends n to ``assigns["buffer"]`` and, if no
   flush is pending, schedules one ``window`` seconds later (``send_after``, Phoenix's
   ``Process.send_after(self(), ...)``), noting ``assigns["awaiting"] = True``;
2. ``handle_info`` flushes: each distinct number of the buffer is pushed once, in the order
   it was first seen, then the buffer empties and the next number schedules the next flush.

The buffer lives in this channel's assigns, so two subscribers of the same topic (even two
channels on one socket) hold different buffers and flush on their own clocks: a subscriber
that joined with a shorter ``window`` sees more repeats (one per window), a longer window
fewer.  Every push of an intercepted event carries that subscriber's join_ref, where a
fastlane broadcast carries ``null``.

Join payload: ``{"window": seconds}`` (optional; a positive number up to 60, else the join
is refused).  Events (``handle_in``): ``number {"number": n}`` broadcasts it on the topic
(reply ok ``{}``), ``peek`` replies with this channel's own buffer, pending flag, window and
flush count; anything else crashes the channel.  :func:`unique_in_order` is the flush rule;
:func:`dedupe_routes` adds the channel to the demo routes as ``dedupe:*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

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

NUMBER = "number"
TOPIC_PATTERN = "dedupe:*"
FLUSH = ("flush",)
MAX_WINDOW = 60.0


def unique_in_order(numbers: Iterable[Any]) -> list[Any]:
    """Each distinct value once, in the order it was first seen."""
    return list(dict.fromkeys(numbers))


class DedupeChannel(Channel):
    """Buffers intercepted ``number`` broadcasts and pushes each distinct one once per window."""

    intercept = (NUMBER,)
    window: ClassVar[float] = 1.0  # seconds, the book's 1_000 ms

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """Accept, with this subscriber's own empty buffer and window."""
        window = payload.get("window", self.window) if isinstance(payload, dict) else self.window
        if (isinstance(window, bool) or not isinstance(window, (int, float))
                or not 0 < window <= MAX_WINDOW):
            return error({"reason": f"window must be a number of seconds in (0, {MAX_WINDOW:g}]"})
        self.assigns.update(buffer=[], awaiting=False, window=window, flushes=0)
        return ok({"window": window})

    async def handle_out(self, event: str, payload: Any) -> NoReply:
        """Buffer the number; the first one of a window schedules the flush."""
        self.assigns["buffer"].append(payload["number"])
        if not self.assigns["awaiting"]:
            self.send_after(self.assigns["window"], FLUSH)
            self.assigns["awaiting"] = True
        return noreply()

    async def handle_info(self, msg: Any) -> NoReply:
        """Push each distinct buffered number once, first-seen order, then start afresh."""
        if msg == FLUSH:
            for number in unique_in_order(self.assigns["buffer"]):
                await self.push(NUMBER, {"number": number})
            self.assigns.update(buffer=[], awaiting=False, flushes=self.assigns["flushes"] + 1)
        return noreply()

    async def handle_in(self, event: str, payload: Any) -> ReplyResult:
        """``number`` broadcasts a number on the topic; ``peek`` shows this channel's assigns."""
        if event == NUMBER and isinstance(payload, dict) and "number" in payload:
            await self.broadcast(NUMBER, {"number": payload["number"]})
            return reply("ok", {})
        if event == "peek":
            return reply("ok", {key: self.assigns[key]
                                for key in ("buffer", "awaiting", "window", "flushes")})
        raise ValueError(f"dedupe channel has no clause for {event!r} with {payload!r}")


def dedupe_routes(base: Mapping[str, type[Channel]] = DEMO_ROUTES) -> dict[str, type[Channel]]:
    """``base`` (the demo routes) plus ``dedupe:*``."""
    return {**base, TOPIC_PATTERN: DedupeChannel}
