"""Races between a new connection and its teardown, on a virtual-time loop (no network).

A WebSocketTransport closed (or aborted) in the same loop iteration that created it has a
task that never ran a step: asyncio cancels it before ``_run`` starts.  A browser still
fires ``onclose`` (1006) after ``close()`` on a connecting WebSocket, and the Socket relies
on that close to finish a teardown; these tests pin that behaviour down.  No connection is
ever attempted, because the cancelled task never reaches ``connect()``.
"""

from __future__ import annotations

import asyncio

from client_fakes import run_virtual

from mini_server.client import Socket
from mini_server.client.transport import ReadyState, WebSocketTransport

URL = "ws://127.0.0.1:9/socket"  # never contacted: every transport here closes before it starts


def test_transport_closed_before_its_task_starts_reports_close_1006():
    """close() right after construction still ends in CLOSED with one onclose(1006, "")."""

    async def main():
        transport = WebSocketTransport(URL + "/websocket")
        closes: list[tuple[int, str]] = []
        transport.onclose = lambda code, reason: closes.append((code, reason))
        transport.close()
        async with asyncio.timeout(1.0):
            await transport.wait_closed()
        return transport.ready_state, closes

    assert run_virtual(main) == (ReadyState.CLOSED, [(1006, "")])


def test_transport_aborted_before_its_task_starts_reports_close_1006():
    """abort() right after construction also ends in CLOSED with one onclose(1006, "")."""

    async def main():
        transport = WebSocketTransport(URL + "/websocket")
        closes: list[int] = []
        transport.onclose = lambda code, _reason: closes.append(code)
        transport.abort()
        async with asyncio.timeout(1.0):
            await transport.wait_closed()
        return transport.ready_state, closes

    assert run_virtual(main) == (ReadyState.CLOSED, [1006])


def test_disconnect_in_the_same_tick_as_connect_reports_the_close_at_once():
    """connect() then disconnect(): on_close fires and wait_closed returns, at the same instant."""

    async def main():
        loop = asyncio.get_running_loop()
        sock = Socket(URL)
        closed_at: list[float] = []
        sock.on_close(lambda _code, _reason: closed_at.append(loop.time()))
        start = loop.time()
        sock.connect()
        sock.disconnect()
        await sock.wait_closed(5.0)  # raised CancelledError before the fix
        return sock.connection_state, len(closed_at), loop.time() - start

    assert run_virtual(main) == ("closed", 1, 0.0)
