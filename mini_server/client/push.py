"""One message a channel sends and waits on: ref, timeout, reply hooks (phoenix.js push.js).

Theory of operation
-------------------
A :class:`Push` is created by ``channel.push()``, ``channel.join()`` and ``channel.leave()``.
Every time it is (re)sent it takes a **fresh ref** from the socket's counter and starts its
timeout, so a push buffered before the join goes out with a newer ref than it was created
with, and every rejoin uses a new ``join_ref`` (the join push's current ref).

The reply comes back as ``phx_reply`` with the same ref; the channel hands it to the push,
which cancels its timeout, remembers ``{status, response}`` and runs the hooks registered
with ``receive(status, cb)`` for that status.  If no reply arrives within ``timeout`` the push
fires ``"timeout"`` instead; a buffered push that timed out is never sent afterwards.

``reset()`` forgets the ref, the reply and the timeout (the join push is reset before each
rejoin); hooks stay, so ``join().receive("ok", cb)`` fires on every successful (re)join.

A Push is also awaitable, for notebooks: ``reply = await push`` returns the next
:class:`Reply` ``(status, response)`` and raises :class:`PushTimeout` on timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocol import Message
from .events import adapt
from .timer import running_loop

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Push", "PushTimeout", "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer to a push: ``status`` ("ok", "error", ...) and ``response``."""

    status: str
    response: Any

    @property
    def ok(self) -> bool:
        """True when the status is "ok"."""
        return self.status == "ok"


class PushTimeout(TimeoutError):
    """No reply arrived for a push within its timeout."""

    def __init__(self, topic: str, event: str, timeout: float) -> None:
        super().__init__(
            f"no reply to {event!r} on {topic!r} within {timeout:g} s: the server answered "
            "noreply, the channel crashed, or the connection is down (try a longer timeout, "
            "or check channel.state and socket.connection_state)"
        )
        self.topic = topic
        self.event = event
        self.timeout = timeout


class Push:
    """A message sent on a channel, with a fresh ref per send, a timeout and reply hooks."""

    def __init__(self, channel: Channel, event: str, payload: Callable[[], Any],
                 timeout: float) -> None:
        self.channel = channel
        self.event = event
        self.payload = payload
        self.timeout = timeout
        self.ref: str | None = None
        self.received_resp: dict[str, Any] | None = None
        self.sent = False
        self._rec_hooks: list[tuple[str, Callable[[Any], object]]] = []
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[Reply]] = []

    def __repr__(self) -> str:
        return f"<Push {self.channel.topic} {self.event} ref={self.ref}>"

    def resend(self, timeout: float) -> None:
        """Forget the previous attempt and send again with a new ref."""
        self.timeout = timeout
        self.reset()
        self.send()

    def send(self) -> None:
        """Send now (or into the socket's buffer); skipped once the push timed out."""
        if self.has_received("timeout"):
            return
        self.start_timeout()
        self.sent = True
        channel = self.channel
        channel.socket.push(
            Message(channel.topic, self.event, self.payload(), self.ref, channel.join_ref),
            channel,
        )

    def receive(self, status: str, callback: Callable[[Any], object]) -> Push:
        """Call ``callback(response)`` when a reply with ``status`` (or "timeout") arrives."""
        callback = adapt(callback, 1)
        if self.has_received(status):
            self.channel.socket.events.guard(f"receive({status!r})", callback,
                                             self.received_resp["response"])
        self._rec_hooks.append((status, callback))
        return self

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self) -> Reply:
        if self.received_resp is None:
            future: asyncio.Future[Reply] = running_loop().create_future()
            self._waiters.append(future)
            try:
                return await future
            finally:
                if future in self._waiters:
                    self._waiters.remove(future)
        return self._result(self.received_resp)

    def has_received(self, status: str) -> bool:
        """True when the current attempt got a reply (or timeout) with that status."""
        return self.received_resp is not None and self.received_resp.get("status") == status

    def reset(self) -> None:
        """Forget ref, reply and timeout of the current attempt; hooks stay."""
        self._cancel_ref_event()
        self.cancel_timeout()  # phoenix.js leaves it to fire into nothing: same effect
        self.ref = None
        self.received_resp = None
        self.sent = False

    def start_timeout(self) -> None:
        """Take a fresh ref, wait for its reply, and start the timeout."""
        self.cancel_timeout()
        self._cancel_ref_event()
        self.ref = self.channel.socket.make_ref()
        self.channel._reply_waiters[self.ref] = self
        self._timeout_handle = running_loop().call_later(self.timeout, self._on_timeout)

    def cancel_timeout(self) -> None:
        """Stop the timeout timer."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
            self._timeout_handle = None

    def trigger(self, status: str, response: Any) -> None:
        """Act as if a reply with ``status`` arrived (phoenix.js uses it for leave and timeout)."""
        if self.ref is not None and self.channel._reply_waiters.get(self.ref) is self:
            self._on_reply({"status": status, "response": response})

    def _on_timeout(self) -> None:
        self._timeout_handle = None
        self.channel.socket.events.emit(
            "-", "push_timeout", f"{self.channel.topic} {self.event} ({self.ref}) no reply "
            f"within {self.timeout:g} s", topic=self.channel.topic, event=self.event,
            ref=self.ref, timeout=self.timeout)
        self.trigger("timeout", {})

    def _on_reply(self, payload: dict[str, Any]) -> None:
        """The channel routed a reply (or a local timeout/ok) for our current ref."""
        self._cancel_ref_event()
        self.cancel_timeout()
        self.received_resp = payload
        status = payload.get("status")
        guard = self.channel.socket.events.guard
        for hook_status, callback in list(self._rec_hooks):
            if hook_status == status:
                guard(f"{self.event} receive({status!r})", callback, payload.get("response"))
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if future.done():
                continue
            if status == "timeout":
                future.set_exception(PushTimeout(self.channel.topic, self.event, self.timeout))
            else:
                future.set_result(Reply(str(status), payload.get("response")))

    def _result(self, payload: dict[str, Any]) -> Reply:
        if payload.get("status") == "timeout":
            raise PushTimeout(self.channel.topic, self.event, self.timeout)
        return Reply(str(payload.get("status")), payload.get("response"))

    def _cancel_ref_event(self) -> None:
        if self.ref is not None and self.channel._reply_waiters.get(self.ref) is self:
            del self.channel._reply_waiters[self.ref]
