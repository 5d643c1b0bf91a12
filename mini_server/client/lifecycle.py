"""What the socket does when its connection opens, closes, fails or goes silent (socket.js).

Theory of operation
-------------------
:class:`ConnectionLifecycle` is the half of phoenix.js ``Socket`` that reacts to the
transport; :class:`~.socket.Socket` (the public half) inherits it.  The rules, in order:

* ``transport_connect``: a new :class:`~.transport.Connection` becomes current (params
  re-evaluated); channels joined over a still-open previous one are errored.
* ``on_conn_open``: flush the send buffer, reset the reconnect timer, arm the heartbeat, then
  run the ``on_open`` callbacks -- each channel's rejoins it at once if it is errored.
* ``on_conn_close`` is **the one place that classifies a close**: if we did not close it
  ourselves (disconnect, heartbeat timeout) -- whatever the code, as in 1.8.16, because
  servers, proxies and load balancers also close with 1000 -- error the channels
  (``connection_closed``) and schedule a reconnect after ``reconnect_after(tries)``.
* ``on_conn_error`` (refused, HTTP 403, handshake timeout): ``on_error`` callbacks, then the
  channels are errored with ``connection_error``; the close that follows reconnects.
* Heartbeat: one interval after open send a heartbeat and start a timeout of one more
  interval; only the reply with that ref re-arms it.  No reply: close 1000 "heartbeat
  timeout", error the channels (``heartbeat_timeout``), tear down, reconnect.
* ``teardown`` closes a connection and waits for it like phoenix.js: polls at 150 ms x tries
  and gives up after 1.5 s (then drops the TCP connection, so nothing lingers).
* ``trigger_chan_error`` errors only the channels whose join the failing connection carried
  and that are not already errored, leaving or closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol import (
    DEFAULT_TIMEOUT,
    HEARTBEAT,
    PHOENIX_TOPIC,
    PHX_ERROR,
    CloseCode,
    Frame,
    Message,
    ProtocolError,
    auth_token_subprotocols,
)
from ..redaction import redact_text, redact_url
from .events import EventStream, describe
from .timer import Timer, running_loop
from .transport import Connection, ReadyState

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["ConnectionLifecycle"]


class ConnectionLifecycle:
    """Transport event handlers, heartbeat and teardown of a Socket (mixed into Socket)."""

    # set by Socket.__init__; Socket also provides endpoint_url, push, make_ref,
    # is_connected, flush_send_buffer, _note_state and _run_callbacks
    transport: Callable[..., Any]
    timeout: float
    serializer: Any
    events: EventStream
    connection: Connection | None
    channels: list[Channel]
    reconnect_timer: Timer
    heartbeat_interval: float
    close_was_clean: bool
    connect_clock: int
    established_connections: int
    pending_heartbeat_ref: str | None
    last_heartbeat_rtt: float | None
    _heartbeat_sent_at: float
    _heartbeat_timer: asyncio.TimerHandle | None
    _heartbeat_timeout_timer: asyncio.TimerHandle | None
    _transports: list[Any]

    def transport_connect(self) -> None:
        """Open a new transport and make it the current connection."""
        previous = self.connection
        self.connect_clock += 1
        self.close_was_clean = False
        self.reconnect_timer.cancel()  # keeps tries: they reset only once a connection opens
        url = self.endpoint_url()
        # phoenix.js sets no handshake timeout (a browser WebSocket has none). We bound it so a
        # connect into a black hole cannot hang forever, but never below Phoenix's 10 s: with
        # short teaching timers a loaded server must not be abandoned mid-handshake.
        extra = {} if self.auth_token is None else {
            "subprotocols": auth_token_subprotocols(self.auth_token())}
        transport = self.transport(url, open_timeout=max(self.timeout, DEFAULT_TIMEOUT), **extra)
        self._transports = [t for t in self._transports if not t.done]
        self._transports.append(transport)
        self.connection = Connection(self, transport)
        self.events.emit("=", "connect", lambda: f"connecting to {redact_url(url)}", url=url)
        self._note_state()
        if previous is not None and previous.is_open():
            self.trigger_chan_error("connection_closed", previous)

    def on_conn_open(self) -> None:
        """The transport opened: flush, reset reconnect, arm heartbeat, on_open callbacks."""
        self.close_was_clean = False
        self.established_connections += 1
        self._note_state()
        self.flush_send_buffer()
        self.reconnect_timer.reset()
        self.reset_heartbeat()
        self._run_callbacks("open")

    def on_conn_close(self, code: int, reason: str) -> None:
        """The transport closed: error channels, reconnect unless we closed it."""
        connection = self.connection
        self.clear_heartbeats()
        closed_by_us = connection is not None and connection.closing
        self.events.emit("x", "close", f"closed {code} {reason!r}"
                         f"{' (by us)' if closed_by_us or self.close_was_clean else ''}",
                         code=code, reason=reason, by_us=closed_by_us or self.close_was_clean)
        self.trigger_chan_error("connection_closed", connection)
        if self.still_uses(connection) and not closed_by_us and not self.close_was_clean:
            self._schedule_reconnect()
        self._note_state()
        self._run_callbacks("close", code, reason)

    def on_conn_error(self, exc: BaseException) -> None:
        """A connection attempt failed (refused, HTTP 403, timeout)."""
        connection = self.connection
        self.events.emit("!", "error", lambda: f"transport error: {redact_text(str(exc))}",
                         exception=exc)
        self._run_callbacks("error", exc, self.transport, self.established_connections)
        self.trigger_chan_error("connection_error", connection)

    def on_conn_message(self, raw: Frame) -> None:
        """Decode, answer heartbeat bookkeeping, dispatch to member channels, on_message."""
        try:
            msg = self.serializer.decode_client(raw)
        except ProtocolError as exc:
            self.events.emit("!", "bad_frame", f"undecodable frame dropped: {exc}", frame=raw)
            return
        heartbeat = msg.ref is not None and msg.ref == self.pending_heartbeat_ref
        self.events.emit("%" if heartbeat else "<", "received", lambda: describe(msg), frame=raw,
                         message=msg)
        if heartbeat:
            self.last_heartbeat_rtt = running_loop().time() - self._heartbeat_sent_at
            self.clear_heartbeats()
            self._heartbeat_timer = running_loop().call_later(
                self.heartbeat_interval, self._guarded, "heartbeat", self.send_heartbeat)
        for channel in list(self.channels):
            if channel.is_member(msg.topic, msg.event, msg.payload, msg.join_ref):
                self.events.guard(f"{channel.topic} {msg.event}", channel.trigger,
                                  msg.event, msg.payload, msg.ref, msg.join_ref)
        self._run_callbacks("message", msg)

    def teardown(self, callback: Callable[[], object] | None = None, code: int | None = None,
                 reason: str = "") -> None:
        """Close the current connection, error its channels, then call back once closed."""
        connection = self.connection
        if connection is None:
            if callback is not None:
                callback()
            return
        self.clear_heartbeats()

        def closed() -> None:
            if connection.transport.ready_state != ReadyState.CLOSED:
                # phoenix.js stops waiting here and lets the old socket linger; we also drop
                # its TCP connection so no task outlives a dead link (invisible to the server
                # beyond the missing close handshake, which a dead link could not carry anyway)
                connection.transport.abort()
            if self.connection is connection:
                self.connection = None
            self._note_state()
            if callback is not None:
                callback()

        def buffer_done() -> None:
            if not connection.closing:
                was_opened = not connection.is_connecting()
                connection.close(code, reason)
                self._note_state()
                if was_opened:
                    self.trigger_chan_error("connection_closed", connection)
            self._wait_for(lambda: connection.transport.ready_state == ReadyState.CLOSED, closed)

        self._wait_for(lambda: connection.transport.buffered_amount == 0
                       or not connection.is_open(), buffer_done)

    def teardown_and_reconnect(self, reconnect: Callable[[], object]) -> None:
        """Teardown, then ``reconnect()`` unless a connect/disconnect happened meanwhile."""
        connection, clock = self.connection, self.connect_clock

        def then() -> None:
            if clock != self.connect_clock or (connection is not None and connection.ended):
                return
            reconnect()
        self.teardown(then)

    def still_uses(self, connection: Connection | None) -> bool:
        """The connection is still current and the socket has not ended it."""
        return self.connection is connection and not (connection is not None and connection.ended)

    def trigger_chan_error(self, reason: str, connection: Connection | None = None) -> None:
        """Error the channels whose join this connection carried (phoenix.js triggerChanError)."""
        connection = self.connection if connection is None else connection
        errored_before = False
        if connection is not None and not connection.is_open():
            errored_before = connection.channels_errored
            connection.channels_errored = True
        for channel, join_ref in [(ch, ch.join_ref) for ch in self.channels]:
            if channel.join_ref != join_ref:
                continue  # an earlier callback already rejoined it
            if (connection is not None and (errored_before or self.connection is not connection)
                    and not connection.carried(channel, join_ref)):
                continue
            if channel.state.value not in ("errored", "leaving", "closed"):
                self.events.guard(f"{channel.topic} phx_error", channel.trigger, PHX_ERROR,
                                  {"source": "transport", "reason": reason})

    # --- heartbeat ------------------------------------------------------------------------

    def clear_heartbeats(self) -> None:
        """Stop both heartbeat timers; a late reply must not restart them."""
        for handle in (self._heartbeat_timer, self._heartbeat_timeout_timer):
            if handle is not None:
                handle.cancel()
        self._heartbeat_timer = self._heartbeat_timeout_timer = None
        self.pending_heartbeat_ref = None

    def reset_heartbeat(self) -> None:
        """Arm the first heartbeat of a connection."""
        self.clear_heartbeats()
        self._heartbeat_timer = running_loop().call_later(
            self.heartbeat_interval, self._guarded, "heartbeat", self.send_heartbeat)

    def send_heartbeat(self) -> None:
        """Send a heartbeat and give it one interval to be answered."""
        self._heartbeat_timer = None
        if self.pending_heartbeat_ref and not self.is_connected():
            return
        self.pending_heartbeat_ref = self.make_ref()
        self._heartbeat_sent_at = running_loop().time()
        self.push(Message(PHOENIX_TOPIC, HEARTBEAT, {}, self.pending_heartbeat_ref))
        self._heartbeat_timeout_timer = running_loop().call_later(
            self.heartbeat_interval, self._guarded, "heartbeat timeout", self.heartbeat_timeout)

    def heartbeat_timeout(self) -> None:
        """No heartbeat reply in time: close 1000, error channels, reconnect."""
        self._heartbeat_timeout_timer = None
        if not self.pending_heartbeat_ref:
            return
        connection = self.connection
        self.events.emit("-", "heartbeat_timeout", f"heartbeat ({self.pending_heartbeat_ref}) "
                         f"not answered within {self.heartbeat_interval:g} s: reconnecting",
                         ref=self.pending_heartbeat_ref)
        self.pending_heartbeat_ref = None
        self.close_was_clean = False
        if connection is not None:
            connection.close(CloseCode.NORMAL, "heartbeat timeout")
            self._note_state()
        if not self.still_uses(connection):
            return
        self.trigger_chan_error("heartbeat_timeout")
        if not self.still_uses(connection):
            return
        self.teardown_and_reconnect(self._schedule_reconnect)

    # --- internals --------------------------------------------------------------------

    def _schedule_reconnect(self) -> None:
        delay = self.reconnect_timer.schedule_timeout()
        self.events.emit("=", "reconnect_scheduled", f"reconnect in {delay:g} s "
                         f"(try {self.reconnect_timer.tries + 1})", delay=delay,
                         tries=self.reconnect_timer.tries + 1, at=self.reconnect_timer.when)

    def _guarded(self, where: str, callback: Callable[[], object]) -> None:
        self.events.guard(where, callback)

    def _wait_for(self, done: Callable[[], bool], then: Callable[[], None], tries: int = 1) -> None:
        # phoenix.js waitForBufferDone / waitForSocketClosed: poll at 150 ms * tries, give up
        # on the 5th try (1.5 s in all) and carry on as if it were done.
        if tries == 5 or done():
            then()
            return
        running_loop().call_later(0.15 * tries, self._guarded, "teardown",
                                  lambda: self._wait_for(done, then, tries + 1))
