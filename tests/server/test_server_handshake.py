"""Handshake and close answers as Phoenix 1.8.12 on Bandit gives them (PROTOCOL.md 1.3-1.5)."""

from __future__ import annotations

import asyncio

import pytest
from raw_client import TIMEOUT, Raw, reply
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from mini_server.server.demo import DEMO_ROUTES, reference_connect, reference_socket_id
from mini_server.server.origin import origin_allowed, parse_check_origin


async def status_of(url: str, **options) -> InvalidStatus:
    """The refusal a handshake gets (fails the test if it upgrades)."""
    with pytest.raises(InvalidStatus) as info:
        await connect(url, open_timeout=TIMEOUT, **options)
    return info.value


async def http(port: int, request: str) -> tuple[int, bytes]:
    """Send a raw HTTP request; return the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.replace("\n", "\r\n").encode())
        async with asyncio.timeout(TIMEOUT):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://localhost:4000", True), ("http://localhost", True), ("https://localhost:8443", True),
    ("http://127.0.0.1:4000", False), ("http://sub.localhost:4000", False), ("null", False),
    ("http://LOCALHOST", False), (None, True),
])
def test_default_check_origin_compares_the_host_with_localhost(origin, allowed):
    """check_origin=True: host equal to "localhost", scheme and port ignored, case kept."""
    assert origin_allowed(origin, True) is allowed


@pytest.mark.parametrize(("origin", "allowed"), [
    ("https://example.com", True), ("https://example.com:443", True),
    ("https://example.com:8443", False), ("http://example.com", False),
    ("http://another.com:888", True), ("https://another.com:888", True),
    ("http://another.com", False), ("https://other.com", True), ("http://a.b.other.com", True),
    ("http://notother.com", False),
])
def test_check_origin_list_matches_scheme_port_and_wildcard_hosts(origin, allowed):
    """A list entry matches its scheme and (default) port when given; "*." takes subdomains."""
    origins = ["https://example.com", "//another.com:888", "//*.other.com"]
    assert origin_allowed(origin, origins) is allowed


def test_check_origin_option_parses_true_false_and_lists():
    """--check-origin takes true, false or comma-separated origins, refusing a hostless one."""
    assert parse_check_origin("false") is False and parse_check_origin("True") is True
    assert parse_check_origin("//a.com, https://b.com") == ["//a.com", "https://b.com"]
    with pytest.raises(ValueError, match="host"):
        parse_check_origin("not an origin")


async def test_foreign_origin_gets_403_with_an_empty_body(server):
    """A page on 127.0.0.1 (not the configured host) is refused before connect runs."""
    refused = await status_of(f"{server.url}/websocket?vsn=2.0.0",
                              origin=f"http://127.0.0.1:{server.port}")
    assert (refused.response.status_code, refused.response.body) == (403, b"")


async def test_check_origin_list_and_false_let_origins_in(make_server):
    """check_origin=[...] admits the listed origins; False admits every origin."""
    listed = await make_server(check_origin=["//127.0.0.1"])
    async with connect(f"{listed.url}/websocket?vsn=2.0.0", origin="http://127.0.0.1:9"):
        pass
    assert (await status_of(f"{listed.url}/websocket?vsn=2.0.0",
                            origin="http://localhost")).response.status_code == 403
    anything = await make_server(check_origin=False)
    async with connect(f"{anything.url}/websocket?vsn=2.0.0", origin="http://evil.example"):
        pass


async def test_other_paths_get_phoenix_json_404(server):
    """An upgrade on another path gets 404 with Phoenix's JSON error body."""
    refused = await status_of(f"ws://127.0.0.1:{server.port}/nope/websocket")
    assert refused.response.status_code == 404
    assert refused.response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert refused.response.body == b'{"errors":{"detail":"Not Found"}}'


@pytest.mark.parametrize("request_text", [
    "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\nHost: x\nConnection: close\n\n",
    "POST /socket/websocket?vsn=2.0.0 HTTP/1.1\nHost: x\nContent-Length: 0\n\n",
    "GET /socket/websocket HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 8\n\n",
])
async def test_plain_http_and_bad_upgrades_get_400(server, request_text):
    """Plain GET, POST and a version-8 upgrade on the socket path get 400, as Bandit answers."""
    status, _body = await http(server.port, request_text)
    assert status == 400


@pytest.mark.parametrize(("code", "reason"), [(1000, "bye"), (1001, "going away"),
                                              (4000, "app"), (None, "")])
async def test_client_close_is_answered_with_1000_and_no_reason(server, code, reason):
    """Bandit answers every client close frame with 1000 ''; the server logs the client's."""
    ws = await connect(f"{server.url}/websocket?vsn=2.0.0", close_timeout=TIMEOUT)
    await ws.close(code, reason)
    rcvd = ws.protocol.close_rcvd
    assert (rcvd.code, rcvd.reason) == (1000, "")


async def test_reference_socket_refuses_token_bad_and_names_users(make_server, raw):
    """token=bad is 403 (checked before user_id); user_id=ID is the socket id users_socket:ID."""
    server = await make_server(DEMO_ROUTES, connect=reference_connect,
                               socket_id=reference_socket_id)
    for query in ("token=bad&vsn=2.0.0", "user_id=u&token=bad&vsn=2.0.0", "token=bad"):
        assert (await status_of(f"{server.url}/websocket?{query}")).response.status_code == 403
    await raw("user_id=u7&token=good&vsn=2.0.0", endpoint=server)
    assert [s["id"] for s in server.snapshot()["sockets"]] == ["users_socket:u7"]


async def test_message_queued_behind_a_crash_gets_no_reply(make_server, raw):
    """A message already in a crashing channel's mailbox is lost with it, as in Phoenix."""
    from channels import GateChannel

    GateChannel.gate = asyncio.Event()
    server = await make_server()
    client: Raw = await raw(endpoint=server)
    await client.join("gate:1", "g")
    await client.send("g", "1", "gate:1", "crash", {})  # parks at the gate, then raises
    await client.send("g", "2", "gate:1", "ping", {"queued": True})
    assert await client.heartbeat("hb1") == reply(None, "hb1", "phoenix")  # both read
    GateChannel.gate.set()
    assert await client.recv() == ["g", "g", "gate:1", "phx_error", {"reason": "channel_crash"}]
    assert await client.heartbeat("hb2") == reply(None, "hb2", "phoenix")  # nothing for ref 2
