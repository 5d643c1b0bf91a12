"""A half-open link (bytes silently dropped, no FIN/RST) is found by the heartbeat timeout."""

from __future__ import annotations

import asyncio

from client_probes import EventLog

from mini_server.client import ChannelState

INTERVAL = 1.0  # s; 10 % of it is the slack a loaded 2-core machine needs


async def test_half_open_link_is_detected_within_two_heartbeat_intervals_and_recovers(
        endpoint, proxy, sockets):
    """Blackhole: heartbeat timeout within 2 intervals + 10 %; link back: rejoined, new join_ref."""
    sock = sockets(proxy.url, heartbeat_interval=INTERVAL, timeout=1.0)
    log = EventLog(sock)
    ch = sock.channel("room:1")
    reasons = []
    ch.on_error(reasons.append)
    ch.join()
    sock.connect()
    await ch.wait_joined(3)
    old = ch.join_ref

    mark = len(log.events)
    proxy.blackhole = True
    cut = asyncio.get_running_loop().time()
    timeout = await log.wait_kind("heartbeat_timeout", timeout=5, since=mark)
    detected = timeout.time - cut
    assert detected <= 2 * INTERVAL * 1.1, f"detected after {detected:.3f} s"
    assert reasons == [{"source": "transport", "reason": "heartbeat_timeout"}]
    assert ch.state == ChannelState.ERRORED

    proxy.blackhole = False
    await ch.wait_joined(6)
    assert ch.join_ref != old
    assert (await ch.push("ping", {"back": True})).response == {"back": True}
    snap_refs = [c["join_ref"] for s in endpoint.snapshot()["sockets"] for c in s["channels"]]
    assert ch.join_ref in snap_refs
