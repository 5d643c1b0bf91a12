"""Bad input: each offender gets an error reply or a clean close; everyone else is unaffected."""

from __future__ import annotations

import asyncio
import json

import pytest
from raw_client import TIMEOUT, Raw, reply
from websockets.exceptions import ConnectionClosed

from mini_server.protocol import MAX_NESTING
from mini_server.testing import wait_until


async def healthy(raw) -> Raw:
    """A bystander joined to a channel, to prove the bad client hurt nobody."""
    client = await raw()
    await client.join("echo:bystander", "b1")
    return client


async def assert_still_fine(client: Raw) -> None:
    """The bystander still gets heartbeat replies and channel replies."""
    assert await client.heartbeat() == reply(None, "hb", "phoenix")
    await client.send("b1", "p", "echo:bystander", "ping", {"ok": 1})
    assert await client.recv() == reply("b1", "p", "echo:bystander", "ok", {"ok": 1})


@pytest.mark.parametrize("frame", [
    '["1","2","echo:1","ev",{}',  # truncated JSON
    "not json at all",
    "",
    '["1","2"]',  # too few elements
    "[]",
    '{"topic":"echo:1"}',  # V1 shape on a V2 socket
    '1', '"x"', "null",  # JSON scalars
    "[NaN]",
    "[" * 100_000,  # nesting deep enough to blow the recursion limit
])
async def test_undecodable_text_closes_with_1011_and_no_reason(raw, frame):
    """Phoenix's socket process crashes on an undecodable frame: close 1011, empty reason."""
    bystander = await healthy(raw)
    bad = await raw()
    await bad.send_raw(frame)
    assert await bad.closed() == (1011, "")
    await assert_still_fine(bystander)


@pytest.mark.parametrize(("frame", "answer"), [
    ('["1","r","echo:1","ping","payload"]', ["1", "r", "echo:1", "phx_reply",
                                            {"status": "ok", "response": "payload"}]),
    ('[1,2,"echo:1","ping",{}]', [1, 2, "echo:1", "phx_reply",
                                  {"status": "ok", "response": {}}]),
    ('["1","r",5,"ev",{}]', [None, "r", 5, "phx_reply",
                             {"status": "error", "response": {"reason": "unmatched topic"}}]),
    ('["1","r","echo:1","ping",{},"extra"]', ["1", "r", "echo:1", "phx_reply",
                                              {"status": "ok", "response": {}}]),
])
async def test_odd_but_decodable_fields_are_served_as_phoenix_does(raw, frame, answer):
    """Any payload, numeric refs, a non-string topic and extra elements are not errors."""
    bad = await raw()
    await bad.send_raw('[1,1,"echo:1","phx_join",{}]' if "[1," in frame else
                       '["1","1","echo:1","phx_join",{}]')
    await bad.recv()
    await bad.send_raw(frame)
    assert await bad.recv() == answer
    assert await bad.heartbeat() == reply(None, "hb", "phoenix")


async def test_non_string_event_crashes_the_joined_channel(raw):
    """An event that is not a string reaches the channel, which has no clause: phx_error."""
    client = await raw()
    await client.join("echo:1", "1")
    await client.send("1", "2", "echo:1", 7, {})
    assert await client.recv() == ["1", "1", "echo:1", "phx_error", {"reason": "channel_crash"}]
    assert await client.heartbeat() == reply(None, "hb", "phoenix")


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00\x05",  # header cut short
    bytes([0, 1, 1, 6, 3]) + b"67echo",  # truncated inside the topic
    bytes([1, 1, 1, 6, 2]) + b"67echo:1ok",  # a reply kind: clients may only push
    bytes([0, 1, 1, 2, 1]) + b"67\xff\xfeev",  # topic not UTF-8
    b'["1","1","echo:1","phx_join",{}]',  # V2 JSON in a binary frame
])
async def test_garbage_binary_closes_with_1011(raw, frame):
    """Truncated, foreign or JSON binary frames on V2 close the connection with 1011."""
    bystander = await healthy(raw)
    bad = await raw()
    await bad.send_raw(frame)
    assert await bad.closed() == (1011, "")
    await assert_still_fine(bystander)


async def test_v1_json_in_a_binary_frame_is_served_like_text(raw):
    """Phoenix's V1 serializer JSON-decodes binary frames, so bytes clients work."""
    client = await raw("", v1=True)
    await client.send_raw(b'{"topic":"echo:1","event":"phx_join","payload":{},"ref":"1"}')
    assert await client.recv() == {"event": "phx_reply", "ref": "1", "topic": "echo:1",
                                   "payload": {"status": "ok",
                                               "response": {"joined": "echo:1"}}}


async def test_v2_binary_push_on_v1_closes_with_1011(raw):
    """A V2 binary push on a V1 socket is not JSON: 1011, and the others are fine."""
    bystander = await healthy(raw)
    bad = await raw("", v1=True)
    await bad.send_raw(bytes([0, 1, 1, 6, 3]) + b"67echo:1bin")
    assert await bad.closed() == (1011, "")
    await assert_still_fine(bystander)


async def test_invalid_utf8_text_closes_with_1007_and_no_reason(raw):
    """A text frame that is not UTF-8 closes with 1007, as Bandit does, reason empty."""
    bad = await raw()
    await bad.ws.send(b'["1","1","room:\xff","phx_join",{}]', text=True)
    assert await bad.closed() == (1007, "")


async def test_frame_over_max_frame_size_closes_with_1009(make_server, raw):
    """A frame larger than max_frame_size closes that connection with 1009."""
    server = await make_server(max_frame_size=1024)
    bystander = await healthy(lambda *a, **k: raw(*a, endpoint=server, **k))
    bad = await raw(endpoint=server)
    await bad.send(None, "1", "phoenix", "heartbeat", {"pad": "x" * 2000})
    assert await bad.closed() == (1009, "")
    await assert_still_fine(bystander)


async def test_default_max_frame_size_is_one_mebibyte(make_server, raw):
    """Frames up to 1 MiB pass by default; one byte over closes with 1009."""
    server = await make_server()
    client = await raw(endpoint=server)
    await client.join("echo:1", "j")
    head = json.dumps(["j", "r", "echo:1", "ping", {"p": ""}])
    fits = head.replace('""', '"' + "x" * (1_048_576 - len(head)) + '"')
    await client.send_raw(fits)
    assert (await client.recv())[4]["status"] == "ok"
    await client.send_raw(fits.replace("xx", "xxx", 1))
    assert (await client.closed())[0] == 1009


async def test_flooding_client_is_throttled_and_others_keep_heartbeats(raw):
    """A client pushing 10 000 frames without reading stalls only itself."""
    bystander = await healthy(raw)
    flooder = await raw()
    await flooder.join("echo:flood", "f")
    frames = [json.dumps(["f", str(n), "echo:flood", "ping", {"n": n}]) for n in range(10_000)]

    async def flood() -> None:
        for frame in frames:
            await flooder.send_raw(frame)

    flooding = asyncio.create_task(flood())
    try:
        for n in range(20):  # each within TIMEOUT, while the flood is under way
            assert await bystander.heartbeat(str(n)) == reply(None, str(n), "phoenix")
        for n in range(10_000):  # now read: every reply arrives, in order
            assert (await flooder.recv())[1] == str(n)
    finally:
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)


async def test_client_that_never_reads_is_aborted_past_max_outgoing(make_server, raw):
    """Broadcasts piling up for a client that does not read abort only that connection."""
    server = await make_server(max_outgoing=50)
    reader = await raw(endpoint=server)
    await reader.join("echo:big", "r")
    stuck = await raw(endpoint=server)
    await stuck.join("echo:big", "s")
    payload = {"blob": "x" * 65_536}

    async def pump() -> None:
        for _ in range(400):
            await server.broadcast("echo:big", "blob", payload)
            await reader.recv()  # the healthy subscriber keeps up

    async with asyncio.timeout(20):
        await pump()
    with pytest.raises(ConnectionClosed):
        while True:
            async with asyncio.timeout(TIMEOUT):
                await stuck.ws.recv()
    assert stuck.ws.close_code == 1006
    await wait_until(lambda: server.snapshot()["socket_count"] == 1)
    assert await reader.heartbeat() == reply(None, "hb", "phoenix")


async def test_flooding_a_slow_channel_is_bounded_by_the_mailbox(make_server, raw):
    """Pushes to a channel that falls behind stop being read at mailbox_size; none is lost."""
    from channels import GateChannel

    GateChannel.gate = asyncio.Event()
    server = await make_server(mailbox_size=10)
    bystander = await healthy(lambda *a, **k: raw(*a, endpoint=server, **k))
    flooder = await raw(endpoint=server)
    await flooder.join("gate:1", "g")
    for n in range(3000):  # far more than the mailbox and the socket buffers absorb
        await flooder.send("g", str(n), "gate:1", "ev", {"n": n})
    await assert_still_fine(bystander)
    (transport,) = [t for t in server.transports if "gate:1" in t.channels]
    assert len(transport.channels["gate:1"].mailbox) <= 10
    GateChannel.gate.set()
    for n in range(3000):
        assert await flooder.recv() == reply("g", str(n), "gate:1", "ok", {"n": n})


def nested(depth: int) -> str:
    """A payload of arrays nested ``depth`` deep inside the frame's own array."""
    return "[" * (depth - 1) + "]" * (depth - 1)


@pytest.mark.parametrize("payload", [
    '{"x":1e400}', '{"x":-1e400}', '{"x":[1.5,2E+999]}', '{"x":' + "9" * 400 + '.0}',
    nested(MAX_NESTING + 1),
])
async def test_numbers_past_the_double_range_and_deep_nesting_close_at_decode(raw, payload):
    """1e400 (Jason: binary_to_float badarg) and too-deep JSON: 1011 before any channel runs."""
    bystander = await healthy(raw)
    bad = await raw()
    await bad.join("echo:1", "1")
    await bad.send_raw(f'["1","2","echo:1","ping",{payload}]')
    assert await bad.closed() == (1011, "")  # not phx_error: the channel never saw it
    await assert_still_fine(bystander)


async def test_the_deepest_allowed_payload_and_big_numbers_are_echoed(raw):
    """At MAX_NESTING the frame decodes, the channel replies and the reply encodes."""
    client = await raw()
    await client.join("echo:1", "1")
    payload = "[" * (MAX_NESTING - 3) + "]" * (MAX_NESTING - 3)  # the reply adds two levels
    await client.send_raw(f'["1","2","echo:1","ping",{payload}]')
    answer = await client.recv()
    assert answer[4]["status"] == "ok"
    await client.send_raw('["1","3","echo:1","ping",{"big":1e308,"int":' + "9" * 400 + "}]")
    assert (await client.recv())[4]["response"] == {"big": 1e308, "int": int("9" * 400)}
