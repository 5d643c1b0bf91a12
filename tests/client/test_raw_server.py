"""A scripted raw WebSocket server: exact frames in, close codes and frames out."""

from __future__ import annotations

import asyncio
import json

import pytest
from client_probes import EventLog
from websockets.asyncio.server import serve

from mini_server.client import ChannelState


async def test_late_phx_error_with_an_old_join_ref_leaves_the_current_channel_joined(sockets):
    """After a crash + rejoin, a late phx_error/phx_close/reply for the old join_ref are ignored."""
    script_done = asyncio.Event()
    joins: list[list] = []

    async def handler(ws):
        async for raw in ws:
            jr, ref, topic, event, _payload = json.loads(raw)
            if event != "phx_join":
                continue
            joins.append([jr, ref])
            await ws.send(json.dumps([jr, ref, topic, "phx_reply",
                                      {"status": "ok", "response": {}}]))
            if len(joins) == 1:  # crash the first incarnation
                await ws.send(json.dumps([jr, jr, topic, "phx_error",
                                          {"reason": "channel_crash"}]))
            else:  # late frames of the first incarnation, then a marker for the new one
                old = joins[0][0]
                await ws.send(json.dumps([old, old, topic, "phx_error",
                                          {"reason": "channel_crash"}]))
                await ws.send(json.dumps([old, old, topic, "phx_close", {}]))
                await ws.send(json.dumps([old, None, topic, "tick", {"n": "old"}]))
                await ws.send(json.dumps([jr, None, topic, "tick", {"n": "new"}]))
                script_done.set()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sock = sockets(f"ws://127.0.0.1:{port}/socket", rejoin_after=lambda tries: 0.05)
        log = EventLog(sock)
        ch = sock.channel("room:1")
        ticks, errors = [], []
        ch.on("tick", ticks.append)
        ch.on_error(errors.append)
        ch.join()
        sock.connect()
        async with asyncio.timeout(3):
            await script_done.wait()
        await log.wait(lambda e: e.kind == "received" and e.data["message"].event == "tick"
                       and e.data["message"].join_ref == joins[1][0])
        assert ch.state == ChannelState.JOINED and ch.join_ref == joins[1][0]
        assert ticks == [{"n": "new"}]
        assert errors == [{"reason": "channel_crash"}]  # only the first, current-ref one
        assert [e.data["event"] for e in log.of("dropped")] == ["phx_error", "phx_close", "tick"]
        sock.disconnect()
        await sock.wait_closed(3)


class Recorder:
    """A raw server that answers joins and (optionally) heartbeats and records close codes."""

    def __init__(self, answer_heartbeats: bool = True, close_with: int | None = None) -> None:
        self.answer_heartbeats = answer_heartbeats
        self.close_with = close_with
        self.closes: list[tuple[int | None, str | None]] = []
        self.connections = 0
        self.changed = asyncio.Event()

    async def handler(self, ws):
        self.connections += 1
        self.changed.set()
        try:
            async for raw in ws:
                jr, ref, topic, event, _payload = json.loads(raw)
                if event == "heartbeat" and not self.answer_heartbeats:
                    continue
                await ws.send(json.dumps([jr, ref, topic, "phx_reply",
                                          {"status": "ok", "response": {}}]))
                if event == "phx_join" and self.close_with and self.connections == 1:
                    await ws.close(self.close_with, "server says bye")
        finally:
            self.closes.append((ws.close_code, ws.close_reason))
            self.changed.set()

    async def until(self, predicate, timeout=3.0):  # noqa: ASYNC109
        async def check():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        async with asyncio.timeout(timeout):
            await check()


async def test_heartbeat_timeout_closes_with_1000_heartbeat_timeout_then_reconnects(sockets):
    """A server ignoring heartbeats sees close 1000 "heartbeat timeout", then a new connection."""
    rec = Recorder(answer_heartbeats=False)
    async with serve(rec.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sock = sockets(f"ws://127.0.0.1:{port}/socket", heartbeat_interval=0.2)
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await ch.wait_joined(3)
        await rec.until(lambda: rec.connections == 2 and rec.closes)
        assert rec.closes[0] == (1000, "heartbeat timeout")
        sock.disconnect()
        await sock.wait_closed(3)


@pytest.mark.parametrize(("args", "seen"), [((), (1005, "")), ((4000, "bye"), (4000, "bye"))])
async def test_disconnect_close_code_reaches_the_server(sockets, args, seen):
    """disconnect() closes without a status (server sees 1005); a code and reason are passed on."""
    rec = Recorder()
    async with serve(rec.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sock = sockets(f"ws://127.0.0.1:{port}/socket")
        sock.connect()
        await sock.wait_open(3)
        sock.disconnect(*args)
        await sock.wait_closed(3)
        await rec.until(lambda: rec.closes)
        assert rec.closes == [seen] and rec.connections == 1


async def test_a_server_close_with_1000_is_reconnected_as_in_1_8_16(sockets):
    """phoenix.js 1.8.16 reconnects after any close it did not initiate, 1000 included."""
    rec = Recorder(close_with=1000)
    async with serve(rec.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sock = sockets(f"ws://127.0.0.1:{port}/socket")
        log = EventLog(sock)
        closes = []
        sock.on_close(lambda code, reason: closes.append((code, reason)))
        ch = sock.channel("room:1")
        ch.join()
        sock.connect()
        await rec.until(lambda: rec.connections == 2)
        await ch.wait_joined(3)
        assert closes[0] == (1000, "server says bye")
        assert log.of("reconnect_scheduled")[0].data["delay"] == 0.01
        sock.disconnect()
        await sock.wait_closed(3)
