"""The delivery measurement of chapter 05: a numbered stream, a receiver, outages, the report."""

from __future__ import annotations

import asyncio

from matplotlib.figure import Figure

from mini_server.client import Socket
from mini_server.lab import stream
from mini_server.lab.chaos import ChaosProxy
from mini_server.server import Endpoint

FAST = {"reconnect_after": lambda tries: 0.02, "rejoin_after": lambda tries: 0.02, "timeout": 1.0}


class FakeChannel:
    """Just enough of a client channel: on(event, callback)."""

    def __init__(self):
        self.bindings = {}

    def on(self, event, callback):
        self.bindings[event] = callback


async def test_report_counts_what_was_sent_in_each_window_and_never_arrived():
    """sent inside [start, end] minus what arrived, per window; a repeat is a duplicate."""
    channel = FakeChannel()
    receiver = stream.Receiver(channel, "tick")
    for n in (1, 2, 3, 6, 9, 9, 10):
        channel.bindings["tick"]({"n": n})
    ticks = stream.NumberedStream(lambda n: asyncio.sleep(0), 0.1)
    ticks.sent = [(n / 10, n) for n in range(1, 11)]  # n was sent at n/10 s
    outages = stream.Outages(channel, hold=0)
    outages.windows = [stream.Window("a", 0.35, 0.55), stream.Window("b", 0.85, 0.9)]
    rows = stream.report(ticks, receiver, outages)
    assert [(r["outage"], r["sent"], r["received"], r["lost"]) for r in rows] == [
        ("a", 2, 0, 2),
        ("b", 1, 1, 0),
    ]
    assert receiver.duplicates == 1 and len(receiver.received) == 6
    assert "lost" in stream.report_text(rows).splitlines()[0]


async def test_a_network_drop_loses_the_broadcasts_sent_while_offline():
    """Live: a drop shows up as one window whose messages never arrive; later ones do."""
    async with Endpoint() as server, ChaosProxy(server) as proxy:
        sock = Socket(proxy.url, **FAST)
        sock.connect()
        try:
            room = sock.channel("room:stream")
            await room.join()
            received = stream.Receiver(room, "tick")
            ticks = stream.NumberedStream(
                lambda n: server.broadcast("room:stream", "tick", {"n": n}), 0.01
            )
            outages = stream.Outages(room, hold=0.2, settle=0.1)
            await ticks.start()
            window = await outages.run("drop", proxy.drop, proxy.restore)
            await ticks.stop()
            last = ticks.sent[-1][1]
            async with asyncio.timeout(3):
                while last not in received.numbers():  # noqa: ASYNC110 (client-side list)
                    await asyncio.sleep(0.01)
        finally:
            sock.disconnect()
            await sock.wait_closed(3)
    [row] = stream.report(ticks, received, outages)
    assert window.end - window.start >= 0.2
    assert row["sent"] >= 10 and row["lost"] >= 10, row
    assert received.duplicates == 0
    assert isinstance(stream.plot(ticks, received, outages, "drop"), Figure)
