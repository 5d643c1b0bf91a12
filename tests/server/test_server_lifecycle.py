"""Endpoint lifecycle and handshake: stop, kill, restart, disconnect, refusals, snapshot."""

from __future__ import annotations

import asyncio
import base64
import errno
import socket
import sys

import pytest
from channels import ROUTES
from raw_client import TIMEOUT, reply
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from mini_server.server import Endpoint
from mini_server.testing import wait_until


def user_socket(params, connect_info):
    """A connect hook that accepts any user and assigns it."""
    return {"user_id": params.get("user", "anon")}


def user_id(assigns):
    """socket id per user, as in the Phoenix guides."""
    return f"users_socket:{assigns['user_id']}"


async def test_disconnect_closes_every_socket_with_that_id_with_1001(make_server, raw, recorder):
    """disconnect(id) closes all sockets of that id with 1001; others stay; channels closed."""
    server = await make_server(connect=user_socket, socket_id=user_id)
    a1 = await raw("user=1&vsn=2.0.0", endpoint=server)
    a2 = await raw("user=1&vsn=2.0.0", endpoint=server)
    b = await raw("user=2&vsn=2.0.0", endpoint=server)
    await a1.join("echo:1", "jr")
    assert await server.disconnect("users_socket:1") == 2
    assert (await a1.closed())[0] == 1001
    assert (await a2.closed())[0] == 1001
    assert await recorder.next("terminate") == ("echo:1", "jr", ("shutdown", "closed"))
    assert await b.heartbeat() == reply(None, "hb", "phoenix")


async def test_stop_closes_connections_with_1012_and_terminates_channels(make_server, raw,
                                                                         recorder):
    """stop() drains: clients see 1012, channels see ("shutdown", "closed")."""
    server = await make_server()
    client = await raw(endpoint=server)
    await client.join("echo:1", "jr")
    await server.stop()
    assert (await client.closed())[0] == 1012
    assert await recorder.next("terminate") == ("echo:1", "jr", ("shutdown", "closed"))
    assert server.snapshot()["running"] is False


async def test_kill_aborts_without_close_frame_so_clients_see_1006(make_server, raw, recorder):
    """kill() drops TCP: the client gets no close frame (1006) and terminate is not called."""
    server = await make_server()
    client = await raw(endpoint=server)
    await client.join("echo:1", "jr")
    await server.kill()
    with pytest.raises(ConnectionClosedError) as info:
        async with asyncio.timeout(TIMEOUT):
            await client.ws.recv()
    assert info.value.rcvd is None
    assert client.ws.close_code == 1006
    assert recorder.queue.empty()
    with pytest.raises(OSError):
        await connect(f"{server.url}/websocket?vsn=2.0.0", open_timeout=TIMEOUT)


async def test_stop_and_kill_are_idempotent(make_server):
    """Calling stop and kill again (in any order) is harmless."""
    server = await make_server()
    await server.kill()
    await server.kill()
    await server.stop()
    assert server.running is False


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_restart_reuses_the_port_with_fresh_state(make_server, raw, how):
    """restart() after kill/stop listens on the same port with an empty snapshot."""
    server = await make_server()
    port = server.port
    client = await raw(endpoint=server)
    await client.join("echo:1", "jr")
    await getattr(server, how)()
    await client.closed()
    await server.restart()
    assert server.port == port and server.running
    snap = server.snapshot()
    assert (snap["socket_count"], snap["channel_count"], snap["topics"]) == (0, 0, {})
    again = await raw(endpoint=server)
    assert await again.join("echo:1", "jr2") == reply("jr2", "jr2", "echo:1",
                                                      response={"joined": "echo:1"})


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_port_stays_reserved_while_down(make_server, how):
    """While down, connects are refused and no other server can take the port."""
    server = await make_server()
    await getattr(server, how)()
    with pytest.raises(OSError):
        async with asyncio.timeout(TIMEOUT):
            await asyncio.open_connection("127.0.0.1", server.port)
    # The port counts as in use, so the kernel never hands it to a bind(0) either.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as intruder:
        with pytest.raises(OSError) as taken:
            intruder.bind(("127.0.0.1", server.port))
    assert taken.value.errno == errno.EADDRINUSE


async def test_snapshot_forgets_killed_connections_at_once(make_server, raw):
    """From the moment kill() aborts them, snapshot() shows no sockets and no channels."""
    server = await make_server()
    client = await raw(endpoint=server)
    await client.join("echo:1", "jr")
    killing = asyncio.create_task(server.kill())
    await asyncio.sleep(0)  # kill() has aborted the connections; handlers still unwinding
    snap = server.snapshot()
    await killing
    assert (snap["socket_count"], snap["channel_count"]) == (0, 0)


async def test_aclose_gives_the_port_back(make_server):
    """After aclose() another socket can listen on the endpoint's port."""
    server = await make_server()
    await server.kill()
    await server.aclose()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", server.port))
        other.listen()


async def test_restart_while_running_replaces_connections(make_server, raw):
    """restart() on a running endpoint drains (1012) and comes back on the same port."""
    server = await make_server()
    client = await raw(endpoint=server)
    await server.restart()
    assert (await client.closed())[0] == 1012
    assert (await (await raw(endpoint=server)).heartbeat()) == reply(None, "hb", "phoenix")


async def test_async_context_manager_starts_and_stops(recorder):
    """``async with Endpoint()`` listens inside and is stopped after."""
    async with Endpoint(port=0) as server:
        async with connect(f"{server.url}/websocket?vsn=2.0.0") as ws:
            await ws.send('["1","1","room:1","phx_join",{}]')
            async with asyncio.timeout(TIMEOUT):
                assert await ws.recv() == (
                '["1","1","room:1","phx_reply",{"response":{},"status":"ok"}]')
    assert server.running is False


async def test_connect_hook_refusing_gives_403(make_server):
    """connect returning None refuses the upgrade with HTTP 403."""
    server = await make_server(connect=lambda params, info: None)
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.url}/websocket?vsn=2.0.0", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


async def test_async_connect_hook_can_accept(make_server, raw):
    """An async connect hook's assigns reach the channel, which gets its own copy."""
    async def hook(params, info):
        return {"user": params["user"]}

    server = await make_server(connect=hook, socket_id=lambda a: f"u:{a['user']}")
    client = await raw("user=ann&vsn=2.0.0", endpoint=server)
    expected = {"assigns": {"user": "ann"}, "socket_id": "u:ann"}
    assert await client.join("assigns:1", "j1") == reply("j1", "j1", "assigns:1",
                                                         response=expected)
    assert await client.join("assigns:2", "j2") == reply("j2", "j2", "assigns:2",
                                                         response=expected)


async def test_non_string_socket_id_gives_403(make_server):
    """socket_id returning a non-string refuses the connection, as Phoenix does."""
    server = await make_server(socket_id=lambda assigns: 42)
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.url}/websocket?vsn=2.0.0", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


async def test_other_paths_get_404(server):
    """Only {path}/websocket upgrades; /socket alone is 404."""
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.url}?vsn=2.0.0", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 404


async def test_auth_token_subprotocol_is_echoed_and_decoded(make_server):
    """auth_token=True (phoenix.js authToken): "phoenix" is echoed, the token reaches connect."""
    seen = asyncio.get_running_loop().create_future()

    def hook(params, info):
        seen.set_result(info.get("auth_token"))
        return {}

    server = await make_server(connect=hook, auth_token=True)
    token = base64.b64encode(b"my secret/token+?").decode().rstrip("=")
    async with connect(f"{server.url}/websocket?vsn=2.0.0",
                       subprotocols=["phoenix", f"base64url.bearer.phx.{token}"]) as ws:
        assert ws.subprotocol == "phoenix"
        async with asyncio.timeout(TIMEOUT):
            assert await seen == "my secret/token+?"


async def test_without_auth_token_no_subprotocol_is_answered(make_server):
    """Phoenix's default socket names no subprotocol and ignores a bearer token."""
    seen = asyncio.get_running_loop().create_future()
    server = await make_server(connect=lambda params, info: seen.set_result(info) or {})
    async with connect(f"{server.url}/websocket?vsn=2.0.0",
                       subprotocols=["phoenix", "base64url.bearer.phx.dG9rZW4"]) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Protocol") is None
        async with asyncio.timeout(TIMEOUT):
            assert "auth_token" not in await seen


async def test_auth_token_refuses_an_offer_without_phoenix(make_server):
    """With auth_token, subprotocols offered without "phoenix" are refused with 403."""
    server = await make_server(auth_token=True)
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{server.url}/websocket?vsn=2.0.0", subprotocols=["mqtt"],
                      open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


async def test_snapshot_lists_sockets_channels_and_redacts_secrets(make_server, raw):
    """snapshot() has the documented shape and never shows a token."""
    server = await make_server(connect=user_socket, socket_id=user_id)
    client = await raw("user=7&token=SECRET&vsn=2.0.0", endpoint=server)
    await client.join("echo:1", "6")
    await client.join("echo:2", "7")
    other = await raw(endpoint=server)
    await other.join("echo:1", "1")
    snap = server.snapshot()
    assert set(snap) == {"running", "url", "sockets", "topics", "socket_count", "channel_count",
                         "max_outgoing_bytes", "timers", "pubsub"}
    assert snap["pubsub"] == {"adapter": "local"}
    assert snap["timers"] == 0  # echo channels start no send_after/send_interval
    assert snap["max_outgoing_bytes"] == server.max_outgoing_bytes
    assert (snap["running"], snap["url"]) == (True, server.url)
    assert (snap["socket_count"], snap["channel_count"]) == (2, 3)
    assert snap["topics"] == {"echo:1": 2, "echo:2": 1}
    mine = next(s for s in snap["sockets"] if s["id"] == "users_socket:7")
    assert mine["params"] == {"user": "7", "token": "[redacted]", "vsn": "2.0.0"}
    assert mine["vsn"] == "2.0.0" and isinstance(mine["connected_at"], float)
    assert set(mine["outgoing"]) == {"frames", "bytes"}
    assert mine["channels"] == [{"topic": "echo:1", "join_ref": "6"},
                                {"topic": "echo:2", "join_ref": "7"}]
    assert "SECRET" not in repr(snap)


async def test_client_close_terminates_channels_with_shutdown_closed(raw, recorder, server):
    """When the client goes away its channels see ("shutdown", "closed") and vanish."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.ws.close()
    assert await recorder.next("terminate") == ("echo:1", "jr", ("shutdown", "closed"))
    assert server.snapshot()["channel_count"] == 0


async def test_async_reply_to_saved_socket_ref(raw):
    """reply(socket_ref, ...) answers the saved ref later with the channel join_ref."""
    client = await raw()
    await client.join("echo:1", "jr")
    await client.send("jr", "r9", "echo:1", "async", {"n": 1})
    assert await client.recv() == reply("jr", "r9", "echo:1", "ok", {"later": {"n": 1}})


async def test_exact_route_and_wildcard_first_match(make_server, raw):
    """Routes without * match exactly; the first matching pattern wins."""
    from channels import EchoChannel, FilterChannel

    server = await make_server({"a:*": EchoChannel, "a:b": FilterChannel, "exact": EchoChannel})
    client = await raw(endpoint=server)
    assert (await client.join("a:b", "1"))[4]["response"] == {"joined": "a:b"}
    assert (await client.join("exact", "2"))[4]["status"] == "ok"
    assert (await client.join("exactly", "3"))[4]["response"] == {"reason": "unmatched topic"}


async def test_stop_finishes_even_when_a_join_never_returns(make_server, raw):
    """A join that hangs cannot hold stop() past its drain timeout; the client sees 1012."""
    server = await make_server(drain_timeout=0.5)
    client = await raw(endpoint=server)
    await client.send("j", "j", "hang:1", "phx_join", {})
    await wait_until(lambda: bool(server.snapshot()["socket_count"]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(TIMEOUT):
        await server.stop()
    assert loop.time() - started < TIMEOUT
    assert (await client.closed())[0] == 1012


async def test_kill_with_a_hung_join_leaves_no_task(make_server, raw):
    """kill() cancels a transport parked in a join; teardown finds no pending task."""
    server = await make_server()
    client = await raw(endpoint=server)
    await client.send("j", "j", "hang:1", "phx_join", {})
    await wait_until(lambda: bool(server.snapshot()["socket_count"]))
    async with asyncio.timeout(TIMEOUT):
        await server.kill()
    assert (await client.closed())[0] == 1006


async def test_heartbeats_can_be_switched_off(make_server, raw):
    """answer_heartbeats=False drops heartbeats silently (scenario 5's broken server)."""
    server = await make_server(answer_heartbeats=False)
    client = await raw(endpoint=server)
    await client.send(None, "h1", "phoenix", "heartbeat", {})
    # The next frame must be the join reply: an answered heartbeat would come first.
    assert await client.join("echo:1", "jr") == reply("jr", "jr", "echo:1",
                                                      response={"joined": "echo:1"})


async def test_endpoint_binary_broadcast_is_a_kind_2_frame(raw, server):
    """Broadcasting bytes sends [2][topic_len][event_len] topic event data to V2 clients."""
    client = await raw()
    await client.join("echo:b", "jr")
    await server.broadcast("echo:b", "blob", b"\x01\x02")
    assert await client.recv() == bytes([2, 6, 4]) + b"echo:bblob\x01\x02"


async def test_disconnect_of_unknown_id_returns_zero(server):
    """disconnect() counts the sockets it closed."""
    assert await server.disconnect("users_socket:nobody") == 0


async def test_kill_cuts_short_a_graceful_channel_shutdown(make_server, raw):
    """kill() during a closed connection's channel shutdown cancels the stuck channel at once."""
    from channels import GateChannel

    GateChannel.gate = asyncio.Event()  # never opened: the callback hangs
    server = await make_server()
    client = await raw(endpoint=server)
    await client.join("gate:1", "g")
    await client.send("g", "1", "gate:1", "ev", {})
    await client.ws.close()
    await wait_until(lambda: (server.snapshot()["socket_count"],
                              server.snapshot()["channel_count"]) == (1, 0))
    async with asyncio.timeout(TIMEOUT):
        await server.kill()  # well under the 5 s shutdown grace


def _nodelay(transport) -> int:
    sock = transport.ws.transport.get_extra_info("socket")
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_connections_after_a_restart_keep_tcp_nodelay(make_server, raw, how):
    """Sockets accepted on the port held while down still get TCP_NODELAY.

    asyncio sets it only when the listening socket is an IPPROTO_TCP one; without it, two
    frames back to back wait ~40 ms for Nagle and delayed ACKs on every later connection.
    """
    server = await make_server()
    first = await raw(endpoint=server)
    await first.join("echo:1", "jr")
    assert [_nodelay(t) for t in server.transports] == [1]
    await getattr(server, how)()
    await first.closed()
    await server.restart()
    again = await raw(endpoint=server)
    await again.join("echo:1", "jr2")
    assert [_nodelay(t) for t in server.transports] == [1]


async def test_a_plain_socket_handed_to_the_endpoint_still_gets_tcp_nodelay(raw):
    """``Endpoint(sock=socket.socket(AF_INET, SOCK_STREAM))`` (proto 0) serves with TCP_NODELAY."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as tests and benches do
    sock.bind(("127.0.0.1", 0))
    server = Endpoint(ROUTES, sock=sock)
    try:
        await server.start()
        client = await raw(endpoint=server)
        await client.join("echo:1", "jr")
        assert [_nodelay(t) for t in server.transports] == [1]
    finally:
        await server.aclose()


@pytest.mark.parametrize("restarted", [False, True])
async def test_the_listen_queue_holds_a_herd_the_loop_has_not_accepted_yet(make_server,
                                                                          restarted):
    """While the loop is busy, the kernel queues up to LISTEN_BACKLOG handshakes for it.

    The test's own code blocks the loop, so nothing is accepted; every TCP connect must still
    complete at once.  With asyncio's default backlog of 100 the 102nd SYN is dropped and
    that client would retry only a second later (what a reconnect herd meets).
    """
    from mini_server.server.endpoint import LISTEN_BACKLOG

    server = await make_server()
    if restarted:  # the held port's listen(): the path the chapters' kill()/restart() take
        await server.kill()
        await server.restart()
    crowd = []
    try:
        for _ in range(300):
            crowd.append(socket.create_connection(("127.0.0.1", server.port), timeout=0.5))
    finally:
        for sock in crowd:
            sock.close()
    assert len(crowd) == 300 < LISTEN_BACKLOG


def _tcp_state(transport) -> int:
    sock = transport.ws.transport.get_extra_info("socket")
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]  # tcpi_state


@pytest.mark.skipif(sys.platform != "linux", reason="reads TCP_INFO's state, Linux only")
async def test_kill_shuts_every_connection_down_before_any_bookkeeping(make_server, raw,
                                                                      monkeypatch):
    """kill() drops every TCP connection first, then cancels channels one transport at a time.

    A dying node's clients all see the close in the same instant; asyncio's abort() alone
    closes each socket a loop iteration later, so 1,000 clients saw it spread over ~0.3 s.
    """
    from mini_server.server.transport import Transport

    server = await make_server()
    for n in range(5):
        client = await raw(endpoint=server)
        await client.join("echo:1", f"j{n}")
    states_at_first_kill: list[list[int]] = []
    original = Transport.kill

    def kill(self) -> None:
        if not states_at_first_kill:
            states_at_first_kill.append([_tcp_state(t) for t in server.transports])
        original(self)

    monkeypatch.setattr(Transport, "kill", kill)
    await server.kill()
    established = 1  # TCP_ESTABLISHED in linux/tcp_states.h
    assert len(states_at_first_kill[0]) == 5
    assert established not in states_at_first_kill[0], states_at_first_kill
