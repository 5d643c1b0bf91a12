"""One WebSocket connection: decode, route by PROTOCOL.md section 3, write frames in order.

Theory of operation
-------------------
Reading.  One loop reads frames **one at a time** and awaits each one's handling, so a
connection never has two frames in flight.  Each frame is decoded by the serializer the
handshake negotiated; ``routing.route`` (pure) decides what Phoenix's socket would do with
it, and this module only carries that out: reply to a heartbeat, start a join (killing a
duplicate first, whose ``phx_close`` follows the new join's reply), queue the message in a
channel's mailbox, drop it (stale join_ref, dying channel), or answer "unmatched topic".

Writing.  Every outgoing frame goes through :meth:`send_frame`, which either writes it at
once ("write-through") or appends it to one deque drained by one writer task, so frames
leave in the order they were produced.  Write-through happens only when nothing is queued
or in flight and websockets' transport is not paused (its write buffer is below the 32 KiB
``write_limit``): then nothing could be ahead of the frame, and writing it is what
``websockets.broadcast`` does (``protocol.send_text`` + ``send_data``), with no task
wake-up, future or coroutine per subscriber.  Otherwise the frame is queued, and the
writer task (started when the queue gets its first frame, gone when it is empty again)
sends it with back-pressure; while anything is queued or in flight every later frame
queues behind it.  A close request is queued behind the frames already waiting, so a
reply precedes its close; the idle close is the exception (below).

Lifecycle.  ``ConnectionState`` (``states.py``) changes only through its table: ``close``
(a close frame is queued), ``abort`` (TCP dropped by us), ``kill`` (server killed),
``ended`` (the connection is gone).  Once not open, the connection reads no more
messages and queues no more frames.

Closes, as Phoenix with Bandit answers (``bad_frames.py`` has the whole policy): an
undecodable frame closes with 1011, a silent connection after ``idle_timeout`` with 1002,
a ``"disconnect"`` broadcast on the socket id with 1001, a drain with 1012, all with an
empty reason on the wire; the reason is logged (``x``/``!`` lines) for people and panels.

Slow readers.  A frame costs the connection its memory size (``sys.getsizeof``) from the
moment it is queued until websockets has taken it (``ws.send`` returns once the transport's
write buffer is below websockets' 32 KiB ``write_limit``), so the count covers the frame in
flight too.  A frame written through costs nothing here: it went straight into a write
buffer that was below the limit, which is the same one frame plus 32 KiB as before.  A
broadcast frame shared by many subscribers is charged to each of them: the figure bounds
what one connection pins.  A connection is **aborted** (TCP dropped, no close
frame: the client sees 1006; its channels stop; no other connection is touched) when

* more than ``max_outgoing_bytes`` (default 8 MiB) or ``max_outgoing`` frames wait: a
  client that stops reading under a broadcast stream is dropped within one budget of
  bytes, whatever the frame size;
* a close it was sent cannot be written within ``close_timeout``: a close frame stuck
  behind unread bytes would otherwise hold the connection (and its buffer) forever,
  since ``ws.send``/``ws.close`` wait for the peer's TCP window without a timeout;
* one frame cannot be handed to websockets within ``send_timeout`` (default 30 s,
  Thousand Island's): the client has read nothing for that long.  This ends a client
  that heartbeats but reads nothing and is sent too little to fill the budget.

The idle close never waits behind unread frames: it drops the queue and goes first (the
client has said nothing for ``idle_timeout``; what it has not read it will never see).
While the queue is above a tenth of ``max_outgoing`` frames or a quarter of the byte budget
the reader pauses (below), so a client that heartbeats but never reads stops being heard,
times out as idle and is aborted by the close timeout if neither the budget nor the send
timeout ends it first.  Worst case, a stuck connection pins ``max_outgoing_bytes`` plus
websockets' write buffer (one frame plus 32 KiB), for at most ``send_timeout``.

Phoenix, for reference.  A Phoenix transport is one process (Bandit's or Cowboy's
connection process running ``Phoenix.Socket``); channels and ``fastlane`` broadcasts
*send it messages*, so for a client that stops reading the transport process's mailbox
grows without any bound while it sits in a blocking ``:gen_tcp.send``.  What ends it is
the socket option ``send_timeout`` with ``send_timeout_close``: Thousand Island (Bandit's
socket layer) defaults to ``send_timeout: 30000, send_timeout_close: true``
(``lib/thousand_island/transports/tcp.ex``), and Ranch (Cowboy's) sets the same defaults
(``src/ranch_tcp.erl``), so one write blocked for 30 s closes the socket and the process
exits, dropping its mailbox.  The client sees the TCP connection drop (1006), as here.
(Bandit writes each frame with ``ThousandIsland.Socket.send`` from the connection process,
``lib/bandit/websocket/socket.ex``.)  The idle ``timeout`` (60 s; Cowboy's
``idle_timeout``) is no help: the process sits in blocking sends, and its close frame
would block the same way.  We differ on purpose: asyncio has no blocking send, and a
time-only rule would let memory grow at the broadcast rate for 30 s (a teaching server
in a kernel shares memory with the notebook), so we bound the bytes as well, and give a
close ``close_timeout`` (1 s), not 30 s.  Both drop only the slow connection.

Floods.  The reader awaits each channel mailbox ``put`` (bounded) and pauses while the
outgoing queue is above its high marks, so a flooding client only slows itself:
websockets stops reading its socket and TCP pushes back.  The reader also yields to the
loop after every frame.  The process and the other connections are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State as WebSocketState

from mini_server.protocol import (
    CHANNEL_CRASH,
    JOIN_CRASHED,
    PHOENIX_TOPIC,
    PHX_CLOSE,
    PHX_ERROR,
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
from mini_server.server import routing
from mini_server.server.bad_frames import answer, short
from mini_server.server.channel import Channel, is_normal_stop, match_route
from mini_server.server.channel_server import ChannelServer
from mini_server.server.log_lines import Clip, Repeats, server_logger
from mini_server.server.pubsub import Subscription
from mini_server.server.states import CONNECTION_TRANSITIONS, ConnectionState, Lifecycle

if TYPE_CHECKING:
    from mini_server.server.endpoint import Endpoint

log = server_logger(__name__)

CHANNEL_CRASH_PAYLOAD = {"reason": CHANNEL_CRASH}
_READING = (ConnectionState.OPEN, ConnectionState.CLOSING, ConnectionState.ABORTED)


@dataclass(frozen=True, slots=True)
class _CloseRequest:
    code: int


class Transport:
    """One connected socket: its channels, its reader loop and its writer task."""

    # Slots: ten thousand connections mean ten thousand of these, and a __dict__ each is
    # one more object for every garbage collection to walk.
    __slots__ = ("__weakref__", "_close_timer", "_held", "_idle", "_in_flight_bytes", "_last_in",
                 "_out", "_reader", "_resume", "_stopping", "_writer", "assigns", "channels",
                 "close_why", "connected_at", "endpoint", "lifecycle", "outgoing_bytes",
                 "params", "repeats", "serializer", "socket_id", "vsn", "ws")

    def __init__(self, endpoint: Endpoint, ws: ServerConnection, serializer: Serializer,
                 params: dict[str, Any], assigns: dict[str, Any], socket_id: str | None) -> None:
        self.endpoint, self.ws, self.serializer = endpoint, ws, serializer
        self.params, self.assigns, self.socket_id = params, assigns, socket_id
        self.vsn = serializer.vsn
        self.connected_at = time.time()
        self.channels: dict[Any, ChannelServer] = {}
        self.lifecycle = Lifecycle(ConnectionState.OPEN, CONNECTION_TRANSITIONS, self)
        self.close_why: str | None = None  # why we closed it: for the log and panels
        self._out: deque[Frame | _CloseRequest] = deque()
        self.outgoing_bytes = 0  # what the queued and in-flight frames hold (sys.getsizeof)
        self._in_flight_bytes = 0  # the frame websockets is writing now
        self._close_timer: asyncio.TimerHandle | None = None
        self._held = False  # the reader waits: too much is queued (see "Floods")
        self._resume: asyncio.Future[None] | None = None  # only while the reader waits
        self._last_in = 0.0
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None  # only while frames are queued
        self._idle: asyncio.TimerHandle | None = None
        self.repeats = Repeats(log)  # what this client makes us warn about, rate-limited
        self._stopping: tuple[ChannelServer, ...] = ()  # set once, when the channels stop

    def __str__(self) -> str:
        return f"socket {self.socket_id or hex(id(self))}"

    @property
    def state(self) -> ConnectionState:
        """Where this connection is in its life (``states.ConnectionState``)."""
        return self.lifecycle.state

    @property
    def killed(self) -> bool:
        """True once the server killed it: it no longer exists for anyone."""
        return self.state is ConnectionState.KILLED

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes, then stop every channel."""
        loop = asyncio.get_running_loop()
        self._last_in = loop.time()
        self._reader = asyncio.current_task()
        if self.endpoint.idle_timeout:
            # A timer, not a task: no coroutine and frame held per connection.
            self._idle = loop.call_later(self.endpoint.idle_timeout, self._check_idle)
        id_sub = None
        if self.socket_id is not None:
            id_sub = self.endpoint.pubsub.subscribe(
                Subscription(self.socket_id, self, self._on_id_broadcast))
        log.info("= socket connected id=%s vsn=%s", self.socket_id, self.vsn)
        try:
            async for raw in self.ws:
                self._last_in = loop.time()
                if self.state is not ConnectionState.OPEN:
                    log.debug("< %s ignored: the connection is %s", short(raw, 80), self.state)
                    continue
                await self._receive(raw)
                if self._held:
                    self._resume = loop.create_future()
                    try:
                        await self._resume
                    finally:
                        self._resume = None
                await asyncio.sleep(0)  # let other connections run between frames
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("! transport failed; closing with 1011")
            self.close(CloseCode.INTERNAL_ERROR, "internal error in the transport")
        finally:
            close_frame = self.state is ConnectionState.CLOSING
            self.lifecycle.fire("ended")
            if self._close_timer is not None:
                self._close_timer.cancel()
            if self._idle is not None:
                self._idle.cancel()
            if id_sub is not None:
                self.endpoint.pubsub.unsubscribe(id_sub)
            await self._stop_channels()
            writer = self._writer
            if writer is not None:
                if close_frame and not writer.done():
                    await asyncio.wait({writer}, timeout=self.endpoint.close_timeout)
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            self.repeats.flush()
            log.info("x socket closed id=%s code=%s reason=%r", self.socket_id,
                     self.ws.close_code, self.close_why or self.ws.close_reason)

    def close(self, code: int, why: str, *, first: bool = False) -> None:
        """Close after the queued frames (``first``: drop them and close now); abort if stuck.

        The reason on the wire is empty (``why`` is logged).  Unless the close frame has
        been written within ``close_timeout`` the connection is aborted instead.
        """
        if self.state is not ConnectionState.OPEN:
            return
        self.lifecycle.fire("close")
        self.close_why = why
        log.info("x closing id=%s with %d: %s", self.socket_id, code, why)
        if first:
            self._out.clear()
            self.outgoing_bytes = self._in_flight_bytes
        self._out.append(_CloseRequest(int(code)))
        self._start_writer()
        self._close_timer = asyncio.get_running_loop().call_later(
            self.endpoint.close_timeout, self._close_overdue, False)

    def _close_overdue(self, final: bool) -> None:
        if self.state is not ConnectionState.CLOSING:
            return
        written = (self.ws.protocol.close_sent is not None
                   and self.ws.transport.get_write_buffer_size() == 0)
        if written and not final:
            # The close frame is out; websockets' own close_timeout bounds the handshake.
            # Check once more in case it does not.
            self._close_timer = asyncio.get_running_loop().call_later(
                self.endpoint.close_timeout, self._close_overdue, True)
            return
        timeout = self.endpoint.close_timeout
        log.error("! close not written within %g s (%d bytes unread); aborting the "
                  "connection", timeout, self.outgoing_bytes)
        self.abort(f"slow consumer: close not written within {timeout:g} s")

    def cut_tcp(self) -> None:
        """Shut the TCP connection down both ways now (the client reads EOF at once).

        asyncio's ``abort()`` closes a socket only a loop iteration later, in its
        ``connection_lost`` callback, so a kill of 1,000 connections used to reach its
        clients spread over ~0.3 s; a node that dies drops them all in the same instant.
        """
        sock = self.ws.transport.get_extra_info("socket") if self.ws.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already reset by the peer
                sock.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        """Abort the TCP connection: no close frame, channels vanish without terminate."""
        if self.state is ConnectionState.KILLED:
            return
        reading = self.state in _READING
        self.lifecycle.fire("kill")
        for server in [*self.channels.values(), *self._stopping]:
            server.cancel()  # also ends a graceful shutdown already under way
        self._drop_tcp(cancel_reader=reading)

    def abort(self, why: str) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        if self.state not in (ConnectionState.OPEN, ConnectionState.CLOSING):
            return
        self.lifecycle.fire("abort")
        self.close_why = why
        self._drop_tcp(cancel_reader=True)

    def _drop_tcp(self, *, cancel_reader: bool) -> None:
        self._out.clear()
        self.outgoing_bytes = self._in_flight_bytes = 0
        self.ws.transport.abort()
        if cancel_reader and self._reader is not asyncio.current_task():
            # The reader may be parked in a join or a full mailbox that will never finish.
            self._reader.cancel()  # type: ignore[union-attr]

    async def _stop_channels(self) -> None:
        servers = self._stopping = tuple(self.channels.values())
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
        """Write an encoded frame now, or queue it behind the others (dropped once closing).

        Written at once only when nothing is queued or in flight and the transport is not
        paused; a connection past ``max_outgoing_bytes`` or ``max_outgoing`` queued frames
        is aborted.
        """
        if self.lifecycle.state is not ConnectionState.OPEN:
            return
        if not self._out and not self._in_flight_bytes and self._write_through(frame):
            return
        self._out.append(frame)
        self.outgoing_bytes += sys.getsizeof(frame)
        if self._writer is None:
            self._start_writer()
        endpoint = self.endpoint
        if self.outgoing_bytes > endpoint.max_outgoing_bytes:
            log.error("! slow consumer: %d bytes unread (budget %d); aborting the connection",
                      self.outgoing_bytes, endpoint.max_outgoing_bytes)
            self.abort(f"slow consumer: more than {endpoint.max_outgoing_bytes} bytes unread")
        elif len(self._out) > endpoint.max_outgoing:
            log.error("! slow consumer: %d frames unread; aborting the connection",
                      len(self._out))
            self.abort(f"slow consumer: more than {endpoint.max_outgoing} frames unread")
        elif (len(self._out) > endpoint.outgoing_high
              or self.outgoing_bytes > endpoint.outgoing_high_bytes):
            self._held = True

    def _write_through(self, frame: Frame) -> bool:
        """Hand ``frame`` to websockets now if nothing can be ahead of it; False: queue it."""
        ws = self.ws
        if ws.paused or ws.protocol.state is not WebSocketState.OPEN:
            return False  # the writer task sends it after the drain (or meets the close)
        try:
            if isinstance(frame, str):
                ws.protocol.send_text(frame.encode())
            else:
                ws.protocol.send_binary(frame)
            ws.send_data()
        except Exception:
            log.exception("! write failed; aborting the connection")
            self.abort("write failed")
            return True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("> %s", short(frame))
        return True

    def _release_reader(self) -> None:
        self._held = False
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    def _start_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="transport writer")

    async def _write_loop(self) -> None:
        endpoint = self.endpoint
        try:
            while self._out:
                item = self._out.popleft()
                if isinstance(item, _CloseRequest):
                    self._release_reader()
                    await self.ws.close(item.code, "")  # Phoenix's close reasons are empty
                    return
                self._in_flight_bytes = sys.getsizeof(item)
                try:
                    async with asyncio.timeout(endpoint.send_timeout):
                        await self.ws.send(item)
                except TimeoutError:
                    log.error("! slow consumer: a frame not taken within %g s (%d bytes "
                              "unread); aborting the connection", endpoint.send_timeout,
                              self.outgoing_bytes)
                    self.abort(f"slow consumer: nothing read for {endpoint.send_timeout:g} s")
                    return
                # Zero already if an abort dropped everything while the frame was in flight.
                self.outgoing_bytes -= self._in_flight_bytes
                self._in_flight_bytes = 0
                if (len(self._out) <= endpoint.outgoing_high // 2
                        and self.outgoing_bytes <= endpoint.outgoing_high_bytes // 2):
                    self._release_reader()
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("> %s", short(item))
        except ConnectionClosed:
            # What is queued will never be written; the reader is about to see the close.
            self._out.clear()
            self.outgoing_bytes = self._in_flight_bytes = 0
        finally:
            self._release_reader()  # never leave the reader waiting on a dead writer
            if self._writer is asyncio.current_task():
                self._writer = None  # the next queued frame starts a new one

    def _check_idle(self) -> None:
        timeout = self.endpoint.idle_timeout
        assert timeout  # armed only with an idle timeout
        loop = asyncio.get_running_loop()
        remaining = self._last_in + timeout - loop.time()
        if remaining > 0:
            self._idle = loop.call_later(remaining, self._check_idle)
            return
        self._idle = None
        if self.lifecycle.state is not ConnectionState.OPEN:
            return
        log.warning("- idle timeout: nothing received for %.1f s", timeout)
        # First: what a silent client has not read it will never see, and a close behind
        # unread frames would never be written.
        self.close(CloseCode.PROTOCOL_ERROR, f"idle timeout ({timeout:g} s silent)",
                   first=True)

    # --- reading --------------------------------------------------------------------------

    async def _receive(self, raw: Frame) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("< %s", short(raw))
        try:
            msg = self.serializer.decode(raw)
        except ProtocolError as exc:
            result = answer(raw, exc)
            log.error("! %s: %s; closing with %d, as Phoenix's crashed socket does",
                      short(raw, 80), result.why, result.code)
            self.close(result.code, result.why)
            return
        await self.receive_message(msg)

    async def receive_message(self, msg: Message, channel: type[Channel] | None = None) -> None:
        """Route one decoded message (PROTOCOL.md section 3) and carry the decision out.

        The reader calls it for every frame; ``mini_server.channel_test`` calls it without a
        websocket, as Phoenix.ChannelTest drives a channel without one.  ``channel`` joins
        that class instead of the one the routes name (ChannelTest's ``join/4``).
        """
        routes = self.endpoint.routes
        action = routing.route(
            msg, self.channels,
            lambda topic: channel if channel is not None else match_route(routes, topic),
            self.endpoint.max_channels)
        await self._carry_out(action, msg)

    async def _carry_out(self, action: routing.Action, msg: Message) -> None:
        match action:
            case routing.Heartbeat():
                if self.endpoint.answer_heartbeats:
                    log.debug("%% heartbeat %s", Clip(msg.ref))
                    self.send(Reply(PHOENIX_TOPIC, "ok", {}, msg.ref, None))
                else:
                    log.debug("%% heartbeat %s dropped (answer_heartbeats=False)", Clip(msg.ref))
            case routing.StartJoin(channel=channel_cls, replaces=old):
                await self._join(msg, channel_cls, old)
            case routing.Deliver(member=server):
                await server.deliver(msg)
            case routing.DropStale(member=server):
                log.debug("< %s %s: stale join_ref %r (current %r), dropped", Clip(msg.topic),
                          Clip(msg.event), Clip(msg.join_ref), server.wire_join_ref)
            case routing.DropDying(member=server):
                log.debug("< %s %s: channel is %s, message lost", Clip(msg.topic),
                          Clip(msg.event), server.state)
            case routing.LeaveOk():
                self.send(Reply(msg.topic, "ok", {}, msg.ref, msg.join_ref))
            case routing.TooManyChannels():
                self.repeats.warning("! join %s: %s", Clip(msg.topic), TOO_MANY_CHANNELS)
                self.send(Reply(msg.topic, "error", {"reason": TOO_MANY_CHANNELS},
                                msg.ref, msg.join_ref))
            case routing.Unmatched():
                self.repeats.warning("! %r %r: unmatched topic", Clip(msg.topic), Clip(msg.event))
                self.send(Reply(msg.topic, "error", {"reason": UNMATCHED_TOPIC}, msg.ref, None))

    async def _join(self, msg: Message, channel_cls: Any, old: ChannelServer | None) -> None:
        if old is not None:
            del self.channels[msg.topic]
            log.debug("= %s: duplicate join %r replaces %r", Clip(msg.topic),
                      Clip(msg.join_ref), old.join_ref)
            await old.kill()
        try:
            server = ChannelServer(channel_cls, msg, self, self.endpoint.pubsub,
                                   self.endpoint.mailbox_size)
        except Exception:  # e.g. a Channel subclass whose __init__ needs arguments
            log.exception("! join %s: could not create %s", Clip(msg.topic),
                          channel_cls.__name__)
            self.send(Reply(msg.topic, "error", {"reason": JOIN_CRASHED}, msg.ref, msg.join_ref))
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
            self.close(CloseCode.GOING_AWAY, f"disconnect broadcast for {self.socket_id}")

    def describe(self, redact: Any) -> dict[str, Any]:
        """This socket for Endpoint.snapshot()."""
        return {"id": self.socket_id, "vsn": self.vsn, "connected_at": self.connected_at,
                "params": redact(self.params),
                "outgoing": {"frames": len(self._out), "bytes": self.outgoing_bytes},
                "channels": [{"topic": s.topic, "join_ref": s.join_ref}
                             for s in self.channels.values() if s.joined]}
