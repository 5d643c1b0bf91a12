"""One joined channel at run time: its task, its mailbox, its lifecycle (Phoenix.Channel.Server).

Theory of operation
-------------------
The transport creates a :class:`ChannelServer` for each ``phx_join`` it routes.  ``join``
starts the channel's one task, which calls the user's ``join`` and writes the join reply
itself; the transport awaits the outcome (as Phoenix's socket waits for the join) and only
then reads the next frame, so the reply to a join always precedes anything else that
channel sends.  On success the task subscribes to PubSub and then serves its mailbox
forever, one item at a time, so callbacks of one channel never overlap:

* ``("in", Message)``   a client push -> ``handle_in`` (``phx_leave`` is handled here:
  reply ok, then stop with ``("shutdown", "left")``);
* ``("out", Broadcast)`` an intercepted broadcast -> ``handle_out``;
* ``("info", msg)``     ``send_info`` -> ``handle_info``.

Outcomes.  A stop asks the transport to send ``phx_close`` (normal reasons) or
``phx_error``, then runs ``terminate(reason)`` (Phoenix's order: socket_close first, then
the GenServer's terminate).  A refused join runs ``terminate("shutdown")``.  An exception
in a callback is a crash: logged with its traceback, ``phx_error`` with ``{"reason":
"channel_crash"}``, no reply to the crashing message, no ``terminate``.  ``kill``
(duplicate join, killed server) cancels the task: no terminate, no frame.  ``shutdown``
(the connection closed) jumps the mailbox queue, waits for the current callback, then
calls ``terminate(("shutdown", "closed"))``.

Lifecycle: ``ChannelProcessState`` (``states.py``) changes only through its table
(joining, joined, stopping, stopped, crashed, killed); ``push``/``broadcast`` are allowed
only while joined.  A message already queued when the channel stops or crashes is dropped
without a reply, as in Phoenix, where it sat in the dead process's mailbox.

Flow control: the mailbox is bounded (``mailbox.py``): a client that out-pushes its
channel stalls on its own connection instead of growing server memory.

Timers: ``send_after`` (Phoenix's ``Process.send_after``) and ``send_interval`` (Erlang's
``:timer.send_interval``, which is linked to the process it sends to) deliver a message to
``handle_info`` later.  Every :class:`ChannelTimer` belongs to one channel process and is
cancelled when that process ends, whichever way it ends (stop, leave, closed connection,
refused join, crash, kill), so a recurring push can never outlive its channel; the
endpoint's ``snapshot()["timers"]`` counts the timers still scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mini_server.protocol import (
    JOIN_CRASHED,
    PHX_LEAVE,
    Broadcast,
    Message,
    Payload,
    ProtocolError,
    Reply,
)
from mini_server.redaction import redact
from mini_server.server.channel import (
    Channel,
    JoinError,
    JoinOk,
    NoReply,
    ReplyResult,
    SocketRef,
    Stop,
)
from mini_server.server.log_lines import Clip, server_logger
from mini_server.server.mailbox import Mailbox
from mini_server.server.pubsub import PubSub, Subscription
from mini_server.server.states import CHANNEL_TRANSITIONS, ChannelProcessState, Lifecycle

if TYPE_CHECKING:
    from mini_server.server.transport import Transport

log = server_logger(__name__)

JOIN_CRASHED_REPLY = {"reason": JOIN_CRASHED}
SHUTDOWN_TIMEOUT = 5.0  # Phoenix.Channel's :shutdown option (ms 5000)


class ChannelTimer:
    """A message for ``handle_info`` later, once or every ``interval`` s; dies with its channel."""

    def __init__(self, server: ChannelServer, delay: float, msg: Any,
                 interval: float | None = None) -> None:
        if delay < 0 or (interval is not None and interval <= 0):
            raise ValueError(f"timer delay must be >= 0 and interval > 0, got {delay}, "
                             f"{interval}")
        self.server, self.msg, self.interval = server, msg, interval
        self.fired = 0
        loop = asyncio.get_running_loop()
        self._due = loop.time() + delay
        self._handle: asyncio.TimerHandle | None = loop.call_at(self._due, self._fire)
        server.timers.add(self)
        server.timer_registry.add(self)

    def __repr__(self) -> str:
        kind = "once" if self.interval is None else f"every {self.interval:g} s"
        state = "active" if self.active else "cancelled"
        return f"<ChannelTimer {self.server.topic} {self.msg!r} {kind} {state}>"

    @property
    def active(self) -> bool:
        """True while the timer will still fire."""
        return self._handle is not None

    def cancel(self) -> None:
        """Stop it (a no-op if it already fired once or was cancelled)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.server.timers.discard(self)
        self.server.timer_registry.discard(self)

    def _fire(self) -> None:
        self.fired += 1
        if self.interval is None:
            self._handle = None
            self.server.timers.discard(self)
            self.server.timer_registry.discard(self)
        else:  # fixed rate, as :timer.send_interval: the next one is due from this due time
            self._due += self.interval
            self._handle = asyncio.get_running_loop().call_at(self._due, self._fire)
        self.server.send_info(self.msg)


class ChannelServer:
    """Runs one Channel instance in its own task."""

    def __init__(self, channel_cls: type[Channel], join: Message,
                 transport: Transport, pubsub: PubSub, mailbox_size: int = 1000) -> None:
        # Phoenix keeps two: the channel's socket.join_ref (the join's join_ref, or its ref
        # when null, as V1 clients send) for pushes and replies, and the transport's entry
        # (the join's join_ref as sent, maybe null) for stale checks and phx_close/phx_error.
        topic = join.topic
        join_ref = join.join_ref if join.join_ref is not None else join.ref
        self.topic, self.join_ref, self.wire_join_ref = topic, join_ref, join.join_ref
        self.log_topic = Clip(topic)  # the client chose it: escaped and cut in log lines
        self.transport, self.pubsub = transport, pubsub
        self.channel = channel_cls()
        self.channel.topic, self.channel.join_ref = topic, join_ref
        self.channel.assigns = dict(transport.assigns)  # a copy, as Phoenix copies assigns
        self.channel.socket_id = transport.socket_id
        self.channel._server = self
        self.mailbox = Mailbox(mailbox_size)
        self.lifecycle = Lifecycle(ChannelProcessState.JOINING, CHANNEL_TRANSITIONS, self)
        self.task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._ref: Any = None
        self.timers: set[ChannelTimer] = set()
        # the endpoint's set of every live timer, so snapshot() can show one that leaked
        self.timer_registry: set[ChannelTimer] = getattr(transport.endpoint, "channel_timers",
                                                         set())

    def __str__(self) -> str:
        return f"channel {self.topic!r} {self.join_ref!r}"

    @property
    def state(self) -> ChannelProcessState:
        """Where this channel process is in its life (``states.ChannelProcessState``)."""
        return self.lifecycle.state

    @property
    def joined(self) -> bool:
        """True while the channel serves its mailbox (join ok, not stopping)."""
        return self.state is ChannelProcessState.JOINED

    # --- called by the transport ------------------------------------------------------

    async def join(self, msg: Message) -> bool:
        """Start the task, run ``join``; True once the ok reply is queued."""
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run(msg, outcome),
                                        name=f"channel {self.topic} {self.join_ref}")
        return await outcome

    async def deliver(self, msg: Message) -> None:
        """Queue a client message, waiting while the mailbox is full."""
        await self.mailbox.put(("in", msg))

    def cancel(self) -> None:
        """Cancel the task now, without waiting: no terminate, no frame."""
        if self.state in (ChannelProcessState.JOINING, ChannelProcessState.JOINED,
                          ChannelProcessState.STOPPING):
            self.lifecycle.fire("kill")
        self._unsubscribe()
        self.cancel_timers()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def kill(self) -> None:
        """Cancel the task and wait for it to end (duplicate join, killed server)."""
        self.cancel()
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task}, timeout=SHUTDOWN_TIMEOUT)

    async def shutdown(self, reason: Any = ("shutdown", "closed")) -> None:
        """Stop after the current callback and call terminate; kill past SHUTDOWN_TIMEOUT."""
        if self.task is None or self.task.done():
            return
        if self.state is ChannelProcessState.JOINING:  # inside join: nothing to terminate
            await self.kill()
            return
        if self.state is not ChannelProcessState.JOINED:
            return  # already stopping on its own: let it finish
        self.mailbox.interrupt(("stop", reason))
        done, _ = await asyncio.wait({self.task}, timeout=SHUTDOWN_TIMEOUT)
        if not done:
            log.error("! %s: terminate did not finish in %.1f s; killing it",
                      self.log_topic, SHUTDOWN_TIMEOUT)
            await self.kill()

    # --- called through Channel methods ---------------------------------------------------

    def push(self, event: str, payload: Payload) -> None:
        """Queue ``[join_ref, null, topic, event, payload]`` on the transport."""
        self._check_joined("push")
        self.transport.send(Message(self.topic, event, payload, None, self.join_ref))

    async def broadcast(self, event: str, payload: Payload, *, exclude_self: bool) -> None:
        """Broadcast on this channel's topic, optionally skipping this channel."""
        self._check_joined("broadcast")
        await self.pubsub.broadcast(self.topic, event, payload,
                                    from_owner=self if exclude_self else None)

    def socket_ref(self) -> SocketRef:
        """A handle on the message being handled, for an asynchronous reply."""
        self._check_joined("socket_ref")
        if self._ref is None:
            raise RuntimeError("socket_ref() only makes sense inside handle_in for a message "
                               "with a ref")
        return SocketRef(self, self._ref)

    def reply_to(self, ref: str | None, status: str, payload: Payload) -> None:
        """Send a reply for ``ref`` with this channel's join_ref."""
        self.transport.send(Reply(self.topic, status, payload, ref, self.join_ref))

    def send_info(self, msg: Any) -> None:
        """Queue ``msg`` for ``handle_info``."""
        if not self.mailbox.closed and not self.mailbox.put_nowait(("info", msg)):
            log.error("! %s: mailbox full, dropped info %r", self.log_topic, msg)

    def start_timer(self, delay: float, msg: Any, interval: float | None = None) -> ChannelTimer:
        """A timer that queues ``msg`` for ``handle_info``; cancelled when the channel ends."""
        if self.state not in (ChannelProcessState.JOINING, ChannelProcessState.JOINED):
            raise RuntimeError(f"timer after the channel {self.topic} stopped ({self.state})")
        return ChannelTimer(self, delay, msg, interval)

    def cancel_timers(self) -> None:
        """Cancel every timer of this channel (it is ending)."""
        for timer in list(self.timers):
            timer.cancel()

    def deliver_out(self, message: Broadcast) -> None:
        """PubSub hands intercepted broadcasts here, for ``handle_out``."""
        if not self.mailbox.closed and not self.mailbox.put_nowait(("out", message)):
            log.error("! %s: mailbox full, dropped broadcast %s", self.log_topic, message.event)

    # --- the task ---------------------------------------------------------------------------

    async def _run(self, msg: Message, outcome: asyncio.Future[bool]) -> None:
        try:
            joined = False
            try:
                joined = await self._join(msg)
            finally:
                if not outcome.done():
                    outcome.set_result(joined)
            if joined:
                try:
                    await self._serve()
                except Exception:  # a bug in this module: surface it, never lose it silently
                    log.exception("! %s: channel task failed", self.log_topic)
                    if self.state is ChannelProcessState.JOINED:
                        self._crash()
        finally:  # however the process ends, its timers end with it (they are linked)
            self.cancel_timers()

    async def _join(self, msg: Message) -> bool:
        try:
            result = await self.channel.join(msg.topic, msg.payload)
            if not isinstance(result, (JoinOk, JoinError)):
                raise TypeError(f"join must return ok(...) or error(...), got {result!r}")
        except Exception:
            log.exception("! %s: join crashed", self.log_topic)
            self.lifecycle.fire("refused")
            self._join_reply(msg, "error", JOIN_CRASHED_REPLY)
            return False
        if isinstance(result, JoinError):
            self.transport.repeats.log(logging.INFO, "= %s refused join %s: %r", self.log_topic,
                                       Clip(self.join_ref), redact(result.response))
            self.lifecycle.fire("refused")
            self._join_reply(msg, "error", result.response)
            # Phoenix stops a refused channel with :shutdown, so terminate runs.
            await self._terminate("shutdown")
            return False
        self._sub = self.pubsub.subscribe(Subscription(
            self.topic, self, self.deliver_out, self.transport.serializer,
            self.transport.send_frame, frozenset(type(self.channel).intercept)))
        try:
            self._join_reply(msg, "ok", result.response)
        except ProtocolError:
            log.exception("! %s: join response cannot be encoded", self.log_topic)
            self.lifecycle.fire("refused")
            self._unsubscribe()
            self._join_reply(msg, "error", JOIN_CRASHED_REPLY)
            return False
        self.lifecycle.fire("joined")
        log.info("= %s joined (join_ref %s)", self.log_topic, self.join_ref)
        return True

    def _join_reply(self, msg: Message, status: str, payload: Payload) -> None:
        # The join reply echoes the join's own join_ref (null stays null), as Phoenix does.
        self.transport.send(Reply(self.topic, status, payload, msg.ref, msg.join_ref))

    async def _serve(self) -> None:
        while True:
            kind, item = await self.mailbox.get()
            if kind == "stop":
                await self._stop(item, notify=False)
                return
            try:
                result = await self._dispatch(kind, item)
            except Exception:
                what = Clip(getattr(item, "event", item) if kind != "info" else redact(item))
                log.exception("! %s: channel crashed in handle_%s(%r)", self.log_topic, kind, what)
                self._crash()
                return
            finally:
                self._ref = None
            if isinstance(result, Stop):
                await self._stop(result.reason, notify=True)
                return

    async def _dispatch(self, kind: str, item: Any) -> NoReply | Stop:
        if kind == "in":
            msg: Message = item
            if msg.event == PHX_LEAVE:
                self.reply_to(msg.ref, "ok", {})
                return Stop(("shutdown", "left"))
            self._ref = msg.ref
            result = await self.channel.handle_in(msg.event, msg.payload)
            return self._apply(result, "handle_in", msg.ref)
        if kind == "out":
            bc: Broadcast = item
            result = await self.channel.handle_out(bc.event, bc.payload)
        else:
            result = await self.channel.handle_info(item)
        return self._apply(result, f"handle_{kind}", None)

    def _apply(self, result: Any, callback: str, ref: str | None) -> NoReply | Stop:
        if isinstance(result, ReplyResult) and callback == "handle_in":
            self.reply_to(ref, result.status, result.response)
            return NoReply()
        if isinstance(result, Stop):
            if result.reply is not None and callback == "handle_in":
                self.reply_to(ref, result.reply.status, result.reply.response)
            return result
        if isinstance(result, NoReply):
            return result
        allowed = "reply(...), noreply() or stop(...)" if callback == "handle_in" else (
            "noreply() or stop(...)")
        raise TypeError(f"{callback} must return {allowed}, got {result!r}")

    async def _stop(self, reason: Any, *, notify: bool) -> None:
        self.lifecycle.fire("stop")
        self._unsubscribe()
        log.info("= %s stopped (join_ref %s): %r", self.log_topic, self.join_ref, reason)
        if notify:  # Phoenix sends socket_close before GenServer runs terminate
            self.transport.channel_stopped(self, reason, crashed=False)
        await self._terminate(reason)
        self.lifecycle.fire("stopped")

    async def _terminate(self, reason: Any) -> None:
        try:
            await self.channel.terminate(reason)
        except Exception:
            log.exception("! %s: terminate raised", self.log_topic)

    def _crash(self) -> None:
        self.lifecycle.fire("crash")
        self._unsubscribe()
        self.transport.channel_stopped(self, "crash", crashed=True)

    def _unsubscribe(self) -> None:
        self.cancel_timers()  # nothing may be queued for a mailbox that is closing
        if len(self.mailbox):
            log.info("x %s: %d queued messages dropped with the channel (no reply, as in "
                     "Phoenix)", self.topic, len(self.mailbox))
        self.mailbox.close()
        if self._sub is not None:
            self.pubsub.unsubscribe(self._sub)
            self._sub = None

    def _check_joined(self, what: str) -> None:
        if self.state is ChannelProcessState.JOINING:
            raise RuntimeError(
                f"{what} is not allowed inside join: the client has no join reply yet. "
                "Call self.send_info(...) in join and do it in handle_info "
                "(Phoenix's :after_join idiom).")
        if self.state is not ChannelProcessState.JOINED:
            raise RuntimeError(f"{what} after the channel {self.topic} stopped ({self.state})")
