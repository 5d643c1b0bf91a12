"""The client against a live mini_server Endpoint: outages, restarts, crashes, refusals."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, ClassVar

from client_probes import EventLog, until

from mini_server.client import ChannelState, Socket
from mini_server.protocol import reconnect_after
from mini_server.server import Channel, Endpoint, ok, reply
from mini_server.server.demo import RoomChannel

TOPICS = ("room:1", "room:2", "room:3")


async def join_all(sock: Socket, topics=TOPICS, **params: Any) -> list:
    channels = [sock.channel(t, params or None) for t in topics]
    for ch in channels:
        ch.join()
    sock.connect()
    for ch in channels:
        await ch.wait_joined(3)
    return channels


def server_join_refs(ep: Endpoint) -> dict[str, str]:
    return {c["topic"]: c["join_ref"] for s in ep.snapshot()["sockets"] for c in s["channels"]}


async def test_seed_scenario_rejoins_three_topics_within_half_a_second_of_restart(
        endpoint, sockets):
    """Kill -> 0/0 on the server; restart -> 1 socket, 3 channels, new join_refs, within 0.5 s."""
    sock = sockets(endpoint.url)
    log = EventLog(sock)
    channels = await join_all(sock)
    before = {ch.topic: ch.join_ref for ch in channels}
    snap = endpoint.snapshot()
    assert (snap["socket_count"], snap["channel_count"]) == (1, 3)
    assert server_join_refs(endpoint) == before

    mark = len(log.events)
    await endpoint.kill()
    snap = endpoint.snapshot()
    assert (snap["socket_count"], snap["channel_count"]) == (0, 0)
    # A short, controlled outage: restart once the client has failed three attempts, so the
    # pending attempt is the 4th of the default schedule (150 ms away), as phoenix.js would be.
    await log.wait_kind("reconnect_scheduled", since=mark, tries=4)
    await endpoint.restart()
    restarted = asyncio.get_running_loop().time()
    for ch in channels:
        await ch.wait_joined(3)
    elapsed = asyncio.get_running_loop().time() - restarted

    assert elapsed < 0.5, f"rejoined {elapsed:.3f} s after the restart"
    delays = [e.data["delay"] for e in log.events[mark:] if e.kind == "reconnect_scheduled"]
    assert delays == [reconnect_after(t) for t in range(1, len(delays) + 1)]
    snap = endpoint.snapshot()
    assert (snap["socket_count"], snap["channel_count"]) == (1, 3)
    after = server_join_refs(endpoint)
    assert after == {ch.topic: ch.join_ref for ch in channels}
    assert all(after[t] != before[t] for t in TOPICS)


async def test_a_second_outage_rejoins_again_with_new_join_refs(endpoint, sockets):
    """Two kill/restart cycles: each time the server holds the three channels with new refs."""
    sock = sockets(endpoint.url)
    channels = await join_all(sock)
    seen = [server_join_refs(endpoint)]
    for _ in range(2):
        await endpoint.kill()
        for ch in channels:
            await ch.wait_state(ChannelState.ERRORED, 3)
        await endpoint.restart()
        for ch in channels:
            await ch.wait_joined(5)
        seen.append(server_join_refs(endpoint))
    assert [len(s) for s in seen] == [3, 3, 3]
    for topic in TOPICS:
        assert len({s[topic] for s in seen}) == 3


async def test_disconnect_then_connect_rejoins_the_errored_channels(endpoint, sockets):
    """disconnect(): server sees no socket, no reconnect; connect(): channels rejoin themselves."""
    sock = sockets(endpoint.url)
    log = EventLog(sock)
    channels = await join_all(sock)
    before = server_join_refs(endpoint)
    sock.disconnect()
    await sock.wait_closed(3)
    assert [ch.state for ch in channels] == [ChannelState.ERRORED] * 3
    await until(lambda: endpoint.snapshot()["socket_count"] == 0,
                message="server to drop the socket")
    assert log.of("reconnect_scheduled") == []
    sock.connect()
    for ch in channels:
        await ch.wait_joined(3)
    after = server_join_refs(endpoint)
    assert set(after) == set(TOPICS) and all(after[t] != before[t] for t in TOPICS)


async def test_after_three_reconnects_the_server_holds_one_subscription_per_topic(
        endpoint, sockets):
    """Kill, stop (1012), disconnect/connect: one channel per topic, one copy per broadcast."""
    sock = sockets(endpoint.url)
    channels = await join_all(sock)
    got: dict[str, list] = {t: [] for t in TOPICS}
    for ch in channels:
        ch.on("new_msg", got[ch.topic].append)
    for outage in ("kill", "stop", "disconnect"):
        if outage == "disconnect":
            sock.disconnect()
            await sock.wait_closed(3)
            await until(lambda: endpoint.snapshot()["socket_count"] == 0)
            sock.connect()
        else:
            await getattr(endpoint, outage)()
            await endpoint.restart()
        for ch in channels:
            await ch.wait_joined(5)
    snap = endpoint.snapshot()
    assert snap["topics"] == dict.fromkeys(TOPICS, 1) and snap["socket_count"] == 1
    for topic in TOPICS:
        await endpoint.broadcast(topic, "new_msg", {"body": topic})
    await channels[0].push("ping", {})  # any duplicate would have arrived before this reply
    assert got == {t: [{"body": t}] for t in TOPICS}


class CrashingChannel(Channel):
    """Joins, echoes "ping", raises on "crash"."""

    async def join(self, topic, payload):
        return ok()

    async def handle_in(self, event, payload):
        if event == "crash":
            raise RuntimeError("crash requested by the test")
        return reply("ok", payload)


async def test_channel_crash_rejoins_after_rejoin_after_1_and_neighbours_keep_working(sockets):
    """A crash: rejoin 1 s after phx_error with a new join_ref; the other topic keeps working."""
    async with Endpoint({"crash:*": CrashingChannel, "room:*": RoomChannel}) as ep:
        sock = sockets(ep.url)
        log = EventLog(sock)
        crash, room = await join_all(sock, ("crash:1", "room:1"))
        old = crash.join_ref
        errors = []
        crash.on_error(errors.append)
        crash.push("crash", {})
        error = await log.wait(lambda e: e.kind == "received"
                               and e.data["message"].event == "phx_error")
        assert (await room.push("ping", {"n": 1})).response == {"n": 1}
        rejoin = await log.wait(lambda e: e.kind == "sent" and e.data["message"].event
                                == "phx_join" and e.data["message"].topic == "crash:1",
                                since=log.events.index(error))
        await crash.wait_joined(3)
        delay = rejoin.time - error.time
        assert 1.0 <= delay < 1.2, f"rejoin {delay:.3f} s after phx_error"
        assert crash.join_ref != old and errors == [{"reason": "channel_crash"}]
        assert server_join_refs(ep) == {"crash:1": crash.join_ref, "room:1": room.join_ref}


class RecordingChannel(Channel):
    """Records every join payload it sees (class-level, reset by the test)."""

    payloads: ClassVar[list] = []

    async def join(self, topic, payload):
        RecordingChannel.payloads.append(payload)
        return ok()


async def test_callable_params_are_reevaluated_on_each_connect_and_rejoin(sockets):
    """Socket and channel params given as callables are called again for each reconnect/rejoin."""
    connects: list[dict] = []
    RecordingChannel.payloads = []

    def on_connect(params, info):
        connects.append(dict(params))
        return {}

    async with Endpoint({"rec:*": RecordingChannel}, connect=on_connect) as ep:
        counter = {"socket": 0, "channel": 0}

        def socket_params():
            counter["socket"] += 1
            return {"attempt": counter["socket"]}

        def channel_params():
            counter["channel"] += 1
            return {"last_seen_id": counter["channel"] * 10}

        sock = sockets(ep.url, params=socket_params)
        ch = sock.channel("rec:1", channel_params)
        ch.join()
        sock.connect()
        await ch.wait_joined(3)
        for _ in range(2):
            await ep.kill()
            await ch.wait_state("errored", 3)
            await ep.restart()
            await ch.wait_joined(5)
    attempts = [int(c["attempt"]) for c in connects]
    assert len(attempts) == 3 and attempts == sorted(set(attempts))  # a fresh value each time
    assert RecordingChannel.payloads == [{"last_seen_id": 10}, {"last_seen_id": 20},
                                         {"last_seen_id": 30}]


async def test_a_refused_join_keeps_retrying_on_the_rejoin_schedule(endpoint, sockets):
    """The demo room refuses {"reject": true}: the client retries after each rejoin_after step."""
    sock = sockets(endpoint.url, rejoin_after=lambda tries: 0.1 * tries)
    log = EventLog(sock)
    ch = sock.channel("room:1", {"reject": True})
    replies = []
    ch.join().receive("error", replies.append)
    sock.connect()
    await log.wait(lambda e: len(log.sent("phx_join")) >= 4, timeout=5)
    joins = [e for e in log.of("sent") if e.data["message"].event == "phx_join"]
    gaps = [b.time - a.time for a, b in itertools.pairwise(joins)][:3]
    for step, gap in enumerate(gaps, start=1):
        assert 0.1 * step <= gap < 0.1 * step + 0.15, f"gap {step} was {gap:.3f} s"
    assert len({e.data["message"].join_ref for e in joins}) == len(joins)
    assert replies[:3] == [{"reason": "unauthorized"}] * 3
    assert ch.state in (ChannelState.ERRORED, ChannelState.JOINING)


async def test_http_403_reports_on_error_errors_channels_and_retries_on_schedule(sockets):
    """A refused handshake: on_error, channel errored with connection_error, retried, then joins."""
    allow = {"yes": False}
    async with Endpoint(connect=lambda params, info: {} if allow["yes"] else None) as ep:
        sock = sockets(ep.url)
        log = EventLog(sock)
        socket_errors, reasons = [], []
        sock.on_error(socket_errors.append)
        ch = sock.channel("room:1")
        ch.on_error(reasons.append)
        ch.join()
        sock.connect()
        await log.wait_kind("reconnect_scheduled", tries=3)
        allow["yes"] = True
        await ch.wait_joined(3)
    assert "403" in str(socket_errors[0])
    assert reasons[0] == {"source": "transport", "reason": "connection_error"}
    delays = [e.data["delay"] for e in log.of("reconnect_scheduled")]
    assert delays[:3] == [0.01, 0.05, 0.1]


async def test_no_frame_leaves_the_client_for_three_heartbeat_intervals_after_disconnect(
        endpoint, sockets):
    """After disconnect() the client sends nothing and opens nothing for 3 heartbeat intervals."""
    sock = sockets(endpoint.url, heartbeat_interval=0.2, rejoin_after=lambda t: 0.1)
    log = EventLog(sock)
    [room] = await join_all(sock, ("room:1",))
    sock.channel("room:2", {"reject": True}).join()  # keeps a rejoin timer pending
    await log.wait(lambda e: e.kind == "sent" and e.data["message"].event == "heartbeat")
    room.push("ping", {}, timeout=5)
    sock.disconnect()
    await sock.wait_closed(3)
    mark = len(log.events)
    room.push("ping", {}, timeout=5)
    await asyncio.sleep(0.6)  # observing an absence: nothing to wait for but time
    assert log.events[mark:] == []  # no heartbeat, rejoin, reconnect, or our ping
    assert sock.connection_state == "closed" and [p.event for p in room.push_buffer] == ["ping"]


async def test_binary_payloads_round_trip_and_async_with_closes_the_socket(endpoint):
    """A bytes push goes out as a binary frame; the binary reply resolves the push with bytes."""
    async with Socket(endpoint.url) as sock:
        ch = sock.channel("room:1")
        await ch.join()
        reply = await ch.push("ping", b"\x00\x01AB")
    assert (reply.status, reply.response) == ("ok", b"\x00\x01AB")
    assert sock.connection_state == "closed"
