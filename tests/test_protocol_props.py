"""Property tests for mini_server.protocol: decoders never crash, encoders round-trip.

Deterministic (derandomize, no example database) so a failure reproduces on every run.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def fixed(examples: int) -> settings:
    """Deterministic settings: derandomized, no example database, no deadline."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# Example counts are fixed and sized so the whole file runs in well under 10 s on a shared
# 2-core machine: raw bytes and text get 500 examples, structured inputs fewer (drawing
# JSON trees costs far more than decoding them).
FUZZ, SHAPED, ROUND_TRIP, JSON_HEAVY = fixed(500), fixed(300), fixed(150), fixed(100)

# Every decoder a peer's bytes can reach: server side of V1 and V2, client side of V2.
DECODERS = (V1.decode, V2.decode, V2.decode_client)

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=8,
)
# Payloads for round trips: one level of nesting keeps drawing cheap.
json_objects = st.dictionaries(
    st.text(max_size=6),
    json_scalars | st.lists(json_scalars, max_size=3)
    | st.dictionaries(st.text(max_size=4), json_scalars, max_size=3),
    max_size=4)
# Values that probe each field check of the decoders, cheap to draw.
odd_values = st.sampled_from([None, True, False, 0, -1, 2**70, 1.5, -0.0, "", "x", "6",
                              "phx_join", [], [None], ["1"], {}, {"a": 1}, {"": []}])

# Binary header fields: at most 60 characters is at most 240 UTF-8 bytes, under the limit.
field = st.text(max_size=60)
ref = st.none() | st.text(min_size=1, max_size=60)  # binary frames cannot tell "" from null


def decode_or_protocol_error(decode, raw) -> None:
    """Decode raw; a Message or a ProtocolError is fine, anything else fails the test."""
    try:
        result = decode(raw)
    except ProtocolError:
        return
    assert isinstance(result, Message)


@FUZZ
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_only_protocol_error(raw):
    """Random binary frames never raise anything but ProtocolError."""
    for decode in DECODERS:
        decode_or_protocol_error(decode, raw)


@SHAPED
@given(st.sampled_from([0, 1, 2]), st.lists(st.integers(0, 255), max_size=5),
       st.binary(max_size=80))
def test_decoding_binary_frames_with_known_kinds_raises_only_protocol_error(kind, sizes, rest):
    """Frames that start like real binary frames but lie about lengths fail cleanly."""
    raw = bytes([kind, *sizes]) + rest
    for decode in DECODERS:
        decode_or_protocol_error(decode, raw)


@FUZZ
@given(st.text(max_size=300))
def test_decoding_arbitrary_text_raises_only_protocol_error(raw):
    """Random text frames never raise anything but ProtocolError."""
    for decode in DECODERS:
        decode_or_protocol_error(decode, raw)


@JSON_HEAVY
@given(json_values)
def test_decoding_arbitrary_json_raises_only_protocol_error(value):
    """Any JSON document, valid or not as a message, raises at most ProtocolError."""
    raw = json.dumps(value)
    for decode in DECODERS:
        decode_or_protocol_error(decode, raw)


message_shaped = (st.lists(odd_values, min_size=3, max_size=7)
                  | st.dictionaries(st.sampled_from(["topic", "event", "payload", "ref",
                                                     "join_ref", "x"]), odd_values, max_size=6))


@SHAPED
@given(message_shaped)
def test_decoding_message_shaped_json_with_any_field_types_raises_only_protocol_error(value):
    """Arrays and objects shaped like V2/V1 messages, holding any values, fail cleanly."""
    raw = json.dumps(value)
    for decode in DECODERS:
        decode_or_protocol_error(decode, raw)


@ROUND_TRIP
@given(st.none() | st.text(max_size=12) | st.builds(
    "{}.{}.{}{}".format, st.sampled_from(["0", "1", "2", "3", "01", "10"]),
    st.sampled_from(["0", "1", "00"]), st.sampled_from(["0", "1", "9", "07"]),
    st.sampled_from(["", "-rc", "-rc.1", "-0", "-01", "-", "+b", "+", "-a..b", ".0", "\n"])))
def test_negotiate_returns_a_serializer_or_raises_protocol_error(vsn):
    """Any vsn string picks V1 or V2 or raises ProtocolError."""
    try:
        serializer = negotiate(vsn)
    except ProtocolError:
        return
    assert serializer.vsn in ("1.0.0", "2.0.0")


# --- round trips ------------------------------------------------------------------------


@JSON_HEAVY
@given(st.none() | st.text(max_size=20), st.none() | st.text(max_size=20), st.text(max_size=30),
       st.text(max_size=30), json_objects)
def test_client_text_frames_round_trip_through_the_server_decoder(join_ref, ref_, topic, event,
                                                                 payload):
    """encode_client then server decode returns the same message (V2 JSON)."""
    msg = Message(topic, event, payload, ref_, join_ref)
    assert V2.decode(V2.encode_client(msg)) == msg


@ROUND_TRIP
@given(ref, ref, field, field, st.binary(max_size=200))
def test_client_binary_pushes_round_trip_through_the_server_decoder(join_ref, ref_, topic,
                                                                   event, data):
    """encode_client of a bytes payload then server decode returns the same message.

    Binary frames have no null: a None ref goes out empty and Phoenix reads it back as "".
    """
    msg = Message(topic, event, data, ref_, join_ref)
    raw = V2.encode_client(msg)
    assert isinstance(raw, bytes)
    assert V2.decode(raw) == Message(topic, event, data, ref_ or "", join_ref or "")


@JSON_HEAVY
@given(st.none() | st.text(max_size=20), st.none() | st.text(max_size=20), st.text(max_size=30),
       st.text(max_size=30), json_objects)
def test_server_text_pushes_round_trip_through_the_client_decoder(join_ref, ref_, topic, event,
                                                                 payload):
    """Server encode of a push then client decode returns the same message (V2 JSON)."""
    msg = Message(topic, event, payload, ref_, join_ref)
    assert V2.decode_client(V2.encode(msg)) == msg


@JSON_HEAVY
@given(st.none() | st.text(max_size=20), st.none() | st.text(max_size=20), st.text(max_size=30),
       st.text(max_size=20), json_objects)
def test_server_text_replies_round_trip_through_the_client_decoder(join_ref, ref_, topic,
                                                                  status, payload):
    """Server encode of a reply then client decode gives the reply as a phx_reply message."""
    reply = Reply(topic, status, payload, ref_, join_ref)
    assert V2.decode_client(V2.encode(reply)) == reply.to_message()


@JSON_HEAVY
@given(st.text(max_size=30), st.text(max_size=30), json_objects)
def test_server_text_broadcasts_round_trip_through_the_client_decoder(topic, event, payload):
    """fastlane then client decode gives the broadcast with null refs."""
    decoded = V2.decode_client(V2.fastlane(Broadcast(topic, event, payload)))
    assert decoded == Message(topic, event, payload, None, None)


@ROUND_TRIP
@given(ref, field, field, st.binary(max_size=200))
def test_server_binary_pushes_round_trip_through_the_client_decoder(join_ref, topic, event, data):
    """A binary push decodes on the client with ref None and everything else intact."""
    decoded = V2.decode_client(V2.encode(Message(topic, event, data, "ignored", join_ref)))
    assert decoded == Message(topic, event, data, None, join_ref)


@ROUND_TRIP
@given(ref, ref, field, field, st.binary(max_size=200))
def test_server_binary_replies_round_trip_through_the_client_decoder(join_ref, ref_, topic,
                                                                    status, data):
    """A binary reply decodes on the client as phx_reply {status, response: bytes}."""
    reply = Reply(topic, status, data, ref_, join_ref)
    assert V2.decode_client(V2.encode(reply)) == reply.to_message()


@ROUND_TRIP
@given(field, field, st.binary(max_size=200))
def test_server_binary_broadcasts_round_trip_through_the_client_decoder(topic, event, data):
    """A binary broadcast decodes on the client with both refs None."""
    decoded = V2.decode_client(V2.fastlane(Broadcast(topic, event, data)))
    assert decoded == Message(topic, event, data, None, None)


@JSON_HEAVY
@given(st.none() | st.text(max_size=20), st.text(max_size=30), st.text(max_size=30),
       json_objects)
def test_v1_frames_keep_every_field_but_join_ref(ref_, topic, event, payload):
    """V1 encode keeps topic, event, payload and ref, and a V1 client object decodes back."""
    out = json.loads(V1.encode(Message(topic, event, payload, ref_, "join")))
    assert out == {"topic": topic, "event": event, "payload": payload, "ref": ref_}
    assert V1.decode(json.dumps(out)) == Message(topic, event, payload, ref_, None)
