"""Exact timer schedules of the client, on a virtual-time loop with a scripted server.

Each test runs on ``VirtualClockLoop``: time only moves when the loop is idle, so every delay
asserted here is the delay phoenix.js 1.8.16 would use, to the microsecond.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from client_fakes import FakeServer, run_virtual
from client_probes import EventLog

from mini_server.client import ChannelState, Socket
from mini_server.protocol import reconnect_after, rejoin_after

EXACT = 1e-9


def diffs(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_reconnect_attempts_follow_the_default_schedule():
    """A server that refuses 12 times is retried after 10, 50, 100 ... 2000 ms, then every 5 s."""
    server = FakeServer()
    server.accepting = False

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        sock.connect()
        await server.wait(lambda: len(server.attempts) >= 13)
        sock.disconnect()
        return diffs(server.attempts[:13])

    expected = [0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]
    assert run_virtual(main) == pytest.approx(expected, abs=EXACT)


def test_reconnect_tries_reset_after_a_successful_open():
    """After an open, the next drop is retried after 10 ms again, not where the back-off was."""
    server = FakeServer()
    server.accepting = False

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        sock.connect()
        await server.wait(lambda: len(server.attempts) >= 5)
        server.accepting = True
        await sock.wait_open(5)
        assert sock.reconnect_tries == 0
        dropped_at = asyncio.get_running_loop().time()
        server.drop(1006)
        await sock.wait_open(5)
        sock.disconnect()
        return server.attempts[-1] - dropped_at

    assert run_virtual(main) == pytest.approx(0.01, abs=EXACT)


def test_custom_reconnect_schedule_is_used_and_exposed_for_panels():
    """reconnect_after is injectable; reconnect_tries and next_reconnect_at show the plan."""
    server = FakeServer()
    server.accepting = False
    seen = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport,
                      reconnect_after=lambda tries: 0.5 * tries)
        sock.on_close(lambda code, reason: seen.append(
            (sock.reconnect_tries, sock.next_reconnect_at - asyncio.get_running_loop().time())))
        sock.connect()
        await server.wait(lambda: len(server.attempts) >= 4)
        sock.disconnect()
        return diffs(server.attempts)

    assert run_virtual(main) == pytest.approx([0.5, 1.0, 1.5], abs=EXACT)
    assert seen[:3] == [(0, pytest.approx(0.5)), (1, pytest.approx(1.0)), (2, pytest.approx(1.5))]


def test_refused_join_is_retried_on_the_rejoin_schedule_forever():
    """A join refused every time is retried after 1, 2, 5, 10, 10, 10 s, each with a new ref."""
    server = FakeServer()
    server.join_results["room:1"] = "error"

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await server.wait(lambda: len(server.frames("phx_join")) >= 7)
        assert ch.state == ChannelState.ERRORED or ch.state == ChannelState.JOINING
        sock.disconnect()

    run_virtual(main)
    joins = server.frames("phx_join")[:7]
    assert diffs([j.time for j in joins]) == pytest.approx([1, 2, 5, 10, 10, 10], abs=EXACT)
    refs = [j.msg.join_ref for j in joins]
    assert len(set(refs)) == 7 and all(j.msg.ref == j.msg.join_ref for j in joins)


def test_join_timeout_sends_leave_with_the_old_join_ref_then_rejoins_after_one_second():
    """Unanswered join: phx_leave with the old join_ref at `timeout`, errored, rejoin 1 s later."""
    server = FakeServer()
    answers = iter(["ignore", "ok"])
    server.join_results["room:1"] = lambda msg: next(answers)

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport, timeout=2.0)
        log = EventLog(sock)
        ch = sock.channel("room:1")
        sock.connect()
        await sock.wait_open(1)
        ch.join()
        await ch.wait_state("errored", 5)
        await ch.wait_joined(5)
        sock.disconnect()
        return log

    log = run_virtual(main)
    first, second = server.frames("phx_join")
    leave = server.frames("phx_leave")[0]
    assert leave.frame[0] == first.msg.join_ref and leave.msg.ref != first.msg.ref
    assert leave.time - first.time == pytest.approx(2.0, abs=EXACT)
    assert second.time - leave.time == pytest.approx(rejoin_after(1), abs=EXACT)
    assert second.msg.join_ref != first.msg.join_ref
    assert [e.data["event"] for e in log.of("channel_state")][:4] == [
        "join", "join_timeout", "rejoin", "join_ok"]


def test_phx_error_errors_the_channel_and_rejoins_after_rejoin_after_1():
    """phx_error with the current join_ref: on_error(payload), errored, rejoin exactly 1 s later."""
    server = FakeServer()
    errors = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.on_error(errors.append)
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        jr = ch.join_ref
        server.push([jr, jr, "room:1", "phx_error", {"reason": "channel_crash"}])
        await ch.wait_state("errored", 1)
        crashed_at = asyncio.get_running_loop().time()
        await ch.wait_joined(5)
        seen = list(errors)
        sock.disconnect()
        return jr, crashed_at, seen

    old_jr, crashed_at, seen = run_virtual(main)
    rejoin = server.frames("phx_join")[-1]
    assert rejoin.time - crashed_at == pytest.approx(1.0, abs=EXACT)
    assert rejoin.msg.join_ref != old_jr
    assert seen == [{"reason": "channel_crash"}]


def test_heartbeat_timeout_closes_1000_errors_channels_and_reconnects():
    """Unanswered heartbeat: close 1000 "heartbeat timeout" at 2 intervals, rejoin on reconnect."""
    server = FakeServer()
    server.answer_heartbeats = False
    reasons, reasons_before_disconnect = [], []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport, heartbeat_interval=1.0)
        ch = sock.channel("room:1")
        ch.on_error(reasons.append)
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        opened_at = asyncio.get_running_loop().time()
        await server.wait(lambda: len(server.frames("phx_join")) >= 2)
        await ch.wait_joined(1)
        reasons_before_disconnect.extend(reasons)
        sock.disconnect()
        return opened_at

    opened_at = run_virtual(main)
    hb = server.frames("heartbeat")[0]
    assert hb.time - opened_at == pytest.approx(1.0, abs=EXACT)
    assert server.closes[0] == (0, 1000, "heartbeat timeout")
    assert reasons_before_disconnect == [{"source": "transport", "reason": "heartbeat_timeout"}]
    # phoenix.js: teardown polls the closed socket after 150 ms, then reconnect_after(1)
    assert server.attempts[1] - (hb.time + 1.0) == pytest.approx(0.15 + 0.01, abs=EXACT)
    first, second = server.frames("phx_join")
    assert second.conn == 1 and second.msg.join_ref != first.msg.join_ref


def test_answered_heartbeats_go_out_once_per_interval():
    """Each heartbeat reply re-arms the next heartbeat one interval later; RTT is recorded."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport, heartbeat_interval=2.0)
        sock.connect()
        await sock.wait_open(1)
        opened = asyncio.get_running_loop().time()
        await asyncio.sleep(9)
        rtt = sock.last_heartbeat_rtt
        sock.disconnect()
        return opened, rtt

    opened, rtt = run_virtual(main)
    times = [f.time - opened for f in server.frames("heartbeat")]
    assert times == pytest.approx([2, 4, 6, 8], abs=EXACT)
    assert rtt == pytest.approx(0.0, abs=EXACT)
    assert len({f.msg.ref for f in server.frames("heartbeat")}) == 4


def test_errored_channels_rejoin_at_once_on_open_with_new_join_refs_and_fresh_params():
    """After a drop, the reopen rejoins every channel immediately, params re-evaluated."""
    server = FakeServer()
    counter = iter(range(100))

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport,
                      params=lambda: {"n": next(counter)})
        a = sock.channel("room:a", params=lambda: {"last_seen": len(server.sent)})
        b = sock.channel("room:b", {"static": True})
        a.join()
        b.join()
        sock.connect()
        await a.wait_joined(1)
        await b.wait_joined(1)
        server.drop(1006)
        await sock.wait_open(1)
        opened = asyncio.get_running_loop().time()
        await a.wait_joined(1)
        await b.wait_joined(1)
        sock.disconnect()
        return opened

    opened = run_virtual(main)
    joins = server.frames("phx_join")
    assert [j.msg.topic for j in joins] == ["room:a", "room:b", "room:a", "room:b"]
    assert all(j.time == pytest.approx(opened, abs=EXACT) for j in joins[2:])
    assert joins[0].msg.payload != joins[2].msg.payload  # last_seen re-evaluated
    assert joins[1].msg.payload == joins[3].msg.payload == {"static": True}
    assert len({j.msg.join_ref for j in joins}) == 4
    assert server.urls == ["ws://fake/socket/websocket?n=0&vsn=2.0.0",
                           "ws://fake/socket/websocket?n=1&vsn=2.0.0"]


def test_buffered_push_that_timed_out_is_never_sent():
    """A push made while disconnected times out in the buffer and is not sent after the join."""
    server = FakeServer()
    server.accepting = False
    outcome = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport,
                      reconnect_after=lambda tries: 3.0)
        ch = sock.channel("room:1")
        ch.join()
        ch.push("ping", {"early": 1}, timeout=1.0).receive("timeout", outcome.append)
        ch.push("ping", {"late": 1}, timeout=60.0).receive("ok", outcome.append)
        sock.connect()
        await asyncio.sleep(2)
        server.accepting = True
        await ch.wait_joined(10)
        await asyncio.sleep(0.01)
        sock.disconnect()

    run_virtual(main)
    pings = [f.msg.payload for f in server.frames("ping")]
    assert pings == [{"late": 1}]
    assert outcome == [{}, {"late": 1}]


def test_join_and_push_before_connect_go_out_after_open_with_fresh_refs():
    """Join is the first frame after open; the buffered push follows the join ok with a new ref."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        join = ch.join()
        push = ch.push("ping", {"x": 1})
        created_ref = push.ref
        sock.connect()
        reply = await push
        sock.disconnect()
        return join, push, created_ref, reply

    join, push, created_ref, reply = run_virtual(main)
    assert [f.msg.event for f in server.sent] == ["phx_join", "ping"]
    assert push.ref != created_ref and server.sent[1].msg.ref == push.ref
    assert server.sent[1].msg.join_ref == join.ref
    assert (reply.status, reply.response) == ("ok", {"x": 1})


def test_disconnect_cancels_everything_no_frame_for_three_heartbeat_intervals():
    """After disconnect() nothing is sent: no heartbeat, rejoin, reconnect or buffered push."""
    server = FakeServer()
    server.join_results["room:2"] = "error"  # a rejoin timer is pending at disconnect time

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport, heartbeat_interval=1.0)
        log = EventLog(sock)
        a, b = sock.channel("room:1"), sock.channel("room:2")
        a.join()
        b.join()
        sock.connect()
        await a.wait_joined(1)
        await b.wait_state("errored", 1)
        await asyncio.sleep(0.5)
        sock.disconnect()
        mark = len(log.events)
        a.push("ping", {}, timeout=30)
        await asyncio.sleep(3.0)
        return log, mark

    log, mark = run_virtual(main)
    after = [e.kind for e in log.events[mark:]]
    assert after == ["close", "socket_state"]  # the close completing, then nothing at all
    assert len(server.transports) == 1 and server.closes == [(0, 1005, "")]


def test_leave_closes_at_once_and_nothing_rejoins():
    """leave(): phx_leave sent, on_close("leave") at once, removed from socket.channels."""
    server = FakeServer()
    closed = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.on_close(closed.append)
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        jr = ch.join_ref
        reply = await ch.leave()
        state_after = ch.state
        server.drop(1006)
        await sock.wait_open(1)
        await asyncio.sleep(15)
        sock.disconnect()
        return jr, reply, state_after, sock.channels

    jr, reply, state, channels = run_virtual(main)
    assert reply.status == "ok" and state == ChannelState.CLOSED and channels == []
    assert closed == ["leave"]
    assert server.frames("phx_leave")[0].msg.join_ref == jr
    assert len(server.frames("phx_join")) == 1


def test_phx_close_closes_the_channel_without_rejoin():
    """A server phx_close with the current join_ref closes the channel for good."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        server.push([ch.join_ref, ch.join_ref, "room:1", "phx_close", {}])
        await ch.wait_state("closed", 1)
        await asyncio.sleep(30)
        sock.disconnect()
        return sock.channels

    assert run_virtual(main) == []
    assert len(server.frames("phx_join")) == 1


def test_stale_join_ref_messages_are_dropped_null_join_ref_delivered():
    """Replies, pushes and phx_error with an old join_ref are dropped; null join_ref passes."""
    server = FakeServer()
    got = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        log = EventLog(sock)
        ch = sock.channel("room:1")
        ch.on("tick", got.append)
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        old = ch.join_ref
        server.drop(1006)
        await ch.wait_state("errored", 1)
        await ch.wait_joined(1)
        server.push([old, None, "room:1", "tick", {"n": "stale"}])
        server.push([old, old, "room:1", "phx_error", {"reason": "channel_crash"}])
        server.push([old, old, "room:1", "phx_close", {}])
        server.push([None, None, "room:1", "tick", {"n": "broadcast"}])
        server.push([ch.join_ref, None, "room:1", "tick", {"n": "current"}])
        await log.wait(lambda e: e.kind == "received" and e.data["message"].payload.get("n")
                       == "current")
        state = ch.state
        sock.disconnect()
        return state, log

    state, log = run_virtual(main)
    assert state == ChannelState.JOINED
    assert got == [{"n": "broadcast"}, {"n": "current"}]
    assert len(log.of("dropped")) == 3


def test_a_reply_carrying_an_old_join_ref_does_not_resolve_the_push():
    """A phx_reply with the push's ref but a stale join_ref is dropped; the current one resolves."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        stale = str(int(ch.join_ref) + 1000)
        push = ch.push("noreply", {})
        server.push([stale, push.ref, "room:1", "phx_reply", {"status": "ok", "response": 1}])
        server.push([ch.join_ref, push.ref, "room:1", "phx_reply",
                     {"status": "ok", "response": 2}])
        reply = await push
        sock.disconnect()
        return reply

    assert run_virtual(main).response == 2


def test_second_channel_object_for_a_topic_leaves_the_first_then_joins():
    """A second channel on a joined topic sends phx_leave for the first join_ref, then phx_join."""
    server = FakeServer()
    closed = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        first = sock.channel("room:1")
        first.on_close(closed.append)
        first.join()
        sock.connect()
        await first.wait_joined(1)
        second = sock.channel("room:1")
        second.join()
        await second.wait_joined(1)
        sock.disconnect()
        return first, second, sock.channels

    first, second, channels = run_virtual(main)
    events = [(f.msg.event, f.msg.join_ref) for f in server.sent]
    join1 = events[0][1]
    assert events[1] == ("phx_leave", join1)
    assert events[2][0] == "phx_join" and events[2][1] != join1
    assert closed == ["leave"] and first.state == ChannelState.CLOSED
    assert channels == [second]


def test_refused_connections_error_channels_with_connection_error():
    """Refused attempts call on_error and error joining channels with reason connection_error."""
    server = FakeServer()
    server.accepting = False
    socket_errors, reasons = [], []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        sock.on_error(socket_errors.append)
        ch = sock.channel("room:1")
        ch.on_error(reasons.append)
        ch.join()
        sock.connect()
        await server.wait(lambda: len(server.attempts) >= 3)
        server.accepting = True
        await ch.wait_joined(1)
        seen = list(reasons)
        sock.disconnect()
        return seen

    seen = run_virtual(main)
    assert len(socket_errors) == 3 and isinstance(socket_errors[0], ConnectionRefusedError)
    assert seen == [{"source": "transport", "reason": "connection_error"}]
    assert len(server.frames("phx_join")) == 1  # the buffered join was outdated and dropped


def test_default_schedules_equal_phoenix_js():
    """The Socket's defaults are phoenix.js 1.8.16's: 30 s heartbeat, 10 s timeout, back-offs."""
    sock = Socket("ws://x/socket")
    assert (sock.heartbeat_interval, sock.timeout) == (30.0, 10.0)
    assert [sock.reconnect_after(t) for t in range(1, 12)] == [
        0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0]
    assert [sock.rejoin_after(t) for t in range(1, 6)] == [1.0, 2.0, 5.0, 10.0, 10.0]
    assert sock.reconnect_after is reconnect_after and sock.rejoin_after is rejoin_after
