"""What the server answers to a frame it cannot decode: pure, no sockets.

Theory of operation
-------------------
Phoenix lets the socket process crash on an undecodable frame, so the client just sees its
connection die.  mini_server answers instead, and says why:

* a frame that does not decode but still shows a string topic and a string ref -> an
  error reply ``{"reason": "invalid message: ..."}`` with join_ref null; the connection
  stays up (the client can match the reply to its push);
* a binary frame on a V1 (JSON object) connection -> close **1003** (unsupported data);
* any other undecodable frame -> close **1007** (invalid data) with the decoder's reason.

Limits enforced elsewhere, listed here so the whole policy is in one place: a frame over
``max_frame_size`` makes websockets close with **1009** (message too big); a silent client
is closed after ``idle_timeout`` with **1002** "idle timeout" (what Bandit, the adapter
``mix phx.new`` sets up, sends; phoenix.js reconnects on it); a client that leaves more than
``max_outgoing`` frames unread is aborted (a close frame would wait behind the same unread
bytes).  A close reason is cut to the 123 bytes a close frame can carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mini_server.protocol import (
    CloseCode,
    Frame,
    ProtocolError,
    Reply,
    Serializer,
    V1JSONSerializer,
)


@dataclass(frozen=True, slots=True)
class CloseWith:
    """Close the connection with this code and reason."""

    code: int
    reason: str


def answer(raw: Frame, exc: ProtocolError, serializer: Serializer) -> Reply | CloseWith:
    """An error reply when topic and ref are readable, else the close to send."""
    if not isinstance(raw, str) and isinstance(serializer, V1JSONSerializer):
        return CloseWith(CloseCode.UNSUPPORTED_DATA, "binary frames need vsn=2.0.0")
    topic, ref = salvage(raw)
    if topic is not None and ref is not None:
        return Reply(topic, "error", {"reason": f"invalid message: {exc}"}, ref, None)
    return CloseWith(CloseCode.INVALID_DATA, close_reason(f"invalid data: {exc}"))


def salvage(raw: Frame) -> tuple[str | None, str | None]:
    """Topic and ref of a text frame that failed to decode, when both are strings."""
    if not isinstance(raw, str):
        return None, None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None
    if isinstance(value, list) and len(value) >= 4:
        topic, ref = value[2], value[1]
    elif isinstance(value, dict):
        topic, ref = value.get("topic"), value.get("ref")
    else:
        return None, None
    if isinstance(topic, str) and isinstance(ref, str):
        return topic, ref
    return None, None


def close_reason(text: str) -> str:
    """A close reason that fits the 123-byte limit of a close frame."""
    return text.encode("utf-8")[:123].decode("utf-8", errors="ignore")


def short(frame: Frame, limit: int = 1000) -> str:
    """A frame for a log line: text as is, binary as hex, both truncated."""
    text = frame if isinstance(frame, str) else "<binary " + bytes(frame[:48]).hex() + ">"
    return text if len(text) <= limit else text[:limit] + f"... ({len(frame)} bytes)"
