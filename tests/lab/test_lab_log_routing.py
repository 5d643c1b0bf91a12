"""Server and lab log lines go to the panel's log or a LogView, never to stray stderr."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.asyncio.client import connect

from mini_server.client import Socket
from mini_server.lab import log_routing, servers, timing
from mini_server.lab.panels import ConnectionPanel
from mini_server.testing import wait_until


@pytest.fixture
def router():
    log_routing.uninstall()
    installed = log_routing.install(force=True)
    yield installed
    log_routing.uninstall()


async def join_unmatched(url: str) -> None:
    """A raw V2 join of a topic no channel serves: the server logs why it refused."""
    async with connect(url + "/websocket?vsn=2.0.0", open_timeout=5, close_timeout=1) as ws:
        await ws.send(json.dumps(["1", "1", "nope:1", "phx_join", {}]))
        async with asyncio.timeout(5):
            reply = json.loads(await ws.recv())
        assert reply[4] == {"status": "error", "response": {"reason": "unmatched topic"}}


def test_nothing_is_installed_outside_a_kernel():
    log_routing.uninstall()
    assert not log_routing.in_kernel()
    assert log_routing.install() is None
    assert log_routing.router() is None


async def test_a_refused_join_lands_in_the_panel_log_and_not_on_stderr(router, capsys):
    server = await servers.start_server("routing-panel", **timing.FAST.endpoint_options())
    sock = Socket(server.url, **timing.FAST.socket_options())
    sock.connect()
    panel = None
    try:
        await sock.wait_open(5)
        panel = ConnectionPanel(sock, server, name="routing")
        await join_unmatched(server.url)
        assert any("nope:1" in line and "unmatched topic" in line for line in panel.log_lines)
        await panel.refresh()
        assert "unmatched topic" in panel.log_view.value
        captured = capsys.readouterr()
        assert "unmatched topic" not in captured.err, "the server's line leaked to stderr"
        assert "unmatched topic" not in captured.out
    finally:
        if panel is not None:
            await panel.aclose()
        sock.disconnect()
        await sock.wait_closed(5)
        await server.close()


async def test_a_log_view_prints_new_lines_in_the_cell_that_asks(router, capsys):
    server = await servers.start_server("routing-view", **timing.FAST.endpoint_options())
    view = log_routing.LogView()
    try:
        assert view.new() == []
        await join_unmatched(server.url)
        view.print_new()
        out = capsys.readouterr().out
        assert "server log: " in out and "unmatched topic" in out
        view.print_new()
        assert capsys.readouterr().out == "", "a line was printed twice"
    finally:
        view.close()
        await server.close()


def test_lab_warnings_are_printed_on_stdout_where_the_cell_runs(router, capsys):
    logging.getLogger("mini_server.lab.servers").warning("! something the learner must see")
    logging.getLogger("mini_server.server.transport").warning("! protocol chatter")
    captured = capsys.readouterr()
    assert "something the learner must see" in captured.out
    assert "protocol chatter" not in captured.out + captured.err
    assert captured.err == ""
    assert "! protocol chatter" in router.lines


async def test_a_process_server_child_logs_through_the_router(router):
    view = log_routing.LogView(prefix="")
    handle = await servers.start_process_server("routing-process")
    try:
        await join_unmatched(handle.url)
        # the child's line crosses a pipe: poll, bounded
        await wait_until(lambda: any("unmatched topic" in line for line in view.lines), 10)
        assert any("routing-process (pid" in line for line in view.lines)
    finally:
        view.close()
        await handle.close()
        await handle.kill()
