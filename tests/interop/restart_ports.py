"""A port for servers that restart on the same port, chosen where nobody else looks.

Why not port 0 for these: after ``stop()``/``kill()`` the port is free until ``restart()``
binds it again, and in that gap any other process binding port 0 may be given it (Linux
hands out odd ports of ``ip_local_port_range`` to ``bind(0)``; observed once on a shared
machine as EADDRINUSE, and worse, the client could have reconnected to a stranger's
server). A free port below that range is never handed out automatically, so it stays ours.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 20000


def port_outside_ephemeral_range(tries: int = 50) -> int:
    """A currently free 127.0.0.1 port below the OS's automatic (ephemeral) port range."""
    try:
        ephemeral_low = int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux default; macOS and Windows start at 49152
    high = max(ephemeral_low, LOWEST + 1000)
    for _ in range(tries):
        port = random.randrange(LOWEST, high)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in [{LOWEST}, {high}) after {tries} tries")
