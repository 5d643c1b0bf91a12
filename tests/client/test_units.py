"""Pure and fake-clock unit tests: Timer, the state table, URLs, pushes, callbacks, events."""

from __future__ import annotations

import asyncio
import logging

import pytest
from client_fakes import FakeServer, run_virtual
from client_probes import EventLog

from mini_server.client import (
    PREFIXES,
    TRANSITIONS,
    ChannelState,
    IllegalTransition,
    PushTimeout,
    Socket,
    Timer,
    draw,
    endpoint_url,
)
from mini_server.protocol import ProtocolError


def test_timer_delay_is_timer_calc_of_tries_plus_one_and_reset_starts_over():
    """schedule_timeout uses timer_calc(tries + 1), tries counts firings, reset() goes back to 1."""
    fired, asked = [], []

    async def main():
        loop = asyncio.get_running_loop()
        timer = Timer(lambda: fired.append(loop.time()), lambda t: asked.append(t) or t * 1.0)
        for _ in range(3):
            timer.schedule_timeout()
            await asyncio.sleep(10)
        tries_before = timer.tries
        timer.reset()
        timer.schedule_timeout()
        await asyncio.sleep(10)
        return tries_before

    assert run_virtual(main) == 3
    assert asked == [1, 2, 3, 1]
    assert fired == pytest.approx([1.0, 12.0, 23.0, 31.0])


def test_timer_schedule_cancels_the_pending_call():
    """Scheduling twice before it fires leaves one pending call."""
    fired = []

    async def main():
        timer = Timer(lambda: fired.append(1), lambda t: 1.0)
        timer.schedule_timeout()
        timer.schedule_timeout()
        await asyncio.sleep(5)
        return timer.tries

    assert run_virtual(main) == 1 and fired == [1]


def test_illegal_transition_raises_with_the_state_and_event():
    """An event the table does not allow raises IllegalTransition naming state and event."""
    sock = Socket("ws://x/socket")
    ch = sock.channel("room:1")
    with pytest.raises(IllegalTransition, match="'join_ok' is not allowed in state 'closed'"):
        ch._transition("join_ok")
    assert ch.state == ChannelState.CLOSED


def test_state_diagram_is_drawn_from_the_transition_table():
    """diagram() has one line per TRANSITIONS entry and every state appears in it."""
    lines = ChannelState.diagram().splitlines()
    assert len(lines) == len(TRANSITIONS) == len(ChannelState.edges())
    assert "joining --join_ok--> joined" in [" ".join(line.split()) for line in lines]
    assert {s for s, _, n in ChannelState.edges()} | {n for _, _, n in ChannelState.edges()} == {
        s.value for s in ChannelState}


def test_draw_makes_one_arrow_per_state_pair_in_the_table():
    """draw() renders the TRANSITIONS table: an arrow for each (from, to) pair, no other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = draw()
    pairs = {(s, n) for s, _, n in ChannelState.edges() if s != n}
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == len(pairs)
    plt.close(ax.figure)


def test_channel_state_is_a_str_enum_with_phoenix_names():
    """States compare equal to phoenix.js's strings."""
    assert [s.value for s in ChannelState] == ["closed", "joining", "joined", "errored", "leaving"]
    assert ChannelState.JOINED == "joined"


@pytest.mark.parametrize(("params", "expected"), [
    ({}, "ws://h:1/socket/websocket?vsn=2.0.0"),
    ({"token": "abc"}, "ws://h:1/socket/websocket?token=abc&vsn=2.0.0"),
    ({"a": 1, "nested": {"b": 2}}, "ws://h:1/socket/websocket?a=1&nested%5Bb%5D=2&vsn=2.0.0"),
    ({"ok": True, "s": "a b&c/é"}, "ws://h:1/socket/websocket?ok=true&s=a%20b%26c%2F%C3%A9&vsn=2.0.0"),
])
def test_endpoint_url_matches_phoenix_js(params, expected):
    """Params serialized like phoenix.js Ajax.serialize, vsn always last."""
    assert endpoint_url("ws://h:1/socket/websocket", params, "2.0.0") == expected


def test_socket_params_callable_is_evaluated_for_every_url():
    """A callable params is called again for each connect URL."""
    n = iter(range(5))
    sock = Socket("ws://h:1/socket", params=lambda: {"n": next(n)})
    assert [sock.endpoint_url() for _ in range(2)] == [
        "ws://h:1/socket/websocket?n=0&vsn=2.0.0", "ws://h:1/socket/websocket?n=1&vsn=2.0.0"]


def test_bad_socket_arguments_get_clear_errors():
    """A relative URL or a non-positive timer is refused with a message saying what to pass."""
    with pytest.raises(ValueError, match="must be absolute"):
        Socket("/socket")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        Socket("ws://h/socket", heartbeat_interval=0)


def test_join_twice_and_push_before_join_raise():
    """join() is once per channel object and push() needs a join first, as in phoenix.js."""
    async def main():
        sock = Socket("ws://fake/socket", transport=FakeServer().transport)
        ch = sock.channel("room:1")
        with pytest.raises(RuntimeError, match="before joining"):
            ch.push("ping")
        ch.join()
        with pytest.raises(RuntimeError, match="join\\(\\) can only be called once"):
            ch.join()
        with pytest.raises(ProtocolError, match="JSON"):
            ch.push("ping", {"x": object()})
        sock.disconnect()

    run_virtual(main)


def test_awaiting_an_unanswered_push_raises_push_timeout():
    """A push the server never answers raises PushTimeout after its timeout, with advice."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        start = asyncio.get_running_loop().time()
        with pytest.raises(PushTimeout, match=r"no reply to 'noreply' on 'room:1' within 1\.5 s"):
            await ch.push("noreply", {}, timeout=1.5)
        elapsed = asyncio.get_running_loop().time() - start
        sock.disconnect()
        return elapsed

    assert run_virtual(main) == pytest.approx(1.5)


def test_receive_after_the_reply_fires_at_once_and_hooks_chain():
    """receive() returns the push (chainable) and fires immediately if the status already came."""
    server = FakeServer()
    seen = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        push = ch.push("ping", {"v": 1})
        await push
        push.receive("ok", lambda r: seen.append(("ok", r))).receive(
            "error", lambda r: seen.append(("error", r)))
        sock.disconnect()

    run_virtual(main)
    assert seen == [("ok", {"v": 1})]


def test_refs_are_strings_from_one_counter_also_used_by_callback_registrations():
    """Like phoenix.js, on_* registrations consume refs, so the first join ref is not "1"."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        refs = [sock.on_open(lambda: None), sock.on_close(lambda c, r: None),
                sock.on_error(lambda e: None)]
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        sock.disconnect()
        return refs, ch.join_ref

    refs, join_ref = run_virtual(main)
    assert refs == ["1", "2", "3"] and join_ref == "6"  # two per channel, as observed in JS


def test_callback_exceptions_are_reported_and_never_kill_the_client():
    """A raising socket callback and channel binding become '!' events; the channel still joins."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        log = EventLog(sock)
        sock.on_open(lambda: 1 / 0)
        ch = sock.channel("room:1")
        ch.join().receive("ok", lambda resp: {}["missing"])
        sock.connect()
        await ch.wait_joined(1)
        reply = await ch.push("ping", {"still": "alive"})
        sock.disconnect()
        return log, reply

    log, reply = run_virtual(main)
    errors = log.of("callback_error")
    assert [e.prefix for e in errors] == ["!", "!"]
    assert isinstance(errors[0].data["exception"], ZeroDivisionError)
    assert isinstance(errors[1].data["exception"], KeyError)
    assert reply.response == {"still": "alive"}


def test_events_use_the_house_prefixes_and_are_logged(caplog):
    """Every event has one of the seven prefixes and is logged with it at the line start."""
    server = FakeServer()
    caplog.set_level(logging.DEBUG, logger="mini_server.client")

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport, heartbeat_interval=1)
        log = EventLog(sock)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        await asyncio.sleep(1.5)
        sock.disconnect()
        await sock.wait_closed(1)
        return log

    log = run_virtual(main)
    assert {e.prefix for e in log.events} <= set(PREFIXES)
    assert {"=", ">", "<", "%", "x"} <= {e.prefix for e in log.events}
    sent = log.of("sent")[0]
    assert sent.data["frame"] == '["3","3","room:1","phx_join",{}]'
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("> socket: room:1 phx_join") for m in messages)
    assert any(m.startswith("% socket: phoenix heartbeat") for m in messages)


def test_a_raising_event_subscriber_does_not_stop_the_others():
    """One broken on_event subscriber is reported; the other subscribers still get every event."""
    server = FakeServer()

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        sock.on_event(lambda e: 1 / 0)
        log = EventLog(sock)
        sock.connect()
        await sock.wait_open(1)
        sock.disconnect()
        return log

    log = run_virtual(main)
    assert log.of("socket_state") and log.of("callback_error")


def test_on_message_sees_every_incoming_message_until_off():
    """on_message gets each decoded Message after channel dispatch; off(ref) stops it."""
    server = FakeServer()
    seen = []

    async def main():
        sock = Socket("ws://fake/socket", transport=server.transport)
        ref = sock.on_message(lambda msg: seen.append((msg.topic, msg.event, msg.ref)))
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(1)
        sock.off(ref)
        await ch.push("ping", {})
        sock.disconnect()
        return ch.join_ref

    join_ref = run_virtual(main)
    assert seen == [("room:1", "phx_reply", join_ref)]
