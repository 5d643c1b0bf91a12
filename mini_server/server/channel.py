"""The Channel base class and its results: what a learner subclasses (Phoenix.Channel).

Theory of operation
-------------------
Subclass :class:`Channel` and override coroutines, each returning a result made by a
helper, exactly as a Phoenix channel returns tuples:

====================  ========================================================
``join``              ``ok()`` / ``ok({...})`` / ``error({...})``
``handle_in``         ``reply(status, payload)`` / ``noreply()`` / ``stop(reason, reply=..)``
``handle_out``        ``noreply()`` / ``stop(reason)``   (only for events in ``intercept``)
``handle_info``       ``noreply()`` / ``stop(reason)``   (messages from ``send_info``)
``terminate``         anything; called with the stop reason
====================  ========================================================

Every joined channel runs in **its own asyncio task with its own mailbox** (see
``channel_server.py``; Phoenix: "a channel is a process"), so callbacks of one channel never
run concurrently and one crashing channel never hurts another.

Stop reasons are ``"normal"``, ``"shutdown"`` or ``("shutdown", detail)`` (client gets
``phx_close``) or anything else (client gets ``phx_error``).  ``terminate`` sees
``("shutdown", "left")`` after a leave, ``("shutdown", "closed")`` when the connection
closed, ``"shutdown"`` after a refused join (Phoenix stops the process that way), the
stop reason otherwise; it is not called after a crash or a duplicate join.

Rules a learner meets (Phoenix's): ``push``/``broadcast`` raise inside ``join`` because the
client has no join reply yet, so call ``self.send_info(...)`` and push from ``handle_info``
(it arrives after the join reply).  ``send_after`` and ``send_interval`` queue a message
for ``handle_info`` later; their timers end with the channel.  ``assigns`` is this channel's
own copy of the socket's assigns.  A binary client push arrives as ``bytes``; a ``bytes``
payload in a reply, push or broadcast goes out as a V2 binary frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mini_server.protocol import Payload

if TYPE_CHECKING:
    from mini_server.server.channel_server import ChannelServer, ChannelTimer

# --- results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinOk:
    """join succeeded; ``response`` goes in the ok reply."""

    response: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JoinError:
    """join refused; ``response`` goes in the error reply and the channel never starts."""

    response: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplyResult:
    """Reply to the message being handled with ``status`` and ``response``."""

    status: str
    response: Payload = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoReply:
    """Nothing to send back (the client's push will time out if it waits)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the channel with ``reason``, after sending ``reply`` if there is one."""

    reason: Any = "normal"
    reply: ReplyResult | None = None


def ok(response: Payload | None = None) -> JoinOk:
    """join result: accepted, with an optional response map."""
    return JoinOk({} if response is None else response)


def error(response: Payload | None = None) -> JoinError:
    """join result: refused, with a response map such as ``{"reason": "unauthorized"}``."""
    return JoinError({} if response is None else response)


_EMPTY: Any = object()  # "no response given": the reply carries {}


def reply(status: str, response: Payload = _EMPTY) -> ReplyResult:
    """handle_in result: reply with a status and a response (``{}`` when omitted).

    The response may be any JSON value, ``None`` included (it goes out as ``null``), or bytes.
    """
    return ReplyResult(status, {} if response is _EMPTY else response)


def noreply() -> NoReply:
    """Callback result: send nothing back."""
    return NoReply()


def stop(reason: Any = "normal", reply: ReplyResult | tuple[str, Payload] | None = None) -> Stop:
    """Callback result: stop this channel, after an optional ``(status, payload)`` reply."""
    if isinstance(reply, tuple):
        status, response = reply
        reply = ReplyResult(status, {} if response is None else response)
    return Stop(reason, reply)


def is_normal_stop(reason: Any) -> bool:
    """True for reasons that close the channel quietly (phx_close), as in Phoenix."""
    if reason in ("normal", "shutdown"):
        return True
    return isinstance(reason, tuple) and len(reason) == 2 and reason[0] == "shutdown"


@dataclass(frozen=True, slots=True)
class SocketRef:
    """Where an asynchronous reply goes: one message of one channel incarnation."""

    server: ChannelServer
    ref: str | None


# --- the base class -----------------------------------------------------------------


class Channel:
    """Base class for server channels; override the callbacks you need."""

    intercept: ClassVar[tuple[str, ...]] = ()

    topic: str
    join_ref: str
    assigns: dict[str, Any]
    socket_id: str | None
    _server: ChannelServer

    async def join(self, topic: str, payload: Payload) -> JoinOk | JoinError:
        """Accept or refuse a client; the default accepts with an empty response."""
        return ok()

    async def handle_in(self, event: str, payload: Payload) -> ReplyResult | NoReply | Stop:
        """Handle a client push; there is no default, as in Phoenix (the channel crashes)."""
        raise NotImplementedError(
            f"{type(self).__name__} got {event!r} but does not define handle_in")

    async def handle_out(self, event: str, payload: Payload) -> NoReply | Stop:
        """Handle an intercepted broadcast; the default pushes it unchanged."""
        await self.push(event, payload)
        return noreply()

    async def handle_info(self, msg: Any) -> NoReply | Stop:
        """Handle a message from ``send_info``; the default ignores it."""
        return noreply()

    async def terminate(self, reason: Any) -> None:
        """Called once when the channel stops (not after a crash or duplicate join)."""

    # --- what callbacks may call --------------------------------------------------------

    async def push(self, event: str, payload: Payload | None = None) -> None:
        """Send ``[join_ref, null, topic, event, payload]`` to this client only."""
        self._server.push(event, {} if payload is None else payload)

    async def broadcast(self, event: str, payload: Payload | None = None) -> None:
        """Send to every subscriber of this topic, this channel included."""
        await self._server.broadcast(event, {} if payload is None else payload, exclude_self=False)

    async def broadcast_from(self, event: str, payload: Payload | None = None) -> None:
        """Send to every subscriber of this topic except this channel."""
        await self._server.broadcast(event, {} if payload is None else payload, exclude_self=True)

    async def endpoint_broadcast(self, topic: str, event: str, payload: Payload) -> None:
        """Broadcast on any topic, e.g. ``"disconnect"`` on a socket id (Endpoint.broadcast)."""
        await self._server.pubsub.broadcast(topic, event, payload)

    def socket_ref(self) -> SocketRef:
        """Remember the message being handled, to ``reply`` to it later."""
        return self._server.socket_ref()

    async def reply(self, ref: SocketRef, status: str, payload: Payload | None = None) -> None:
        """Reply asynchronously to the message saved with ``socket_ref``."""
        ref.server.reply_to(ref.ref, status, {} if payload is None else payload)

    def send_info(self, msg: Any) -> None:
        """Queue ``msg`` for this channel's ``handle_info`` (Phoenix: ``send(self(), msg)``)."""
        self._server.send_info(msg)

    def send_after(self, delay: float, msg: Any) -> ChannelTimer:
        """Queue ``msg`` for ``handle_info`` in ``delay`` s (``Process.send_after``)."""
        return self._server.start_timer(delay, msg)

    def send_interval(self, interval: float, msg: Any) -> ChannelTimer:
        """Queue ``msg`` every ``interval`` s until cancelled (``:timer.send_interval``).

        Like Erlang's interval timers it is linked to this channel: it stops when the
        channel ends, however it ends, so a recurring push never outlives its channel.
        """
        return self._server.start_timer(interval, msg, interval)


Routes = Mapping[str, type[Channel]]


def match_route(routes: Routes, topic: str) -> type[Channel] | None:
    """The channel for ``topic``: a trailing ``*`` matches any suffix; first match wins."""
    if not isinstance(topic, str):  # a client may send any JSON value as topic
        return None
    for pattern, channel in routes.items():
        if pattern.endswith("*"):
            if topic.startswith(pattern[:-1]):
                return channel
        elif pattern == topic:
            return channel
    return None
