"""The official phoenix.js 1.8.16 client against mini_server (PROTOCOL.md section 10)."""

from __future__ import annotations

import asyncio

from phoenix_js import PhoenixJS
from server_snapshots import joined_refs, wait_snapshot

from mini_server.server import Endpoint


def is_heartbeat_reply(observation: dict) -> bool:
    """True for a received reply on the "phoenix" topic (the answer to a heartbeat)."""
    frame = observation["frame"]
    return frame[2] == "phoenix" and frame[3] == "phx_reply"


async def test_join_ok_reaches_joined_state(endpoint: Endpoint, js: PhoenixJS) -> None:
    """A demo room join replies ok {} and phoenix.js marks the channel joined."""
    await js.open_socket("a", endpoint.url)
    outcome = await js.join("a", "c1", "room:lobby")
    assert (outcome["status"], outcome["response"]) == ("ok", {})
    since = js.mark()
    await js.command("state")
    state = (await js.wait_for("state", since=since))["sockets"]["a"]
    assert state["channels"]["c1"]["state"] == "joined"
    snapshot = await wait_snapshot(endpoint, lambda s: s["channel_count"] == 1)
    assert joined_refs(snapshot) == {"room:lobby": outcome["join_ref"]}


async def test_join_refused_reports_unauthorized(endpoint: Endpoint, js: PhoenixJS) -> None:
    """A join with {"reject": true} gets error {"reason": "unauthorized"} and no channel."""
    await js.open_socket("a", endpoint.url, rejoinAfterMs=[60000])
    outcome = await js.join("a", "c1", "room:locked", {"reject": True})
    assert (outcome["status"], outcome["response"]) == ("error", {"reason": "unauthorized"})
    assert not js.find("chan_close", chan="c1")
    assert endpoint.snapshot()["channel_count"] == 0


async def test_unmatched_topic_join_is_refused(endpoint: Endpoint, js: PhoenixJS) -> None:
    """Joining a topic without a route gets error {"reason": "unmatched topic"} in phoenix.js."""
    await js.open_socket("a", endpoint.url, rejoinAfterMs=[60000])
    outcome = await js.join("a", "c1", "nope:1")
    assert (outcome["status"], outcome["response"]) == ("error", {"reason": "unmatched topic"})
    # socket.onMessage runs after channel dispatch, so its line may follow the join's.
    reply = (await js.wait_for("recv", where=lambda o: o["frame"][2] == "nope:1"))["frame"]
    assert reply[0] is None  # join_ref null, and phoenix.js still matched it to the join


async def test_ping_push_is_answered_with_its_payload(endpoint: Endpoint, js: PhoenixJS) -> None:
    """push("ping", P) resolves receive("ok") with P."""
    await js.open_socket("a", endpoint.url)
    await js.join("a", "c1", "room:lobby")
    since = js.mark()
    payload = {"n": 7, "text": "héllo", "nested": {"list": [1, 2]}}
    await js.command("push", chan="c1", event="ping", payload=payload, tag="p1")
    reply = await js.wait_for("reply", since=since, tag="p1")
    assert (reply["status"], reply["response"]) == ("ok", payload)


async def test_new_msg_broadcast_reaches_both_sockets(endpoint: Endpoint, js: PhoenixJS) -> None:
    """new_msg pushed by one socket is delivered to both sockets joined to the room."""
    await js.open_socket("a", endpoint.url)
    await js.open_socket("b", endpoint.url)
    for socket, chan in (("a", "ca"), ("b", "cb")):
        await js.command("channel", socket=socket, id=chan, topic="room:fan")
        await js.command("on", chan=chan, event="new_msg")
        await js.command("join", chan=chan)
        await js.wait_for("join", chan=chan, status="ok")
    await wait_snapshot(endpoint, lambda s: s["topics"].get("room:fan") == 2)
    since = js.mark()
    await js.command("push", chan="ca", event="new_msg", payload={"body": "hi"}, tag="m1")
    for chan in ("ca", "cb"):
        event = await js.wait_for("event", since=since, chan=chan, event="new_msg")
        assert event["payload"] == {"body": "hi"}
    reply = await js.wait_for("reply", since=since, tag="m1")
    assert reply["status"] == "ok"


async def test_leave_closes_channel_on_both_sides(endpoint: Endpoint, js: PhoenixJS) -> None:
    """leave() fires onClose in phoenix.js and the channel disappears from the server."""
    await js.open_socket("a", endpoint.url)
    outcome = await js.join("a", "c1", "room:lobby")
    await wait_snapshot(endpoint, lambda s: s["channel_count"] == 1)
    since = js.mark()
    await js.command("leave", chan="c1")
    await js.wait_for("chan_close", since=since, chan="c1")
    leave = js.find("sent", since, where=lambda o: o["frame"][3] == "phx_leave")[0]["frame"]
    assert (leave[0], leave[2]) == (outcome["join_ref"], "room:lobby")
    snapshot = await wait_snapshot(endpoint, lambda s: s["channel_count"] == 0)
    assert snapshot["socket_count"] == 1


async def test_heartbeats_keep_connection_alive(endpoint: Endpoint, js: PhoenixJS) -> None:
    """With a 200 ms heartbeat the socket stays open for 2 s and every heartbeat is answered."""
    await js.open_socket("a", endpoint.url, heartbeatIntervalMs=200)
    connected_at = (await wait_snapshot(endpoint, lambda s: s["socket_count"] == 1))["sockets"][0][
        "connected_at"
    ]
    start = asyncio.get_running_loop().time()
    # Ten answered heartbeats take at least 10 x 200 ms; a loaded machine may need longer.
    await js.wait_for("recv", count=10, within=8.0, where=is_heartbeat_reply)
    assert asyncio.get_running_loop().time() - start >= 1.8
    sent = js.find("sent", where=lambda o: o["frame"][3] == "heartbeat")
    answered = {o["frame"][1] for o in js.find("recv", where=is_heartbeat_reply)}
    assert len(sent) - len(answered) <= 1  # only the latest may still be in flight
    assert answered <= {o["frame"][1] for o in sent}
    assert not js.find("close") and not js.find("error")
    snapshot = endpoint.snapshot()
    assert snapshot["socket_count"] == 1
    assert snapshot["sockets"][0]["connected_at"] == connected_at


async def test_rejoins_three_topics_after_server_restart(
    restartable_endpoint: Endpoint, js: PhoenixJS
) -> None:
    """After a kill and restart phoenix.js reconnects and rejoins all three topics itself."""
    endpoint = restartable_endpoint
    await js.open_socket("a", endpoint.url)
    topics = {"c1": "room:1", "c2": "room:2", "c3": "room:3"}
    for chan, topic in topics.items():
        await js.join("a", chan, topic)
    before = joined_refs(await wait_snapshot(endpoint, lambda s: s["channel_count"] == 3))
    since = js.mark()
    await endpoint.kill()
    close = await js.wait_for("close", since=since, socket="a")
    assert close["code"] == 1006
    for chan in topics:
        error = await js.wait_for("chan_error", since=since, chan=chan)
        assert error["reason"] == {"source": "transport", "reason": "connection_closed"}
    await endpoint.restart()
    await js.wait_for("open", since=since, socket="a")
    for chan in topics:
        await js.wait_for("join", since=since, chan=chan, status="ok")
    snapshot = await wait_snapshot(
        endpoint, lambda s: s["socket_count"] == 1 and s["channel_count"] == 3
    )
    after = joined_refs(snapshot)
    assert sorted(after) == sorted(topics.values())
    assert all(after[topic] != before[topic] for topic in after)


async def test_connect_sends_params_and_vsn_2(endpoint: Endpoint, js: PhoenixJS) -> None:
    """phoenix.js connects over WebSocket with its params and vsn=2.0.0 in the query string."""
    await js.open_socket("a", endpoint.url, params={"token": "t0k", "room": "x"})
    snapshot = await wait_snapshot(endpoint, lambda s: s["socket_count"] == 1)
    socket = snapshot["sockets"][0]
    assert socket["vsn"] == "2.0.0"
    assert socket["params"] == {"token": "[redacted]", "room": "x", "vsn": "2.0.0"}
