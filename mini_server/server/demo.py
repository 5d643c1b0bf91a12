"""The demo channels the chapters and ``python -m mini_server`` serve.

Theory of operation
-------------------
``RoomChannel`` ("room:*") is the chat room of the Phoenix guides, kept tiny so every frame
it produces can be predicted by a learner:

* join: ok ``{}``; a join payload ``{"reject": true}`` is refused with
  ``{"reason": "unauthorized"}`` (chapter 04 uses it to show join retries);
* ``new_msg {"body": X}``: broadcast ``new_msg {"body": X}`` to every subscriber of the topic
  (the sender included), then reply ok ``{}``: the sender sees the broadcast first;
* ``ping P``: reply ok ``P``.

Anything else crashes the channel, as an unhandled event does in Phoenix, so a learner can
watch ``phx_error`` and the client's rejoin.  Topics without a route get "unmatched topic"
from the transport.
"""

from __future__ import annotations

from typing import Any

from mini_server.server.channel import Channel, JoinError, JoinOk, ReplyResult, error, ok, reply


class RoomChannel(Channel):
    """A chat room: join, new_msg broadcast, ping echo."""

    async def join(self, topic: str, payload: Any) -> JoinOk | JoinError:
        """Accept everyone except a join that asks to be rejected."""
        if isinstance(payload, dict) and payload.get("reject") is True:
            return error({"reason": "unauthorized"})
        return ok()

    async def handle_in(self, event: str, payload: Any) -> ReplyResult:
        """new_msg broadcasts its body; ping echoes its payload."""
        if event == "new_msg":
            body = payload.get("body") if isinstance(payload, dict) else None
            await self.broadcast("new_msg", {"body": body})
            return reply("ok", {})
        if event == "ping":
            return reply("ok", payload)
        raise ValueError(f"room channel has no handler for event {event!r}")


DEMO_ROUTES: dict[str, type[Channel]] = {"room:*": RoomChannel}
