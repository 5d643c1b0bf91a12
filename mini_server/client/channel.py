"""A channel on the client: states, join and rejoin, push buffer, bindings (phoenix.js channel.js).

Theory of operation
-------------------
A channel is *server state bound to one connection*: when the connection goes, the server's
channel process goes with it, so the client must join again, with a new ``join_ref``.

States (states.py) change only through :meth:`Channel._transition`, which looks the pair
``(state, event)`` up in ``TRANSITIONS``, raises ``IllegalTransition`` on a pair that is not
there, and reports the change on the event stream.

* ``join()`` (once per object) and every rejoin: leave another object joined/joining on the
  same topic, go ``joining``, resend the join push with a fresh ref (the new ``join_ref``),
  its payload re-evaluated when ``params`` is a callable.
* join ok -> ``joined``: rejoin timer reset, buffered pushes sent in order.
* join error / join timeout / ``phx_error`` -> ``errored``; rejoin after ``rejoin_after(tries)``
  while connected (a refused join is retried forever).  A join timeout first sends
  ``phx_leave`` with the old join_ref.
* the socket closing or failing errors every channel that is not errored/leaving/closed;
  the next socket open rejoins errored channels at once (rejoin timer reset).
* ``phx_close`` -> ``closed``, removed from the socket, never rejoined.
* ``leave()`` -> ``leaving``, sends ``phx_leave``, and (as in 1.8.x, where the channel can no
  longer push once leaving) completes locally at once -> ``closed``.

Incoming messages reach the channel only if their join_ref is null or the current one
(:meth:`is_member`): replies, ``phx_error`` and ``phx_close`` of an old incarnation are dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol import PHX_CLOSE, PHX_ERROR, PHX_JOIN, PHX_LEAVE, PHX_REPLY, Message
from .events import adapt
from .push import Push
from .states import TRANSITIONS, ChannelState, IllegalTransition
from .timer import Timer, running_loop

if TYPE_CHECKING:
    from .socket import Socket

__all__ = ["TRANSITIONS", "Channel", "ChannelState", "IllegalTransition"]


class Channel:
    """One topic joined over a Socket, with phoenix.js 1.8.16 semantics."""

    def __init__(self, topic: str, params: Any, socket: Socket) -> None:
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"a channel topic is a non-empty string like 'room:1', got {topic!r}")
        if params is not None and not callable(params) and not isinstance(params, dict):
            raise TypeError(f"channel params must be a dict or a callable, got {params!r}")
        self.topic = topic
        self.socket = socket
        self.params: Callable[[], Any] = params if callable(params) else (lambda: params or {})
        self.timeout = socket.timeout
        self.joined_once = False
        self.push_buffer: list[Push] = []
        self._state = ChannelState.CLOSED
        self._bindings: list[tuple[str, int, Callable[..., object]]] = []
        self._binding_ref = 0
        self._reply_waiters: dict[str, Push] = {}
        self._state_waiters: list[tuple[ChannelState, asyncio.Future[None]]] = []
        guard = socket.events.guard
        self.join_push = Push(self, PHX_JOIN, self.params, self.timeout)
        self.rejoin_timer = Timer(lambda: guard(f"rejoin {topic}", self._on_rejoin_timer),
                                  socket.rejoin_after)
        self._state_change_refs = [
            socket.on_error(lambda: self.rejoin_timer.reset()),
            socket.on_open(self._on_socket_open),
        ]
        self.join_push.receive("ok", self._on_join_ok)
        self.join_push.receive("error", self._on_join_error)
        self.join_push.receive("timeout", self._on_join_timeout)

    def __repr__(self) -> str:
        return f"<Channel {self.topic} {self._state.value} join_ref={self.join_ref}>"

    # --- public API -------------------------------------------------------------------

    @property
    def state(self) -> ChannelState:
        """closed, joining, joined, errored or leaving."""
        return self._state

    @property
    def join_ref(self) -> str | None:
        """The ref of the current join push: the server knows this incarnation by it."""
        return self.join_push.ref

    def join(self, timeout: float | None = None) -> Push:
        """Join the topic (once per Channel object); returns the join Push."""
        if self.joined_once:
            raise RuntimeError(
                f"tried to join {self.topic!r} twice: join() can only be called once per "
                "channel object (it rejoins by itself); for a fresh join create another with "
                "socket.channel(topic)")
        self.timeout = self.timeout if timeout is None else timeout
        self.joined_once = True
        self.rejoin()
        return self.join_push

    def push(self, event: str, payload: Any = None, timeout: float | None = None) -> Push:
        """Send ``event``; buffered (timeout running) until joined. Returns the Push."""
        payload = {} if payload is None else payload
        if not self.joined_once:
            raise RuntimeError(f"tried to push {event!r} to {self.topic!r} before joining: "
                               "call channel.join() first")
        if not isinstance(event, str) or not event:
            raise ValueError(f"an event name is a non-empty string, got {event!r}")
        self.socket.serializer.encode_client(Message(self.topic, event, payload))  # fail now
        push = Push(self, event, lambda: payload, self.timeout if timeout is None else timeout)
        if self.can_push():
            push.send()
        else:
            push.start_timeout()
            self.push_buffer.append(push)
        return push

    def leave(self, timeout: float | None = None) -> Push:
        """Leave the topic: closed at once (1.8.x), phx_leave sent if connected."""
        self.rejoin_timer.reset()
        self.join_push.cancel_timeout()
        self._transition("leave")
        push = Push(self, PHX_LEAVE, dict, self.timeout if timeout is None else timeout)
        push.receive("ok", lambda _resp: self._trigger_close("leave"))
        push.receive("timeout", lambda _resp: self._trigger_close("leave"))
        push.send()
        if not self.can_push():  # always true once leaving: completes locally, now
            push.trigger("ok", {})
        return push

    def on(self, event: str, callback: Callable[..., object]) -> int:
        """Call ``callback(payload, ref, join_ref)`` for ``event``; returns a binding ref."""
        ref = self._binding_ref
        self._binding_ref += 1
        self._bindings.append((event, ref, adapt(callback, 3)))
        return ref

    def off(self, event: str, ref: int | None = None) -> None:
        """Remove one binding (by ref) or every binding for ``event``."""
        self._bindings = [b for b in self._bindings
                          if not (b[0] == event and (ref is None or b[1] == ref))]

    def on_close(self, callback: Callable[[Any], object]) -> int:
        """Call ``callback(reason)`` when the channel closes ("leave" or the phx_close payload)."""
        return self.on(PHX_CLOSE, adapt(callback, 1))

    def on_error(self, callback: Callable[[Any], object]) -> int:
        """Call ``callback(reason)`` when the channel errors (phx_error or transport reason)."""
        return self.on(PHX_ERROR, adapt(callback, 1))

    def on_message(self, event: str, payload: Any, ref: str | None,
                   join_ref: str | None = None) -> Any:
        """Overridable hook: sees every event before the bindings; must return the payload."""
        return payload

    async def wait_state(self, state: ChannelState | str,
                         timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the channel is in ``state``; TimeoutError names the state it is in."""
        state = ChannelState(state)
        if self._state == state:
            return
        future: asyncio.Future[None] = running_loop().create_future()
        entry = (state, future)
        self._state_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(f"channel {self.topic!r} did not become {state.value} within "
                               f"{timeout} s; it is {self._state.value}") from None
        finally:
            if entry in self._state_waiters:
                self._state_waiters.remove(entry)

    async def wait_joined(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the channel is joined."""
        await self.wait_state(ChannelState.JOINED, timeout)

    # --- used by the socket -----------------------------------------------------------

    def can_push(self) -> bool:
        """Connected and joined: pushes go out now instead of into the buffer."""
        return self.socket.is_connected() and self._state == ChannelState.JOINED

    def is_member(self, topic: str, event: str, payload: Any, join_ref: str | None) -> bool:
        """Same topic, and join_ref null or ours; anything else is an old incarnation's."""
        if self.topic != topic:
            return False
        if join_ref and join_ref != self.join_ref:
            current = self.join_ref  # the text is built later, if at all: fix what it says now
            self.socket.events.emit(
                "<", "dropped", lambda: f"{topic} {event} dropped: join_ref {join_ref} is "
                f"outdated (current {current})", topic=topic, event=event, join_ref=join_ref,
                current=self.join_ref)
            return False
        return True

    def rejoin(self, timeout: float | None = None) -> None:
        """Join again with a fresh join_ref (no-op while leaving)."""
        if self._state == ChannelState.LEAVING:
            return
        self.socket.leave_open_topic(self.topic)
        self._transition("join" if self._state == ChannelState.CLOSED else "rejoin")
        self.join_push.resend(self.timeout if timeout is None else timeout)

    def trigger(self, event: str, payload: Any, ref: str | None = None,
                join_ref: str | None = None) -> None:
        """Dispatch an event: internal handling first, then the user's bindings."""
        handled = self.on_message(event, payload, ref, join_ref)
        if payload is not None and handled is None:
            raise RuntimeError("channel on_message hooks must return the payload")
        if event == PHX_CLOSE:
            self._on_close_event()
        elif event == PHX_ERROR:
            self._on_error_event()
        elif event == PHX_REPLY and ref is not None and ref in self._reply_waiters:
            self._reply_waiters[ref]._on_reply(handled)
        guard = self.socket.events.guard
        for bound_event, _ref, callback in list(self._bindings):
            if bound_event == event:
                guard(f"{self.topic} on({event!r})", callback, handled, ref,
                      join_ref or self.join_ref)

    # --- internals ------------------------------------------------------------------------

    def _transition(self, event: str) -> None:
        new = TRANSITIONS.get((self._state, event))
        if new is None:
            raise IllegalTransition(
                f"channel {self.topic!r}: event {event!r} is not allowed in state "
                f"{self._state.value!r} (see ChannelState.diagram())")
        old, self._state = self._state, new
        if old != new:
            self.socket.events.emit(
                "=", "channel_state", f"{self.topic} {old.value} -> {new.value} ({event})",
                topic=self.topic, old=old.value, new=new.value, event=event,
                join_ref=self.join_ref)
        for state, future in list(self._state_waiters):
            if state == new and not future.done():
                future.set_result(None)

    def _schedule_rejoin(self) -> None:
        if self.socket.is_connected():
            delay = self.rejoin_timer.schedule_timeout()
            self.socket.events.emit(
                "=", "rejoin_scheduled", f"{self.topic} rejoin in {delay:g} s "
                f"(try {self.rejoin_timer.tries + 1})", topic=self.topic, delay=delay,
                tries=self.rejoin_timer.tries + 1)

    def _on_rejoin_timer(self) -> None:
        if self.socket.is_connected():
            self.socket.rejoin_channel(self)

    def _on_socket_open(self) -> None:
        self.rejoin_timer.reset()
        if self._state == ChannelState.ERRORED:
            self.socket.rejoin_channel(self)

    def _on_join_ok(self) -> None:
        self._transition("join_ok")
        self.rejoin_timer.reset()
        buffered, self.push_buffer = self.push_buffer, []
        for push in buffered:
            push.send()

    def _on_join_error(self) -> None:
        self._transition("join_error")
        self._schedule_rejoin()

    def _on_join_timeout(self) -> None:
        self.socket.events.emit("-", "join_timeout", f"{self.topic} join ({self.join_ref}) timed "
                                f"out after {self.join_push.timeout:g} s", topic=self.topic,
                                join_ref=self.join_ref)
        Push(self, PHX_LEAVE, dict, self.timeout).send()  # carries the old join_ref
        self._transition("join_timeout")
        self.join_push.reset()
        self._schedule_rejoin()

    def _on_close_event(self) -> None:
        self.rejoin_timer.reset()
        self._transition("close")
        self.socket.remove(self)

    def _on_error_event(self) -> None:
        if self._state == ChannelState.JOINING:
            self.join_push.reset()
        self._transition("error")
        self._schedule_rejoin()

    def _trigger_close(self, reason: Any) -> None:
        self.trigger(PHX_CLOSE, reason)
