"""phoenix.js 1.8.16's handshake against mini_server: authToken and Origin (PROTOCOL.md 1.4-1.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from phoenix_js import PhoenixJS
from server_snapshots import wait_snapshot

from mini_server.server import Endpoint

TOKEN = "my secret/token+?"  # "/", "+" and "?" exercise the base64 alphabet and padding


@pytest.fixture
async def token_server() -> AsyncIterator[tuple[Endpoint, list[str | None]]]:
    """A server with auth_token=True whose connect hook records the token it was given."""
    seen: list[str | None] = []

    def connect(params: dict, info: dict) -> dict:
        seen.append(info.get("auth_token"))
        return {}

    async with Endpoint(connect=connect, auth_token=True) as server:
        yield server, seen


async def test_auth_token_reaches_connect_and_the_socket_opens(token_server, js: PhoenixJS):
    """authToken travels as the bearer subprotocol; the server answers "phoenix" and connects."""
    server, seen = token_server
    await js.open_socket("a", server.url, authToken=TOKEN)
    assert (await js.join("a", "c1", "room:tok"))["status"] == "ok"
    assert seen == [TOKEN]
    assert (await wait_snapshot(server, lambda s: s["channel_count"] == 1))["socket_count"] == 1


async def test_auth_token_against_a_default_socket_never_opens(endpoint: Endpoint,
                                                               js: PhoenixJS):
    """Without auth_token the 101 names no subprotocol, so ws refuses it, as with Phoenix."""
    await js.command("socket", id="a", url=endpoint.url,
                     opts={"authToken": TOKEN, "reconnectAfterMs": [50]})
    await js.command("connect", socket="a")
    error = await js.wait_for("error", socket="a")
    assert "subprotocol" in error["message"]
    await js.wait_for("error", socket="a", count=3)  # it keeps retrying, never opening
    assert not js.find("open", socket="a")


async def test_foreign_origin_is_refused_and_phoenix_js_keeps_retrying(endpoint: Endpoint,
                                                                       js: PhoenixJS):
    """A page on 127.0.0.1 is not the configured host: 403 before the upgrade, close 1006."""
    await js.command("socket", id="a", url=endpoint.url,
                     opts={"origin": f"http://127.0.0.1:{endpoint.port}",
                           "reconnectAfterMs": [50]})
    await js.command("connect", socket="a")
    error = await js.wait_for("error", socket="a")
    assert "403" in error["message"]
    assert (await js.wait_for("close", socket="a"))["code"] == 1006
    await js.wait_for("error", socket="a", count=3)
    assert not js.find("open", socket="a")
    assert endpoint.snapshot()["socket_count"] == 0


async def test_localhost_origin_and_a_listed_origin_are_let_in(js: PhoenixJS):
    """Origin http://localhost:PORT passes the default check; a listed origin passes a list."""
    async with Endpoint() as default, Endpoint(check_origin=["//127.0.0.1"]) as listed:
        await js.open_socket("a", default.url, origin=f"http://localhost:{default.port}")
        await js.open_socket("b", listed.url, origin=f"http://127.0.0.1:{listed.port}")
        for server in (default, listed):
            await wait_snapshot(server, lambda s: s["socket_count"] == 1)


async def test_python_client_auth_token_reaches_connect_like_phoenix_js(token_server,
                                                                        js: PhoenixJS):
    """mini_server.client's auth_token= offers what phoenix.js's authToken offers."""
    from mini_server.client import Socket

    server, seen = token_server
    await js.open_socket("a", server.url, authToken=TOKEN)
    socket = Socket(server.url, auth_token=lambda: TOKEN)
    socket.connect()
    try:
        await socket.wait_open(5.0)
        await wait_snapshot(server, lambda s: s["socket_count"] == 2)
    finally:
        socket.disconnect()
        await socket.wait_closed(5.0)
    assert seen == [TOKEN, TOKEN]
