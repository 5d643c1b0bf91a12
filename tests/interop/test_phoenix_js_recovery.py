"""phoenix.js 1.8.16 recovering from mini_server faults (PROTOCOL.md section 10)."""

from __future__ import annotations

from typing import Any

from phoenix_js import PhoenixJS
from server_frames import ServerFrameLog
from server_snapshots import joined_refs, wait_snapshot

from mini_server.server import Endpoint


def sent_events(js: PhoenixJS, socket: str, since: int = 0) -> list[tuple[str, str]]:
    """(topic, event) of the non-heartbeat frames phoenix.js sent on `socket`."""
    return [(f[2], f[3]) for f in js.frames_sent(socket, since)]


async def test_sender_sees_broadcast_before_its_reply(endpoint: Endpoint, js: PhoenixJS) -> None:
    """The new_msg broadcast reaches the pushing socket before the reply to its push."""
    await js.open_socket("a", endpoint.url)
    await js.command("channel", socket="a", id="c1", topic="room:order")
    await js.command("on", chan="c1", event="new_msg")
    await js.command("join", chan="c1")
    await js.wait_for("join", chan="c1", status="ok")
    since = js.mark()
    await js.command("push", chan="c1", event="new_msg", payload={"body": "x"}, tag="m")
    await js.wait_for("reply", since=since, tag="m")
    kinds = [o["kind"] for o in js.observations[since:] if o["kind"] in ("event", "reply")]
    assert kinds == ["event", "reply"]


async def test_join_before_connect_flushes_join_then_buffered_push(
    endpoint: Endpoint, js: PhoenixJS
) -> None:
    """A join and push issued before connect go out as join, then push, after the join ok."""
    await js.command("socket", id="a", url=endpoint.url, opts={"timeout": 3000})
    await js.command("channel", socket="a", id="c1", topic="room:early")
    await js.command("join", chan="c1")
    await js.command("push", chan="c1", event="ping", payload={"early": True}, tag="e")
    await js.command("connect", socket="a")
    reply = await js.wait_for("reply", tag="e")
    assert (reply["status"], reply["response"]) == ("ok", {"early": True})
    assert sent_events(js, "a") == [("room:early", "phx_join"), ("room:early", "ping")]


async def test_channel_crash_rejoins_with_new_join_ref(endpoint: Endpoint, js: PhoenixJS) -> None:
    """An unhandled event crashes the room: phx_error, the push times out, phoenix.js rejoins."""
    await js.open_socket("a", endpoint.url, rejoinAfterMs=[200])
    first = await js.join("a", "c1", "room:crash")
    await js.join("a", "c2", "room:calm")
    since = js.mark()
    await js.command("push", chan="c1", event="boom", payload={}, timeout=500, tag="b")
    error = await js.wait_for("chan_error", since=since, chan="c1")
    assert error["reason"] == {"reason": "channel_crash"}
    rejoin = await js.wait_for("join", since=since, chan="c1", status="ok")
    assert rejoin["join_ref"] != first["join_ref"]
    assert (await js.wait_for("reply", since=since, tag="b"))["status"] == "timeout"
    await js.command("push", chan="c2", event="ping", payload={"still": "here"}, tag="p")
    assert (await js.wait_for("reply", since=since, tag="p"))["status"] == "ok"
    snapshot = await wait_snapshot(endpoint, lambda s: s["channel_count"] == 2)
    assert joined_refs(snapshot)["room:crash"] == rejoin["join_ref"]


async def test_server_disconnect_1001_brings_client_back(js: PhoenixJS) -> None:
    """Endpoint.disconnect(id) closes with 1001 and phoenix.js reconnects and rejoins."""

    def connect(params: dict[str, Any], _info: dict[str, Any]) -> dict[str, Any]:
        return {"user": params["user"]}

    async with Endpoint(connect=connect, socket_id=lambda a: f"user_socket:{a['user']}") as ep:
        await js.open_socket("a", ep.url, params={"user": "7"})
        first = await js.join("a", "c1", "room:1")
        await wait_snapshot(ep, lambda s: s["channel_count"] == 1)
        since = js.mark()
        assert await ep.disconnect("user_socket:7") == 1
        assert (await js.wait_for("close", since=since, socket="a"))["code"] == 1001
        rejoin = await js.wait_for("join", since=since, chan="c1", status="ok")
        assert rejoin["join_ref"] != first["join_ref"]
        snapshot = await wait_snapshot(ep, lambda s: s["channel_count"] == 1)
        assert snapshot["sockets"][0]["id"] == "user_socket:7"


async def test_graceful_stop_1012_then_restart_rejoins(
    restartable_endpoint: Endpoint, js: PhoenixJS
) -> None:
    """stop() closes with 1012; phoenix.js retries until the restarted server takes it back."""
    endpoint = restartable_endpoint
    await js.open_socket("a", endpoint.url)
    first = await js.join("a", "c1", "room:1")
    since = js.mark()
    await endpoint.stop()
    assert (await js.wait_for("close", since=since, socket="a"))["code"] == 1012
    await js.wait_for("error", since=since, socket="a")  # a reconnect attempt was refused
    await endpoint.start()
    rejoin = await js.wait_for("join", since=since, chan="c1", status="ok")
    assert rejoin["join_ref"] != first["join_ref"]
    await wait_snapshot(endpoint, lambda s: s["socket_count"] == 1 and s["channel_count"] == 1)


async def test_refused_connect_is_retried_until_accepted(js: PhoenixJS) -> None:
    """While connect refuses (HTTP 403) phoenix.js sees error + 1006 and keeps retrying."""
    admit = False

    def connect(_params: dict[str, Any], _info: dict[str, Any]) -> dict[str, Any] | None:
        return {} if admit else None

    async with Endpoint(connect=connect) as ep:
        await js.command("socket", id="a", url=ep.url, opts={"reconnectAfterMs": [10, 50, 100]})
        await js.command("channel", socket="a", id="c1", topic="room:1")
        await js.command("join", chan="c1")
        await js.command("connect", socket="a")
        await js.wait_for("error", socket="a", count=3)
        closes = js.find("close", socket="a")
        assert closes and all(c["code"] == 1006 for c in closes)
        assert not js.find("open")
        admit = True
        await js.wait_for("join", chan="c1", status="ok")
        await wait_snapshot(ep, lambda s: s["channel_count"] == 1)


async def test_unanswered_heartbeats_close_with_1000_and_reconnect(js: PhoenixJS) -> None:
    """A server that drops heartbeats sees close 1000 "heartbeat timeout", then a new join."""
    with ServerFrameLog() as received:
        async with Endpoint(answer_heartbeats=False) as ep:
            await js.open_socket("a", ep.url, heartbeatIntervalMs=300)
            first = await js.join("a", "c1", "room:1")
            error = await js.wait_for("chan_error", chan="c1", within=5.0)
            assert error["reason"] == {"source": "transport", "reason": "heartbeat_timeout"}
            rejoin = await js.wait_for("join", chan="c1", status="ok", count=2, within=5.0)
            assert rejoin["join_ref"] != first["join_ref"]
            await wait_snapshot(ep, lambda s: joined_refs(s).get("room:1") == rejoin["join_ref"]
                                and s["socket_count"] == 1)
    assert received.closes[0] == (1000, "heartbeat timeout")
