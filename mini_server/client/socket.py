"""The client socket: one connection at a time, heartbeat, reconnect, send buffer (socket.js).

Theory of operation
-------------------
A Socket owns at most one current :class:`~.transport.Connection`.  It follows phoenix.js
1.8.16 step by step (method names in snake_case), so a learner can read both side by side.
This module is the public half: options, callbacks, channels, refs, sending and the send
buffer.  What happens when the connection opens, closes, fails or goes silent (heartbeat,
reconnect, and the one hook that classifies closes) is in lifecycle.py.

* ``connect()`` opens a transport unless a live connection exists; ``params`` (a dict or a
  callable, re-evaluated on every connect) go in the query string, ``vsn`` last.
* ``disconnect()`` marks the close clean: channels errored but kept, no reconnect, every
  timer of the socket cancelled; a later ``connect()`` rejoins the channels.
* ``push()`` sends when open, else buffers until the next open; on open the buffer is sent
  in order, minus frames that became outdated (their channel closed or rejoined, 1.8.16).
* Refs come from one counter per socket (``make_ref``), also consumed by every ``on_*``
  callback registration, as in phoenix.js: refs are opaque strings.
* ``auth_token=`` (phoenix.js ``authToken``, a string or a callable read at every connect)
  goes in ``Sec-WebSocket-Protocol`` as ``phoenix`` plus ``base64url.bearer.phx.<token>``,
  never in the URL; the server must enable it (Phoenix ``auth_token: true``).
* Defaults are phoenix.js's: 30 s heartbeat, 10 s timeout, ``protocol.reconnect_after`` and
  ``protocol.rejoin_after``.  One is ours: ``max_frame_size`` (1 MiB, the server's limit;
  None for none) closes the connection with 1009 on a larger frame (transport.py).

Everything is visible on the event stream (``on_event``) and in ``logging``; see events.py.
Timers use the running loop's clock, so tests drive them with a virtual-time loop, and the
transport is injectable (``transport=``) so they need no network at all.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from .. import protocol
from ..protocol import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_VSN,
    HEARTBEAT,
    PHOENIX_TOPIC,
    PHX_JOIN,
    PHX_LEAVE,
    Message,
    ProtocolError,
    V2JSONSerializer,
)
from .channel import Channel
from .events import ClientEvent, EventStream, adapt, describe
from .lifecycle import ConnectionLifecycle
from .timer import Timer, running_loop
from .transport import MAX_FRAME_SIZE, Connection, ReadyState, WebSocketTransport, endpoint_url

__all__ = ["Socket"]

_STATE_NAMES = {ReadyState.CONNECTING: "connecting", ReadyState.OPEN: "open",
                ReadyState.CLOSING: "closing", ReadyState.CLOSED: "closed"}


class Socket(ConnectionLifecycle):
    """A Phoenix socket client with phoenix.js 1.8.16 behaviour."""

    channel_class: type[Channel] = Channel

    def __init__(self, url: str, params: dict | Callable[[], dict] | None = None, *,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
                 timeout: float = DEFAULT_TIMEOUT,
                 reconnect_after: Callable[[int], float] = protocol.reconnect_after,
                 rejoin_after: Callable[[int], float] = protocol.rejoin_after,
                 vsn: str = DEFAULT_VSN, transport: Callable[..., Any] | None = None,
                 name: str = "socket",
                 auth_token: str | Callable[[], str] | None = None,
                 max_frame_size: int | None = MAX_FRAME_SIZE) -> None:
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ValueError(f"the socket URL must be absolute, like ws://127.0.0.1:4000/socket "
                             f"(the client adds /websocket), got {url!r}")
        if params is not None and not callable(params) and not isinstance(params, dict):
            raise TypeError(f"params must be a dict or a callable returning one, got {params!r}")
        for label, value in (("heartbeat_interval", heartbeat_interval), ("timeout", timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{label} is in seconds and must be > 0, got {value!r}")
        self.end_point = url.rstrip("/") + "/websocket"
        self.params: Callable[[], dict] = params if callable(params) else (lambda: params or {})
        self.heartbeat_interval = float(heartbeat_interval)
        self.timeout = float(timeout)
        self.reconnect_after = reconnect_after
        self.rejoin_after = rejoin_after
        self.vsn = vsn
        # phoenix.js authToken: sent as a subprotocol (never in the URL), re-read per connect.
        self.auth_token: Callable[[], str] | None = (
            None if auth_token is None else auth_token if callable(auth_token)
            else (lambda: auth_token))
        self.max_frame_size = max_frame_size
        # The frame limit is the default transport's; an injected one (tests) brings its own.
        self.transport = transport or functools.partial(WebSocketTransport,
                                                        max_frame_size=max_frame_size)
        self.serializer = V2JSONSerializer()  # phoenix.js speaks V2 whatever vsn says
        self.events = EventStream(name)
        self.channels: list[Channel] = []
        self.send_buffer: list[tuple[Message, Channel | None]] = []
        self.connection: Connection | None = None
        self.close_was_clean = True
        self.connect_clock = 1
        self.established_connections = 0
        self.ref = 0
        self.pending_heartbeat_ref: str | None = None
        self.last_heartbeat_rtt: float | None = None
        self._heartbeat_sent_at = 0.0
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._heartbeat_timeout_timer: asyncio.TimerHandle | None = None
        self._callbacks: dict[str, list[tuple[str, Callable[..., object]]]] = {
            "open": [], "close": [], "error": [], "message": []}
        self._transports: list[Any] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._last_state = "closed"
        self.reconnect_timer = Timer(
            lambda: self.events.guard("reconnect", self.teardown_and_reconnect, self.connect),
            reconnect_after)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.end_point} {self.connection_state}>"

    # --- public API -------------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        """connecting, open, closing or closed."""
        if self.connection is None:
            return "closed"
        return _STATE_NAMES[self.connection.transport.ready_state]

    def is_connected(self) -> bool:
        """True while the transport is open."""
        return self.connection_state == "open"

    @property
    def reconnect_tries(self) -> int:
        """How many reconnect attempts fired since the last successful open."""
        return self.reconnect_timer.tries

    @property
    def next_reconnect_at(self) -> float | None:
        """Loop time of the next scheduled reconnect attempt, or None."""
        return self.reconnect_timer.when

    def endpoint_url(self) -> str:
        """The URL the next connect opens (params evaluated now)."""
        return endpoint_url(self.end_point, self.params(), self.vsn)

    def connect(self) -> None:
        """Open the connection in the running loop (no-op while a live one exists)."""
        running_loop()
        if self.connection is not None and not self.connection.ended:
            return
        self.transport_connect()

    def disconnect(self, code: int | None = None, reason: str | None = None,
                   callback: Callable[[], object] | None = None) -> None:
        """Close on purpose: no reconnect; channels errored but kept for a later connect()."""
        if reason and code is None:
            raise ValueError("a close reason needs a close code, e.g. disconnect(1000, 'bye')")
        self.connect_clock += 1
        self.close_was_clean = True
        self.reconnect_timer.reset()
        for channel in self.channels:
            channel.rejoin_timer.reset()  # would only fire into a closed socket
        if self.connection is not None:
            self.connection.ended = True
        self.teardown(callback, code, reason or "")

    async def wait_open(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the connection is open."""
        await self._wait_until(self.is_connected, timeout, "open")

    async def wait_closed(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the socket is closed and every transport it opened has finished."""
        async def closed() -> None:
            await self._wait_until(lambda: self.connection_state == "closed", None, "closed")
            await asyncio.gather(*(t.wait_closed() for t in list(self._transports)))
        try:
            async with asyncio.timeout(timeout):
                await closed()
        except TimeoutError:
            raise TimeoutError(f"socket not closed within {timeout} s: it is "
                               f"{self.connection_state} (url {self.end_point})") from None
        self._transports = [t for t in self._transports if not t.done]

    async def __aenter__(self) -> Socket:
        """``async with Socket(url) as sock``: connect and wait (``timeout``) until open."""
        self.connect()
        await self.wait_open(self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Disconnect and wait until every transport has finished."""
        self.disconnect()
        await self.wait_closed(self.timeout)

    def channel(self, topic: str, params: dict | Callable[[], dict] | None = None) -> Channel:
        """A new Channel for ``topic``, registered with this socket (not joined yet)."""
        channel = self.channel_class(topic, params, self)
        self.channels.append(channel)
        return channel

    def on_open(self, callback: Callable[[], object]) -> str:
        """Call ``callback()`` after every open; returns a ref for ``off``."""
        return self._register("open", adapt(callback, 0))

    def on_close(self, callback: Callable[[int, str], object]) -> str:
        """Call ``callback(code, reason)`` on every transport close."""
        return self._register("close", adapt(callback, 2))

    def on_error(self, callback: Callable[[BaseException], object]) -> str:
        """Call ``callback(exc, transport, established_connections)`` on transport errors."""
        return self._register("error", adapt(callback, 3))

    def on_message(self, callback: Callable[[Message], object]) -> str:
        """Call ``callback(message)`` for every decoded incoming message."""
        return self._register("message", adapt(callback, 1))

    def off(self, refs: str | list[str]) -> None:
        """Remove the callbacks registered under ``refs``."""
        refs = [refs] if isinstance(refs, str) else list(refs)
        for key, entries in self._callbacks.items():
            self._callbacks[key] = [(ref, cb) for ref, cb in entries if ref not in refs]

    def on_event(self, callback: Callable[[ClientEvent], object]) -> int:
        """Call ``callback(ClientEvent)`` for every event on the stream; returns a ref."""
        return self.events.subscribe(callback)

    def off_event(self, ref: int) -> None:
        """Stop an ``on_event`` subscription."""
        self.events.unsubscribe(ref)

    def make_ref(self) -> str:
        """The next ref of this socket's counter, as a string."""
        self.ref += 1
        return str(self.ref)

    def push(self, message: Message, channel: Channel | None = None) -> None:
        """Send now if open, else keep it for the next open."""
        if self.is_connected():
            self.send(message, channel)
        else:
            self.events.emit("=", "buffered", f"{message.topic} {message.event} "
                             f"({message.join_ref}, {message.ref}) buffered until open",
                             message=message)
            self.send_buffer.append((message, channel))

    def rejoin_channel(self, channel: Channel) -> None:
        """Hook: rejoin an errored channel (NaiveSocket overrides it to show what breaks)."""
        channel.rejoin()

    def remove(self, channel: Channel) -> None:
        """Forget a closed channel and its socket callbacks."""
        self.off(channel._state_change_refs)
        self.channels = [c for c in self.channels if c is not channel]

    def leave_open_topic(self, topic: str) -> None:
        """Leave another channel object joined or joining on ``topic`` (duplicate topic)."""
        for channel in self.channels:
            if channel.topic == topic and channel.state.value in ("joined", "joining"):
                self.events.emit("=", "duplicate_topic", f"leaving duplicate topic {topic}",
                                 topic=topic)
                channel.leave()
                return

    # --- sending -----------------------------------------------------------------------

    def send(self, message: Message, channel: Channel | None = None) -> None:
        """Encode and hand one message to the current transport."""
        connection = self.connection
        if connection is None:
            return
        if channel is not None and message.event == PHX_JOIN:
            connection.joins[channel] = message.join_ref
        if not connection.is_open():
            return
        if message.event != PHX_LEAVE and self.is_outdated(message, channel):
            return
        try:
            frame = self.serializer.encode_client(message)
        except ProtocolError as exc:
            self.events.emit("!", "bad_payload", f"{describe(message)} not sent: {exc}",
                             message=message)
            return
        connection.transport.send(frame)
        heartbeat = message.topic == PHOENIX_TOPIC and message.event == HEARTBEAT
        self.events.emit("%" if heartbeat else ">", "sent", lambda: describe(message), frame=frame,
                         message=message)

    def is_outdated(self, message: Message, channel: Channel | None) -> bool:
        """A frame of a channel that closed or rejoined since it was made."""
        return channel is not None and (message.join_ref != channel.join_ref
                                        or channel.state.value == "closed")

    def flush_send_buffer(self) -> None:
        """Send what was pushed while closed, in order, minus outdated frames (1.8.16)."""
        if self.is_connected() and self.send_buffer:
            buffered, self.send_buffer = self.send_buffer, []
            for message, channel in buffered:
                if self.is_outdated(message, channel):
                    self.events.emit("=", "dropped", f"{describe(message)} outdated, not sent",
                                     message=message)
                else:
                    self.send(message, channel)

    # --- internals --------------------------------------------------------------------

    def _register(self, kind: str, callback: Callable[..., object]) -> str:
        ref = self.make_ref()
        self._callbacks[kind].append((ref, callback))
        return ref

    def _run_callbacks(self, kind: str, *args: Any) -> None:
        for _ref, callback in list(self._callbacks[kind]):
            self.events.guard(f"socket on_{kind}", callback, *args)

    def _note_state(self) -> None:
        state = self.connection_state
        if state != self._last_state:
            old, self._last_state = self._last_state, state
            self.events.emit("=", "socket_state", f"socket {old} -> {state}", old=old, new=state)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float | None,  # noqa: ASYNC109
                          what: str) -> None:
        if predicate():
            return
        entry = (predicate, running_loop().create_future())
        self._waiters.append(entry)
        try:
            # On timeout the cancellation reaches the awaited future and cancels it, as
            # wait_for did; _note_state skips done futures, and finally drops the entry.
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            raise TimeoutError(f"socket not {what} within {timeout} s: it is "
                               f"{self.connection_state} (url {self.end_point})") from None
        finally:
            self._waiters.remove(entry)
