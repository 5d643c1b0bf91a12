"""One WebSocket connection: decode, route by PROTOCOL.md section 3, write frames in order.

Theory of operation
-------------------
Reading.  One loop reads frames **one at a time** and awaits each one's handling, so a
connection never has two frames in flight.  Each frame is decoded by the serializer the
handshake negotiated and routed with Phoenix's decision table, in this priority:

1. ``phoenix``/``heartbeat`` -> reply ok ``{}``, join_ref null (unless heartbeats are off);
2. ``phx_join`` on a free topic -> no route: "unmatched topic" (join_ref null); 100 channels
   already: "too many channels joined"; else the channel joins (``ChannelServer.join``);
3. ``phx_join`` on a joined topic (duplicate) -> the old channel is killed (no terminate),
   the new join runs and its reply is written, **then** ``phx_close`` for the old join_ref;
4./5. anything else on a joined topic -> a non-null join_ref that is not the channel's is
   stale and dropped silently (``phx_leave`` included); otherwise to the channel mailbox;
6. ``phx_leave`` on a free topic -> reply ok ``{}`` echoing the client's join_ref;
7. anything else on a free topic -> "unmatched topic", join_ref null.

Writing.  Every outgoing frame goes through :meth:`send_frame` into one deque drained by
one writer task, so frames leave in the order they were produced.  A close request is
queued behind the frames already waiting, so an error reply precedes its close.

Bad input is answered by ``bad_frames.answer`` (an error reply, or a close with 1003 or
1007); websockets closes frames over ``max_frame_size`` with 1009; a silent connection is
closed after ``idle_timeout`` with 1002 "idle timeout"; a client that leaves more than
``max_outgoing`` frames unread is aborted.  ``bad_frames.py`` explains each choice.

Floods.  The reader awaits each channel mailbox ``put`` (bounded) and pauses while more
than ``outgoing_high`` frames wait to be written, so a flooding client only slows itself:
websockets stops reading its socket and TCP pushes back.  The reader also yields to the
loop after every frame.  Every bad frame is logged with ``!``; the process and the other
connections are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from mini_server.protocol import (
    CHANNEL_CRASH,
    HEARTBEAT,
    JOIN_CRASHED,
    PHOENIX_TOPIC,
    PHX_CLOSE,
    PHX_ERROR,
    PHX_JOIN,
    PHX_LEAVE,
    TOO_MANY_CHANNELS,
    UNMATCHED_TOPIC,
    Broadcast,
    CloseCode,
    Frame,
    Message,
    ProtocolError,
    Reply,
    Serializer,
)
from mini_server.server.bad_frames import answer, close_reason, short
from mini_server.server.channel import is_normal_stop, match_route
from mini_server.server.channel_server import ChannelServer
from mini_server.server.pubsub import Subscription

if TYPE_CHECKING:
    from mini_server.server.endpoint import Endpoint

log = logging.getLogger(__name__)

CHANNEL_CRASH_PAYLOAD = {"reason": CHANNEL_CRASH}


@dataclass(frozen=True, slots=True)
class _CloseRequest:
    code: int
    reason: str


class Transport:
    """One connected socket: its channels, its reader loop and its writer task."""

    def __init__(self, endpoint: Endpoint, ws: ServerConnection, serializer: Serializer,
                 params: dict[str, Any], assigns: dict[str, Any], socket_id: str | None) -> None:
        self.endpoint, self.ws, self.serializer = endpoint, ws, serializer
        self.params, self.assigns, self.socket_id = params, assigns, socket_id
        self.vsn = serializer.vsn
        self.connected_at = time.time()
        self.channels: dict[str, ChannelServer] = {}
        self.killed = False
        self._out: deque[Frame | _CloseRequest] = deque()
        self._out_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._close_requested = False
        self._close_frame = False  # a close frame is queued: let the writer send it
        self._last_in = 0.0
        self._reader: asyncio.Task[None] | None = None
        self._reading = False  # the reader is in its loop (not yet cleaning up)
        self._stopping: list[ChannelServer] = []

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes, then stop every channel."""
        loop = asyncio.get_running_loop()
        self._last_in = loop.time()
        self._reader = asyncio.current_task()
        writer = asyncio.create_task(self._write_loop(), name="transport writer")
        idle = asyncio.create_task(self._watch_idle(), name="transport idle")
        id_sub = None
        if self.socket_id is not None:
            id_sub = self.endpoint.pubsub.subscribe(
                Subscription(self.socket_id, self, self._on_id_broadcast))
        log.info("= socket connected id=%s vsn=%s", self.socket_id, self.vsn)
        self._reading = True
        try:
            async for raw in self.ws:
                self._last_in = loop.time()
                await self._receive(raw)
                if not self._drained.is_set():
                    await self._drained.wait()
                await asyncio.sleep(0)  # let other connections run between frames
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("! transport failed; closing with 1011")
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self._reading = False
            if id_sub is not None:
                self.endpoint.pubsub.unsubscribe(id_sub)
            await self._stop_channels()
            if self._close_frame and not writer.done():
                await asyncio.wait({writer}, timeout=self.endpoint.close_timeout)
            for task in (writer, idle):
                task.cancel()
            await asyncio.gather(writer, idle, return_exceptions=True)
            log.info("x socket closed id=%s code=%s reason=%r", self.socket_id,
                     self.ws.close_code, self.ws.close_reason)

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued; later frames are dropped."""
        if self._close_requested:
            return
        self._close_requested = self._close_frame = True
        self._out.append(_CloseRequest(int(code), close_reason(reason)))
        self._out_ready.set()

    def kill(self) -> None:
        """Abort the TCP connection: no close frame, channels vanish without terminate."""
        self.killed = True
        for server in [*self.channels.values(), *self._stopping]:
            server.cancel()  # also ends a graceful shutdown already under way
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self._close_requested = True
        self._out.clear()
        self.ws.transport.abort()
        if self._reading and self._reader is not asyncio.current_task():
            # The reader may be parked in a join or a full mailbox that will never finish.
            self._reader.cancel()  # type: ignore[union-attr]

    async def _stop_channels(self) -> None:
        servers = self._stopping = list(self.channels.values())
        self.channels.clear()
        if self.killed:
            await asyncio.gather(*(s.kill() for s in servers))
        else:
            await asyncio.gather(*(s.shutdown(("shutdown", "closed")) for s in servers))

    # --- writing -------------------------------------------------------------------------

    def send(self, msg: Message | Reply) -> None:
        """Encode for this connection and queue; raises ProtocolError for a bad payload."""
        self.send_frame(self.serializer.encode(msg))

    def send_frame(self, frame: Frame) -> None:
        """Queue an encoded frame behind the others (dropped once a close was requested)."""
        if self._close_requested:
            return
        self._out.append(frame)
        self._out_ready.set()
        if len(self._out) > self.endpoint.max_outgoing:
            log.error("! slow consumer: %d frames unread; aborting the connection",
                      len(self._out))
            self.abort()
        elif len(self._out) > self.endpoint.outgoing_high:
            self._drained.clear()

    async def _write_loop(self) -> None:
        try:
            while True:
                while not self._out:
                    self._out_ready.clear()
                    await self._out_ready.wait()
                item = self._out.popleft()
                if len(self._out) <= self.endpoint.outgoing_high // 2:
                    self._drained.set()
                if isinstance(item, _CloseRequest):
                    log.info("x closing code=%d reason=%r", item.code, item.reason)
                    await self.ws.close(item.code, item.reason)
                    return
                await self.ws.send(item)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("> %s", short(item))
        except ConnectionClosed:
            pass
        finally:
            self._drained.set()  # never leave the reader waiting on a dead writer

    async def _watch_idle(self) -> None:
        timeout = self.endpoint.idle_timeout
        if not timeout:
            return
        loop = asyncio.get_running_loop()
        while True:
            remaining = self._last_in + timeout - loop.time()
            if remaining <= 0:
                log.warning("- idle timeout: nothing received for %.1f s", timeout)
                self.close(CloseCode.PROTOCOL_ERROR, "idle timeout")
                return
            await asyncio.sleep(remaining)

    # --- reading --------------------------------------------------------------------------

    async def _receive(self, raw: Frame) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("< %s", short(raw))
        try:
            msg = self.serializer.decode(raw)
        except ProtocolError as exc:
            self._bad_frame(raw, exc)
            return
        await self._route(msg)

    def _bad_frame(self, raw: Frame, exc: ProtocolError) -> None:
        result = answer(raw, exc, self.serializer)
        if isinstance(result, Reply):
            log.error("! invalid message on %s (ref %s): %s", result.topic, result.ref, exc)
            self.send(result)
        else:
            log.error("! bad frame %s: %s; closing with %d", short(raw, 80), exc, result.code)
            self.close(result.code, result.reason)

    async def _route(self, msg: Message) -> None:
        if msg.topic == PHOENIX_TOPIC and msg.event == HEARTBEAT:
            if self.endpoint.answer_heartbeats:
                log.debug("%% heartbeat %s", msg.ref)
                self.send(Reply(PHOENIX_TOPIC, "ok", {}, msg.ref, None))
            else:
                log.debug("%% heartbeat %s dropped (answer_heartbeats=False)", msg.ref)
            return
        if msg.event == PHX_JOIN:
            await self._join(msg)
            return
        server = self.channels.get(msg.topic)
        if server is None:
            if msg.event == PHX_LEAVE:
                self.send(Reply(msg.topic, "ok", {}, msg.ref, msg.join_ref))
            else:
                log.warning("! %s %s: unmatched topic", msg.topic, msg.event)
                self.send(Reply(msg.topic, "error", {"reason": UNMATCHED_TOPIC}, msg.ref, None))
            return
        if msg.join_ref is not None and msg.join_ref != server.wire_join_ref:
            log.debug("< %s %s: stale join_ref %s (current %s), dropped",
                      msg.topic, msg.event, msg.join_ref, server.wire_join_ref)
            return
        await server.deliver(msg)

    async def _join(self, msg: Message) -> None:
        old = self.channels.pop(msg.topic, None)
        if old is not None:
            log.debug("= %s: duplicate join %s replaces %s", msg.topic, msg.join_ref, old.join_ref)
            await old.kill()
        channel_cls = match_route(self.endpoint.routes, msg.topic)
        if channel_cls is None:
            log.warning("! join %s: unmatched topic", msg.topic)
            self.send(Reply(msg.topic, "error", {"reason": UNMATCHED_TOPIC}, msg.ref, None))
        elif len(self.channels) >= self.endpoint.max_channels:
            log.warning("! join %s: %s", msg.topic, TOO_MANY_CHANNELS)
            self.send(Reply(msg.topic, "error", {"reason": TOO_MANY_CHANNELS},
                            msg.ref, msg.join_ref))
        else:
            try:
                server = ChannelServer(channel_cls, msg, self, self.endpoint.pubsub,
                                       self.endpoint.mailbox_size)
            except Exception:  # e.g. a Channel subclass whose __init__ needs arguments
                log.exception("! join %s: could not create %s", msg.topic, channel_cls.__name__)
                self.send(Reply(msg.topic, "error", {"reason": JOIN_CRASHED},
                                msg.ref, msg.join_ref))
            else:
                self.channels[msg.topic] = server
                if not await server.join(msg) and self.channels.get(msg.topic) is server:
                    del self.channels[msg.topic]
        if old is not None:
            self.send(Message(msg.topic, PHX_CLOSE, {}, old.wire_join_ref, old.wire_join_ref))

    # --- called by channels and pubsub ------------------------------------------------------

    def channel_stopped(self, server: ChannelServer, reason: Any, *, crashed: bool) -> None:
        """A channel ended by itself: forget it and tell the client (phx_close/phx_error)."""
        if self.channels.get(server.topic) is server:
            del self.channels[server.topic]
        if crashed or not is_normal_stop(reason):
            self.send(Message(server.topic, PHX_ERROR, CHANNEL_CRASH_PAYLOAD,
                              server.wire_join_ref, server.wire_join_ref))
        else:
            self.send(Message(server.topic, PHX_CLOSE, {}, server.wire_join_ref,
                              server.wire_join_ref))

    def _on_id_broadcast(self, message: Broadcast) -> None:
        if message.event == "disconnect":
            log.info("x disconnect broadcast for socket id %s", self.socket_id)
            self.close(CloseCode.GOING_AWAY, "disconnected")

    def describe(self, redact: Any) -> dict[str, Any]:
        """This socket for Endpoint.snapshot()."""
        return {"id": self.socket_id, "vsn": self.vsn, "connected_at": self.connected_at,
                "params": redact(self.params),
                "channels": [{"topic": s.topic, "join_ref": s.join_ref}
                             for s in self.channels.values() if s.joined]}

