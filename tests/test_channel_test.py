"""mini_server.channel_test: Phoenix.ChannelTest's vocabulary, in process and over a socket.

In-process tests run on the fake clock (``run_virtual``): every timeout is exact and free, so
"within 100 ms" is asserted to the microsecond.  Wire tests run on real sockets and time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from mini_server.channel_test import ANY, ChannelSocket, InProcessSocket, connect, matches
from mini_server.fake_clock import advance, now, run_virtual
from mini_server.server import Channel, Endpoint, error, noreply, ok, reply
from mini_server.server.demo import DEMO_ROUTES, reference_connect, reference_socket_id
from mini_server.testing import LearnerTimeout, failure_of, run_with_fake_clock, wait_until


class Probe(Channel):
    """Records terminate reasons; pushes on request; intercepts ``note``."""

    intercept = ("note",)
    terminated: ClassVar[list[Any]] = []

    async def join(self, topic: str, payload: Any) -> Any:
        """Refuse ``{"no": true}``, else accept with the payload echoed."""
        if payload.get("no"):
            return error({"reason": "no"})
        self.assigns["joined_with"] = payload
        return ok({"echo": payload})

    async def handle_in(self, event: str, payload: Any) -> Any:
        """``later`` pushes ``late`` after ``s`` seconds; ``two`` pushes twice; ``boom``."""
        if event == "later":
            self.send_info(("sleep", payload["s"]))
            return reply("ok", {})
        if event == "two":
            await self.push("n", {"n": 1})
            await self.push("n", {"n": 2})
            return reply("ok", {})
        if event == "echo":
            return reply("ok", payload)
        raise RuntimeError(f"boom: {event}")

    async def handle_info(self, msg: Any) -> Any:
        """Sleep (on the fake clock), then push."""
        await asyncio.sleep(msg[1])
        await self.push("late", {"after": msg[1]})
        return noreply()

    async def handle_out(self, event: str, payload: Any) -> Any:
        """Push intercepted notes with a mark, so the test can tell they went through here."""
        await self.push(event, {**payload, "via": "handle_out"})
        return noreply()

    async def terminate(self, reason: Any) -> None:
        """Remember why."""
        Probe.terminated.append(reason)


ROUTES = {**DEMO_ROUTES, "probe:*": Probe}


def endpoint(**options: Any) -> Endpoint:
    """An endpoint that is never started: in-process tests need no port."""
    Probe.terminated = []
    return Endpoint(ROUTES, connect=reference_connect, socket_id=reference_socket_id, **options)


def in_process(topic: str = "probe:1", payload: Any = None):
    """Run ``body(chan)`` on the fake clock with ``topic`` joined in process, then close."""
    def run(body: Callable[[ChannelSocket], Awaitable[None]]) -> None:
        async def main() -> None:
            async with await connect(endpoint(), {"user_id": "7"}) as sock:
                status, _, chan = await sock.subscribe_and_join(topic, payload)
                assert status == "ok" and chan is not None
                await body(chan)
        run_virtual(main)
    return run


# --- patterns ---------------------------------------------------------------------------


def test_patterns_match_like_elixir_map_patterns():
    """A dict matches a dict with at least its keys; ANY is _; a function is a guard."""
    assert matches({"n": 1}, {"n": 1, "extra": True})
    assert not matches({"n": 1}, {"n": 2})
    assert not matches({"n": ANY}, {"m": 1})
    assert matches({"n": ANY}, {"n": None})
    assert matches({"list": [1, ANY]}, {"list": [1, "x"]})
    assert not matches([1], [1, 2])
    assert matches(lambda p: p["n"] > 0, {"n": 3})
    assert not matches(lambda p: p["n"] > 0, {})  # a guard that does not apply is no match
    assert matches(ANY, object()) and matches("ok", "ok") and not matches("ok", "error")


# --- connect ---------------------------------------------------------------------------


def test_connect_runs_the_socket_connect_hook_and_names_the_socket():
    """An accepted connect gives a socket with the hook's assigns and the socket id."""
    async def main() -> None:
        async with await connect(endpoint(), {"user_id": "42"}) as sock:
            assert isinstance(sock, InProcessSocket)
            assert sock.assigns == {"user_id": "42"}
            assert sock.socket_id == "users_socket:42"
    run_virtual(main)


def test_a_refused_connect_is_none_and_logged(caplog):
    """connect returns None (Phoenix's :error) and the endpoint logs the refusal, redacted."""
    async def main() -> None:
        assert await connect(endpoint(), {"token": "bad"}) is None
    with caplog.at_level(logging.WARNING, logger="mini_server"):
        run_virtual(main)
    assert "connect refused for params {'token': '[redacted]'}" in caplog.text


# --- join ----------------------------------------------------------------------------------


def test_subscribe_and_join_returns_ok_reply_and_socket():
    """(status, reply, channel) like {:ok, reply, socket}; the channel carries its join_ref."""
    async def main() -> None:
        async with await connect(endpoint()) as sock:
            status, reply_, chan = await sock.subscribe_and_join("probe:1", {"a": 1})
            assert (status, reply_) == ("ok", {"echo": {"a": 1}})
            assert chan.topic == "probe:1" and chan.join_ref == "1"
            assert chan.assigns["joined_with"] == {"a": 1}
    run_virtual(main)


def test_refused_crashed_and_unrouted_joins_are_errors_without_a_socket():
    """{:error, reply}: refused by join, crashed in join, no route for the topic."""
    async def main() -> None:
        async with await connect(endpoint()) as sock:
            assert await sock.join("probe:1", {"no": True}) == ("error", {"reason": "no"}, None)
            assert await sock.join("lab:1", {"crash": True}) == (
                "error", {"reason": "join crashed"}, None)
            assert await sock.join("nope:1") == ("error", {"reason": "unmatched topic"}, None)
    run_virtual(main)


def test_join_with_an_explicit_channel_ignores_the_routes():
    """Phoenix's join/4: the given channel serves a topic no route names."""
    async def main() -> None:
        async with await connect(Endpoint({})) as sock:
            status, _, chan = await sock.subscribe_and_join("anything:1", channel=Probe)
            assert status == "ok"
            ref = await chan.push("echo", {"x": 1})
            await chan.assert_reply(ref, "ok", {"x": 1})
    run_virtual(main)


# --- push and assert_reply ----------------------------------------------------------------


def test_assert_reply_matches_status_and_a_payload_pattern():
    """The reply's response is returned; a dict pattern needs only the keys it names."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.push("echo", {"n": 1, "extra": [1, 2]})
        assert await chan.assert_reply(ref, "ok", {"n": 1}) == {"n": 1, "extra": [1, 2]}


def test_assert_reply_fails_naming_the_reply_that_came():
    """A reply with another status: the failure message shows it."""
    @in_process("room:1")
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.push("ping", {"n": 1})
        with pytest.raises(AssertionError) as failed:
            await chan.assert_reply(ref, "error")
        assert f"reply to ref {ref} 'ok' {{\"n\": 1}} on room:1" in str(failed.value)


def test_payloads_make_the_json_round_trip():
    """A tuple arrives as a list and int keys as strings, as they would over the wire."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.push("echo", {"t": (1, 2), 3: "x"})
        assert await chan.assert_reply(ref, "ok") == {"t": [1, 2], "3": "x"}


# --- assert_push / refute_push --------------------------------------------------------------


def test_assert_push_waits_up_to_its_timeout_on_the_clock():
    """A push due in 50 ms passes the default 100 ms; one due in 500 ms needs a longer wait."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        await chan.push("later", {"s": 0.05})
        start = now()
        assert await chan.assert_push("late") == {"after": 0.05}
        assert now() - start == pytest.approx(0.05)
        await chan.push("later", {"s": 0.5})
        with pytest.raises(AssertionError, match=r"within 0\.1 s; arrived instead: reply to"):
            await chan.assert_push("late")
        assert await chan.assert_push("late", timeout=0.5) == {"after": 0.5}


def test_assert_push_fails_naming_what_arrived_instead():
    """Another payload for the event: the message lists the pushes that did arrive."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.push("two")
        await chan.assert_reply(ref, "ok")
        with pytest.raises(AssertionError) as failed:
            await chan.assert_push("n", {"n": 3})
        text = str(failed.value)
        assert "expected a push 'n' {'n': 3} on probe:1" in text
        assert "push 'n' {\"n\": 1} on probe:1; push 'n' {\"n\": 2} on probe:1" in text


def test_unmatched_items_stay_for_later_assertions():
    """Like assert_receive: the match is taken out, the rest wait in arrival order."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        await chan.push("two")
        assert await chan.assert_push("n", {"n": 2}) == {"n": 2}
        assert await chan.assert_push("n") == {"n": 1}
        await chan.refute_push("n")


def test_refute_push_waits_the_whole_timeout_then_passes():
    """Nothing matching within ExUnit's default 100 ms: passes after exactly 0.1 s."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        await chan.push("later", {"s": 0.2})
        start = now()
        await chan.refute_push("late")
        assert now() - start == pytest.approx(0.1)
        await chan.assert_push("late", timeout=0.2)


def test_refute_push_fails_naming_the_push_that_arrived():
    """A push inside the window: the failure names it."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        await chan.push("later", {"s": 0.05})
        with pytest.raises(AssertionError, match=r"expected no push 'late' ANY on probe:1 "
                                                 r"within 0\.1 s, but got push 'late' "
                                                 r"\{\"after\": 0\.05\} on probe:1"):
            await chan.refute_push("late")


def test_a_crash_arrives_as_phx_error():
    """No links in Python: a crashed channel shows up as the phx_error its client gets."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.push("explode")
        await chan.assert_push("phx_error", {"reason": "channel_crash"})
        await chan.refute_reply(ref)


# --- broadcasts -------------------------------------------------------------------------------


def test_assert_broadcast_sees_pubsub_even_when_handle_out_pushes_nothing():
    """lab:*'s intercepted 'filtered' to someone else: broadcast yes, push no."""
    @in_process("lab:1", {"name": "me"})
    async def body(chan: ChannelSocket) -> None:
        await chan.assert_push("welcome")
        ref = await chan.push("filtered", {"to": "you"})
        await chan.assert_reply(ref, "ok")
        assert await chan.assert_broadcast("filtered", {"to": "you"}) == {"to": "you"}
        await chan.refute_push("filtered")


def test_assert_broadcast_fails_naming_what_arrived():
    """No broadcast of that event: the pushes and replies that came are listed."""
    @in_process("room:1")
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.push("ping", {})
        with pytest.raises(AssertionError, match=f"arrived instead: reply to ref {ref} 'ok'"):
            await chan.assert_broadcast("new_msg")


def test_broadcast_from_runs_handle_out_and_skips_the_test():
    """The channel's handle_out pushes the note; the test's own subscription is skipped."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        await chan.broadcast_from("note", {"x": 1})
        assert await chan.assert_push("note", {"via": "handle_out"}) == {
            "x": 1, "via": "handle_out"}
        await chan.refute_broadcast("note")


# --- leave and close ---------------------------------------------------------------------------


def test_leave_replies_ok_then_closes_the_channel():
    """phx_leave: reply ok, phx_close, terminate(("shutdown", "left"))."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        ref = await chan.leave()
        await chan.assert_reply(ref, "ok", {})
        await chan.assert_push("phx_close")
        await advance(0.01)
        assert Probe.terminated == [("shutdown", "left")]


def test_close_terminates_the_channel_as_a_closed_socket():
    """close returns once terminate ran with ("shutdown", "closed"); the topic is gone."""
    @in_process()
    async def body(chan: ChannelSocket) -> None:
        await chan.close()
        assert Probe.terminated == [("shutdown", "closed")]
        ref = await chan.push("echo", {})
        await chan.assert_reply(ref, "error", {"reason": "unmatched topic"})


def test_closing_the_socket_closes_every_channel():
    """socket.close(): each channel terminates with ("shutdown", "closed")."""
    async def main() -> None:
        sock = await connect(endpoint())
        for topic in ("probe:1", "probe:2"):
            assert (await sock.subscribe_and_join(topic)).status == "ok"
        await sock.close()
        assert Probe.terminated == [("shutdown", "closed")] * 2
    run_virtual(main)


# --- the fake clock ---------------------------------------------------------------------------


def test_advance_fires_timers_in_order_at_their_time():
    """call_later callbacks run at their exact virtual time during advance()."""
    async def main() -> list[tuple[str, float]]:
        fired: list[tuple[str, float]] = []
        loop = asyncio.get_running_loop()
        for name, delay in [("b", 0.2), ("a", 0.1), ("c", 5.0)]:
            loop.call_later(delay, lambda n=name: fired.append((n, now())))
        await advance(1.0)
        assert now() == pytest.approx(1.0)
        await advance(4.0)
        return fired
    assert run_virtual(main) == [("a", pytest.approx(0.1)), ("b", pytest.approx(0.2)),
                                 ("c", pytest.approx(5.0))]


async def test_advance_refuses_a_real_clock():
    """On a real loop advance() would really wait: it raises instead."""
    with pytest.raises(RuntimeError, match="needs the fake clock"):
        await advance(60)


def test_run_with_fake_clock_gives_virtual_time_and_a_real_limit():
    """An hour of virtual sleep takes no time; an endless virtual loop hits the real limit."""
    async def an_hour() -> float:
        await asyncio.sleep(3600)
        return now()

    async def forever() -> None:
        while True:  # noqa: ASYNC110 - the endless loop is the point
            await asyncio.sleep(1)

    assert run_with_fake_clock(an_hour, timeout=5) == pytest.approx(3600)
    with pytest.raises(LearnerTimeout):
        run_with_fake_clock(forever, timeout=0.5)


# --- over a real socket --------------------------------------------------------------------


async def test_over_a_socket_connect_is_refused_or_joins():
    """A URL target: a refused connect (HTTP 403) is None; then the same vocabulary works."""
    async with Endpoint(connect=reference_connect) as server:
        assert await connect(server.url, {"token": "bad"}) is None
        async with await connect(server.url, {"user_id": "1"}) as sock:
            status, reply_, chan = await sock.subscribe_and_join("lab:1", {"name": "a"})
            assert (status, reply_) == ("ok", {"joined": "lab:1"})
            await chan.assert_push("welcome", {"topic": "lab:1"})
            ref = await chan.push("ping", {"n": 1})
            assert await chan.assert_reply(ref, "ok", {"n": 1}) == {"n": 1}
            await chan.push("shout", {"all": True})
            assert await chan.assert_broadcast("shout") == {"all": True}
            await chan.refute_push("shout")  # the one frame was taken by assert_broadcast


async def test_over_a_socket_failures_name_frames_and_the_close():
    """The unread frames, then the connection's close, appear in the failure message."""
    async with Endpoint() as server, await connect(server.url) as sock:
        _, _, chan = await sock.subscribe_and_join("room:1")
        ref = await chan.push("ping", {"n": 1})
        with pytest.raises(AssertionError, match=f"reply to ref {ref} 'ok'"):
            await chan.assert_push("new_msg", timeout=0.3)
        await sock.client.ws.close()
        with pytest.raises(AssertionError, match=r"the connection closed \(code 1000\)"):
            await chan.assert_push("new_msg", timeout=0.3)


async def test_over_a_socket_close_ends_the_channels_on_the_server():
    """close() closes the websocket: the server's snapshot shows the channel gone."""
    async with Endpoint() as server:
        sock = await connect(server.url)
        _, _, chan = await sock.subscribe_and_join("room:1")
        assert server.snapshot()["channel_count"] == 1
        await chan.close()
        await wait_until(lambda: server.snapshot()["channel_count"] == 0, 3.0,
                         "the server still holds the channel after the socket closed")


def test_failure_of_says_how_a_learner_test_failed_or_none():
    """A passing test gives None; a failing one its exception; a stuck one LearnerTimeout."""
    async def passes(chan_topic: str) -> None:
        async with await connect(Endpoint()) as sock:
            assert (await sock.join(chan_topic)).status == "ok"

    async def stuck() -> None:
        while True:  # noqa: ASYNC110 - the endless loop is the point
            await asyncio.sleep(1)

    assert failure_of(passes, "room:1") is None
    assert failure_of(passes, "nope:1").startswith("AssertionError")
    with pytest.raises(LearnerTimeout):
        failure_of(stuck, timeout=0.5)
