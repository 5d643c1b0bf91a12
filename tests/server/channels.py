"""Test-only channels: each exercises one server behaviour the tests assert frame by frame."""

from __future__ import annotations

import asyncio
from typing import Any

from mini_server.server import Channel, error, noreply, ok, reply, stop


class Recorder:
    """Callbacks the tests wait for (terminate reasons, errors), one queue per test."""

    queue: asyncio.Queue[tuple[str, Any]] | None = None

    @classmethod
    def reset(cls) -> None:
        """A fresh queue bound to the running test's loop."""
        cls.queue = asyncio.Queue()

    @classmethod
    def record(cls, kind: str, value: Any) -> None:
        """Note something a channel did."""
        if cls.queue is not None:
            cls.queue.put_nowait((kind, value))

    @classmethod
    async def next(cls, kind: str, within: float = 2.0) -> Any:
        """The next recorded value of ``kind`` (others are skipped)."""
        assert cls.queue is not None

        async def wait() -> Any:
            while True:
                got_kind, value = await cls.queue.get()
                if got_kind == kind:
                    return value

        async with asyncio.timeout(within):
            return await wait()


class EchoChannel(Channel):
    """One event per behaviour: replies, pushes, broadcasts, stops, crashes, binary."""

    async def join(self, topic: str, payload: Any) -> Any:
        """Accept; ``{"reject": true}`` refuses; ``{"after_join": x}`` pushes x afterwards."""
        if payload.get("reject"):
            return error({"reason": "unauthorized"})
        if "after_join" in payload:
            self.send_info(("after_join", payload["after_join"]))
        return ok({"joined": topic})

    async def handle_in(self, event: str, payload: Any) -> Any:
        """Dispatch on the event name."""
        if event == "ping":
            return reply("ok", payload)
        if event == "fail":
            return reply("error", payload)
        if event == "noreply":
            return noreply()
        if event == "push":
            await self.push("tick", payload)
            return reply("ok", {})
        if event == "shout":
            await self.broadcast("shout", payload)
            return reply("ok", {})
        if event == "shout_from":
            await self.broadcast_from("shout", payload)
            return reply("ok", {})
        if event == "crash":
            raise RuntimeError("boom (a test crash)")
        if event == "stop":
            return stop(payload.get("reason", "normal"))
        if event == "stop_shutdown":
            return stop(("shutdown", "done"))
        if event == "stop_reply":
            return stop("normal", reply=("ok", {"bye": True}))
        if event == "stop_error":
            return stop("something_bad")
        if event == "async":
            self.send_info(("reply_later", self.socket_ref(), payload))
            return noreply()
        if event == "bin":
            return reply("ok", bytes(reversed(payload)))
        if event == "bad_return":
            return None
        raise ValueError(f"unexpected event {event}")

    async def handle_info(self, msg: Any) -> Any:
        """Pushes after join and asynchronous replies."""
        if msg[0] == "after_join":
            await self.push("tick", {"after_join": msg[1]})
        elif msg[0] == "reply_later":
            await self.reply(msg[1], "ok", {"later": msg[2]})
        return noreply()

    async def terminate(self, reason: Any) -> None:
        """Record the reason so tests can assert it."""
        Recorder.record("terminate", (self.topic, self.join_ref, reason))


class FilterChannel(Channel):
    """Intercepts "new_msg": subscribers named in ``skip`` never get it; others see a tag."""

    intercept = ("new_msg",)

    async def join(self, topic: str, payload: Any) -> Any:
        """Remember the subscriber's name."""
        self.assigns["name"] = payload.get("name")
        return ok()

    async def handle_in(self, event: str, payload: Any) -> Any:
        """Broadcast new_msg (intercepted) or plain (fastlane)."""
        await self.broadcast(event, payload)
        return reply("ok", {})

    async def handle_out(self, event: str, payload: Any) -> Any:
        """Filter by name, tag with the receiver's name."""
        if self.assigns["name"] in payload.get("skip", ()):
            return noreply()
        await self.push(event, {**payload, "to": self.assigns["name"]})
        return noreply()


class JoinCrashChannel(Channel):
    """join raises."""

    async def join(self, topic: str, payload: Any) -> Any:
        """Crash."""
        raise RuntimeError("join blew up (a test crash)")


class PushInJoinChannel(Channel):
    """join tries to push, which Phoenix forbids."""

    async def join(self, topic: str, payload: Any) -> Any:
        """Push inside join and record the error it raises."""
        try:
            await self.push("early", {})
        except RuntimeError as exc:
            Recorder.record("join_error", str(exc))
            raise
        return ok()


class AssignsChannel(Channel):
    """Shows the socket assigns and that they are a per-channel copy."""

    async def join(self, topic: str, payload: Any) -> Any:
        """Reply with the assigns, then change the copy."""
        seen = dict(self.assigns)
        self.assigns["touched"] = topic
        return ok({"assigns": seen, "socket_id": self.socket_id})


class GateChannel(Channel):
    """handle_in waits for ``gate`` before replying: a channel that falls behind."""

    gate: asyncio.Event | None = None

    async def handle_in(self, event: str, payload: Any) -> Any:
        """Wait for the gate, then echo (or crash, for "crash")."""
        assert GateChannel.gate is not None
        await GateChannel.gate.wait()
        if event == "crash":
            raise RuntimeError("crash after the gate (a test crash)")
        return reply("ok", payload)


class HangJoinChannel(Channel):
    """join never returns (a server that never answers a join, scenario 27)."""

    async def join(self, topic: str, payload: Any) -> Any:
        """Wait forever."""
        await asyncio.Event().wait()


ROUTES: dict[str, type[Channel]] = {
    "echo:*": EchoChannel,
    "filter:*": FilterChannel,
    "joincrash:*": JoinCrashChannel,
    "pushjoin:*": PushInJoinChannel,
    "assigns:*": AssignsChannel,
    "exact": EchoChannel,
    "gate:*": GateChannel,
    "hang:*": HangJoinChannel,
}
