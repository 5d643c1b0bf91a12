"""PROTOCOL.md section 10 scenarios, asserted frame by frame with raw V2 (and V1) clients."""

from __future__ import annotations

import asyncio

import pytest
from raw_client import TIMEOUT, reply
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


async def test_s01_connect_url_passes_params_to_connect_hook(make_server, raw):
    """Scenario 1: GET /socket/websocket?token=t&vsn=2.0.0 upgrades and connect sees params."""
    seen = asyncio.get_running_loop().create_future()

    def connect_hook(params, connect_info):
        seen.set_result((params, connect_info["uri"]))
        return {"user": params["token"]}

    server = await make_server(connect=connect_hook)
    client = await raw("token=t&vsn=2.0.0", endpoint=server)
    async with asyncio.timeout(TIMEOUT):
        params, uri = await seen
    assert params == {"token": "t", "vsn": "2.0.0"}
    assert uri == "/socket/websocket?token=t&vsn=2.0.0"
    assert await client.heartbeat("1") == reply(None, "1", "phoenix")


async def test_s03_unsupported_vsn_is_refused_with_403(server):
    """Scenario 3: vsn=3.0.0 gets HTTP 403 before the upgrade."""
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.url}/websocket?vsn=3.0.0", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


async def test_s03_unparseable_vsn_is_refused_with_403(server):
    """Scenario 3: a vsn that is not a version gets HTTP 403."""
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.url}/websocket?vsn=banana", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


async def test_s03_missing_vsn_speaks_v1_objects(raw):
    """Scenario 3: without vsn the server speaks V1 JSON objects and never writes join_ref."""
    client = await raw("", v1=True)
    await client.send({"topic": "echo:1", "event": "phx_join", "payload": {}, "ref": "1"})
    assert await client.recv() == {"topic": "echo:1", "event": "phx_reply", "ref": "1",
                                   "payload": {"status": "ok",
                                               "response": {"joined": "echo:1"}}}
    await client.send({"topic": "echo:1", "event": "push", "payload": {"n": 1}, "ref": "2"})
    assert await client.recv() == {"topic": "echo:1", "event": "tick", "payload": {"n": 1},
                                   "ref": None}
    assert await client.recv() == {"topic": "echo:1", "event": "phx_reply", "ref": "2",
                                   "payload": {"status": "ok", "response": {}}}


async def test_s04_heartbeat_gets_ok_reply_with_null_join_ref(raw):
    """Scenario 4: a heartbeat is answered at once on topic phoenix."""
    client = await raw()
    await client.send(None, "r", "phoenix", "heartbeat", {})
    assert await client.recv() == [None, "r", "phoenix", "phx_reply",
                                   {"status": "ok", "response": {}}]


async def test_s06_join_ok_replies_with_join_ref_and_response(raw):
    """Scenario 6: join ok echoes jr in both slots with the channel's response."""
    client = await raw()
    await client.send("jr", "jr", "echo:lobby", "phx_join", {"p": 1})
    assert await client.recv() == reply("jr", "jr", "echo:lobby",
                                        response={"joined": "echo:lobby"})


async def test_s07_join_refused_replies_error_and_no_phx_close(raw):
    """Scenario 7: a refused join gets an error reply and nothing else."""
    client = await raw()
    assert await client.join("echo:1", "jr", {"reject": True}) == reply(
        "jr", "jr", "echo:1", "error", {"reason": "unauthorized"})
    assert await client.heartbeat() == reply(None, "hb", "phoenix")
    await client.send("jr", "r2", "echo:1", "ping", {})
    assert await client.recv() == reply(None, "r2", "echo:1", "error",
                                        {"reason": "unmatched topic"})


async def test_s08_join_without_route_is_unmatched_topic_with_null_join_ref(raw):
    """Scenario 8: joining a topic with no route replies error "unmatched topic"."""
    client = await raw()
    await client.send("jr", "jr", "nope:1", "phx_join", {})
    assert await client.recv() == [None, "jr", "nope:1", "phx_reply",
                                   {"status": "error", "response": {"reason": "unmatched topic"}}]


async def test_s09_push_to_unjoined_topic_is_unmatched_topic(raw):
    """Scenario 9: a push for a topic this socket never joined gets "unmatched topic"."""
    client = await raw()
    await client.send("x", "r", "echo:x", "ev", {})
    assert await client.recv() == reply(None, "r", "echo:x", "error",
                                        {"reason": "unmatched topic"})


async def test_s10_push_with_ok_and_error_replies(raw):
    """Scenario 10: replies carry the channel join_ref and the push's ref, any status."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r1", "echo:1", "ping", {"a": 1})
    assert await client.recv() == reply("jr", "r1", "echo:1", "ok", {"a": 1})
    await client.send("jr", "r2", "echo:1", "fail", {"why": "no"})
    assert await client.recv() == reply("jr", "r2", "echo:1", "error", {"why": "no"})


async def test_s10_null_join_ref_push_is_handled(raw):
    """Scenario 10/21: a push with a null join_ref reaches the joined channel."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send(None, "r1", "echo:1", "ping", {"a": 1})
    assert await client.recv() == reply("jr", "r1", "echo:1", "ok", {"a": 1})


async def test_s11_noreply_sends_nothing(raw):
    """Scenario 11: noreply produces no frame (the next reply from the channel comes first)."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r1", "echo:1", "noreply", {})
    await client.send("jr", "r2", "echo:1", "ping", {})
    assert await client.recv() == reply("jr", "r2", "echo:1", "ok", {})


async def test_s12_server_push_carries_join_ref_and_null_ref(raw):
    """Scenario 12: push/3 is [jr, null, topic, event, payload], before the reply."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r", "echo:1", "push", {"n": 7})
    assert await client.recv() == ["jr", None, "echo:1", "tick", {"n": 7}]
    assert await client.recv() == reply("jr", "r", "echo:1")


async def test_s12_push_after_join_arrives_after_join_reply(raw):
    """Scenario 12: a push sent from the after-join hook follows the join reply."""
    client = await raw()
    await client.send("jr", "jr", "echo:1", "phx_join", {"after_join": 5})
    assert await client.recv() == reply("jr", "jr", "echo:1", response={"joined": "echo:1"})
    assert await client.recv() == ["jr", None, "echo:1", "tick", {"after_join": 5}]


async def test_s12_push_inside_join_raises_clear_error(raw, recorder):
    """Scenario 12: push inside join raises (join crashed) with an explanation."""
    client = await raw()
    assert await client.join("pushjoin:1", "jr") == reply(
        "jr", "jr", "pushjoin:1", "error", {"reason": "join crashed"})
    message = await recorder.next("join_error")
    assert "not allowed inside join" in message and "send_info" in message


async def test_s13_broadcast_reaches_every_subscriber_and_sender_first(raw):
    """Scenario 13: A's broadcast reaches A (before A's reply) and B; C on another topic not."""
    a, b, c = await raw(), await raw(), await raw()
    await a.join("echo:lobby", "a1")
    await b.join("echo:lobby", "b1")
    await c.join("echo:other", "c1")
    await a.send("a1", "r", "echo:lobby", "shout", {"m": 1})
    assert await a.recv() == [None, None, "echo:lobby", "shout", {"m": 1}]
    assert await a.recv() == reply("a1", "r", "echo:lobby")
    assert await b.recv() == [None, None, "echo:lobby", "shout", {"m": 1}]
    assert await c.heartbeat() == reply(None, "hb", "phoenix")


async def test_s13_broadcast_from_skips_the_sender(raw):
    """Scenario 13: broadcast_from reaches B but not A."""
    a, b = await raw(), await raw()
    await a.join("echo:lobby", "a1")
    await b.join("echo:lobby", "b1")
    await a.send("a1", "r", "echo:lobby", "shout_from", {"m": 2})
    assert await a.recv() == reply("a1", "r", "echo:lobby")
    assert await b.recv() == [None, None, "echo:lobby", "shout", {"m": 2}]


async def test_s13_endpoint_broadcast_reaches_v1_and_v2_subscribers(raw, server):
    """Scenario 13: Endpoint.broadcast encodes per serializer and reaches both vsns."""
    v2, v1 = await raw(), await raw("", v1=True)
    await v2.join("echo:t", "jr")
    await v1.send({"topic": "echo:t", "event": "phx_join", "payload": {}, "ref": "1"})
    await v1.recv()
    await server.broadcast("echo:t", "news", {"x": 1})
    assert await v2.recv() == [None, None, "echo:t", "news", {"x": 1}]
    assert await v1.recv() == {"topic": "echo:t", "event": "news", "payload": {"x": 1},
                               "ref": None}


async def test_s14_intercepted_broadcast_goes_through_handle_out(raw):
    """Scenario 14: intercepted events are pushed per subscriber with its jr, or filtered."""
    a, b, c = await raw(), await raw(), await raw()
    await a.join("filter:1", "a1", {"name": "a"})
    await b.join("filter:1", "b1", {"name": "b"})
    await c.join("filter:1", "c1", {"name": "c"})
    await a.send("a1", "r", "filter:1", "new_msg", {"body": "hi", "skip": ["b"]})
    assert await a.recv() == reply("a1", "r", "filter:1")
    assert await a.recv() == ["a1", None, "filter:1", "new_msg",
                              {"body": "hi", "skip": ["b"], "to": "a"}]
    assert await c.recv() == ["c1", None, "filter:1", "new_msg",
                              {"body": "hi", "skip": ["b"], "to": "c"}]
    await b.send("b1", "r2", "filter:1", "other", {"plain": True})
    assert await b.recv() == [None, None, "filter:1", "other", {"plain": True}]


async def test_s15_leave_replies_then_closes_and_terminates_left(raw, recorder):
    """Scenario 15: leave -> reply ok then phx_close; terminate sees ("shutdown", "left")."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r", "echo:1", "phx_leave", {})
    assert await client.recv() == reply("jr", "r", "echo:1")
    assert await client.recv() == ["jr", "jr", "echo:1", "phx_close", {}]
    assert await recorder.next("terminate") == ("echo:1", "jr", ("shutdown", "left"))
    await client.send("jr", "r2", "echo:1", "ping", {})
    assert await client.recv() == reply(None, "r2", "echo:1", "error",
                                        {"reason": "unmatched topic"})


async def test_s16_leave_of_never_joined_topic_replies_ok_without_close(raw):
    """Scenario 16: phx_leave on a free topic replies ok echoing join_ref, no phx_close."""
    client = await raw()
    await client.send("jr", "r", "room:z", "phx_leave", {})
    assert await client.recv() == reply("jr", "r", "room:z")
    assert await client.heartbeat() == reply(None, "hb", "phoenix")


@pytest.mark.parametrize(("event", "reason"), [("stop", "normal"),
                                               ("stop_shutdown", ("shutdown", "done"))])
async def test_s17_server_stop_sends_phx_close_and_terminates(raw, recorder, event, reason):
    """Scenario 17: a normal/shutdown stop sends phx_close and calls terminate(reason)."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r", "echo:1", event, {})
    assert await client.recv() == ["jr", "jr", "echo:1", "phx_close", {}]
    assert await recorder.next("terminate") == ("echo:1", "jr", reason)


async def test_s17_stop_with_reply_sends_reply_then_close(raw):
    """Scenario 17: stop with a reply writes the reply first, then phx_close."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r", "echo:1", "stop_reply", {})
    assert await client.recv() == reply("jr", "r", "echo:1", "ok", {"bye": True})
    assert await client.recv() == ["jr", "jr", "echo:1", "phx_close", {}]


async def test_s17_abnormal_stop_reason_sends_phx_error(raw, recorder):
    """Scenario 17: a stop with another reason is an error for the client (phx_error)."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r", "echo:1", "stop_error", {})
    assert await client.recv() == ["jr", "jr", "echo:1", "phx_error", {"reason": "channel_crash"}]
    assert await recorder.next("terminate") == ("echo:1", "jr", "something_bad")


async def test_s18_crash_sends_phx_error_only_and_other_channel_lives(raw, recorder):
    """Scenario 18: a crash gives phx_error, no reply, no terminate; a sibling keeps working."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.join("echo:2", "jr2")
    await client.send("jr", "r", "echo:1", "crash", {})
    assert await client.recv() == ["jr", "jr", "echo:1", "phx_error", {"reason": "channel_crash"}]
    await client.send("jr2", "r2", "echo:2", "ping", {"alive": True})
    assert await client.recv() == reply("jr2", "r2", "echo:2", "ok", {"alive": True})
    await client.send("jr", "r3", "echo:1", "ping", {})
    assert await client.recv() == reply(None, "r3", "echo:1", "error",
                                        {"reason": "unmatched topic"})
    assert await client.join("echo:1", "jr3") == reply("jr3", "jr3", "echo:1",
                                                       response={"joined": "echo:1"})
    assert recorder.queue.empty()  # terminate was not called for the crash


async def test_s18_bad_callback_return_value_crashes_the_channel(raw):
    """Scenario 18: returning None from handle_in is a crash with phx_error."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r", "echo:1", "bad_return", {})
    assert await client.recv() == ["jr", "jr", "echo:1", "phx_error", {"reason": "channel_crash"}]


async def test_s18_join_raising_replies_join_crashed(raw):
    """Scenario 18: join raising replies error "join crashed" with the join's refs."""
    client = await raw()
    assert await client.join("joincrash:1", "jr") == reply(
        "jr", "jr", "joincrash:1", "error", {"reason": "join crashed"})
    assert await client.heartbeat() == reply(None, "hb", "phoenix")


async def test_s19_duplicate_join_replies_new_then_closes_old(raw, server, recorder):
    """Scenario 19: duplicate join -> new reply, then phx_close for the old join_ref."""
    client = await raw()
    await client.join("echo:lobby", "1")
    await client.send("5", "5", "echo:lobby", "phx_join", {})
    assert await client.recv() == reply("5", "5", "echo:lobby", response={"joined": "echo:lobby"})
    assert await client.recv() == ["1", "1", "echo:lobby", "phx_close", {}]
    assert server.snapshot()["topics"] == {"echo:lobby": 1}
    assert recorder.queue.empty()  # the old channel's terminate was not called


async def test_s21_stale_join_ref_message_is_dropped(raw):
    """Scenario 21: after rejoin, a push with the old join_ref gets no reply; null is handled."""
    client = await raw()
    await client.join("echo:1", "jr1")
    await client.join("echo:1", "jr2")
    assert await client.recv() == ["jr1", "jr1", "echo:1", "phx_close", {}]
    await client.send("jr1", "r1", "echo:1", "ping", {"stale": True})
    await client.send(None, "r2", "echo:1", "ping", {"fresh": True})
    assert await client.recv() == reply("jr2", "r2", "echo:1", "ok", {"fresh": True})


async def test_s21_stale_leave_is_ignored(raw, server):
    """Scenario 21: a phx_leave with an old join_ref gets no reply and leaves nothing."""
    client = await raw()
    await client.join("echo:1", "jr1")
    await client.join("echo:1", "jr2")
    await client.recv()  # phx_close for jr1
    await client.send("jr1", "r1", "echo:1", "phx_leave", {})
    assert await client.heartbeat() == reply(None, "hb", "phoenix")
    assert server.snapshot()["topics"] == {"echo:1": 1}


async def test_s28_binary_push_gets_binary_reply(raw):
    """Scenario 28: a kind-0 binary push reaches handle_in as bytes; the reply is kind 1."""
    client = await raw()
    await client.join("echo:1", "6")
    # [0][jr len][ref len][topic len][event len] jr ref topic event payload
    await client.send_raw(bytes([0, 1, 1, 6, 3]) + b"67echo:1bin" + b"AB\x00")
    frame = await client.recv()
    assert frame == bytes([1, 1, 1, 6, 2]) + b"67echo:1ok" + b"\x00BA"


async def test_s29_the_101st_channel_is_refused(raw):
    """Scenario 29: over max_channels (100) the join replies "too many channels joined"."""
    client = await raw()
    for n in range(100):
        await client.send(f"j{n}", f"j{n}", f"echo:{n}", "phx_join", {})
    for _ in range(100):
        assert (await client.recv())[4]["status"] == "ok"
    assert await client.join("echo:100", "j100") == reply(
        "j100", "j100", "echo:100", "error", {"reason": "too many channels joined"})


async def test_s30_silent_client_is_closed_after_idle_timeout(make_server, raw):
    """Scenario 30: no frame for idle_timeout -> close 1002 (Bandit's code), empty reason."""
    server = await make_server(idle_timeout=0.3)
    client = await raw(endpoint=server)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.closed() == (1002, "")
    assert loop.time() - started >= 0.25


async def test_s30_heartbeating_client_outlives_idle_timeout(make_server, raw):
    """Scenario 30: any inbound frame resets the idle timer."""
    server = await make_server(idle_timeout=0.8)
    client = await raw(endpoint=server)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    n = 0
    while loop.time() < deadline:  # 2.5 idle periods, heartbeating every 0.1 s
        n += 1
        assert await client.heartbeat(str(n)) == reply(None, str(n), "phoenix")
        await asyncio.sleep(0.1)  # pacing the heartbeats, not synchronisation
    assert server.snapshot()["socket_count"] == 1


async def test_s07_refused_join_terminates_with_shutdown(raw, recorder):
    """Scenario 7: Phoenix stops a refused channel with :shutdown, so terminate runs."""
    client = await raw()
    await client.join("echo:1", "jr", {"reject": True})
    assert await recorder.next("terminate") == ("echo:1", "jr", "shutdown")


async def test_v1_leave_closes_with_null_ref_and_null_join_ref_frames(raw):
    """V1 joins carry no join_ref: replies use the join ref, phx_close has ref null."""
    client = await raw("", v1=True)
    await client.send({"topic": "echo:1", "event": "phx_join", "payload": {}, "ref": "1"})
    await client.recv()
    await client.send({"topic": "echo:1", "event": "phx_leave", "payload": {}, "ref": "2"})
    assert await client.recv() == {"topic": "echo:1", "event": "phx_reply", "ref": "2",
                                   "payload": {"status": "ok", "response": {}}}
    assert await client.recv() == {"topic": "echo:1", "event": "phx_close", "payload": {},
                                   "ref": None}


async def test_v2_join_with_null_join_ref_registers_null(raw):
    """A V2 join with a null join_ref: reply join_ref null, pushes use the ref, close null."""
    client = await raw()
    await client.send(None, "7", "echo:1", "phx_join", {})
    assert await client.recv() == reply(None, "7", "echo:1", response={"joined": "echo:1"})
    await client.send(None, "8", "echo:1", "push", {})
    assert await client.recv() == ["7", None, "echo:1", "tick", {}]
    assert await client.recv() == reply("7", "8", "echo:1")
    await client.send("7", "9", "echo:1", "ping", {})  # non-null differs from null: stale
    await client.send(None, "10", "echo:1", "stop", {})
    assert await client.recv() == [None, None, "echo:1", "phx_close", {}]
