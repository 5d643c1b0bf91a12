"""blocking.run: finish lab coroutines from sync code, inside or outside a running loop."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

from mini_server.lab.blocking import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_run_without_a_loop_uses_a_fresh_one():
    """From plain sync code, run() returns the coroutine's result."""
    async def answer():
        await asyncio.sleep(0)
        return 42

    assert run(answer()) == 42


async def test_run_inside_a_running_loop_like_a_notebook_cell():
    """A sync function called from a running loop can still finish a server's state()."""
    # In a subprocess: nest-asyncio2 patches asyncio globally, which must not leak into
    # the other tests of this session.
    script = textwrap.dedent("""
        import asyncio
        from mini_server.lab import servers
        from mini_server.lab.blocking import run

        def sync_helper(handle):
            return run(handle.state())["socket_count"]

        async def cell():
            handle = await servers.start_server("blocking")
            try:
                print(sync_helper(handle))
            finally:
                await handle.close()

        asyncio.run(cell())
    """)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "0"
