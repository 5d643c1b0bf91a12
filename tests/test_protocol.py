"""Wire-format unit tests for mini_server.protocol against PROTOCOL.md sections 1.2, 2, 4, 5.1.

Every frame of the "who sends null where" table (PROTOCOL.md 2.5) is checked in both V1 and
V2, from the server's side (decode client frames, encode replies/pushes/broadcasts) and the
client's side (encode_client / decode_client), binary frames byte for byte.
"""

from __future__ import annotations

import json

import pytest

from mini_server import protocol as p
from mini_server.protocol import (
    Broadcast,
    Message,
    ProtocolError,
    Reply,
    V1JSONSerializer,
    V2JSONSerializer,
    negotiate,
)

V1 = V1JSONSerializer()
V2 = V2JSONSerializer()

# PROTOCOL.md 2.4, observed from phoenix.js 1.8.16: join_ref "6", ref "7", topic "room:1",
# event "up", payload b"AB".
OBSERVED_BINARY_PUSH = bytes.fromhex("00 01 01 06 02 36 37 726f6f6d3a31 7570 4142")


def frame(text: str) -> object:
    """Parse a JSON text frame so key order does not matter."""
    assert isinstance(text, str), "JSON frames go out as text frames"
    return json.loads(text)


# --- V2 JSON, server side: decoding what clients send (PROTOCOL.md 2.2) -----------------


def test_v2_decodes_a_join_whose_join_ref_equals_its_ref():
    """A phoenix.js join carries its own ref as join_ref."""
    msg = V2.decode('["6","6","room:lobby","phx_join",{"p":1}]')
    assert msg == Message("room:lobby", p.PHX_JOIN, {"p": 1}, ref="6", join_ref="6")


def test_v2_decodes_a_channel_push_with_current_join_ref_and_fresh_ref():
    """A channel push carries the channel's join_ref and a new ref."""
    msg = V2.decode('["6","8","room:lobby","early",{"x":1}]')
    assert msg == Message("room:lobby", "early", {"x": 1}, ref="8", join_ref="6")


def test_v2_decodes_a_heartbeat_with_null_join_ref():
    """The heartbeat goes to topic "phoenix" with join_ref null."""
    msg = V2.decode('[null,"9","phoenix","heartbeat",{}]')
    assert msg == Message(p.PHOENIX_TOPIC, p.HEARTBEAT, {}, ref="9", join_ref=None)


def test_v2_decodes_a_leave():
    """phx_leave carries the join_ref of the channel it leaves."""
    msg = V2.decode('["6","7","room:1","phx_leave",{}]')
    assert msg == Message("room:1", p.PHX_LEAVE, {}, ref="7", join_ref="6")


def test_v2_decode_ignores_extra_trailing_elements():
    """Phoenix matches [join_ref, ref, topic, event, payload | _], so extras are ignored."""
    msg = V2.decode('["1","2","t","e",{},"extra",3]')
    assert msg == Message("t", "e", {}, ref="2", join_ref="1")


@pytest.mark.parametrize("raw", [
    '["1","2","t","e"]',
    "[]",
    '{"topic":"t","event":"e","payload":{},"ref":"1"}',
    '"a string"',
    "null",
])
def test_v2_decode_rejects_anything_but_an_array_of_five(raw):
    """Fewer than five elements or a non-array is a ProtocolError."""
    with pytest.raises(ProtocolError):
        V2.decode(raw)


@pytest.mark.parametrize(("raw", "expected"), [
    ('[1,"2","t","e",{}]', Message("t", "e", {}, "2", 1)),
    ('["1",2,"t","e",{}]', Message("t", "e", {}, 2, "1")),
    ('["1","2",null,"e",{}]', Message(None, "e", {}, "2", "1")),
    ('["1","2","t",7,{}]', Message("t", 7, {}, "2", "1")),
    ('["1","2","t","e",[]]', Message("t", "e", [], "2", "1")),
    ('["1","2","t","e","body"]', Message("t", "e", "body", "2", "1")),
])
def test_v2_decode_passes_fields_of_any_type_on_as_phoenix_does(raw, expected):
    """Phoenix checks only the array's shape: numeric refs, odd topics and events, any
    payload reach the socket's routing as they came (recorded in ../shared/fidelity)."""
    assert V2.decode(raw) == expected


@pytest.mark.parametrize("raw", ["", "[", "not json", '[null,"1","t","e",{"x":NaN}]'])
def test_v2_decode_rejects_malformed_json(raw):
    """Malformed JSON (including NaN, which JSON does not have) is a ProtocolError."""
    with pytest.raises(ProtocolError):
        V2.decode(raw)


# --- V2 binary, server side (PROTOCOL.md 2.4) ------------------------------------------


def test_v2_decodes_the_observed_phoenix_js_binary_push():
    """The frame phoenix.js 1.8.16 sent for an ArrayBuffer push decodes field by field."""
    msg = V2.decode(OBSERVED_BINARY_PUSH)
    assert msg == Message("room:1", "up", b"AB", ref="7", join_ref="6")


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_v2_decode_accepts_any_bytes_like_binary_frame(wrap):
    """bytes, bytearray and memoryview frames all decode the same."""
    assert V2.decode(wrap(OBSERVED_BINARY_PUSH)).payload == b"AB"


def test_v2_binary_push_keeps_empty_refs_as_empty_strings():
    """Binary frames have no null; Phoenix keeps an empty join_ref and ref as "" (not nil)."""
    msg = V2.decode(bytes([0, 0, 0, 1, 1]) + b"te")
    assert msg == Message("t", "e", b"", ref="", join_ref="")


@pytest.mark.parametrize("kind", [1, 2, 3, 255])
def test_v2_decode_accepts_only_binary_pushes_from_clients(kind):
    """Clients may only send kind 0; replies and broadcasts flow server to client."""
    with pytest.raises(ProtocolError, match="kind"):
        V2.decode(bytes([kind]) + OBSERVED_BINARY_PUSH[1:])


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00",
    b"\x00\x01\x01\x06",
    OBSERVED_BINARY_PUSH[:9],
    bytes([0, 0, 0, 2, 1]) + b"\xff\xfe" + b"e",
])
def test_v2_decode_rejects_truncated_or_non_utf8_binary_pushes(raw):
    """A header shorter than five bytes, a field cut short or non-UTF-8 text is an error."""
    with pytest.raises(ProtocolError):
        V2.decode(raw)


# --- V2 JSON, server side: encoding every frame of the 2.5 table --------------------------


def test_v2_reply_to_a_channel_message_carries_join_ref_and_echoed_ref():
    """A reply is [join_ref, ref, topic, "phx_reply", {status, response}]."""
    out = V2.encode(Reply("room:1", "ok", {"a": 1}, ref="7", join_ref="6"))
    assert frame(out) == ["6", "7", "room:1", "phx_reply", {"status": "ok", "response": {"a": 1}}]


def test_v2_reply_status_may_be_any_string():
    """The status is whatever atom the channel used, as a string."""
    out = V2.encode(Reply("room:1", "error", {"reason": "unauthorized"}, ref="3", join_ref="3"))
    assert frame(out)[4] == {"status": "error", "response": {"reason": "unauthorized"}}


def test_v2_heartbeat_reply_has_null_join_ref():
    """The heartbeat reply is [null, ref, "phoenix", "phx_reply", {"status":"ok","response":{}}]."""
    out = V2.encode(Reply(p.PHOENIX_TOPIC, "ok", {}, ref="9", join_ref=None))
    assert frame(out) == [None, "9", "phoenix", "phx_reply", {"status": "ok", "response": {}}]


def test_v2_unmatched_topic_reply_has_null_join_ref():
    """"unmatched topic" is an error reply with join_ref null and the echoed ref."""
    out = V2.encode(Reply("nope:1", "error", {"reason": p.UNMATCHED_TOPIC}, ref="4"))
    assert frame(out) == [None, "4", "nope:1", "phx_reply",
                          {"status": "error", "response": {"reason": "unmatched topic"}}]


def test_v2_too_many_channels_reply_echoes_the_joins_join_ref():
    """Join refusals, unlike unmatched topics, echo the join's join_ref."""
    out = V2.encode(Reply("room:101", "error", {"reason": p.TOO_MANY_CHANNELS}, "5", "5"))
    assert frame(out) == ["5", "5", "room:101", "phx_reply",
                          {"status": "error", "response": {"reason": "too many channels joined"}}]


def test_v2_push_carries_join_ref_and_null_ref():
    """A channel push (push/3, handle_out) is [join_ref, null, topic, event, payload]."""
    out = V2.encode(Message("room:1", "new_msg", {"body": "hi"}, ref=None, join_ref="6"))
    assert frame(out) == ["6", None, "room:1", "new_msg", {"body": "hi"}]


def test_v2_fastlane_broadcast_has_null_join_ref_and_ref():
    """A fastlane broadcast is encoded once with join_ref and ref both null."""
    out = V2.fastlane(Broadcast("room:1", "new_msg", {"body": "hi"}))
    assert frame(out) == [None, None, "room:1", "new_msg", {"body": "hi"}]


def test_v2_phx_close_puts_join_ref_in_both_slots():
    """phx_close is [join_ref, join_ref, topic, "phx_close", {}]."""
    out = V2.encode(Message("room:1", p.PHX_CLOSE, {}, ref="6", join_ref="6"))
    assert frame(out) == ["6", "6", "room:1", "phx_close", {}]


def test_v2_phx_error_carries_channel_crash_reason():
    """phx_error is [join_ref, join_ref, topic, "phx_error", {"reason":"channel_crash"}]."""
    out = V2.encode(Message("room:1", p.PHX_ERROR, {"reason": p.CHANNEL_CRASH}, "6", "6"))
    assert frame(out) == ["6", "6", "room:1", "phx_error", {"reason": "channel_crash"}]


def test_v2_encode_writes_compact_json_without_ascii_escapes():
    """Frames are compact JSON and keep non-ASCII text as is."""
    out = V2.encode(Message("room:1", "new_msg", {"body": "Zoë"}, None, "6"))
    assert out == '["6",null,"room:1","new_msg",{"body":"Zoë"}]'


@pytest.mark.parametrize("payload", [["list"], "text", 3, None])
def test_v2_push_and_fastlane_refuse_non_object_payloads(payload):
    """Phoenix raises for non-map JSON payloads on encode!/fastlane!; so do we."""
    with pytest.raises(ProtocolError):
        V2.encode(Message("room:1", "ev", payload, None, "6"))
    with pytest.raises(ProtocolError):
        V2.fastlane(Broadcast("room:1", "ev", payload))


def test_v2_encode_refuses_values_json_cannot_carry():
    """NaN and arbitrary objects are a ProtocolError, not a broken frame."""
    with pytest.raises(ProtocolError):
        V2.encode(Message("room:1", "ev", {"x": float("nan")}, None, "6"))
    with pytest.raises(ProtocolError):
        V2.encode(Message("room:1", "ev", {"x": object()}, None, "6"))


# --- V2 binary, server side: hand-checked layouts -----------------------------------------


def test_v2_binary_push_layout_has_no_ref_field():
    """Server push kind 0: [0][join_ref_len][topic_len][event_len] join_ref topic event data."""
    out = V2.encode(Message("room:1", "up", b"AB", ref=None, join_ref="6"))
    assert out == bytes.fromhex("00 01 06 02 36 726f6f6d3a31 7570 4142")


def test_v2_binary_reply_layout():
    """Reply kind 1: [1][4 lengths] join_ref ref topic status data (status in the event slot)."""
    out = V2.encode(Reply("room:1", "ok", b"AB", ref="7", join_ref="6"))
    assert out == bytes.fromhex("01 01 01 06 02 36 37 726f6f6d3a31 6f6b 4142")


def test_v2_binary_broadcast_layout():
    """Broadcast kind 2: [2][topic_len][event_len] topic event data."""
    out = V2.fastlane(Broadcast("room:1", "up", b"AB"))
    assert out == bytes.fromhex("02 06 02 726f6f6d3a31 7570 4142")


def test_v2_binary_null_refs_are_written_as_empty_strings():
    """A null join_ref or ref has length 0 in a binary header."""
    out = V2.encode(Reply("t", "ok", b"", ref=None, join_ref=None))
    assert out == bytes([1, 0, 0, 1, 2]) + b"tok"


def test_v2_binary_lengths_count_utf8_bytes_not_characters():
    """Header lengths are byte counts of the UTF-8 text."""
    out = V2.fastlane(Broadcast("é", "ü", b"\x00"))
    assert out == bytes([2, 2, 2]) + "é".encode() + "ü".encode() + b"\x00"


# --- the 255-byte limit of binary header fields ------------------------------------------

OK_255 = "x" * 255
TOO_LONG = "x" * 256
TOO_LONG_UTF8 = "é" * 128  # 128 characters, 256 bytes


@pytest.mark.parametrize("long", [TOO_LONG, TOO_LONG_UTF8])
@pytest.mark.parametrize("build", [
    lambda s: V2.encode(Message(s, "e", b"", None, "1")),
    lambda s: V2.encode(Message("t", s, b"", None, "1")),
    lambda s: V2.encode(Message("t", "e", b"", None, s)),
    lambda s: V2.encode(Reply(s, "ok", b"", "1", "1")),
    lambda s: V2.encode(Reply("t", s, b"", "1", "1")),
    lambda s: V2.encode(Reply("t", "ok", b"", s, "1")),
    lambda s: V2.encode(Reply("t", "ok", b"", "1", s)),
    lambda s: V2.fastlane(Broadcast(s, "e", b"")),
    lambda s: V2.fastlane(Broadcast("t", s, b"")),
    lambda s: V2.encode_client(Message(s, "e", b"", "1", "1")),
    lambda s: V2.encode_client(Message("t", s, b"", "1", "1")),
    lambda s: V2.encode_client(Message("t", "e", b"", s, "1")),
    lambda s: V2.encode_client(Message("t", "e", b"", "1", s)),
], ids=["push-topic", "push-event", "push-join_ref", "reply-topic", "reply-status",
        "reply-ref", "reply-join_ref", "broadcast-topic", "broadcast-event",
        "client-topic", "client-event", "client-ref", "client-join_ref"])
def test_binary_header_fields_over_255_bytes_are_refused(build, long):
    """Every binary header field is limited to 255 UTF-8 bytes, in every encoder."""
    with pytest.raises(ProtocolError, match="255"):
        build(long)


def test_binary_header_field_of_exactly_255_bytes_round_trips():
    """255 bytes is the largest field that fits in a one-byte length."""
    raw = V2.encode_client(Message(OK_255, OK_255, b"z", OK_255, OK_255))
    assert raw[:5] == bytes([0, 255, 255, 255, 255])
    assert V2.decode(raw) == Message(OK_255, OK_255, b"z", OK_255, OK_255)


def test_json_frames_have_no_length_limit():
    """The 255-byte limit is a binary-frame limit only; text frames carry long topics."""
    assert frame(V2.encode_client(Message(TOO_LONG, "e", {}, "1", "1")))[2] == TOO_LONG


# --- V2, client side (what phoenix.js serializer.js does) ------------------------------


def test_client_encodes_a_join_exactly_as_phoenix_js():
    """encode_client writes the same compact text as JSON.stringify in phoenix.js."""
    out = V2.encode_client(Message("room:lobby", p.PHX_JOIN, {"p": 1}, ref="6", join_ref="6"))
    assert out == '["6","6","room:lobby","phx_join",{"p":1}]'


def test_client_encodes_a_heartbeat_exactly_as_phoenix_js():
    """The client heartbeat frame is [null,ref,"phoenix","heartbeat",{}]."""
    out = V2.encode_client(Message(p.PHOENIX_TOPIC, p.HEARTBEAT, {}, ref="9"))
    assert out == '[null,"9","phoenix","heartbeat",{}]'


def test_client_encodes_the_observed_binary_push_byte_for_byte():
    """An ArrayBuffer push encodes to exactly the bytes phoenix.js 1.8.16 sent."""
    out = V2.encode_client(Message("room:1", "up", b"AB", ref="7", join_ref="6"))
    assert out == OBSERVED_BINARY_PUSH


def test_client_decodes_a_text_reply():
    """A phx_reply array becomes a Message whose payload holds status and response."""
    msg = V2.decode_client('["6","7","room:1","phx_reply",{"status":"ok","response":{}}]')
    assert msg == Message("room:1", p.PHX_REPLY, {"status": "ok", "response": {}}, "7", "6")


def test_client_decodes_a_fastlane_broadcast_with_null_refs():
    """A broadcast array decodes with join_ref and ref None."""
    msg = V2.decode_client('[null,null,"room:1","new_msg",{"body":"hi"}]')
    assert msg == Message("room:1", "new_msg", {"body": "hi"}, None, None)


def test_client_decodes_phx_close_with_join_ref_in_both_slots():
    """phx_close arrives with the old join_ref as both join_ref and ref."""
    msg = V2.decode_client('["6","6","room:1","phx_close",{}]')
    assert (msg.event, msg.ref, msg.join_ref) == (p.PHX_CLOSE, "6", "6")


@pytest.mark.parametrize("raw", ['["1","2","t","e"]', '["1","2","t","e",{},6]', "{}", "[", "7"])
def test_client_decode_requires_an_array_of_exactly_five(raw):
    """The client accepts only [join_ref, ref, topic, event, payload]; phoenix.js is laxer."""
    with pytest.raises(ProtocolError):
        V2.decode_client(raw)


def test_client_decodes_a_hand_built_binary_push():
    """Kind 0 from the server has no ref: the message's ref is None."""
    raw = bytes([0, 1, 6, 2]) + b"6" + b"room:1" + b"up" + b"\x01\x02"
    assert V2.decode_client(raw) == Message("room:1", "up", b"\x01\x02", None, "6")


def test_client_decodes_a_hand_built_binary_reply_as_phx_reply():
    """Kind 1 becomes event phx_reply with payload {status, response: bytes}."""
    raw = bytes([1, 1, 1, 6, 2]) + b"6" + b"7" + b"room:1" + b"ok" + b"AB"
    msg = V2.decode_client(raw)
    assert msg == Message("room:1", p.PHX_REPLY, {"status": "ok", "response": b"AB"}, "7", "6")


def test_client_decodes_a_hand_built_binary_broadcast_with_null_refs():
    """Kind 2 carries only topic and event; join_ref and ref are None."""
    raw = bytes([2, 6, 2]) + b"room:1" + b"up" + b"AB"
    assert V2.decode_client(raw) == Message("room:1", "up", b"AB", None, None)


@pytest.mark.parametrize("raw", [
    b"",
    b"\x03\x00\x00",
    b"\x00\x01",
    bytes([1, 1, 1, 6, 2]) + b"67room",
    bytes([2, 1, 1]) + b"\xc3(",
])
def test_client_decode_rejects_bad_binary_frames(raw):
    """Empty, unknown kind, truncated or non-UTF-8 binary frames are a ProtocolError."""
    with pytest.raises(ProtocolError):
        V2.decode_client(raw)


# --- V1 JSON objects (PROTOCOL.md 2.3) ---------------------------------------------------


def test_v1_decodes_an_object_without_join_ref():
    """A V1 client message has topic, event, payload, ref; join_ref defaults to None."""
    msg = V1.decode('{"topic":"room:1","event":"phx_join","payload":{},"ref":"1"}')
    assert msg == Message("room:1", p.PHX_JOIN, {}, ref="1", join_ref=None)


def test_v1_decodes_an_optional_join_ref():
    """A V1 client may send join_ref; it is kept."""
    msg = V1.decode('{"topic":"t","event":"e","payload":{},"ref":"2","join_ref":"1"}')
    assert msg.join_ref == "1"


@pytest.mark.parametrize("key", ["topic", "event", "payload", "ref"])
def test_v1_decode_names_the_missing_key(key):
    """Each of the four keys is required; the error names the missing one."""
    obj = {"topic": "t", "event": "e", "payload": {}, "ref": None}
    del obj[key]
    with pytest.raises(ProtocolError, match=f"missing {key}"):
        V1.decode(json.dumps(obj))


def test_v1_accepts_an_explicit_null_ref():
    """The ref key must be present but may be null."""
    assert V1.decode('{"topic":"t","event":"e","payload":{},"ref":null}').ref is None


@pytest.mark.parametrize("raw", ['["1","2","t","e",{}]', "3", "nope"])
def test_v1_decode_rejects_non_objects(raw):
    """A V1 message is a JSON object; arrays, numbers and garbage are errors."""
    with pytest.raises(ProtocolError):
        V1.decode(raw)


def test_v1_decodes_a_binary_frame_as_json():
    """Phoenix's V1 serializer ignores the opcode: JSON in a binary frame decodes as text."""
    raw = b'{"topic":"t","event":"e","payload":{},"ref":"1"}'
    assert V1.decode(raw) == Message("t", "e", {}, "1", None)


def test_v1_binary_frame_that_is_not_json_is_an_error():
    """A V2 binary push (or anything not UTF-8 JSON) on a V1 socket is a ProtocolError."""
    with pytest.raises(ProtocolError):
        V1.decode(OBSERVED_BINARY_PUSH)


def test_v1_reply_never_carries_join_ref():
    """V1 replies have only topic, event, payload, ref even when the channel has a join_ref."""
    out = V1.encode(Reply("room:1", "ok", {"a": 1}, ref="7", join_ref="6"))
    assert frame(out) == {"topic": "room:1", "event": "phx_reply", "ref": "7",
                          "payload": {"status": "ok", "response": {"a": 1}}}


def test_v1_push_never_carries_join_ref_and_has_null_ref():
    """A V1 push is {topic, event, payload, ref: null}."""
    out = V1.encode(Message("room:1", "new_msg", {"body": "hi"}, ref=None, join_ref="6"))
    assert frame(out) == {"topic": "room:1", "event": "new_msg", "payload": {"body": "hi"},
                          "ref": None}


def test_v1_phx_close_drops_join_ref_but_keeps_ref():
    """phx_close in V1 keeps the ref slot (the join_ref) and never writes a join_ref key."""
    out = frame(V1.encode(Message("room:1", p.PHX_CLOSE, {}, ref="6", join_ref="6")))
    assert out == {"topic": "room:1", "event": "phx_close", "payload": {}, "ref": "6"}


def test_v1_heartbeat_reply():
    """The V1 heartbeat reply is a phx_reply object on topic phoenix."""
    out = V1.encode(Reply(p.PHOENIX_TOPIC, "ok", {}, ref="9"))
    assert frame(out) == {"topic": "phoenix", "event": "phx_reply", "ref": "9",
                          "payload": {"status": "ok", "response": {}}}


def test_v1_fastlane_broadcast_has_null_ref_and_no_join_ref():
    """A V1 broadcast is {topic, event, payload, ref: null}."""
    out = V1.fastlane(Broadcast("room:1", "new_msg", {"body": "hi"}))
    assert frame(out) == {"topic": "room:1", "event": "new_msg", "payload": {"body": "hi"},
                          "ref": None}


def test_v1_refuses_binary_payloads():
    """Binary payloads need V2; V1 encode and fastlane refuse them."""
    with pytest.raises(ProtocolError, match="V2"):
        V1.encode(Message("t", "e", b"AB", None, "1"))
    with pytest.raises(ProtocolError, match="V2"):
        V1.encode(Reply("t", "ok", b"AB", "1", "1"))
    with pytest.raises(ProtocolError, match="V2"):
        V1.fastlane(Broadcast("t", "e", b"AB"))


# --- vsn negotiation (PROTOCOL.md 1.2; Elixir Version and "~>") -------------------------


def test_missing_vsn_means_v1():
    """Phoenix uses params["vsn"] || "1.0.0": no vsn speaks V1."""
    assert isinstance(negotiate(None), V1JSONSerializer)


@pytest.mark.parametrize(("vsn", "kind"), [
    ("1.0.0", V1JSONSerializer),
    ("2.0.0", V2JSONSerializer),
    ("1.0.9", V1JSONSerializer),
    ("2.0.12", V2JSONSerializer),
    ("2.0.0+build.7", V2JSONSerializer),
    ("2.0.1-rc.1", V2JSONSerializer),
])
def test_vsn_matching_tilde_requirement_picks_that_serializer(vsn, kind):
    """ "~> X.Y.0" accepts X.Y.z (build metadata ignored, later-patch pre-releases allowed)."""
    assert isinstance(negotiate(vsn), kind)


@pytest.mark.parametrize("vsn", [
    "3.0.0", "2.1.0", "1.1.0", "0.9.0", "2.0.0-rc.1", "2.1.0-dev", "1.0.0-beta",
])
def test_vsn_matching_no_requirement_is_refused(vsn):
    """Versions outside ~> 1.0.0 and ~> 2.0.0 (and pre-releases of X.Y.0) match nothing."""
    with pytest.raises(ProtocolError, match="not supported"):
        negotiate(vsn)


@pytest.mark.parametrize("vsn", [
    "2", "2.0", "abc", "", " 2.0.0", "2.0.0\n", "v2.0.0", "02.0.0", "2.00.0", "2.0.00",
    "2.0.0.0", "2.0.0-", "2.0.1-01", "2.0.1-a..b", "2.0.0+", "2.0.0+a+b", "\u0662.0.0",
])
def test_vsn_that_does_not_parse_is_refused(vsn):
    """Anything Elixir's Version.parse rejects (leading zeros, junk, non-ASCII digits) fails."""
    with pytest.raises(ProtocolError, match="not a version"):
        negotiate(vsn)


def test_negotiated_serializers_report_their_vsn():
    """Each serializer names the version it speaks."""
    assert negotiate("2.0.0").vsn == "2.0.0" == p.DEFAULT_VSN
    assert negotiate("1.0.0").vsn == "1.0.0"


# --- phoenix.js 1.8.16 timers and constants (PROTOCOL.md 5.1, 3) --------------------------

RECONNECT_MS = [10, 50, 100, 150, 200, 250, 500, 1000, 2000]
REJOIN_MS = [1000, 2000, 5000]


def test_reconnect_after_follows_the_phoenix_js_steps():
    """Tries 1..9 wait 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms."""
    assert [round(p.reconnect_after(t) * 1000) for t in range(1, 10)] == RECONNECT_MS


@pytest.mark.parametrize("tries", [10, 11, 50, 10_000])
def test_reconnect_after_settles_at_five_seconds(tries):
    """Every try after the ninth waits 5000 ms."""
    assert p.reconnect_after(tries) == 5.0


def test_rejoin_after_follows_the_phoenix_js_steps():
    """Tries 1..3 wait 1000, 2000, 5000 ms."""
    assert [round(p.rejoin_after(t) * 1000) for t in range(1, 4)] == REJOIN_MS


@pytest.mark.parametrize("tries", [4, 5, 100])
def test_rejoin_after_settles_at_ten_seconds(tries):
    """Every try after the third waits 10000 ms."""
    assert p.rejoin_after(tries) == 10.0


def test_out_of_range_tries_fall_back_like_phoenix_js():
    """phoenix.js's `[...][tries - 1] || max` gives the maximum for tries 0."""
    assert (p.reconnect_after(0), p.rejoin_after(0)) == (5.0, 10.0)


def test_reserved_events_are_spelled_as_phoenix_spells_them():
    """Event and topic names match phoenix.js constants.js."""
    assert (p.PHX_JOIN, p.PHX_LEAVE, p.PHX_REPLY, p.PHX_CLOSE, p.PHX_ERROR) == (
        "phx_join", "phx_leave", "phx_reply", "phx_close", "phx_error")
    assert p.CHANNEL_EVENTS == {"phx_join", "phx_leave", "phx_reply", "phx_close", "phx_error"}
    assert (p.PHOENIX_TOPIC, p.HEARTBEAT) == ("phoenix", "heartbeat")


def test_reasons_match_phoenix():
    """Error reasons are Phoenix's exact strings."""
    assert (p.UNMATCHED_TOPIC, p.TOO_MANY_CHANNELS, p.JOIN_CRASHED, p.CHANNEL_CRASH) == (
        "unmatched topic", "too many channels joined", "join crashed", "channel_crash")


def test_default_timings_match_phoenix_js_and_phoenix():
    """Timeout 10 s, heartbeat 30 s, server idle 60 s, 100 channels, vsn 2.0.0, /websocket."""
    assert p.DEFAULT_TIMEOUT == 10.0
    assert p.DEFAULT_HEARTBEAT_INTERVAL == 30.0
    assert p.SERVER_IDLE_TIMEOUT == 60.0
    assert p.MAX_CHANNELS_PER_TRANSPORT == 100
    assert p.DEFAULT_VSN == "2.0.0"
    assert p.WEBSOCKET_PATH == "/websocket"
    assert p.BINARY_FIELD_MAX == 255


def test_close_codes_match_rfc_6455():
    """The close codes the course relies on have their RFC 6455 values."""
    assert (p.CloseCode.NORMAL, p.CloseCode.GOING_AWAY, p.CloseCode.NO_STATUS,
            p.CloseCode.ABNORMAL, p.CloseCode.SERVICE_RESTART) == (1000, 1001, 1005, 1006, 1012)


# --- messages --------------------------------------------------------------------------


def test_message_payload_defaults_to_an_empty_object():
    """Like phoenix.js, a message without payload carries {}."""
    msg = Message("t", "e")
    assert (msg.payload, msg.ref, msg.join_ref) == ({}, None, None)


def test_reply_to_message_is_what_the_client_sees():
    """Reply.to_message gives event phx_reply with payload {status, response}."""
    msg = Reply("t", "ok", {"a": 1}, "2", "1").to_message()
    assert msg == Message("t", p.PHX_REPLY, {"status": "ok", "response": {"a": 1}}, "2", "1")
