"""Helpers for the lab tests: process and port checks, a raw V2 client."""

from __future__ import annotations

import asyncio
import json
import os

from websockets.asyncio.client import connect


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def reaped(pid: int) -> bool:
    """True when ``pid`` is gone entirely (not even a zombie)."""
    return not os.path.exists(f"/proc/{pid}")


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (IPv4 and IPv6), from /proc/net."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def raw_join(url: str, topics: list[str]):
    """Open a raw V2 websocket and join ``topics``; returns the open connection."""
    ws = await connect(url + "/websocket?vsn=2.0.0", ping_interval=None, open_timeout=5,
                       close_timeout=0.5)
    for i, topic in enumerate(topics, start=1):
        await ws.send(json.dumps([str(i), str(i), topic, "phx_join", {}]))
        async with asyncio.timeout(5):
            reply = json.loads(await ws.recv())
        assert reply[3] == "phx_reply" and reply[4]["status"] == "ok", reply
    return ws
