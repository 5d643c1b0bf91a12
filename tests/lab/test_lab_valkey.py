"""The lab's embedded Valkey: a real server on a free loopback port, gone without a trace."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

import pytest
import valkey.asyncio as valkey_client

from mini_server.lab import valkey as lab_valkey
from mini_server.testing import wait_until

TIMEOUT = 10.0


async def ping(url: str) -> bool:
    client = valkey_client.Valkey.from_url(url, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


async def test_restart_keeps_the_port_and_close_leaves_nothing() -> None:
    """restart() serves on the same port again; close() kills the process, deletes its dir."""
    server = await lab_valkey.start_valkey("test-lab-valkey")
    directory, port = server._dir, server.port
    try:
        assert server.url == f"redis://127.0.0.1:{port}"
        assert await ping(server.url)
        first_pid = server.pid
        await server.restart()
        server_pid = server.pid
        assert server.port == port and server_pid != first_pid
        assert await ping(server.url)
    finally:
        await server.close()
    assert not server.running and first_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)  # the process is gone (and reaped), not merely disconnected
    assert directory is not None and not directory.exists()
    assert "test-lab-valkey" not in lab_valkey._registry


async def test_starting_a_name_again_closes_the_previous_one() -> None:
    """A re-run cell does not leave the first Valkey running."""
    first = await lab_valkey.start_valkey("test-lab-valkey-rerun")
    second = await lab_valkey.start_valkey("test-lab-valkey-rerun")
    try:
        assert not first.running and second.running
    finally:
        await lab_valkey.stop_all_valkeys()
    assert not second.running


async def test_valkey_dies_with_a_killed_parent() -> None:
    """A parent killed with SIGKILL leaves no Valkey process and no directory (the guard)."""
    script = textwrap.dedent("""
        import asyncio
        from mini_server.lab.valkey import start_valkey
        async def main():
            server = await start_valkey("orphan-check")
            print(server.pid, server._dir, flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
    """)
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(TIMEOUT * 3):
            line = await parent.stdout.readline()
        pid_text, directory = line.decode().split()
        pid = int(pid_text)
        os.kill(pid, 0)  # running
        parent.kill()
        await parent.wait()
        await wait_until(
            lambda: not alive(pid) and not os.path.exists(directory),
            TIMEOUT,
            "Valkey (or its directory) outlived the parent that was killed",
        )
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie of another parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
