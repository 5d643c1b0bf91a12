"""Server handles: in-kernel and OS-process servers you can kill, stop and restart."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sys
import textwrap

import pytest
from lab_support import listening_ports, pid_gone, raw_join, reaped
from websockets.exceptions import ConnectionClosed

from mini_server.lab import servers
from mini_server.testing import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def _close_code(ws) -> int:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            await ws.recv()
    return ws.close_code


async def test_kernel_server_binds_loopback_on_an_os_chosen_port(kernel_server):
    """The in-kernel server listens on 127.0.0.1 and a non-zero OS-chosen port."""
    assert kernel_server.url == f"ws://127.0.0.1:{kernel_server.port}/socket"
    assert kernel_server.port != 0 and kernel_server.port in listening_ports()
    assert (await kernel_server.state())["socket_count"] == 0


async def test_starting_the_same_name_again_replaces_the_old_server():
    """Re-running start_server("x") stops the previous "x" (its port stops listening)."""
    first = await servers.start_server("replace-me")
    second = await servers.start_server("replace-me")
    try:
        assert not first.running and second.running
        assert servers.running_servers()["replace-me"] is second
        assert first.port not in listening_ports()
    finally:
        await second.close()
    assert "replace-me" not in servers.running_servers()


async def test_kernel_kill_aborts_clients_with_1006(kernel_server):
    """kill() drops connections without a close frame and forgets every channel."""
    ws = await raw_join(kernel_server.url, ["room:1", "room:2"])
    assert (await kernel_server.state())["channel_count"] == 2
    await kernel_server.kill()
    assert await _close_code(ws) == 1006
    assert (await kernel_server.state())["socket_count"] == 0


async def test_kernel_stop_closes_clients_with_1012(kernel_server):
    """stop() is graceful: clients get close code 1012 (service restart)."""
    ws = await raw_join(kernel_server.url, ["room:1"])
    await kernel_server.stop()
    assert await _close_code(ws) == 1012


async def test_kernel_restart_reuses_the_port_with_empty_memory(kernel_server):
    """After kill + restart the same port serves again and remembers no channel."""
    port = kernel_server.port
    ws = await raw_join(kernel_server.url, ["room:1"])
    await kernel_server.kill()
    await _close_code(ws)
    await kernel_server.restart()
    assert kernel_server.port == port and kernel_server.running
    assert (await kernel_server.state())["channel_count"] == 0
    ws2 = await raw_join(kernel_server.url, ["room:9"])
    assert (await kernel_server.state())["topics"] == {"room:9": 1}
    await ws2.close()


async def test_process_state_crosses_the_process_boundary(process_server):
    """state() of an OS-process server reports the channels a client joined there."""
    assert process_server.pid != os.getpid()
    ws = await raw_join(process_server.url, ["room:1", "room:2", "room:3"])
    state = await process_server.state()
    assert state["running"] and state["socket_count"] == 1
    assert state["topics"] == {"room:1": 1, "room:2": 1, "room:3": 1}
    await ws.close()


async def test_process_kill_is_sigkill_and_leaves_no_orphan(process_server):
    """kill() is a real SIGKILL: clients see 1006 and the child is reaped, not orphaned."""
    ws = await raw_join(process_server.url, ["room:1"])
    pid = process_server.pid
    await process_server.kill()
    assert process_server.process.returncode == -signal.SIGKILL
    assert await _close_code(ws) == 1006
    assert reaped(pid)  # not even a zombie
    assert (await process_server.state())["socket_count"] == 0


async def test_process_restart_is_a_new_process_on_the_same_port(process_server):
    """restart() is a deploy: a new pid, the same port, no memory of old channels."""
    port, pid = process_server.port, process_server.pid
    ws = await raw_join(process_server.url, ["room:1"])
    await process_server.restart()
    assert await _close_code(ws) == 1012
    assert process_server.port == port and process_server.pid != pid
    assert pid_gone(pid)
    assert (await process_server.state())["channel_count"] == 0
    ws2 = await raw_join(process_server.url, ["room:2"])
    assert (await process_server.state())["channel_count"] == 1
    await ws2.close()


async def test_process_restart_after_kill_reuses_the_port(process_server):
    """kill -9 then restart() serves again on the same port."""
    port = process_server.port
    await process_server.kill()
    await process_server.restart()
    assert process_server.port == port and process_server.running
    ws = await raw_join(process_server.url, ["room:1"])
    await ws.close()


async def test_process_server_dies_with_a_killed_parent():
    """If the parent is killed with SIGKILL, the server process exits too (stdin watch)."""
    script = textwrap.dedent("""
        import asyncio, sys
        from mini_server.lab.servers import start_process_server
        async def main():
            h = await start_process_server("orphan-check")
            print(h.pid, h.port, flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
    """)
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT,
                                                  stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(30):
            line = await parent.stdout.readline()
        child_pid, port = map(int, line.split())
        assert not pid_gone(child_pid)
        parent.kill()
        await parent.wait()
        await wait_until(lambda: pid_gone(child_pid), timeout=5)
        await wait_until(lambda: port not in listening_ports(), timeout=5)
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


async def test_process_server_dies_when_the_parent_exits_without_cleanup():
    """A parent that exits without closing its handle leaves no server process behind."""
    script = textwrap.dedent("""
        import asyncio
        from mini_server.lab.servers import start_process_server
        async def main():
            h = await start_process_server("atexit-check")
            print(h.pid, h.port, flush=True)
        asyncio.run(main())
    """)
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT,
                                                  stdout=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, _ = await parent.communicate()
    child_pid, port = map(int, out.split())
    await wait_until(lambda: pid_gone(child_pid), timeout=5)
    assert port not in listening_ports()


async def test_kernel_server_serves_a_channel_class_defined_here():
    """A Channel subclass defined in a cell (here: a test) is served by start_server."""
    from mini_server.server import Channel, ok, reply

    class EchoChannel(Channel):
        async def join(self, topic, payload):
            return ok({"joined": topic})

        async def handle_in(self, event, payload):
            return reply("ok", {"echo": payload})

    handle = await servers.start_server("custom", {"echo:*": EchoChannel})
    try:
        ws = await raw_join(handle.url, ["echo:1"])
        await ws.send('["1","2","echo:1","say",{"x":1}]')
        async with asyncio.timeout(5):
            answer = json.loads(await ws.recv())
        assert answer[4] == {"status": "ok", "response": {"echo": {"x": 1}}}
        await ws.close()
    finally:
        await handle.close()


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_process_port_stays_reserved_while_no_child_serves_it(process_server, how):
    """Between the old child and the new one the port is refused to others, then reused."""
    port = process_server.port
    await getattr(process_server, how)()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as intruder:
        with pytest.raises(OSError) as taken:
            intruder.bind(("127.0.0.1", port))
    assert taken.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError):  # refused, as from a dead server
        async with asyncio.timeout(5):
            await asyncio.open_connection("127.0.0.1", port)
    await process_server.start()
    assert process_server.port == port
    ws = await raw_join(process_server.url, ["room:1"])
    await ws.close()


async def test_process_close_gives_the_port_back(process_server):
    """close() releases the reserved port: another socket can listen on it."""
    port = process_server.port
    await process_server.kill()
    await process_server.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", port))
        other.listen()


def _nodelay_of(handle) -> list[int]:
    return [t.ws.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP,
                                                               socket.TCP_NODELAY)
            for t in handle.endpoint.transports]


@pytest.mark.parametrize("how", ["restart", "kill"])
async def test_kernel_server_connections_after_a_restart_keep_tcp_nodelay(kernel_server, how):
    """After restart() (or kill() then restart()) accepted sockets still have TCP_NODELAY.

    The chapters' case: without it two frames back to back stall ~40 ms (Nagle + delayed ACK).
    """
    ws = await raw_join(kernel_server.url, ["room:1"])
    assert _nodelay_of(kernel_server) == [1]
    await getattr(kernel_server, how)()
    await _close_code(ws)
    if how == "kill":
        await kernel_server.restart()
    ws2 = await raw_join(kernel_server.url, ["room:2"])
    await wait_until(lambda: len(kernel_server.endpoint.transports) == 1)
    assert _nodelay_of(kernel_server) == [1]
    await ws2.close()
