"""PROTOCOL.md section 3 as one pure function: a decoded message and the channel table in,
what to do out.  No sockets, no tasks, no I/O: ``transport.py`` only carries the answer out.

Theory of operation
-------------------
Phoenix's socket decides, in this priority, for each decoded message (``socket.ex``):

1. topic ``"phoenix"`` and event ``"heartbeat"`` -> :class:`Heartbeat` (reply ok ``{}``,
   join_ref null), whatever channels exist;
2. ``phx_join`` on a topic with no channel: no route -> :class:`Unmatched`; already
   ``max_channels`` channels -> :class:`TooManyChannels`; else :class:`StartJoin`;
3. ``phx_join`` on a topic that has a channel (any join_ref) -> :class:`StartJoin` with
   ``replaces`` set: the old channel is killed and its ``phx_close`` follows the new reply;
4. ``phx_leave`` on a joined topic: join_ref null or the registered one -> :class:`Deliver`
   (the channel replies ok and stops); another join_ref -> :class:`DropStale`;
5. any other event on a joined topic: the same rule (:class:`Deliver` or
   :class:`DropStale`);
6. ``phx_leave`` on a topic with no channel -> :class:`LeaveOk` (reply ok ``{}`` echoing
   the client's join_ref, no ``phx_close``);
7. any other event on a topic with no channel -> :class:`Unmatched` (join_ref null).

A channel whose process is already stopping or crashed but still in the table (Phoenix:
the message lands in a dead process's mailbox) -> :class:`DropDying`: no reply at all.

The table maps a topic to anything with ``wire_join_ref`` (the join_ref registered as the
join sent it: null for a V1 join without one) and ``state``; topics are any JSON value a
client sent, so a non-string topic simply matches no route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mini_server.protocol import HEARTBEAT, PHOENIX_TOPIC, PHX_JOIN, PHX_LEAVE, Message
from mini_server.server.states import ChannelProcessState


class Member(Protocol):
    """What routing needs to know about a channel in the table."""

    wire_join_ref: Any
    state: ChannelProcessState


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Row 1: reply ok {} on topic phoenix with join_ref null."""


@dataclass(frozen=True, slots=True)
class Unmatched:
    """Rows 2 and 7: reply error "unmatched topic" with join_ref null."""


@dataclass(frozen=True, slots=True)
class TooManyChannels:
    """Row 2: reply error "too many channels joined" echoing the join's join_ref."""


@dataclass(frozen=True, slots=True)
class StartJoin:
    """Rows 2 and 3: start ``channel`` for the topic; ``replaces`` is killed first."""

    channel: Any
    replaces: Any = None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Rows 4 and 5: hand the message to this channel's mailbox."""

    member: Any


@dataclass(frozen=True, slots=True)
class DropStale:
    """Rows 4 and 5: a non-null join_ref that is not the registered one: no reply."""

    member: Any


@dataclass(frozen=True, slots=True)
class DropDying:
    """The channel is stopping or crashed: the message is lost, as in a dead mailbox."""

    member: Any


@dataclass(frozen=True, slots=True)
class LeaveOk:
    """Row 6: reply ok {} echoing the client's join_ref and ref."""


Action = (Heartbeat | Unmatched | TooManyChannels | StartJoin | Deliver | DropStale
          | DropDying | LeaveOk)

_ALIVE = (ChannelProcessState.JOINING, ChannelProcessState.JOINED)


def route(msg: Message, channels: Mapping[Any, Member],
          find_channel: Callable[[Any], Any], max_channels: int) -> Action:
    """Decide what the socket does with ``msg`` (PROTOCOL.md section 3, in its order)."""
    if msg.topic == PHOENIX_TOPIC and msg.event == HEARTBEAT:
        return Heartbeat()
    member = _lookup(channels, msg.topic)
    if msg.event == PHX_JOIN:
        channel = find_channel(msg.topic)
        if channel is None:
            return Unmatched()
        if member is None and len(channels) >= max_channels:
            return TooManyChannels()
        return StartJoin(channel, member)
    if member is None:
        return LeaveOk() if msg.event == PHX_LEAVE else Unmatched()
    if msg.join_ref is not None and msg.join_ref != member.wire_join_ref:
        return DropStale(member)
    if member.state not in _ALIVE:
        return DropDying(member)
    return Deliver(member)


def _lookup(channels: Mapping[Any, Member], topic: Any) -> Member | None:
    try:
        return channels.get(topic)
    except TypeError:  # a list or an object as topic: unhashable, and never joined
        return None
