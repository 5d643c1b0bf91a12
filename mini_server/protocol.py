"""The Phoenix Channels wire protocol, pure: no sockets, no sleeps, no asyncio.

Theory of operation
-------------------
Every frame on a Phoenix socket is one logical message with five fields:
``join_ref, ref, topic, event, payload``.  Two serializers put that message on the wire:

* **V1** (``vsn`` missing or ``1.0.x``): a JSON object.  The server never writes ``join_ref``.
* **V2** (``vsn=2.0.0``, what phoenix.js speaks): a JSON array of exactly five elements,
  plus binary frames whose first byte says what they are (0 push, 1 reply, 2 broadcast).

Refs are opaque strings chosen by the client; the server only echoes them or sends null.
The server decodes like Phoenix: it checks the *shape* of a frame (an array of at least
five elements, an object with the four V1 keys, a well-formed kind-0 binary push) and
nothing else, so a numeric ref, a non-string topic or a payload that is not an object
reach the routing as they came (Phoenix echoes them back or lets a channel crash on them).
The same module also holds the constants a learner sees in phoenix.js and in Phoenix
itself, spelled as they spell them, and the default timings of phoenix.js 1.8.16.

Every decoding error is a :class:`ProtocolError`, whatever the input: a server can catch
one exception type and close the offending connection (Phoenix's socket process crashes,
and the client sees close code 1011) without hurting anyone else.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

# --- reserved topics and events (phoenix.js constants.js, Phoenix socket.ex) -------------

PHOENIX_TOPIC = "phoenix"
HEARTBEAT = "heartbeat"
PHX_JOIN = "phx_join"
PHX_LEAVE = "phx_leave"
PHX_REPLY = "phx_reply"
PHX_CLOSE = "phx_close"
PHX_ERROR = "phx_error"
CHANNEL_EVENTS = frozenset({PHX_JOIN, PHX_LEAVE, PHX_REPLY, PHX_CLOSE, PHX_ERROR})

# Reasons the server puts in error replies and phx_error payloads.
UNMATCHED_TOPIC = "unmatched topic"
TOO_MANY_CHANNELS = "too many channels joined"
JOIN_CRASHED = "join crashed"
CHANNEL_CRASH = "channel_crash"  # phx_error payload since Phoenix 1.8.10

# phoenix.js's authToken rides in Sec-WebSocket-Protocol (PROTOCOL.md 1.5).
AUTH_TOKEN_PREFIX = "base64url.bearer.phx."
PHOENIX_SUBPROTOCOL = "phoenix"


def auth_token_subprotocols(token: str) -> list[str]:
    """What phoenix.js offers for ``authToken``: ``phoenix`` and the token, base64 unpadded."""
    encoded = base64.b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")
    return [PHOENIX_SUBPROTOCOL, AUTH_TOKEN_PREFIX + encoded]


# --- defaults -------------------------------------------------------------------------

DEFAULT_VSN = "2.0.0"  # phoenix.js sends this in the query string
WEBSOCKET_PATH = "/websocket"  # appended to the socket path by every client
DEFAULT_TIMEOUT = 10.0  # push, join and leave timeout in phoenix.js (DEFAULT_TIMEOUT)
DEFAULT_HEARTBEAT_INTERVAL = 30.0  # phoenix.js heartbeatIntervalMs
SERVER_IDLE_TIMEOUT = 60.0  # Phoenix websocket transport :timeout
MAX_CHANNELS_PER_TRANSPORT = 100  # Phoenix.Socket :max_channels_per_transport
BINARY_FIELD_MAX = 255  # every length in a binary header is one byte

# phoenix.js socket.js reconnectAfterMs and rejoinAfterMs, in seconds.
RECONNECT_STEPS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0)
RECONNECT_MAX = 5.0
REJOIN_STEPS: tuple[float, ...] = (1.0, 2.0, 5.0)
REJOIN_MAX = 10.0


def reconnect_after(tries: int) -> float:
    """Seconds before reconnect attempt number ``tries`` (1-based), as phoenix.js."""
    return RECONNECT_STEPS[tries - 1] if 1 <= tries <= len(RECONNECT_STEPS) else RECONNECT_MAX


def rejoin_after(tries: int) -> float:
    """Seconds before rejoin attempt number ``tries`` (1-based), as phoenix.js."""
    return REJOIN_STEPS[tries - 1] if 1 <= tries <= len(REJOIN_STEPS) else REJOIN_MAX


class CloseCode(IntEnum):
    """WebSocket close codes the course meets (RFC 6455 section 7.4)."""

    NORMAL = 1000  # phoenix.js heartbeat timeout; npm phoenix <= 1.8.15 will NOT reconnect
    GOING_AWAY = 1001  # Phoenix's "disconnect" broadcast: clients come back
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # what a server sees when a client closes without a code
    ABNORMAL = 1006  # no close frame at all: a killed server, a dropped network
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # graceful drain on shutdown


# --- messages --------------------------------------------------------------------------

Payload = Any  # any JSON value (servers push objects) or raw bytes for binary frames


class ProtocolError(ValueError):
    """A frame that does not follow the Phoenix Channels protocol."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message in either direction (Phoenix.Socket.Message).

    Decoded from a client, every field is whatever JSON value the client sent there.
    """

    topic: str
    event: str
    payload: Payload = field(default_factory=dict)
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer to the message with ``ref`` (Phoenix.Socket.Reply)."""

    topic: str
    status: str
    payload: Payload = field(default_factory=dict)
    ref: str | None = None
    join_ref: str | None = None

    def to_message(self) -> Message:
        """The reply as the client sees it: event phx_reply, payload {status, response}."""
        return Message(
            self.topic, PHX_REPLY, {"status": self.status, "response": self.payload},
            self.ref, self.join_ref,
        )


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message for every subscriber of a topic (Phoenix.Socket.Broadcast)."""

    topic: str
    event: str
    payload: Payload = field(default_factory=dict)


Frame = str | bytes  # str goes out as a text frame, bytes as a binary frame


class Serializer(Protocol):
    """What the server needs from a serializer (Phoenix.Socket.Serializer)."""

    vsn: str

    def decode(self, raw: Frame) -> Message: ...
    def encode(self, msg: Message | Reply) -> Frame: ...
    def fastlane(self, broadcast: Broadcast) -> Frame: ...


# --- shared checks ------------------------------------------------------------------


#: Deepest nesting of arrays and objects one frame may hold (the frame's own array is 1).
#: Phoenix's JSON library, Jason, has no such limit: it decodes with an explicit stack, so
#: any depth decodes and is echoed back.  Python's json recurses: it fails near the
#: interpreter's recursion limit (1000) when decoding and sooner when *encoding* the reply,
#: inside the channel that answers, so a frame ~977 deep crashed its sender's own channel.
#: A deliberate deviation (PROTOCOL.md section 11): past this depth the frame is refused at
#: decode time, like any frame Jason cannot decode: close 1011, empty reason.
MAX_NESTING = 512


def _reject_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # Jason turns a number with a fraction or exponent into a float with
    # :erlang.binary_to_float, which raises badarg past the double range (1e400), and the
    # error is a Jason.DecodeError.  Python would quietly make it inf, which no JSON can
    # carry back out.  Called per float literal only: frames without floats pay nothing.
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan
        raise ProtocolError(f"number {text[:40]} is outside the double range")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    # Iterative, containers only: a frame of scalars or one long string costs a few steps.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return False


def _loads(raw: str) -> Any:
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    # Nesting d levels deep takes at least 2d characters: short frames skip the walk.
    if (len(raw) >= 2 * MAX_NESTING and isinstance(value, (list, dict))
            and _too_deep(value, MAX_NESTING)):
        raise ProtocolError(f"JSON nested deeper than {MAX_NESTING} levels")
    return value


def _dumps(value: Any, *, sort_keys: bool = False) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          sort_keys=sort_keys)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"payload cannot be encoded as JSON: {exc}") from None


def _check_fields(join_ref: Any, ref: Any, topic: Any, event: Any, payload: Any) -> None:
    if join_ref is not None and not isinstance(join_ref, str):
        raise ProtocolError(f"join_ref must be a string or null, got {join_ref!r}")
    if ref is not None and not isinstance(ref, str):
        raise ProtocolError(f"ref must be a string or null, got {ref!r}")
    if not isinstance(topic, str):
        raise ProtocolError(f"topic must be a string, got {topic!r}")
    if not isinstance(event, str):
        raise ProtocolError(f"event must be a string, got {event!r}")
    if not isinstance(payload, dict):
        raise ProtocolError(f"payload must be a JSON object, got {type(payload).__name__}")


def _json_payload(payload: Payload) -> dict:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        raise ProtocolError("binary payloads need a binary frame (V2 only)")
    return payload


def _server_dumps(value: Any) -> str:
    # Phoenix's JSON encoder writes small maps with their keys sorted (Erlang term order),
    # so {"response":..,"status":..} and V1's event, payload, ref, topic: write them so too.
    return _dumps(value, sort_keys=True)


def _map_payload(payload: Payload) -> dict:
    # Phoenix's V2 encode!/fastlane! raise ArgumentError for anything but a map or binary.
    if not isinstance(payload, dict):
        raise ProtocolError(f"payload must be a dict (or bytes), got {type(payload).__name__}")
    return payload


# --- V2: binary frames ----------------------------------------------------------------

PUSH, REPLY, BROADCAST = 0, 1, 2  # first byte of a V2 binary frame


def _utf8(name: str, value: Any) -> bytes:
    # The binary format has no null: phoenix.js and Phoenix both write an empty string;
    # Phoenix writes other values with to_string (a numeric ref 7 becomes "7").
    if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
        raise ProtocolError(f"{name} {value!r} cannot be written in a binary frame")
    data = ("" if value is None else str(value)).encode("utf-8")
    if len(data) > BINARY_FIELD_MAX:
        raise ProtocolError(f"{name} is {len(data)} bytes; binary frames allow {BINARY_FIELD_MAX}")
    return data


def _binary(kind: int, *fields: tuple[str, str | None], data: bytes) -> bytes:
    encoded = [_utf8(name, value) for name, value in fields]
    return bytes([kind, *(len(f) for f in encoded)]) + b"".join(encoded) + bytes(data)


def _split_binary(raw: bytes, names: tuple[str, ...]) -> tuple[list[str], bytes]:
    """Read ``len(names)`` one-byte lengths after the kind byte, then the strings."""
    header = 1 + len(names)
    if len(raw) < header:
        raise ProtocolError(f"binary frame too short: {len(raw)} bytes, header needs {header}")
    lengths = raw[1:header]
    pos, out = header, []
    for name, size in zip(names, lengths, strict=True):
        chunk = raw[pos : pos + size]
        if len(chunk) != size:
            raise ProtocolError(f"binary frame truncated inside {name}")
        try:
            out.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(f"binary frame: {name} is not UTF-8") from None
        pos += size
    return out, bytes(raw[pos:])


def _opt(value: str) -> str | None:
    return value or None


class V2JSONSerializer:
    """vsn 2.0.0: ``[join_ref, ref, topic, event, payload]`` arrays and binary frames."""

    vsn = "2.0.0"

    # server side: what Phoenix's V2.JSONSerializer does
    def decode(self, raw: Frame) -> Message:
        """Decode a frame a client sent (text array, or a kind-0 binary push)."""
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = bytes(raw)
            if not raw or raw[0] != PUSH:
                kind = raw[0] if raw else None
                raise ProtocolError(f"clients may only send binary pushes (kind 0), got {kind}")
            # Phoenix keeps the header strings as they came: an empty join_ref is "", not null.
            (join_ref, ref, topic, event), data = _split_binary(
                raw, ("join_ref", "ref", "topic", "event"))
            return Message(topic, event, data, ref, join_ref)
        value = _loads(raw)
        if not isinstance(value, list) or len(value) < 5:
            raise ProtocolError(
                "a V2 message is a JSON array [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = value[:5]  # Phoenix ignores extra elements
        return Message(topic, event, payload, ref, join_ref)

    def encode(self, msg: Message | Reply) -> Frame:
        """Encode a push or a reply for one client."""
        if isinstance(msg, Reply):
            if isinstance(msg.payload, (bytes, bytearray, memoryview)):
                return _binary(REPLY, ("join_ref", msg.join_ref), ("ref", msg.ref),
                               ("topic", msg.topic), ("status", msg.status), data=msg.payload)
            msg = msg.to_message()
        if isinstance(msg.payload, (bytes, bytearray, memoryview)):
            return _binary(PUSH, ("join_ref", msg.join_ref), ("topic", msg.topic),
                           ("event", msg.event), data=msg.payload)
        return _server_dumps([msg.join_ref, msg.ref, msg.topic, msg.event,
                              _map_payload(msg.payload)])

    def fastlane(self, broadcast: Broadcast) -> Frame:
        """Encode a broadcast once for every subscriber: join_ref and ref are null."""
        if isinstance(broadcast.payload, (bytes, bytearray, memoryview)):
            return _binary(BROADCAST, ("topic", broadcast.topic), ("event", broadcast.event),
                           data=broadcast.payload)
        return _server_dumps([None, None, broadcast.topic, broadcast.event,
                       _map_payload(broadcast.payload)])

    # client side: what phoenix.js serializer.js does
    def encode_client(self, msg: Message) -> Frame:
        """Encode a client message: a text array, or a kind-0 binary push for bytes."""
        if isinstance(msg.payload, (bytes, bytearray, memoryview)):
            return _binary(PUSH, ("join_ref", msg.join_ref), ("ref", msg.ref),
                           ("topic", msg.topic), ("event", msg.event), data=msg.payload)
        return _dumps([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload])

    def decode_client(self, raw: Frame) -> Message:
        """Decode a frame the server sent; binary replies become phx_reply messages."""
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = bytes(raw)
            kind = raw[0] if raw else None
            if kind == PUSH:
                (join_ref, topic, event), data = _split_binary(raw, ("join_ref", "topic", "event"))
                return Message(topic, event, data, None, _opt(join_ref))
            if kind == REPLY:
                (join_ref, ref, topic, status), data = _split_binary(
                    raw, ("join_ref", "ref", "topic", "status"))
                return Message(topic, PHX_REPLY, {"status": status, "response": data},
                               _opt(ref), _opt(join_ref))
            if kind == BROADCAST:
                (topic, event), data = _split_binary(raw, ("topic", "event"))
                return Message(topic, event, data)
            raise ProtocolError(f"unknown binary frame kind {kind}")
        value = _loads(raw)
        if not isinstance(value, list) or len(value) != 5:
            raise ProtocolError("a V2 message is a JSON array of five elements")
        join_ref, ref, topic, event, payload = value
        _check_fields(join_ref, ref, topic, event, payload)
        return Message(topic, event, payload, ref, join_ref)


class V1JSONSerializer:
    """vsn 1.0.0 (or no vsn): JSON objects; the server never writes join_ref."""

    vsn = "1.0.0"
    _required = ("topic", "event", "payload", "ref")

    def decode(self, raw: Frame) -> Message:
        """Decode a client's JSON object; all four keys are required, join_ref optional.

        Like Phoenix's V1 serializer it ignores the frame's opcode: a binary frame is
        JSON-decoded exactly like a text frame (some clients send their JSON as bytes).
        """
        if not isinstance(raw, str):
            try:
                raw = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("a binary frame on V1 must hold UTF-8 JSON") from None
        value = _loads(raw)
        if not isinstance(value, dict):
            raise ProtocolError("a V1 message is a JSON object {topic, event, payload, ref}")
        missing = [key for key in self._required if key not in value]
        if missing:
            raise ProtocolError(f"V1 message is missing {', '.join(missing)}")
        return Message(value["topic"], value["event"], value["payload"], value["ref"],
                       value.get("join_ref"))

    def encode(self, msg: Message | Reply) -> Frame:
        """Encode a push or reply without join_ref, as Phoenix's V1 serializer does."""
        if isinstance(msg, Reply):
            msg = msg.to_message()
            _json_payload(msg.payload["response"])
        return _server_dumps({"topic": msg.topic, "event": msg.event,
                       "payload": _json_payload(msg.payload), "ref": msg.ref})

    def fastlane(self, broadcast: Broadcast) -> Frame:
        """Encode a broadcast once for every V1 subscriber."""
        return _server_dumps({"topic": broadcast.topic, "event": broadcast.event,
                       "payload": _json_payload(broadcast.payload), "ref": None})


# --- vsn negotiation ------------------------------------------------------------------

# Elixir's Version.parse: ASCII digits without leading zeros; dot-separated, non-empty
# pre-release identifiers (numeric ones without leading zeros) and build identifiers.
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(-{_PRE}(?:\.{_PRE})*)?(\+{_BUILD}(?:\.{_BUILD})*)?")

# Phoenix's default list: [{V1.JSONSerializer, "~> 1.0.0"}, {V2.JSONSerializer, "~> 2.0.0"}];
# "~> X.Y.0" means >= X.Y.0 and < X.(Y+1).0 (never a pre-release of the upper bound).
# Version.match? allows pre-releases by default, so 2.0.1-rc matches but 2.0.0-rc < 2.0.0.
SERIALIZERS: tuple[tuple[tuple[int, int], Serializer], ...] = (
    ((1, 0), V1JSONSerializer()),
    ((2, 0), V2JSONSerializer()),
)


def negotiate(vsn: str | None) -> Serializer:
    """Pick the serializer for a ``vsn`` query parameter; a missing vsn means 1.0.0.

    Raises ProtocolError for a vsn that does not parse or matches no serializer: the
    endpoint answers that with HTTP 403, as Phoenix does.
    """
    vsn = "1.0.0" if vsn is None else vsn
    match = _VERSION.fullmatch(vsn) if isinstance(vsn, str) else None
    if not match:
        raise ProtocolError(f"vsn {vsn!r} is not a version like 2.0.0")
    major, minor, patch = int(match[1]), int(match[2]), int(match[3])
    if patch > 0 or not match[4]:
        for (want_major, want_minor), serializer in SERIALIZERS:
            if (major, minor) == (want_major, want_minor):
                return serializer
    supported = ", ".join(f"~> {a}.{b}.0" for (a, b), _ in SERIALIZERS)
    raise ProtocolError(f"vsn {vsn} is not supported (supported: {supported})")
