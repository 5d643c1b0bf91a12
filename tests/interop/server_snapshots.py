"""Wait on mini_server's snapshot() from tests.

snapshot() is cheap by contract (panels poll it ten times a second), so tests poll it
every 20 ms under a deadline until the server state they expect shows up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mini_server.server import Endpoint


async def wait_snapshot(
    endpoint: Endpoint, check: Callable[[dict], bool], within: float = 5.0
) -> dict:
    """Poll the server snapshot until `check` holds; return that snapshot."""
    last: dict = {}

    async def poll() -> dict:
        nonlocal last
        # The server offers no change event, only a snapshot meant to be polled.
        while not check(last := endpoint.snapshot()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return last

    try:
        async with asyncio.timeout(within):
            return await poll()
    except TimeoutError:
        raise AssertionError(f"server snapshot never matched within {within} s: {last}") from None


def joined_refs(snapshot: dict) -> dict[str, str]:
    """Map topic -> join_ref of every channel in a server snapshot."""
    return {
        ch["topic"]: ch["join_ref"] for sock in snapshot["sockets"] for ch in sock["channels"]
    }
