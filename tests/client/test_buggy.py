"""Chapter 09's planted bugs: each variant shows its symptom where the real client does not.

Every test runs the same scenario twice, with the real client and with the buggy variant,
against a live Endpoint, and asserts the difference a learner is asked to find: in the
callbacks, the frames (the event stream the panel's frame log shows) and ``snapshot()``.
"""

from __future__ import annotations

import pytest

from mini_server.client import ChannelState, EventLog, Socket
from mini_server.client.buggy import (
    BUGS,
    EmptyRejoinChannel,
    ForgetfulChannel,
    StrayHeartbeatSocket,
    UnregisteringSocket,
    socket_for,
)
from mini_server.server import Endpoint
from mini_server.server.token import sign
from mini_server.server.token_channel import SALT, token_routes

FAST = {"heartbeat_interval": 0.5, "timeout": 1.0}
SECRET = "a secret key base that is long enough for the course's token module, surely"


async def outage(endpoint: Endpoint, channel) -> None:
    """Kill the server, wait until the client noticed (the channel errored), restart it."""
    await endpoint.kill()
    await channel.wait_state(ChannelState.ERRORED, timeout=5)
    await endpoint.restart()
    await channel.socket.wait_open(timeout=5)


@pytest.mark.parametrize("buggy", [False, True])
async def test_forgetful_rejoin_receives_frames_but_runs_no_callback(endpoint, sockets, buggy):
    cls = socket_for(ForgetfulChannel) if buggy else Socket
    sock = sockets(endpoint.url, cls, **FAST)
    log = EventLog(sock)
    sock.connect()
    heard: list = []
    room = sock.channel("room:1")
    room.on("new_msg", heard.append)
    await room.join()
    await outage(endpoint, room)
    await room.wait_joined(timeout=5)
    assert endpoint.snapshot()["topics"] == {"room:1": 1}  # rejoined, either way
    mark = len(log)
    await endpoint.broadcast("room:1", "new_msg", {"body": "after"})
    await log.wait(lambda e: e.kind == "received" and e.data["message"].event == "new_msg",
                   since=mark)  # on the wire for both
    await room.push("ping", {})  # frames arrive in order: a callback would have run by now
    assert heard == ([] if buggy else [{"body": "after"}])


@pytest.mark.parametrize("buggy", [False, True])
async def test_empty_rejoin_is_refused_for_a_missing_token(sockets, buggy):
    async with Endpoint(token_routes(SECRET, interval=3600, max_age=3600)) as endpoint:
        cls = socket_for(EmptyRejoinChannel) if buggy else Socket
        sock = sockets(endpoint.url, cls, **FAST)
        log = EventLog(sock)
        sock.connect()
        vip = sock.channel("token:ann", {"token": sign(SECRET, SALT, "ann")})
        await vip.join()
        mark = len(log)
        await outage(endpoint, vip)
        if not buggy:
            await vip.wait_joined(timeout=5)
            assert endpoint.snapshot()["channel_count"] == 1
            return
        refused = await log.wait(lambda e: e.kind == "received"
                                 and e.data["message"].payload.get("response")
                                 == {"reason": "missing"}, since=mark)
        assert refused.data["message"].topic == "token:ann"
        joins = [m.payload for m in log.sent("phx_join", since=mark)]
        assert joins and all(p == {} for p in joins)
        assert vip.state is not ChannelState.JOINED
        assert endpoint.snapshot()["channel_count"] == 0


@pytest.mark.parametrize("buggy", [False, True])
async def test_unregistering_socket_leaves_the_server_joined_and_the_client_not(
        endpoint, sockets, buggy):
    sock = sockets(endpoint.url, UnregisteringSocket if buggy else Socket, **FAST)
    log = EventLog(sock)
    sock.connect()
    room = sock.channel("room:1")
    await room.join()
    mark = len(log)
    await outage(endpoint, room)
    if not buggy:
        await room.wait_joined(timeout=5)
        assert room in sock.channels
        return
    ok = await log.wait(lambda e: e.kind == "received" and e.data["message"].topic == "room:1"
                        and e.data["message"].event == "phx_reply", since=mark)
    assert ok.data["message"].payload["status"] == "ok"  # the server said yes...
    assert endpoint.snapshot()["topics"] == {"room:1": 1}  # ...and holds the channel
    assert room not in sock.channels  # but the socket no longer routes frames to it
    assert room.state is ChannelState.JOINING
    with pytest.raises(TimeoutError):
        await room.wait_joined(timeout=1.5)


@pytest.mark.parametrize("buggy", [False, True])
async def test_stray_heartbeat_after_disconnect_brings_the_socket_back(
        endpoint, sockets, buggy):
    sock = sockets(endpoint.url, StrayHeartbeatSocket if buggy else Socket,
                   heartbeat_interval=0.2, timeout=1.0)
    log = EventLog(sock)
    sock.connect()
    await sock.wait_open(timeout=5)
    await log.wait(lambda e: e.kind == "received" and e.data["message"].topic == "phoenix")
    sock.disconnect()
    await sock.wait_closed(timeout=5)
    mark = len(log)
    if not buggy:
        with pytest.raises(TimeoutError):  # three intervals: no heartbeat, no connect
            await log.wait(lambda e: e.kind in ("buffered", "sent", "connect"), timeout=0.6,
                           since=mark)
        assert endpoint.snapshot()["socket_count"] == 0
        return
    stray = await log.wait_kind("buffered", since=mark)
    assert stray.data["message"].event == "heartbeat"
    await log.wait_kind("heartbeat_timeout", since=mark)
    await log.wait_kind("connect", since=mark)  # a socket we disconnected came back
    await sock.wait_open(timeout=5)
    assert endpoint.snapshot()["socket_count"] == 1
    sock.disconnect()
    Socket.clear_heartbeats(sock)  # the real method: or the stray timer brings it back again


def test_every_bug_names_the_report_it_is_modelled_on():
    assert {name: report for name, (_, report) in BUGS.items()} == {
        "forgetful": "supabase/realtime-py#213",
        "empty_rejoin": "supabase/realtime-py#258",
        "unregistering": "supabase/supabase-py#1311",
        "stray_heartbeat": "phoenixframework/phoenix#4623",
    }
    assert socket_for(ForgetfulChannel)("ws://127.0.0.1:1/socket").channel(
        "room:1").__class__ is ForgetfulChannel
