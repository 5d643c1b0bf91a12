"""ConnectionPanel, headless: buttons break things, the panel shows what happened."""

from __future__ import annotations

import asyncio

import pytest

from mini_server.client import Socket
from mini_server.lab import servers, timing
from mini_server.lab.chaos import ChaosProxy
from mini_server.lab.panels import ConnectionPanel

TOPICS = ["room:1", "room:2", "room:3"]
HEARTBEAT = 1.0  # long enough that scheduling noise on a busy machine stays under 10 %


def _all(shown, state):
    return [s for _, s, _ in shown["client"]["channels"]] == [state] * 3


def _server(shown, sockets, channels):
    return shown["server"] is not None and (shown["server"]["sockets"], shown["server"]
                                            ["channels"]) == (sockets, channels)


def _healthy(shown):
    return _server(shown, 1, 3) and _all(shown, "joined")


@pytest.fixture
async def lab(request):
    fast = timing.FAST
    server = await servers.start_server(f"panel-{request.node.name}", **fast.endpoint_options())
    proxy = await ChaosProxy(server).start()
    options = fast.socket_options() | {"heartbeat_interval": HEARTBEAT}
    sock = Socket(proxy.url, **options)
    events = []
    sock.on_event(events.append)
    sock.connect()
    await sock.wait_open(5)
    channels = [sock.channel(t) for t in TOPICS]
    for ch in channels:
        ch.join()
    for ch in channels:
        await ch.wait_state("joined", 5)
    panel = ConnectionPanel(sock, server, proxy)
    await panel.wait_for(_healthy, timeout=2)
    yield panel, events
    await panel.aclose()
    sock.disconnect()
    await sock.wait_closed(5)
    await proxy.close()
    await server.close()


def _logged(panel, *fragments):
    return all(any(f in line for line in panel.log_lines) for f in fragments)


async def test_panel_shows_one_socket_and_three_channels(lab):
    """The server column shows "1 socket, 3 channels" and one chip per joined channel."""
    panel, _ = lab
    assert "1 socket, 3 channels" in panel.server_counts.value
    assert panel.channel_chips.value.count("joined") == 3
    assert "room:2 &times;1" in panel.topics_label.value


async def test_kill_button_empties_the_server_and_errors_the_channels(lab):
    """Kill: within 1 s the server shows 0 sockets, 0 channels and the client's channels err."""
    panel, _ = lab
    panel.kill_button.click()
    await panel.idle()
    await panel.wait_for(lambda s: _server(s, 0, 0) and _all(s, "errored"), timeout=1)
    assert "0 sockets, 0 channels" in panel.server_counts.value
    assert _logged(panel, "= lab: server: kill", "x closed 1006")


async def test_panel_counts_reconnect_tries_while_the_server_is_down(lab):
    """With the server down the client column shows the reconnect try and its countdown."""
    panel, _ = lab
    panel.kill_button.click()
    await panel.idle()
    shown = await panel.wait_for(lambda s: s["client"]["reconnect_tries"] >= 2
                                 and s["client"]["reconnect_in"] is not None, timeout=3)
    assert shown["client"]["state"] in ("closed", "connecting")
    assert "reconnect try" in panel.reconnect_label.value


async def test_graceful_restart_after_kill_rejoins_every_channel(lab):
    """Kill then Graceful restart: the server is back to 1 socket and 3 channels."""
    panel, _ = lab
    panel.kill_button.click()
    await panel.idle()
    await panel.wait_for(lambda s: _server(s, 0, 0) and _all(s, "errored"), timeout=1)
    panel.restart_button.click()
    await panel.idle()
    await panel.wait_for(_healthy, timeout=5)
    assert _logged(panel, "= lab: server: graceful restart", "errored -> joining")


async def test_graceful_restart_of_a_running_server_closes_with_1012(lab):
    """Graceful restart while running: the client sees 1012, then rejoins everything."""
    panel, _ = lab
    panel.restart_button.click()
    await panel.idle()
    await panel.wait_for(_healthy, timeout=5)
    assert _logged(panel, "x closed 1012")


async def test_blackhole_is_noticed_only_by_the_heartbeat(lab):
    """Blackhole: no close arrives; the heartbeat times out within 2 intervals + 10 %."""
    panel, events = lab
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen = len(events)
    panel.blackhole_button.click()
    await panel.idle()
    await panel.wait_for(lambda s: _all(s, "errored"), timeout=2 * HEARTBEAT * 1.1 + 1)
    after = events[seen:]
    timeout = next(e for e in after if e.kind == "heartbeat_timeout")
    assert timeout.time - start <= 2 * HEARTBEAT * 1.1
    assert not [e for e in after if e.prefix == "x" and e.time <= timeout.time]
    assert _logged(panel, "= lab: network: blackhole", "not answered")
    panel.restore_button.click()
    await panel.idle()
    await panel.wait_for(_healthy, timeout=5)
    assert _logged(panel, "= lab: network: restore")


async def test_drop_closes_the_client_and_restore_lets_it_rejoin(lab):
    """Drop: the client sees a close (1006) and stays out until Restore, then rejoins."""
    panel, _ = lab
    panel.drop_button.click()
    await panel.idle()
    await panel.wait_for(lambda s: _all(s, "errored") and _server(s, 0, 0), timeout=2)
    assert _logged(panel, "= lab: network: drop", "x closed 1006")
    panel.restore_button.click()
    await panel.idle()
    await panel.wait_for(_healthy, timeout=5)


async def test_client_bug_close_is_not_a_disconnect_so_the_client_comes_back(lab):
    """Client bug: closing the WebSocket directly makes the Socket reconnect and rejoin."""
    panel, events = lab
    seen = len(events)
    panel.client_bug_button.click()
    await panel.idle()
    await panel.wait_for(lambda s: any(e.prefix == "x" for e in events[seen:]), timeout=2)
    await panel.wait_for(_healthy, timeout=5)
    close = next(e for e in events[seen:] if e.prefix == "x")
    # The client's close frame has no code; Bandit (and the bundled server) answers 1000.
    assert close.data["code"] == 1000 and not close.data["by_us"]
    assert _logged(panel, "= lab: client bug", "x closed 1000")


async def test_latency_button_shows_in_the_heartbeat_round_trip(lab):
    """Latency L each way makes the next heartbeat round trip at least 2 L."""
    panel, _ = lab
    panel.latency_input.value = 0.15
    panel.latency_button.click()
    await panel.idle()
    shown = await panel.wait_for(
        lambda s: (s["client"]["heartbeat_rtt"] or 0) >= 0.3, timeout=3 * HEARTBEAT)
    assert shown["network"]["latency"] == 0.15
    assert _logged(panel, "= lab: network: latency 0.15 s")


async def test_a_failing_action_is_shown_not_swallowed(lab):
    """An action that raises shows its error in the panel's error label and the log."""
    panel, _ = lab
    panel.proxy = None
    panel.drop_button.click()
    await panel.idle()
    assert panel.errors and "no proxy" in panel.errors[-1]
    assert "no proxy" in panel.error_label.value
    assert _logged(panel, "! network: drop failed")


async def test_close_cancels_the_refresh_task(lab):
    """After close() the panel stops refreshing (its task is cancelled)."""
    panel, _ = lab
    task = panel._task
    await panel.aclose()
    assert task.cancelled()


async def test_panel_kills_and_restarts_an_os_process_server():
    """With a process server, Kill is a SIGKILL and Graceful restart a new process."""
    server = await servers.start_process_server("panel-process")
    sock = Socket(server.url, **timing.FAST.socket_options())
    panel = None
    try:
        sock.connect()
        await sock.wait_open(5)
        for ch in [sock.channel(t) for t in TOPICS]:
            ch.join()
        panel = ConnectionPanel(sock, server)
        await panel.wait_for(_healthy, timeout=5)
        pid = server.pid
        panel.kill_button.click()
        await panel.idle()
        await panel.wait_for(lambda s: _server(s, 0, 0) and _all(s, "errored"), timeout=1)
        assert server.process.returncode == -9
        panel.restart_button.click()
        await panel.idle()
        await panel.wait_for(_healthy, timeout=10)
        assert server.pid != pid and panel.errors == []
    finally:
        if panel is not None:
            await panel.aclose()
        sock.disconnect()
        await sock.wait_closed(5)
        await server.close()


async def test_a_new_panel_with_the_same_name_replaces_the_old(lab):
    """Re-running the cell that builds a panel closes the previous panel of that name."""
    old, _ = lab
    new = ConnectionPanel(old.socket, old.server, old.proxy)
    try:
        await new.wait_for(_healthy, timeout=2)
        assert old._closed and not new._closed
    finally:
        await new.aclose()


def test_panel_words_count_sockets_and_channels_in_plain_english():
    """The server column reads "1 socket, 3 channels" and "0 sockets, 1 channel"."""
    from mini_server.lab import panel_html

    client = {"state": "open", "channels": [], "reconnect_tries": 0, "reconnect_in": None,
              "heartbeat_rtt": None}
    one = panel_html.render({"client": client, "server": {
        "running": True, "sockets": 1, "channels": 3, "topics": {"room:1": 3}}})
    none = panel_html.render({"client": client, "server": {
        "running": False, "sockets": 0, "channels": 1, "topics": {}}})
    assert "1 socket, 3 channels" in one["server_counts"]
    assert "0 sockets, 1 channel<" in none["server_counts"]
    assert "down" in none["server_light"] and "no topics" in none["topics_label"]
