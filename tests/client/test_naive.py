"""The deliberately naive client reconnects but never rejoins: what chapter 03 shows."""

from __future__ import annotations

from client_probes import EventLog

from mini_server.client import ChannelState, NaiveSocket, Socket

TOPICS = ("room:1", "room:2", "room:3")


async def test_naive_socket_ends_with_one_socket_zero_channels_and_unmatched_topic(
        endpoint, sockets):
    """After a restart the naive client is back (1 socket) but holds 0 channels on the server."""
    sock = sockets(endpoint.url, cls=NaiveSocket)
    log = EventLog(sock)
    channels = [sock.channel(t) for t in TOPICS]
    for ch in channels:
        ch.join()
    sock.connect()
    for ch in channels:
        await ch.wait_joined(3)
    assert endpoint.snapshot()["channel_count"] == 3

    mark = len(log.events)
    await endpoint.kill()
    await log.wait_kind("reconnect_scheduled", since=mark, tries=3)
    await endpoint.restart()
    await sock.wait_open(3)
    reply = await channels[0].push("new_msg", {"body": "hello?"})

    assert (reply.status, reply.response) == ("error", {"reason": "unmatched topic"})
    snap = endpoint.snapshot()
    assert (snap["socket_count"], snap["channel_count"]) == (1, 0)
    assert [ch.state for ch in channels] == [ChannelState.JOINED] * 3  # it still believes
    assert log.sent("phx_join", since=mark) == []


async def test_the_real_socket_in_the_same_outage_gets_its_channels_back(endpoint, sockets):
    """Side by side with the naive one, the real Socket ends with its three channels joined."""
    naive, real = sockets(endpoint.url, cls=NaiveSocket), sockets(endpoint.url, cls=Socket)
    pairs = []
    for sock in (naive, real):
        pairs.append([sock.channel(t) for t in TOPICS])
        for ch in pairs[-1]:
            ch.join()
        sock.connect()
    for ch in pairs[0] + pairs[1]:
        await ch.wait_joined(3)
    await endpoint.kill()
    await endpoint.restart()
    for ch in pairs[1]:
        await ch.wait_joined(5)
    await naive.wait_open(5)
    await pairs[0][0].push("ping", {})  # a round trip: the naive socket is registered
    snap = endpoint.snapshot()
    assert snap["socket_count"] == 2 and snap["topics"] == dict.fromkeys(TOPICS, 1)
