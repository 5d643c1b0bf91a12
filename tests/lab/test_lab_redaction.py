"""No secret a client sends is shown anywhere: server log, snapshot, /state, client log, panel."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect

from mini_server.client import Socket
from mini_server.client.events import EventLog
from mini_server.lab import log_routing, servers, timing
from mini_server.lab.panels import ConnectionPanel
from mini_server.server.token import sign

SIGNED = sign("a-secret-key-base-long-enough-for-phoenix-0123456789", "user socket",
              {"user_id": 7})
#: One distinct value per secret-looking key, so a leak names the key that leaked.
SECRETS = {"access_token": "leak-access-token", "api_key": "leak-api-key",
           "user_token": "leak-user-token", "Password": "leak-password",
           "client_secret": "leak-client-secret", "X-Auth": "leak-x-auth",
           "sessionId": "leak-session", "credentials": "leak-credentials",
           "signed": SIGNED}  # "signed" is no secret name: the token is caught by its look
LEAKS = [*(v for k, v in SECRETS.items() if k != "signed"), SIGNED, SIGNED.split(".")[1]]


def leaked(text: str) -> list[str]:
    """The secret values found in ``text``."""
    return [secret for secret in LEAKS if secret in text]


def refuse(params, _info):
    """Refuse sockets that ask to be refused, so the 'connect refused' line is logged too."""
    return None if params.get("refuse") else {}


SURFACES = ["snapshot", "server log", "client log", "client events", "panel html"]


@pytest.fixture
async def shown(caplog):
    """Secrets sent in connect params, join params and a push; what each surface showed."""
    caplog.set_level(logging.DEBUG, logger="mini_server")
    server = await servers.start_server("redaction", connect=refuse,
                                        **timing.FAST.endpoint_options())
    sock = Socket(server.url, params=dict(SECRETS), **timing.FAST.socket_options())
    events = EventLog(sock)
    log_routing.install(force=True)  # as in a kernel: server lines join the panel's log
    panel = ConnectionPanel(sock, server, refresh_interval=0.05)
    try:
        sock.connect()
        await sock.wait_open(5)
        channel = sock.channel("room:1", {"user_token": "leak-user-token", "t": SIGNED})
        await channel.join()
        await channel.push("new_msg", {"body": "hi", "api_key": "leak-api-key"})
        await panel.wait_for(lambda shown: shown["server"] is not None
                             and shown["server"]["channels"] == 1, timeout=3)
        # the refused connect logs its params: they must be redacted too
        refused = Socket(server.url, params={**SECRETS, "refuse": "1"},
                         **timing.FAST.socket_options())
        refused_log = EventLog(refused)
        refused.connect()
        await refused_log.wait_kind("close", timeout=5)
        refused.disconnect()
        await refused.wait_closed(5)
        await panel.refresh()

        def lines(prefix: str) -> str:
            return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(prefix))

        yield {
            "snapshot": json.dumps(server.snapshot()),
            "server log": lines("mini_server.server"),
            "client log": lines("mini_server.client"),
            "client events": "\n".join(e.text for e in [*events.events, *refused_log.events]),
            "panel html": panel.log_view.value + "\n".join(panel.log_lines),
        }
    finally:
        await panel.aclose()
        log_routing.uninstall()
        sock.disconnect()
        await sock.wait_closed(5)
        await server.close()


#: What each surface must show, so an empty surface cannot pass by showing nothing.
EXPECTED = {"snapshot": "access_token", "server log": "connect refused for params",
            "client log": "connecting to ws://", "client events": "new_msg",
            "panel html": "new_msg"}


@pytest.mark.parametrize("surface", SURFACES)
async def test_no_secret_is_shown(shown, surface):
    """Secret-keyed values and a sign() token appear nowhere a person can read them."""
    text = shown[surface]
    assert EXPECTED[surface] in text and "[redacted]" in text
    assert leaked(text) == [], [line for line in text.splitlines() if leaked(line)]


async def _get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


async def test_process_state_shows_params_redacted(process_server):
    """/state of the OS-process server names the secret params but never their values."""
    query = urlencode({**SECRETS, "vsn": "2.0.0"})
    async with connect(f"{process_server.url}/websocket?{query}", proxy=None) as ws:
        await ws.send('[null,"1","phoenix","heartbeat",{}]')
        async with asyncio.timeout(5):
            await ws.recv()  # answered: the server has the socket in its tables
        body = await _get(process_server._state_port,
                          b"GET /state HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await ws.close()
    assert body.startswith(b"HTTP/1.0 200") and b"access_token" in body
    assert leaked(body.decode()) == [], body
