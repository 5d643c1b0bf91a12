"""The client's transport: a browser-like WebSocket over websockets, one record per connection.

Theory of operation
-------------------
phoenix.js talks to a browser ``WebSocket``: construct it with a URL, it connects on its own
and reports ``onopen``, ``onmessage``, ``onerror``, ``onclose``; ``readyState`` is CONNECTING,
OPEN, CLOSING or CLOSED; ``send()`` never blocks; ``close(code, reason)`` starts the closing
handshake.  :class:`WebSocketTransport` gives the Socket exactly that shape on top of
``websockets.asyncio.client.connect``, so socket.py can follow socket.js line by line:

* one owned task runs the connection: handshake, then a read loop; a second owned task writes
  queued frames in order (``send`` only enqueues, so the event loop is never blocked);
* a failed handshake (refused, HTTP 403, timeout) reports ``onerror(exc)`` then
  ``onclose(1006, "")``, as a browser does;
* ``close()`` queues the close frame behind the frames already sent (no code -> the server
  sees 1005); a close while still connecting abandons the handshake and reports 1006;
* a frame over ``max_frame_size`` (default 1 MiB, as the server's own limit; None: no
  limit) fails the connection with **1009** before it is read into memory: one huge frame
  from a buggy or hostile server cannot exhaust the learner's kernel.  The socket sees
  ``onclose(1009)`` and reconnects, as phoenix.js does after any close it did not ask for;
* websockets' own pings are off (``ping_interval=None``): Phoenix heartbeats are the liveness
  check.  ``close_timeout`` bounds a closing handshake on a dead link, after which the TCP
  connection is aborted and the close reported as 1006.

:class:`Connection` is phoenix.js connection.js: everything that belongs to one transport
instance (joins it carried, whether we closed it, whether its channels were errored).  Its
transport's events reach the socket only while it is the socket's current connection, so a
replaced connection that closes late cannot disturb its successor.

:func:`endpoint_url` builds the URL as phoenix.js does: endpoint + ``/websocket``, the params
serialized like ``Ajax.serialize`` (nested dicts become ``key[sub]=v``), then ``vsn`` last.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..protocol import CloseCode, Frame

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["MAX_FRAME_SIZE", "Connection", "ReadyState", "WebSocketTransport", "endpoint_url"]

logger = logging.getLogger(__name__)

#: The largest frame the client reads: the bundled server's own incoming limit (1 MiB).
MAX_FRAME_SIZE = 1_048_576


class ReadyState(enum.IntEnum):
    """WebSocket readyState values (phoenix.js SOCKET_STATES)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


def _noop(*_args: Any) -> None:
    return None


class WebSocketTransport:
    """A WebSocket with the browser's event-callback shape, run by owned asyncio tasks."""

    def __init__(self, url: str, *, open_timeout: float | None = 10.0,
                 close_timeout: float | None = 1.5,
                 subprotocols: list[str] | None = None,
                 max_frame_size: int | None = MAX_FRAME_SIZE) -> None:
        self.url = url
        self.max_frame_size = max_frame_size  # None: any size (what a browser allows)
        self.subprotocols = subprotocols  # phoenix.js authToken (protocol.auth_token_...)
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.onopen: Callable[[], object] = _noop
        self.onerror: Callable[[BaseException], object] = _noop
        self.onmessage: Callable[[Frame], object] = _noop
        self.onclose: Callable[[int, str], object] = _noop
        self._state = ReadyState.CONNECTING
        self._ws: Any = None
        self._outbox: asyncio.Queue[Frame | tuple[int | None, str]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ws {url}")
        self._task.add_done_callback(self._on_task_done)

    @property
    def ready_state(self) -> ReadyState:
        """CONNECTING, OPEN, CLOSING or CLOSED, as a browser reports it."""
        if self._state == ReadyState.OPEN and self._ws is not None:
            if self._ws.state.name != "OPEN":  # the server started the closing handshake
                return ReadyState.CLOSING
        return self._state

    @property
    def buffered_amount(self) -> int:
        """Frames queued but not yet written, plus bytes in the TCP write buffer."""
        size = self._outbox.qsize()
        if self._ws is not None and self._ws.transport is not None:
            size += self._ws.transport.get_write_buffer_size()
        return size

    def send(self, frame: Frame) -> None:
        """Queue one frame; silently dropped unless OPEN (browsers drop them too)."""
        if self.ready_state == ReadyState.OPEN:
            self._outbox.put_nowait(frame)

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake after the queued frames; abandon a pending handshake."""
        if self._state == ReadyState.CONNECTING:
            self._state = ReadyState.CLOSING
            self._task.cancel()
        elif self._state == ReadyState.OPEN:
            self._state = ReadyState.CLOSING
            self._outbox.put_nowait((code, reason))

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame."""
        if self._ws is not None and self._ws.transport is not None:
            self._ws.transport.abort()
        elif not self._task.done():
            self._task.cancel()

    async def wait_closed(self) -> None:
        """Return once the transport's tasks have finished (never raises their outcome)."""
        await asyncio.wait({self._task})

    @property
    def done(self) -> bool:
        """True once the transport is closed and its tasks finished."""
        return self._task.done()

    async def _run(self) -> None:
        try:
            await self._connect_and_read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the socket waiting forever
            logger.exception("! transport for %s failed", self.url)
            if self._state != ReadyState.CLOSED:
                self._finish(exc, CloseCode.ABNORMAL, "")

    async def _connect_and_read(self) -> None:
        try:
            ws = await connect(self.url, ping_interval=None, open_timeout=self.open_timeout,
                               close_timeout=self.close_timeout, proxy=None, compression=None,
                               max_size=self.max_frame_size, subprotocols=self.subprotocols)
        except asyncio.CancelledError:
            self._finish(None, CloseCode.ABNORMAL, "")  # closed while connecting
            return
        except Exception as exc:  # refused, HTTP 403, handshake timeout, DNS ...
            self._finish(exc, CloseCode.ABNORMAL, "")
            return
        self._ws = ws
        if self._state == ReadyState.CONNECTING:
            self._state = ReadyState.OPEN
            self.onopen()
        else:  # close() raced the end of the handshake: finish it now
            self._outbox.put_nowait((None, ""))
        writer = asyncio.get_running_loop().create_task(self._write(ws),
                                                        name=f"ws writer {self.url}")
        try:
            async for frame in ws:
                if self._state == ReadyState.OPEN:
                    self.onmessage(frame)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        code = ws.close_code if ws.close_code is not None else CloseCode.ABNORMAL
        sent = ws.protocol.close_sent
        if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG:
            # We failed the connection (a frame over max_frame_size); whatever the server
            # answered, report our code, as a browser reports 1009 for the same reason.
            code = CloseCode.MESSAGE_TOO_BIG
        self._finish(None, code, ws.close_reason or "")

    async def _write(self, ws: Any) -> None:
        while True:
            item = await self._outbox.get()
            try:
                if isinstance(item, tuple):
                    code, reason = item
                    await ws.close(code, reason)  # code None: an empty close frame (1005)
                    return
                await ws.send(item)
            except ConnectionClosed:
                return

    def _on_task_done(self, _task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step (close() or abort() in the same loop
        # iteration as the constructor) never ran _run, so nothing reported the close; a
        # browser always fires onclose (1006) after close() on a connecting WebSocket.
        if self._state != ReadyState.CLOSED:
            self._finish(None, CloseCode.ABNORMAL, "")

    def _finish(self, exc: BaseException | None, code: int, reason: str) -> None:
        self._state = ReadyState.CLOSED
        if exc is not None:
            self.onerror(exc)
        self.onclose(int(code), reason)


class Connection:
    """One transport instance and what belongs to it (phoenix.js connection.js)."""

    def __init__(self, socket: Socket, transport: Any) -> None:
        self.socket = socket
        self.transport = transport
        self.joins: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()
        self.closing = False  # we closed it (disconnect, heartbeat timeout, teardown)
        self.ended = False  # the socket is done with it; connect() makes a new one
        self.channels_errored = False
        self.close_handled = False
        guard = socket.events.guard
        transport.onopen = lambda: self._current() and guard("on_conn_open", socket.on_conn_open)
        transport.onerror = lambda exc: self._current() and guard(
            "on_conn_error", socket.on_conn_error, exc)
        transport.onmessage = lambda raw: self._current() and guard(
            "on_conn_message", socket.on_conn_message, raw)
        transport.onclose = self._on_close

    def _current(self) -> bool:
        return self.socket.connection is self

    def _on_close(self, code: int, reason: str) -> None:
        if self._current() and not self.close_handled:
            self.close_handled = True
            self.socket.events.guard("on_conn_close", self.socket.on_conn_close, code, reason)
        self.socket._note_state()

    def is_open(self) -> bool:
        """True while the transport is OPEN."""
        return self.transport.ready_state == ReadyState.OPEN

    def is_connecting(self) -> bool:
        """True while the handshake is in progress."""
        return self.transport.ready_state == ReadyState.CONNECTING

    def carried(self, channel: Any, join_ref: str | None) -> bool:
        """Whether the channel's current join was sent over this connection."""
        return channel in self.joins and self.joins[channel] == join_ref

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Close the transport; its close event then only confirms our close."""
        self.closing = True
        self.transport.onerror = _noop  # closing a connecting transport is not an error
        self.transport.close(code, reason)


def endpoint_url(end_point: str, params: Mapping[str, Any], vsn: str) -> str:
    """The WebSocket URL phoenix.js would open: serialized params, then vsn last."""
    return _append_params(_append_params(end_point, params), {"vsn": vsn})


def _append_params(url: str, params: Mapping[str, Any]) -> str:
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{_serialize(params)}"


def _serialize(obj: Mapping[str, Any] | list | tuple, parent: str | None = None) -> str:
    items = obj.items() if isinstance(obj, Mapping) else enumerate(obj)
    parts = []
    for key, value in items:
        param_key = f"{parent}[{key}]" if parent else str(key)
        if value is None or isinstance(value, (Mapping, list, tuple)):
            # JS typeof null === "object": it recurses and contributes nothing
            parts.append(_serialize(value or {}, param_key))
        else:
            parts.append(f"{_uri_component(param_key)}={_uri_component(_js_string(value))}")
    return "&".join(parts)


def _js_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _uri_component(text: str) -> str:
    return quote(text, safe="-_.!~*'()")  # exactly encodeURIComponent's unreserved set
