"""The client's event stream: one structured record per thing worth seeing, also logged.

Theory of operation
-------------------
Everything the client does that a learner, a panel or a test may want to see becomes a
:class:`ClientEvent` ``(time, prefix, kind, text, data)``: state changes of the socket and of
each channel, every frame sent and received, heartbeats, timeouts, closes and errors.  The
prefix is the house log alphabet:

    >  sent        <  received       =  state change (also: buffered, scheduled)
    %  heartbeat   x  closed         -  timeout          !  error

The same record goes to ``logging`` (one line starting with the prefix, on the logger of the
module the event comes from: ``mini_server.client.socket``, ``.channel``, ``.push``, ...; all
children of ``mini_server.client``) and to every subscriber registered with ``on_event``.
``time`` is the loop's clock (``loop.time()``), so a test on a virtual-time loop sees exact
times.

Text is **lazy** and **redacted**.  ``emit`` may be given a function instead of a string
(the frame events do: formatting a 50 KB payload costs more than receiving it), and
``event.text`` calls it the first time someone reads it, then keeps the result.  So a frame
is put into words only when its logger is enabled at the event's level or a subscriber
reads ``text`` (a panel does; :class:`EventLog` does not).  The words pass through the
course's redaction rule (``mini_server.redaction``): payloads through :func:`describe`, the
connect URL's query string through ``redact_url``.  ``data`` keeps the raw objects (the
message, the frame, the URL) for tests and code; it is never shown as it is.

User callbacks never kill the client: :meth:`EventStream.guard` runs one, and if it raises,
the exception is logged with ``!`` and surfaced as a ``callback_error`` event.  A subscriber
that raises is reported the same way (but not to itself, to avoid a loop).

:class:`EventLog` keeps a socket's events in a list and lets a notebook or a test await the
first one that matches, instead of sleeping and hoping.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from ..redaction import redact

__all__ = ["PREFIXES", "ClientEvent", "EventLog", "EventStream", "adapt", "describe"]

logger = logging.getLogger(__name__)

#: An event's text, or a function that makes it when someone first reads it.
Text = str | Callable[[], str]

# Which module an event kind comes from, so each module logs on its own logger.
_SOURCES = {
    "channel_state": "channel", "rejoin_scheduled": "channel", "join_timeout": "channel",
    "dropped": "channel", "push_timeout": "push", "naive": "naive", "callback_error": "events",
}
_LOGGERS = {name: logging.getLogger(f"mini_server.client.{name}")
            for name in ("socket", "channel", "push", "naive", "events")}

PREFIXES = {
    ">": "sent",
    "<": "received",
    "=": "state change",
    "%": "heartbeat",
    "x": "closed",
    "-": "timeout",
    "!": "error",
}

# Frames are DEBUG; state changes, closes, timeouts and transport errors (expected during
# an outage, shown by the panels) are INFO; frames we could not read or write are WARNING.
_LEVELS = {"!": logging.INFO, "x": logging.INFO, "-": logging.INFO, "=": logging.INFO}
_WARNINGS = frozenset({"bad_frame", "bad_payload"})


class ClientEvent:
    """One thing the client did or saw; ``time`` is the event loop's clock.

    ``text`` is built on first read (a frame's payload is formatted and redacted only when a
    log handler or a listener wants the line), then kept.
    """

    __slots__ = ("_text", "data", "kind", "prefix", "time")

    def __init__(self, time: float, prefix: str, kind: str, text: Text,
                 data: dict[str, Any] | None = None) -> None:
        self.time, self.prefix, self.kind = time, prefix, kind
        self._text = text
        self.data: dict[str, Any] = {} if data is None else data

    @property
    def text(self) -> str:
        """The event in words (redacted), built the first time someone reads it."""
        text = self._text
        if not isinstance(text, str):
            text = self._text = text()
        return text

    def __str__(self) -> str:
        return f"{self.time:10.3f} {self.prefix} {self.text}"

    def __repr__(self) -> str:
        return (f"ClientEvent(time={self.time!r}, prefix={self.prefix!r}, kind={self.kind!r}, "
                f"text={self.text!r})")


class EventStream:
    """Fan-out of ClientEvents to subscribers and to logging."""

    def __init__(self, name: str = "socket") -> None:
        self.name = name
        self._subscribers: dict[int, Callable[[ClientEvent], object]] = {}
        self._next_ref = 0

    def subscribe(self, callback: Callable[[ClientEvent], object]) -> int:
        """Call ``callback(event)`` for every future event; returns a ref for unsubscribe."""
        self._next_ref += 1
        self._subscribers[self._next_ref] = callback
        return self._next_ref

    def unsubscribe(self, ref: int) -> None:
        """Stop calling the subscriber registered under ``ref``."""
        self._subscribers.pop(ref, None)

    def emit(self, prefix: str, kind: str, text: Text, **data: Any) -> ClientEvent:
        """Record one event: log it and hand it to every subscriber.

        ``text`` may be a function returning the text: it is then called only if the
        event's logger is enabled at its level or a subscriber reads ``event.text``.
        """
        if prefix not in PREFIXES:
            raise ValueError(f"unknown log prefix {prefix!r}; use one of {''.join(PREFIXES)}")
        event = ClientEvent(_now(), prefix, kind, text, data)
        level = logging.WARNING if kind in _WARNINGS else _LEVELS.get(prefix, logging.DEBUG)
        source = _LOGGERS[_SOURCES.get(kind, "socket")]
        if source.isEnabledFor(level):
            source.log(level, "%s %s: %s", prefix, self.name, event.text)
        for ref, callback in list(self._subscribers.items()):
            try:
                callback(event)
            except Exception as exc:
                logger.exception("! %s event subscriber %r raised", self.name, callback)
                if kind != "callback_error":
                    self._report(exc, f"event subscriber {ref}", skip=ref)
        return event

    def guard(self, where: str, callback: Callable[..., object], *args: Any) -> Any:
        """Run a user callback; an exception is logged and reported, never raised."""
        try:
            return callback(*args)
        except Exception as exc:
            logger.exception("! %s: callback in %s raised", self.name, where)
            self._report(exc, where)
            return None

    def _report(self, exc: BaseException, where: str, skip: int | None = None) -> None:
        event = ClientEvent(
            _now(), "!", "callback_error", f"callback in {where} raised {exc!r}",
            {"where": where, "exception": exc},
        )
        for ref, callback in list(self._subscribers.items()):
            if ref == skip:
                continue
            try:
                callback(event)
            except Exception:
                logger.exception("! %s event subscriber %r raised", self.name, callback)


def _now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def adapt(callback: Callable[..., object], max_args: int) -> Callable[..., object]:
    """Wrap ``callback`` so it receives only as many leading arguments as it accepts."""
    # phoenix.js calls bindings with (payload, ref, join_ref) and JavaScript ignores extra
    # arguments, so cb(payload) is the common form; Python would raise, so we count the
    # callback's positional parameters once, at registration.
    if not callable(callback):
        raise TypeError(f"expected a callable, got {callback!r}")
    try:
        params = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: pass everything
        return callback
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return callback
    accepted = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    if accepted >= max_args:
        return callback

    def fitted(*args: object) -> object:
        return callback(*args[:accepted])

    fitted.__wrapped__ = callback  # type: ignore[attr-defined]
    return fitted


def describe(msg: Any) -> str:
    """One log line for a Message: ``topic event (join_ref, ref) payload``, secrets redacted."""
    return f"{msg.topic} {msg.event} ({msg.join_ref}, {msg.ref}) {redact(msg.payload)!r}"


class EventLog:
    """Every ClientEvent of a socket, in order, with an awaitable search (no sleeps)."""

    def __init__(self, *sockets: Any) -> None:
        self.events: list[ClientEvent] = []
        self._new = asyncio.Event()
        for socket in sockets:
            self.watch(socket)

    def watch(self, socket: Any) -> None:
        """Record ``socket``'s events too (one log can follow several sockets)."""
        socket.on_event(self._on_event)

    def _on_event(self, event: ClientEvent) -> None:
        self.events.append(event)
        self._new.set()

    def __len__(self) -> int:
        return len(self.events)

    def of(self, kind: str, **data: Any) -> list[ClientEvent]:
        """Events of ``kind`` whose data contains every given key/value."""
        return [e for e in self.events if e.kind == kind
                and all(e.data.get(k) == v for k, v in data.items())]

    def sent(self, event: str | None = None, since: int = 0) -> list[Any]:
        """Messages the client put on the wire (heartbeats included), optionally one event."""
        return [e.data["message"] for e in self.events[since:] if e.kind == "sent"
                and (event is None or e.data["message"].event == event)]

    async def wait(self, predicate: Callable[[ClientEvent], bool],
                   timeout: float = 3.0, since: int = 0) -> ClientEvent:  # noqa: ASYNC109
        """The first event at index >= ``since`` matching ``predicate`` (waits for it)."""
        async def scan() -> ClientEvent:
            i = since
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return self.events[i]
                    i += 1
                self._new.clear()
                await self._new.wait()
        async with asyncio.timeout(timeout):
            return await scan()

    async def until(self, condition: Callable[[], object],
                    timeout: float = 3.0) -> None:  # noqa: ASYNC109
        """Wait until ``condition()`` holds, checking it now and after every new event."""
        async def check() -> None:
            while not condition():
                self._new.clear()
                await self._new.wait()
        async with asyncio.timeout(timeout):
            await check()

    async def wait_kind(self, kind: str, timeout: float = 3.0,  # noqa: ASYNC109
                        since: int = 0, **data: Any) -> ClientEvent:
        """The first event of ``kind`` (with matching data) at index >= ``since``."""
        return await self.wait(lambda e: e.kind == kind and all(
            e.data.get(k) == v for k, v in data.items()), timeout, since)
