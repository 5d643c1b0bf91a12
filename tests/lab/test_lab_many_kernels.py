"""Twenty kernels at once, each with its own server, proxy, client and panel."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap

import pytest
from kernel_support import Kernel
from lab_support import listening_ports, pid_gone

from mini_server.testing import wait_until

KERNELS = 20
PROCESS_EVERY = 4  # every fourth kernel runs its server as a child OS process

CELL = textwrap.dedent("""
    import json, os
    from mini_server.client import Socket
    from mini_server.lab import servers, timing
    from mini_server.lab.chaos import ChaosProxy
    from mini_server.lab.panels import ConnectionPanel

    # Heartbeats are relaxed: twenty kernels share two cores, and isolation, not timing,
    # is what this notebook checks.
    t = timing.timers()
    if {process}:
        server = await servers.start_process_server()
    else:
        server = await servers.start_server(**t.endpoint_options() | {{"idle_timeout": 60}})
    proxy = await ChaosProxy(server).start()
    socket = Socket(proxy.url, params={{"kernel": "{index}"}},
                    **t.socket_options() | {{"heartbeat_interval": 10, "timeout": 30}})
    socket.connect()
    await socket.wait_open(60)
    lobby = socket.channel("room:lobby")
    lobby.join()
    await lobby.wait_state("joined", 60)
    panel = ConnectionPanel(socket, server, proxy)
    await panel.wait_for(lambda s: s["server"] and s["server"]["channels"] == 1, timeout=60)
    state = await server.state()
    print(json.dumps({{"pid": os.getpid(), "server_port": server.port, "proxy_port": proxy.port,
                      "child": getattr(server, "pid", None),
                      "panel": panel.server_counts.value,
                      "params": [s["params"] for s in state["sockets"]]}}))
""")


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (read from /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return kids


@pytest.mark.timeout(420)
async def test_twenty_kernels_are_isolated_and_leave_nothing_behind():
    """No port collisions, no cross-talk, nothing running or listening after shutdown."""
    kernels = [Kernel() for _ in range(KERNELS)]
    reports: list[dict] = []
    ports: list[int] = []
    descendants: set[int] = set()
    try:
        await asyncio.gather(*(k.start(timeout=180) for k in kernels))
        outputs = await asyncio.gather(*(
            k.execute(CELL.format(index=i, process=i % PROCESS_EVERY == 0), timeout=180)
            for i, k in enumerate(kernels)))
        reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]

        ports = [r["server_port"] for r in reports] + [r["proxy_port"] for r in reports]
        assert len(set(ports)) == 2 * KERNELS, "two kernels share a port"
        for i, report in enumerate(reports):
            assert report["params"] == [{"kernel": str(i), "vsn": "2.0.0"}], report
            assert "1 socket, 1 channel" in report["panel"]
        children = {r["child"] for r in reports if r["child"] is not None}
        assert len(children) == KERNELS // PROCESS_EVERY
        descendants = {pid for r in reports for pid in _children(r["pid"])}
        assert children <= descendants
    finally:
        await asyncio.gather(*(k.shutdown() for k in kernels), return_exceptions=True)

    pids = {r["pid"] for r in reports} | descendants
    await wait_until(lambda: all(pid_gone(p) for p in pids), timeout=30)
    await wait_until(lambda: not set(ports) & listening_ports(), timeout=10)
