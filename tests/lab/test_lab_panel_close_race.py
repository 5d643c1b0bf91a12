"""aclose() always finishes: the clean-up cell of every chapter must never hang.

On Python 3.11, asyncio's ``wait_for`` can swallow a cancellation that arrives just as the
inner call finishes (CPython gh-86296). The panel's refresh loop awaited its server read that
way, so ``panel.aclose()`` (cancel, then wait for the refresh task) sometimes waited forever:
1 to 7 times in 300 in a loop. This test closes many panels at varied moments of their refresh
and bounds every close.
"""

from __future__ import annotations

import asyncio

from mini_server.client import Socket
from mini_server.lab import servers, timing
from mini_server.lab.panels import ConnectionPanel

ROUNDS = 300
CLOSE_BOUND = 8.0  # a healthy aclose() takes milliseconds; its own bound is 5 s


async def test_aclose_never_hangs_whenever_the_cancellation_lands():
    server = await servers.start_server("panel-close-race", **timing.FAST.endpoint_options())
    sock = Socket(server.url, **timing.FAST.socket_options())
    sock.connect()
    try:
        await sock.wait_open(5)
        hung = 0
        for round_ in range(ROUNDS):
            # refresh_interval=0: the refresh task spends nearly all its time inside the
            # bounded server read, where the lost-cancellation race lives.
            panel = ConnectionPanel(sock, server, name="race", refresh_interval=0)
            for _ in range(round_ % 7):  # land the close at varied points of a refresh
                await asyncio.sleep(0)
            # asyncio.wait bounds the close without cancelling it (a timeout around it would
            # wait for the very task that ignores cancellation)
            closing = asyncio.ensure_future(panel.aclose())
            done, _ = await asyncio.wait([closing], timeout=CLOSE_BOUND)
            if not done or closing.exception() is not None:  # hung, or aclose's bound gave up
                hung += 1
                break
        assert hung == 0, f"panel.aclose() hung in round {round_} of {ROUNDS}"
    finally:
        for _ in range(100):  # a swallowed cancellation: cancel the stuck task until it ends
            if panel._task.done():
                break
            panel._task.cancel()
            await asyncio.sleep(0.01)
        if not closing.done():
            closing.cancel()
        sock.disconnect()
        await sock.wait_closed(5)
        await server.close()
