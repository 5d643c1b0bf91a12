"""Server lifecycles: an endpoint's, a connection's and a channel process's states.

Theory of operation
-------------------
Each lifecycle is an enum plus a transition table ``{(state, event): new_state}``; a
:class:`Lifecycle` holds the current state and changes it only through :meth:`fire`, which
looks the pair up, logs the change with ``=`` and raises :class:`IllegalTransition` for a
pair the table does not have (the h11 habit; the client's ``client/states.py`` does the
same).  Callers that may legitimately see an event twice (a second ``close()``) test the
state first; reaching a missing pair is a bug, never a condition to handle.

An endpoint (``endpoint.py``)::

    stopped/killed --start--> running   listening on its port
    running --stop--> draining --stopped--> stopped   every connection closed with 1012
    running --kill--> killed            connections aborted; a handshake that finishes
                                        now is aborted too, not drained

A connection (``transport.py``)::

    open --close--> closing        a close frame is queued (drain 1012, disconnect 1001,
                                   idle timeout 1002, bad frame 1011); later frames drop
    open/closing --abort--> aborted       TCP dropped by us (a client that never reads)
    open/closing/aborted --ended--> closed  the connection is gone; its channels stop
    any but killed --kill--> killed  the server was killed: channels vanish, no terminate

A channel process (``channel_server.py``)::

    joining --joined--> joined      join returned ok(...): the reply is queued
    joining --refused--> stopped    join returned error(...) or raised ("join crashed")
    joined --stop--> stopping       a stop result, a leave, or the connection closed
    stopping --stopped--> stopped   phx_close sent (when due) and terminate returned
    joined --crash--> crashed       a callback raised: phx_error, no terminate
    joining/joined/stopping --kill--> killed   duplicate join or a killed server

:func:`table` renders each table as Markdown; the README's "Server lifecycles" section
is that output, and a test regenerates it and compares.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

from mini_server.server.log_lines import server_logger

log = server_logger(__name__)


class IllegalTransition(RuntimeError):
    """An event the lifecycle does not allow in its current state: a bug."""


class ConnectionState(enum.StrEnum):
    """Where one WebSocket connection is in its life."""

    OPEN = "open"
    CLOSING = "closing"
    ABORTED = "aborted"
    KILLED = "killed"
    CLOSED = "closed"


class EndpointState(enum.StrEnum):
    """Whether the endpoint listens, and how it last went down."""

    STOPPED = "stopped"
    RUNNING = "running"
    DRAINING = "draining"
    KILLED = "killed"


class ChannelProcessState(enum.StrEnum):
    """Where one channel process (one join of one topic) is in its life."""

    JOINING = "joining"
    JOINED = "joined"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"
    KILLED = "killed"


_O, _CG, _A, _K, _C = (ConnectionState.OPEN, ConnectionState.CLOSING, ConnectionState.ABORTED,
                       ConnectionState.KILLED, ConnectionState.CLOSED)
CONNECTION_TRANSITIONS: dict[tuple[ConnectionState, str], ConnectionState] = {
    (_O, "close"): _CG,
    (_O, "abort"): _A,
    (_CG, "abort"): _A,
    (_O, "kill"): _K,
    (_CG, "kill"): _K,
    (_A, "kill"): _K,
    (_C, "kill"): _K,  # killed while its channels were still shutting down
    (_O, "ended"): _C,
    (_CG, "ended"): _C,
    (_A, "ended"): _C,
    (_K, "ended"): _K,  # a killed connection stays killed: nothing of it survives
}

_ES, _ER, _ED, _EK = (EndpointState.STOPPED, EndpointState.RUNNING, EndpointState.DRAINING,
                      EndpointState.KILLED)
ENDPOINT_TRANSITIONS: dict[tuple[EndpointState, str], EndpointState] = {
    (_ES, "start"): _ER,
    (_EK, "start"): _ER,
    (_ER, "stop"): _ED,
    (_ED, "stopped"): _ES,
    (_ER, "kill"): _EK,
}

_JG, _JD, _SG, _SD, _CR, _KD = (
    ChannelProcessState.JOINING, ChannelProcessState.JOINED, ChannelProcessState.STOPPING,
    ChannelProcessState.STOPPED, ChannelProcessState.CRASHED, ChannelProcessState.KILLED)
CHANNEL_TRANSITIONS: dict[tuple[ChannelProcessState, str], ChannelProcessState] = {
    (_JG, "joined"): _JD,
    (_JG, "refused"): _SD,
    (_JD, "stop"): _SG,
    (_SG, "stopped"): _SD,
    (_JD, "crash"): _CR,
    (_JG, "kill"): _KD,
    (_JD, "kill"): _KD,
    (_SG, "kill"): _KD,
}


S = TypeVar("S", EndpointState, ConnectionState, ChannelProcessState)


class Lifecycle(Generic[S]):
    """A state that changes only through its transition table, logging every change."""

    __slots__ = ("state", "transitions", "who")  # one per connection and per channel

    def __init__(self, initial: S, transitions: Mapping[tuple[S, str], S], who: object) -> None:
        # ``who`` is anything whose str() names the owner, formatted only when a line is
        # logged or a transition refused: not once per connection and per join.
        self.state = initial
        self.transitions, self.who = transitions, who

    def fire(self, event: str) -> S:
        """Apply ``event``; raises IllegalTransition for a pair the table does not have."""
        try:
            new = self.transitions[(self.state, event)]
        except KeyError:
            raise IllegalTransition(
                f"{self.who}: no transition for {event!r} in state {self.state.value!r}"
            ) from None
        if new is not self.state:
            log.debug("= %s: %s --%s--> %s", self.who, self.state.value, event, new.value)
        self.state = new
        return new


def table(transitions: Mapping[tuple[enum.StrEnum, str], enum.StrEnum]) -> str:
    """One lifecycle as a Markdown table: state, event, new state."""
    rows = ["| state | event | new state |", "|---|---|---|"]
    rows += [f"| {s.value} | {e} | {n.value} |" for (s, e), n in transitions.items()]
    return "\n".join(rows)


def lifecycles_markdown() -> str:
    """The server lifecycles, as the README shows them."""
    return ("Endpoint (`EndpointState`, `endpoint.py`):\n\n"
            + table(ENDPOINT_TRANSITIONS)
            + "\n\nConnection (`ConnectionState`, `transport.py`):\n\n"
            + table(CONNECTION_TRANSITIONS)
            + "\n\nChannel process (`ChannelProcessState`, `channel_server.py`):\n\n"
            + table(CHANNEL_TRANSITIONS) + "\n")
