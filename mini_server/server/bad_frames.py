"""What the server answers to a frame it cannot decode, and why: pure, no sockets.

Theory of operation
-------------------
Phoenix decodes a frame inside the socket process; a frame it cannot decode raises there,
the socket process crashes, and the HTTP adapter closes the connection.  With Bandit (the
adapter ``mix phx.new`` sets up) the client sees close code **1011** with an empty reason.
mini_server answers the same on the wire (recorded in ``../shared/fidelity``): malformed
or empty JSON, a number past the double range (``1e400``: Jason's ``binary_to_float``
raises, so Phoenix refuses it too), JSON nested deeper than ``protocol.MAX_NESTING`` (a
deliberate deviation: Jason has no limit, Python's json recurses), JSON scalars, ``[]``
or a V2 array of fewer than five elements, a V1 object on a V2 socket or an array on a V1
socket, a V1 object without ``ref``, a binary frame of
a kind other than 0 or cut short, JSON in a binary frame on V2.  The *reason* goes to the
server log (and from there to the lab's panels), never on the wire: Phoenix's close
reasons are always empty.

What is **not** a bad frame, because Phoenix accepts it: extra trailing elements of a V2
array, numeric refs (echoed as numbers), a topic that is not a string (it matches no
route: "unmatched topic"), an event that is not a string (the channel has no clause for
it and crashes), any JSON value as payload, and a V1 message in a binary frame (V1
decodes binary frames as JSON).

Limits enforced elsewhere, listed here so the whole policy is in one place: invalid UTF-8
in a text frame makes websockets close with **1007** (Bandit does too); a frame over
``max_frame_size`` closes with **1009** (a deliberate deviation: Phoenix has no limit by
default, PROTOCOL.md section 11); a silent client is closed after ``idle_timeout`` with
**1002** (Bandit's code for its timeout); a client that leaves more than
``max_outgoing_bytes`` (or ``max_outgoing`` frames) unread, or whose close frame cannot be
written within ``close_timeout``, is aborted: 1006 (a close frame would wait behind the
same unread bytes; ``transport.py`` compares this with Bandit's and Cowboy's send timeout).
"""

from __future__ import annotations

from dataclasses import dataclass

from mini_server.protocol import CloseCode, Frame, ProtocolError


@dataclass(frozen=True, slots=True)
class CloseWith:
    """Close the connection with this code; ``why`` is for the log, not the wire."""

    code: int
    why: str


def answer(raw: Frame, exc: ProtocolError) -> CloseWith:
    """Phoenix's answer to an undecodable frame: its socket crashes, Bandit closes 1011."""
    kind = "text" if isinstance(raw, str) else "binary"
    return CloseWith(CloseCode.INTERNAL_ERROR, f"undecodable {kind} frame: {exc}")


def short(frame: Frame, limit: int = 1000) -> str:
    """A frame for a log line: text as is, binary as hex, both truncated."""
    text = frame if isinstance(frame, str) else "<binary " + bytes(frame[:48]).hex() + ">"
    return text if len(text) <= limit else text[:limit] + f"... ({len(frame)} bytes)"
