"""A closed panel looks closed, and nothing brings back a server that stop_all() stopped.

After Run All, a chapter's clean-up cell closes its panel and stops every server. The panel
stays on screen; it must not keep claiming "server running, 1 socket", and its buttons must not
quietly restart what the chapter stopped.
"""

from __future__ import annotations

import asyncio
import socket as stdlib_socket

import pytest

from mini_server.client import Socket
from mini_server.lab import servers, timing
from mini_server.lab.chaos import ChaosProxy
from mini_server.lab.panels import ConnectionPanel


def listening(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    with stdlib_socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
async def lab(request):
    server = await servers.start_server(f"closed-{request.node.name}",
                                        **timing.FAST.endpoint_options())
    proxy = await ChaosProxy(server).start()
    sock = Socket(proxy.url, **timing.FAST.socket_options())
    sock.connect()
    await sock.wait_open(5)
    panel = ConnectionPanel(sock, server, proxy, name=f"closed-{request.node.name}")
    await panel.wait_for(lambda s: s["server"] is not None and s["server"]["sockets"] == 1)
    yield panel, server, sock
    await panel.aclose()
    sock.disconnect()
    await sock.wait_closed(5)
    await proxy.close()
    await server.close()


async def test_a_closed_panel_says_so_and_disables_every_control(lab):
    panel, server, _ = lab
    assert "1 socket" in panel.server_counts.value
    await panel.aclose()
    assert panel.closed
    assert "panel closed" in panel.status_label.value
    assert "1 socket" not in panel.server_counts.value, "a closed panel still claims live counts"
    assert "running" not in panel.server_light.value
    controls = [panel.kill_button, panel.restart_button, panel.client_bug_button,
                panel.drop_button, panel.blackhole_button, panel.latency_button,
                panel.restore_button, panel.latency_input]
    assert all(control.disabled for control in controls)
    panel.kill_button.click()  # a click that was already on its way
    assert not panel._pending
    await asyncio.sleep(0.2)  # give a wrongly scheduled kill the time to happen
    assert server.running, "a click on a closed panel killed the server"


async def test_stop_all_closes_the_panel_and_no_button_restarts_the_server(lab):
    panel, server, _ = lab
    port = server.port
    await servers.stop_all()
    await asyncio.wait([panel._task], timeout=5)  # the refresh task ends as it closes
    assert panel.closed, "the panel still refreshes a server that stop_all() closed"
    assert "was closed" in panel.status_label.value
    assert panel.restart_button.disabled
    panel.restart_button.click()
    with pytest.raises(RuntimeError, match="was closed"):
        await server.restart()
    assert not server.running
    assert not listening(port), "the stopped server listens again"
    assert servers.running_servers() == {}


async def test_a_closed_process_server_refuses_to_start_again():
    handle = await servers.start_process_server("closed-process")
    try:
        await handle.close()
        with pytest.raises(RuntimeError, match="was closed"):
            await handle.restart()
        with pytest.raises(RuntimeError, match="was closed"):
            await handle.start()
        assert not handle.running
    finally:
        await handle.kill()



async def test_heartbeats_fold_so_a_kill_stays_in_the_log():
    """With fast timers, a minute of heartbeats must not push the kill lines out of the log."""
    server = await servers.start_server("fold-heartbeats", **timing.FAST.endpoint_options())
    sock = Socket(server.url, **(timing.FAST.socket_options() | {"heartbeat_interval": 0.01}))
    sock.connect()
    panel = None
    beats, enough = 0, asyncio.Event()

    def count(event):
        nonlocal beats
        if event.prefix == "%":
            beats += 1
            if beats >= 120:  # 60 round trips: six times the log's 20 lines, unfolded
                enough.set()

    try:
        await sock.wait_open(5)
        panel = ConnectionPanel(sock, server, name="fold", log_lines=20)
        panel.kill_button.click()
        await panel.idle()
        await server.restart()
        await sock.wait_open(5)
        sock.on_event(count)
        async with asyncio.timeout(15):
            await enough.wait()
        lines = panel.log_lines
        assert any("= lab: server: kill" in line for line in lines), lines
        assert sum(1 for line in lines if " % " in line) <= 2, lines
        assert any("heartbeat lines]" in line for line in lines), lines
    finally:
        if panel is not None:
            await panel.aclose()
        sock.disconnect()
        await sock.wait_closed(5)
        await server.close()
