"""phoenix.js 1.8.16 against mini_server channel features beyond the demo room.

A test channel ("lab:*") exercises what the demo room does not: a push after the join
reply, V2 binary frames both ways, intercepted broadcasts (handle_out) and Endpoint
broadcasts. The demo room stays routed so its fastlane broadcasts can be compared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from phoenix_js import PhoenixJS
from server_snapshots import wait_snapshot

from mini_server.server import Channel, Endpoint, noreply, ok, reply
from mini_server.server.demo import DEMO_ROUTES


class LabChannel(Channel):
    """Greets after join, echoes binaries reversed, shouts to everyone but the sender."""

    intercept = ("shout",)

    async def join(self, topic: str, payload: Any) -> Any:
        """Accept, remember the member's name, and greet once the join reply is out."""
        self.name = payload.get("name")
        self.send_info("greet")
        return ok({"name": self.name})

    async def handle_info(self, msg: Any) -> Any:
        """Push the greeting (a channel cannot push from inside join)."""
        await self.push("welcome", {"name": self.name})
        return noreply()

    async def handle_in(self, event: str, payload: Any) -> Any:
        """reverse: binary reply; blob: binary push; shout: intercepted broadcast; ping: echo."""
        if event == "reverse":
            return reply("ok", bytes(reversed(payload)))
        if event == "blob":
            await self.push("blob", bytes(payload))
            return reply("ok", {})
        if event == "shout":
            await self.broadcast("shout", {"from": self.name, "text": payload["text"]})
            return reply("ok", {})
        return reply("ok", payload)

    async def handle_out(self, event: str, payload: Any) -> Any:
        """Deliver a shout to every member except the one who shouted."""
        if payload["from"] != self.name:
            await self.push(event, {**payload, "to": self.name})
        return noreply()


@pytest.fixture
async def lab() -> AsyncIterator[Endpoint]:
    """A server routing "lab:*" to LabChannel next to the demo rooms."""
    async with Endpoint({**DEMO_ROUTES, "lab:*": LabChannel}) as endpoint:  # this test's lab
        yield endpoint


async def join_lab(js: PhoenixJS, socket: str, chan: str, name: str) -> dict[str, Any]:
    """Join lab:1 as `name` with bindings for welcome, blob and shout; return the join."""
    await js.command("channel", socket=socket, id=chan, topic="lab:1", params={"name": name})
    for event in ("welcome", "blob", "shout"):
        await js.command("on", chan=chan, event=event)
    since = js.mark()
    await js.command("join", chan=chan)
    return await js.wait_for("join", since=since, chan=chan)


async def test_push_after_join_arrives_after_join_reply(lab: Endpoint, js: PhoenixJS) -> None:
    """A push sent from handle_info right after join reaches channel.on after the join ok."""
    await js.open_socket("a", lab.url)
    since = js.mark()
    joined = await join_lab(js, "a", "c1", "ann")
    assert joined["response"] == {"name": "ann"}
    welcome = await js.wait_for("event", since=since, chan="c1", event="welcome")
    assert welcome["payload"] == {"name": "ann"}
    assert welcome["join_ref"] == joined["join_ref"]
    kinds = [o["kind"] for o in js.observations[since:] if o["kind"] in ("join", "event")]
    assert kinds == ["join", "event"]


async def test_binary_push_gets_binary_reply(lab: Endpoint, js: PhoenixJS) -> None:
    """An ArrayBuffer push goes out as a binary frame and the binary reply is an ArrayBuffer."""
    await js.open_socket("a", lab.url)
    await join_lab(js, "a", "c1", "ann")
    since = js.mark()
    await js.command("push", chan="c1", event="reverse", binary="00016869ff", tag="r")
    answer = await js.wait_for("reply", since=since, tag="r")
    assert (answer["status"], answer["response"]) == ("ok", {"binary": "ff69680100"})
    sent = js.frames_sent("a", since)
    assert len(sent) == 1 and sent[0]["binary"].startswith("00")  # kind 0: client push


async def test_server_binary_push_reaches_binding(lab: Endpoint, js: PhoenixJS) -> None:
    """A bytes payload pushed by the channel reaches channel.on as an ArrayBuffer."""
    await js.open_socket("a", lab.url)
    joined = await join_lab(js, "a", "c1", "ann")
    since = js.mark()
    await js.command("push", chan="c1", event="blob", binary="cafe", tag="b")
    blob = await js.wait_for("event", since=since, chan="c1", event="blob")
    assert blob["payload"] == {"binary": "cafe"}
    assert blob["join_ref"] == joined["join_ref"]


async def test_intercepted_broadcast_is_filtered_per_subscriber(
    lab: Endpoint, js: PhoenixJS
) -> None:
    """handle_out delivers a shout with each receiver's join_ref and skips the sender."""
    await js.open_socket("a", lab.url)
    await js.open_socket("b", lab.url)
    await join_lab(js, "a", "ca", "ann")
    joined_b = await join_lab(js, "b", "cb", "bob")
    await wait_snapshot(lab, lambda s: s["topics"].get("lab:1") == 2)
    since = js.mark()
    await js.command("push", chan="ca", event="shout", payload={"text": "hey"}, tag="s")
    shout = await js.wait_for("event", since=since, chan="cb", event="shout")
    assert shout["payload"] == {"from": "ann", "text": "hey", "to": "bob"}
    assert shout["join_ref"] == joined_b["join_ref"]
    # ann's handle_out ran before her next message is handled (one mailbox, in order),
    # so once this ping is answered her filtered shout can no longer show up.
    await js.wait_for("reply", since=since, tag="s")
    await js.command("push", chan="ca", event="ping", payload={}, tag="p")
    await js.wait_for("reply", since=since, tag="p")
    assert not js.find("event", since, chan="ca", event="shout")


async def test_endpoint_broadcast_reaches_room_with_null_join_ref(
    lab: Endpoint, js: PhoenixJS
) -> None:
    """Endpoint.broadcast arrives as [null, null, topic, event, payload] and is delivered."""
    await js.open_socket("a", lab.url)
    await js.command("channel", socket="a", id="c1", topic="room:news")
    await js.command("on", chan="c1", event="headline")
    await js.command("join", chan="c1")
    await js.wait_for("join", chan="c1", status="ok")
    since = js.mark()
    await lab.broadcast("room:news", "headline", {"title": "hi"})
    event = await js.wait_for("event", since=since, chan="c1", event="headline")
    assert event["payload"] == {"title": "hi"}
    frame = (await js.wait_for("recv", since=since, where=lambda o: o["frame"][3] == "headline"))
    assert frame["frame"][:2] == [None, None]
